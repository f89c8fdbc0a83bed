"""The classifier targets of issue 19, measured through the product's own pipeline.

For each boxed-photo folder: detection recall, accuracy on detected faces (overall, bare, masked),
end-to-end accuracy (found and labelled right / all faces) and the expected calibration error of the
detected faces' confidences. ``--heldout CROPSET:SPLIT`` keeps only the photos that crop set held out
in SPLIT (its manifest's ``photo_split``), e.g. the validation photos of kaggle-scenes. Also the
accuracy on face-mask-4k's own duplicate-aware test split (seed 0: the images the shipped model's
card reports). Prints one JSON object.

    python benchmarks/eval_robust.py --model mobilenet_v2 --scenes ../shared/datasets/scenes-dev \\
        --scenes ../shared/datasets/kaggle-scenes --heldout robust-mix:val --face-mask-4k ../shared/datasets/face-mask-4k

``--table DATA_ROOT`` prints instead the target table of issue 24 (three classes) for each ``--model``, one
column per model: ilc-dev (faces matched at IoU >= 0.4), scenes-dev, face-mask-4k's test split,
synthetic-masks-2k and the kaggle-scenes photos ``--heldout`` names (e.g. ``CROPSET:test``):

    python benchmarks/eval_robust.py --table ../shared/datasets --model mobilenet_v2 --model my_3class_model \\
        --heldout kaggle-scenes-3class-face-mask-4k:test

The models of one table share one detector whose faces are kept per image (the detector does not depend on
the classifier): each further model costs only its classification.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from maskdet.evaluation.calibration import expected_calibration_error
from maskdet.training.crops import held_out_photos
from maskdet.data.datasets import load_catalog
from maskdet.data.images import load_rgb
from maskdet.evaluation.metrics import compute_metrics
from maskdet.inference.pipeline import build_pipeline
from maskdet.data.annotations import load_scene_set
from maskdet.evaluation.scenes import evaluate_scenes
from maskdet.evaluation.scenes.evaluate import MISLABELLED
from maskdet.evaluation.folder import evaluate_folder
from maskdet.settings import KNOWN_CLASSES
from maskdet.data.split import make_split

KEPT = ("images", "faces", "detection_recall", "false_positives", "accuracy_on_detected", "end_to_end_accuracy",
        "map50", "per_class")


def evaluate_boxed(pipeline, root: Path, photos: set[str] | None, iou: float = 0.5) -> dict:
    """``evaluate-scenes`` metrics (on ``photos`` only, when given) plus the ECE of the detected faces."""
    scenes = load_scene_set(root)
    if photos is not None:
        scenes = replace(scenes, images=[image for image in scenes.images if image.relpath in photos], problems=[])
    evaluation = evaluate_scenes(pipeline, scenes, iou=iou)
    labels, scores = [], []
    for outcome in evaluation.outcomes:
        known = outcome.known_faces
        for d, f in enumerate(outcome.matching.face_of):
            if f is not None:
                labels.append(KNOWN_CLASSES.index(known[f].label))
                scores.append(list(outcome.predictions[d].probabilities.values()))
    metrics = {key: evaluation.metrics[key] for key in KEPT}
    mislabelled = [e for e in evaluation.metrics["errors"] if e["kind"] == MISLABELLED]
    return {"folder": str(root), **metrics, "ece_on_detected": expected_calibration_error(np.array(labels), np.array(scores)),
            "mislabelled": mislabelled}


def evaluate_face_mask_4k_test(pipeline, root: Path) -> dict:
    split = make_split(load_catalog(root), seed=0)
    scores = []
    for start in range(0, len(split.test), 64):
        chunk = split.test[start : start + 64]
        scores.extend(pipeline.classifier.predict_proba([load_rgb(root / p) for p in chunk]))
    metrics = compute_metrics(np.array([split.labels[p] for p in split.test]), np.array(scores),
                              pipeline.classifier.threshold)
    return {k: metrics[k] for k in ("n", "accuracy", "roc_auc", "ece", "false_positives", "false_negatives")}


def _right(metrics: dict, name: str) -> int:
    return (metrics["per_class"].get(name) or {}).get("right") or 0


def _share(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def target_figures(pipeline, data_root: Path, heldout: str | None) -> dict[str, str]:
    """The rows of issue 24's target table for one pipeline (figures as text)."""
    ilc = evaluate_boxed(pipeline, data_root / "ilc-dev", None, iou=0.4)
    incorrect = ilc["per_class"].get("incorrect_mask") or {}
    called_incorrect = sum((c.get("called") or {}).get("incorrect_mask", 0) for c in ilc["per_class"].values())
    right = sum(_right(ilc, name) for name in KNOWN_CLASSES)
    scenes = evaluate_boxed(pipeline, data_root / "scenes-dev", None)
    fm4k = evaluate_face_mask_4k_test(pipeline, data_root / "face-mask-4k")
    synthetic = evaluate_folder(pipeline.classifier, data_root / "synthetic-masks-2k")
    synthetic_accuracy = compute_metrics(synthetic.labels, synthetic.scores, pipeline.classifier.threshold)["accuracy"]
    kaggle = {}
    if heldout:
        photos = held_out_photos(*heldout.split(":")).get((data_root / "kaggle-scenes").resolve())
        kaggle = evaluate_boxed(pipeline, data_root / "kaggle-scenes", photos)

    def text(value: float | None, digits: int = 3) -> str:
        return "–" if value is None else f"{value:.{digits}f}"

    bare = ilc["per_class"]["without_mask"]
    return {
        "ilc-dev: incorrect faces found and called incorrect / precision of 'incorrect'":
            f"{text(_share(_right(ilc, 'incorrect_mask'), incorrect.get('faces', 0)))} / "
            f"{text(_share(_right(ilc, 'incorrect_mask'), called_incorrect))}",
        "ilc-dev: all faces end to end (three classes) / detection recall":
            f"{text(_share(right, ilc['faces']))} / {text(ilc['detection_recall'])}",
        "ilc-dev: bare faces found and called bare": text(_share(_right(ilc, "without_mask"), bare["faces"])),
        "scenes-dev: recall / false positives / end to end":
            f"{text(scenes['detection_recall'])} / {scenes['false_positives']} / "
            f"{text(_share(sum(_right(scenes, n) for n in KNOWN_CLASSES), scenes['faces']))}",
        "face-mask-4k test (613) / synthetic-masks-2k": f"{fm4k['accuracy']:.2%} / {synthetic_accuracy:.2%}",
        f"kaggle-scenes {heldout} photos: bare faces right (found, labelled right)":
            f"{kaggle['per_class']['without_mask']['accuracy_on_detected']:.1%}" if kaggle else "–",
    }


