"""A threshold chosen on another camera's faces: how many bare faces it keeps from being called masked there.

The classifier's probabilities shift with the camera: a threshold chosen on our validation faces can call a new
camera's bare faces masked. ``python -m maskdet threshold --on FOLDER`` chooses it on the deployer's own labelled
faces instead (:func:`maskdet.evaluation.folder.choose_threshold_on_folder`). This measures that on a boxed-photo
set standing in for a new camera: its annotated faces are cut from their boxes (the pipeline's margin), its photos
split in two halves (by a hash of the file name); the threshold is chosen on one half and the faces of the other are
counted at 0.5, at the threshold the model's validation scores give, and at the one chosen on the first half; then
the halves swap. The shipped model folders are not touched (a copy is chosen on). Prints one JSON object.

    python benchmarks/camera_threshold.py --boxes ../shared/datasets/ilc-dev --model mobilenet_v2 \\
        --model mobilenet_v2_cascade
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from maskdet.evaluation.folder import choose_threshold_on_folder, evaluate_folder
from maskdet.evaluation.scenes.faces import annotated_faces
from maskdet.inference.predictor import load_classifier
from maskdet.settings import KNOWN_CLASSES
from maskdet.zoo.decision import MAX_BARE_CALLED_MASKED, WITH_MASK, as_probabilities, choose_threshold
from maskdet.zoo.folders import card_scores, read_metadata, resolve_model


def cut_halves(root: Path, out: Path) -> list[Path]:
    """Every annotated face of the boxed-photo set ``root`` as ``out/half<h>/<class>/<photo>_<i>.png``, the photos
    split in two halves by a hash of their relative path."""
    halves = [out / "half0", out / "half1"]
    for face in annotated_faces(root):
        half = halves[int(hashlib.sha256(face.relpath.encode()).hexdigest(), 16) % 2]
        target = half / face.label / f"{Path(face.relpath).stem}_{face.index}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        face.crop.save(target)
    return halves


def counts_at(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict:
    """Not-masked (bare, incorrect) faces called masked and masked faces kept masked, at ``threshold``."""
    called = as_probabilities(scores)[:, WITH_MASK] >= threshold
    return {"threshold": threshold,
            "bare_called_masked": int((called & (labels == 0)).sum()),
            "incorrect_called_masked": int((called & (labels == 2)).sum()),
            "masked_called_masked": int((called & (labels == WITH_MASK)).sum())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--boxes", required=True, type=Path, help="a boxed-photo set standing in for a new camera")
    parser.add_argument("--model", action="append", required=True, help="model name or folder; repeatable")
    parser.add_argument("--max-bare-called-masked", type=float, default=MAX_BARE_CALLED_MASKED,
                        help="the bound the threshold is chosen for on the first half")
    args = parser.parse_args()
    report: dict = {"data": str(args.boxes), "max_bare_called_masked": args.max_bare_called_masked, "models": {}}
    with tempfile.TemporaryDirectory(prefix="maskdet-camera-") as tmp:
        halves = cut_halves(args.boxes, Path(tmp) / "faces")
        for name in args.model:
            folder = resolve_model(name)
            validation = card_scores(read_metadata(folder), "val")
            val_threshold = choose_threshold(*validation) if validation is not None else None
            rows = []
            for chosen_half, measured_half in ((0, 1), (1, 0)):
                copy = Path(tmp) / f"{folder.name}-{chosen_half}"
                shutil.copytree(folder, copy)
                chosen = choose_threshold_on_folder(copy, halves[chosen_half], args.max_bare_called_masked)
                measured = evaluate_folder(load_classifier(str(copy)), halves[measured_half])
                faces = {KNOWN_CLASSES[i]: int((measured.labels == i).sum()) for i in range(len(KNOWN_CLASSES))}
                rows.append({"chosen_on": f"half{chosen_half}", "measured_on": f"half{measured_half}", "faces": faces,
                             "at_0.5": counts_at(measured.labels, measured.scores, 0.5),
                             "at_validation_threshold": None if val_threshold is None else
                             counts_at(measured.labels, measured.scores, val_threshold),
                             "at_camera_threshold": counts_at(measured.labels, measured.scores, chosen.threshold),
                             "bound_met_where_chosen": chosen.bound_met})
            report["models"][folder.name] = rows
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
