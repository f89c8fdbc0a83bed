"""Several models on one saved split's files, each at its own operating threshold: per-class recall and
precision, bare and incorrect faces called masked. For comparing three-class models on the same real
validation faces (a model trained with ``--limit-per-class`` saved fewer of them than one trained without).

    python benchmarks/three_class_split.py --split-of mobilenet_v2_3class_pairs_robust --split val \\
        --data $MASKDET_CACHE_DIR/crops/kaggle-scenes-3class-face-mask-4k --model mobilenet_v2_3class_pairs_robust

Without ``--split-of``, every file of ``--data`` is scored (e.g. ilc-dev's annotated faces cut with the pipeline's
margin, to compare models' classification without detection). Files under ``<class>/synthetic/`` are never
scored (real faces only). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from maskdet.data.datasets import load_catalog  # noqa: E402
from maskdet.data.images import load_rgb  # noqa: E402
from maskdet.evaluation.metrics import compute_metrics  # noqa: E402
from maskdet.inference.predictor import load_classifier  # noqa: E402
from maskdet.zoo.folders import load_split, resolve_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--split-of", help="the model whose saved split names the files (default: every file)")
    parser.add_argument("--split", default="val", choices=("val", "test"))
    parser.add_argument("--data", required=True, type=Path, help="folder holding those files")
    parser.add_argument("--model", action="append", required=True, help="model name or folder; repeatable")
    args = parser.parse_args()
    records = [r for r in load_catalog(args.data).readable if "/synthetic/" not in r.relpath]
    if args.split_of:
        wanted = set(load_split(resolve_model(args.split_of))[args.split])
        records = [r for r in records if r.relpath in wanted]
    labels = np.array([r.label for r in records])
    images = [load_rgb(args.data / r.relpath) for r in records]
    report = {"files": len(records), "split": f"{args.split_of}:{args.split}" if args.split_of else "all",
              "models": {}}
    for name in args.model:
        classifier = load_classifier(name, precision="fp32")
        scores = np.concatenate([classifier.predict_proba(images[i:i + 64]) for i in range(0, len(images), 64)])
        metrics = compute_metrics(labels, scores, classifier.threshold)
        report["models"][classifier.name] = {
            "threshold": classifier.threshold, "accuracy": metrics["accuracy"], "confusion": metrics["confusion"],
            "per_class": {c: {k: round(v, 4) for k, v in m.items() if k in ("precision", "recall")}
                          for c, m in metrics["per_class"].items()},
            "false_positives": metrics["false_positives"], "outside_classes": metrics["outside_classes"]}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
