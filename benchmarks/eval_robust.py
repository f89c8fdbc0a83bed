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
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from maskdet.boxed import match_boxes, scan_boxed_folder
from maskdet.calibration import expected_calibration_error
from maskdet.crops import crop_sets_dir
from maskdet.data import load_catalog, read_manifest
from maskdet.images import load_rgb
from maskdet.metrics import compute_metrics
from maskdet.pipeline import build_pipeline
from maskdet.settings import CLASSES
from maskdet.split import make_split


def evaluate_boxed(pipeline, root: Path, photos: set[str] | None, iou: float = 0.5) -> dict:
    folder = scan_boxed_folder(root)
    faces = found = 0
    labels, scores, errors = [], [], []
    for photo in folder.photos:
        if photos is not None and photo.name not in photos:
            continue
        predictions = pipeline.predict(np.asarray(load_rgb(photo.image)))
        known = [f for f in photo.faces if f.known]
        truth = np.array([f.box for f in photo.faces], dtype=float).reshape(-1, 4)
        matches = match_boxes(truth, np.array([p.box for p in predictions], dtype=float).reshape(-1, 4), iou)
        faces += len(known)
        for index, face in enumerate(photo.faces):
            if face.known and index in matches:
                found += 1
                prediction = predictions[matches[index]]
                labels.append(CLASSES.index(face.label))
                scores.append(prediction.p_with_mask)
                if prediction.label != face.label:
                    errors.append({"image": photo.name, "box": list(face.box), "label": face.label,
                                   "confidence": round(prediction.confidence, 3)})
    labels_np, scores_np = np.array(labels), np.array(scores)
    correct = (scores_np >= 0.5) == labels_np
    per_class = {c: {"faces_found": int((labels_np == i).sum()),
                     "labelled_right": float(correct[labels_np == i].mean()) if (labels_np == i).any() else None}
                 for i, c in enumerate(CLASSES)}
    return {
        "folder": str(root), "photos": len(photos) if photos is not None else len(folder.photos), "faces": faces,
        "recall": found / max(faces, 1), "accuracy_on_detected": float(correct.mean()) if found else None,
        "end_to_end": float(correct.sum()) / max(faces, 1), "per_class": per_class,
        "ece_on_detected": expected_calibration_error(labels_np, scores_np), "errors": errors,
    }


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
    held = {}
    if args.heldout:
        crop_set, split = args.heldout.split(":")
        for source in read_manifest(crop_sets_dir() / crop_set)["sources"]:
            if source["kind"] == "boxed-photos":
                held[Path(source["path"]).resolve()] = set(source["photo_split"][split])
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
