"""Give a trained model the validation scores training stores today, without retraining it.

Scores the model's saved validation split (``split.json``) in ``--data`` (its training folder, or a folder
holding the same files, e.g. a three-class crop set cut from the same photos) and stores labels and scores in
its card (``evaluation.val``; only ``metadata.json`` is rewritten, the weights hash stays valid). With
``--choose``, the operating threshold is then chosen on them (``python -m maskdet threshold``). Prints the
validation metrics and the threshold.

    python benchmarks/add_validation_scores.py --model models/mobilenet_v2 \\
        --data ~/.cache/maskdet/crops/kaggle-scenes-3class-face-mask-4k --choose
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from maskdet.evaluation.folder import evaluate_folder  # noqa: E402
from maskdet.evaluation.metrics import compute_metrics  # noqa: E402
from maskdet.inference.predictor import load_classifier  # noqa: E402
from maskdet.zoo.folders import choose_operating_threshold, resolve_model, set_card_scores  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="model name or folder")
    parser.add_argument("--data", required=True, type=Path, help="folder holding the model's validation files")
    parser.add_argument("--choose", action="store_true", help="then choose the operating threshold on them")
    args = parser.parse_args()
    folder = resolve_model(args.model)
    result = evaluate_folder(load_classifier(str(folder), precision="fp32"), args.data, split="val")
    set_card_scores(folder, "val", result.labels, result.scores)
    metrics = compute_metrics(result.labels, result.scores)
    report = {"model": folder.name, "val": {k: metrics[k] for k in ("n", "accuracy", "false_positives",
                                                                     "false_negatives", "outside_classes")}}
    if args.choose:
        card = choose_operating_threshold(folder)
        report["operating_threshold"] = card["operating_threshold"]
        report["chosen_on"] = card["operating_threshold_chosen_on"]
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
