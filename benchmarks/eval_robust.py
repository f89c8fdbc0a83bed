"""The classifier targets of issue 19, measured through the product's own pipeline.

For each boxed-photo folder: detection recall, accuracy on detected faces (overall, bare, masked),
end-to-end accuracy (found and labelled right / all faces) and the expected calibration error of the
detected faces' confidences. ``--heldout CROPSET:SPLIT`` keeps only the photos that crop set held out
in SPLIT (its manifest's ``photo_split``), e.g. the validation photos of kaggle-scenes. Also the
accuracy on face-mask-4k's own duplicate-aware test split (seed 0: the images the shipped model's
card reports). Prints one JSON object.

    python benchmarks/eval_robust.py --model mobilenet_v2 --scenes ../shared/datasets/scenes-dev \\
        --scenes ../shared/datasets/kaggle-scenes --heldout robust-mix:val --face-mask-4k ../shared/datasets/face-mask-4k
"""

from __future__ import annotations

import argparse
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
from maskdet.settings import CLASSES
from maskdet.data.split import make_split

KEPT = ("images", "faces", "detection_recall", "false_positives", "accuracy_on_detected", "end_to_end_accuracy",
        "map50", "per_class")


def evaluate_boxed(pipeline, root: Path, photos: set[str] | None) -> dict:
    """``evaluate-scenes`` metrics (on ``photos`` only, when given) plus the ECE of the detected faces."""
    scenes = load_scene_set(root)
    if photos is not None:
        scenes = replace(scenes, images=[image for image in scenes.images if image.relpath in photos], problems=[])
    evaluation = evaluate_scenes(pipeline, scenes)
    labels, scores = [], []
    for outcome in evaluation.outcomes:
        known = outcome.known_faces
        for d, f in enumerate(outcome.matching.face_of):
            if f is not None:
                labels.append(CLASSES.index(known[f].label))
                scores.append(outcome.predictions[d].p_with_mask)
    metrics = {key: evaluation.metrics[key] for key in KEPT}
    mislabelled = [e for e in evaluation.metrics["errors"] if e["kind"] == MISLABELLED]
    return {"folder": str(root), **metrics, "ece_on_detected": expected_calibration_error(np.array(labels), np.array(scores)),
            "mislabelled": mislabelled}


def evaluate_face_mask_4k_test(pipeline, root: Path) -> dict:
    split = make_split(load_catalog(root), seed=0)
    scores = []
    for start in range(0, len(split.test), 64):
        chunk = split.test[start : start + 64]
        scores.extend(pipeline.classifier.predict_proba([load_rgb(root / p) for p in chunk])[:, 1])
    metrics = compute_metrics(np.array([split.labels[p] for p in split.test]), np.array(scores))
    return {k: metrics[k] for k in ("n", "accuracy", "roc_auc", "ece", "false_positives", "false_negatives")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model")
    parser.add_argument("--scenes", action="append", default=[], help="boxed-photo folder; repeatable")
    parser.add_argument("--heldout", help="CROPSET:SPLIT: evaluate kaggle-scenes-like folders on that split's photos only")
    parser.add_argument("--face-mask-4k", type=Path)
    args = parser.parse_args()
    pipeline = build_pipeline(args.model)
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