class SharedDetections:
    """A detector that remembers the faces it found in each image (by its pixels), so that several models'
    pipelines detect every photo once; it reports the wrapped detector's name and settings."""

    def __init__(self, detector) -> None:
        self.detector = detector
        self.name = getattr(detector, "name", type(detector).__name__)
        self._faces: dict[bytes, list] = {}

    def settings(self) -> dict:
        settings = getattr(self.detector, "settings", None)
        return settings() if callable(settings) else {}

    def detect(self, image) -> list:
        array = np.asarray(image)
        key = hashlib.sha256(array.tobytes() + str(array.shape).encode()).digest()
        if key not in self._faces:
            self._faces[key] = self.detector.detect(image)
        return self._faces[key]


def print_table(models: list[str], data_root: Path, heldout: str | None) -> None:
    """Issue 24's target table, one column per model, as Markdown."""
    columns = {}
    shared = None
    for model in models:
        pipeline = build_pipeline(model)
        shared = shared or SharedDetections(pipeline.detector)
        pipeline.detector = shared
        started = time.monotonic()
        columns[f"{pipeline.classifier.name} (t={pipeline.classifier.threshold:g})"] = target_figures(
            pipeline, data_root, heldout)
        print(f"{model}: {time.monotonic() - started:.0f} s", file=sys.stderr)
    rows = list(next(iter(columns.values())))
    print("| figure | " + " | ".join(columns) + " |")
    print("|---|" + "---|" * len(columns))
    for row in rows:
        print(f"| {row} | " + " | ".join(figures[row] for figures in columns.values()) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", action="append", help="model name or folder; repeatable with --table")
    parser.add_argument("--table", type=Path, metavar="DATA_ROOT", help="print issue 24's target table")
    parser.add_argument("--scenes", action="append", default=[], help="boxed-photo folder; repeatable")
    parser.add_argument("--heldout", help="CROPSET:SPLIT: evaluate kaggle-scenes-like folders on that split's photos only")
    parser.add_argument("--face-mask-4k", type=Path)
    args = parser.parse_args()
    if args.table:
        print_table(args.model or [None], args.table, args.heldout)
        return
    pipeline = build_pipeline(args.model[0] if args.model else None)
    held = held_out_photos(*args.heldout.split(":")) if args.heldout else {}
    started = time.monotonic()
    result = {"model": pipeline.classifier.name, "scenes": [
        {**evaluate_boxed(pipeline, Path(root), held.get(Path(root).resolve())),
         "photos_from": args.heldout if Path(root).resolve() in held else "all"}
        for root in args.scenes
    ]}
    if args.face_mask_4k:
        result["face_mask_4k_test"] = evaluate_face_mask_4k_test(pipeline, args.face_mask_4k)
    result["seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
