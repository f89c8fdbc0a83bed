"""Several models on one saved split's files, each at its own operating threshold: per-class recall and
precision, bare and incorrect faces called masked, and (three-class models) the ROC AUC of masked against
incorrectly masked faces, threshold-free. For comparing three-class models on the same real
validation faces (a model trained with ``--limit-per-class`` saved fewer of them than one trained without).

    python benchmarks/three_class_split.py --split-of mobilenet_v2_3class_pairs_robust --split val \\
        --data $MASKDET_CACHE_DIR/crops/kaggle-scenes-3class-face-mask-4k --model mobilenet_v2_3class_pairs_robust

Without ``--split-of``, every file of ``--data`` is scored. ``--boxes`` scores every annotated face of a boxed-photo
set instead, cut from its box with the pipeline's margin (models' classification without detection):

    python benchmarks/three_class_split.py --boxes ../shared/datasets/ilc-dev --model mobilenet_v2_3class_pairs_robust
 Files under ``<class>/synthetic/`` are never
scored (real faces only). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from maskdet.data.datasets import load_catalog
from maskdet.data.images import load_rgb
from maskdet.evaluation.metrics import compute_metrics
from maskdet.evaluation.scenes.faces import annotated_faces
from maskdet.inference.predictor import load_classifier
from maskdet.settings import KNOWN_CLASSES
from maskdet.zoo.decision import WITH_MASK, as_probabilities
from maskdet.zoo.folders import load_split, resolve_model

INCORRECT = KNOWN_CLASSES.index("incorrect_mask")


def masked_vs_incorrect_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """ROC AUC of p(with_mask) / (p(with_mask) + p(incorrect_mask)) on the masked and incorrectly masked faces: how
    well a three-class model tells where the mask sits, whatever the threshold (None for a two-class model)."""
    from sklearn.metrics import roc_auc_score

    probabilities = as_probabilities(scores)
    if probabilities.shape[1] <= INCORRECT:
        return None
    chosen = np.isin(labels, (WITH_MASK, INCORRECT))
    masked = probabilities[chosen, WITH_MASK]
    return round(float(roc_auc_score(labels[chosen] == WITH_MASK,
                                     masked / (masked + probabilities[chosen, INCORRECT]))), 4)



def boxed_faces(root: Path) -> tuple[np.ndarray, list]:
    """(labels, crops) of every annotated face of the boxed-photo set at ``root`` with a known class."""
    faces = list(annotated_faces(root))
    return np.array([KNOWN_CLASSES.index(face.label) for face in faces]), [face.crop for face in faces]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--split-of", help="the model whose saved split names the files (default: every file)")
    parser.add_argument("--split", default="val", choices=("val", "test"))
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, help="folder holding those files")
    source.add_argument("--boxes", type=Path, help="a boxed-photo set: every annotated face, cut from its box")
    parser.add_argument("--model", action="append", required=True, help="model name or folder; repeatable")
    args = parser.parse_args()
    if args.boxes:
        labels, images = boxed_faces(args.boxes)
    else:
        records = [r for r in load_catalog(args.data).readable if "/synthetic/" not in r.relpath]
        if args.split_of:
            wanted = set(load_split(resolve_model(args.split_of))[args.split])
            records = [r for r in records if r.relpath in wanted]
        labels = np.array([r.label for r in records])
        images = [load_rgb(args.data / r.relpath) for r in records]
    report = {"files": len(images), "split": f"{args.split_of}:{args.split}" if args.split_of else "all",
              "models": {}}
    for name in args.model:
        classifier = load_classifier(name, precision="fp32")
        scores = np.concatenate([classifier.predict_proba(images[i:i + 64]) for i in range(0, len(images), 64)])
        metrics = compute_metrics(labels, scores, classifier.threshold)
        report["models"][classifier.name] = {
            "threshold": classifier.threshold, "accuracy": metrics["accuracy"], "confusion": metrics["confusion"],
            "per_class": {c: {k: round(v, 4) for k, v in m.items() if k in ("precision", "recall")}
                          for c, m in metrics["per_class"].items()},
            "false_positives": metrics["false_positives"], "outside_classes": metrics["outside_classes"],
            "masked_vs_incorrect_auc": masked_vs_incorrect_auc(labels, scores)}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
