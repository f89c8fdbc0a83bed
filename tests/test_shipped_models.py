"""The models shipped in models/ keep their promises (full-data checks, marked slow; CI runs them)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from maskdet.zoo.folders import default_model_name, load_model, load_split, read_metadata
from maskdet.evaluation.folder import evaluate_folder
from maskdet.data.images import load_rgb
from maskdet.evaluation.metrics import compute_metrics
from maskdet.inference.predictor import Predictor
from maskdet.settings import REPO_ROOT

SHIPPED = REPO_ROOT / "models"
pytestmark = pytest.mark.slow


@pytest.fixture
def shipped(monkeypatch):
    monkeypatch.setenv("MASKDET_MODELS_DIR", str(SHIPPED))
    return SHIPPED


def test_default_model_is_a_small_mobilenet(shipped):
    assert default_model_name() == "mobilenet_v2"
    meta = read_metadata(shipped / "mobilenet_v2")
    assert meta["arch"] == "mobilenet_v2"
    assert meta["weights"]["bytes"] <= 15 * 1024 * 1024
    assert meta["command"].startswith("python -m maskdet train --arch mobilenet_v2")
    assert {"mlp", "simple_cnn"} <= {p.name for p in shipped.iterdir() if p.is_dir()}


def _face_mask_4k_test(folder) -> tuple[list[str], list[int]]:
    """The face-mask-4k images of the model's held-out test split, relative to face-mask-4k.

    The default model trains on a crop set (maskdet.training.crops) that links face-mask-4k in as
    ``<class>/face-mask-4k/<path in face-mask-4k>`` with the split face-mask-4k gets on its own."""
    split = load_split(folder)
    if "sources" not in read_metadata(folder)["dataset"]:  # trained on face-mask-4k itself
        return split["test"], [split["labels"][p] for p in split["test"]]
    paths, labels = [], []
    for relpath in split["test"]:
        _class, source, inner = relpath.split("/", 2)
        if source == "face-mask-4k":
            paths.append(inner)
            labels.append(split["labels"][relpath])
    return paths, labels


def test_default_model_on_its_held_out_split_as_the_product_runs_it(shipped, datasets_root):
    """Re-classify the saved face-mask-4k test split through the product's Predictor (bf16 where faithful)."""
    folder = shipped / "mobilenet_v2"
    classifier = Predictor(load_model(folder))
    paths, labels = _face_mask_4k_test(folder)
    root = datasets_root / "face-mask-4k"
    scores = []
    for start in range(0, len(paths), 64):
        scores.extend(classifier.predict_proba([load_rgb(root / p) for p in paths[start : start + 64]])[:, 1])
    metrics = compute_metrics(np.array(labels), np.array(scores))
    assert metrics["n"] == 613  # the same images as face-mask-4k's own duplicate-aware split (seed 0)
    assert metrics["accuracy"] >= 0.995
    assert metrics["roc_auc"] >= 0.999
    assert metrics["ece"] <= 0.02


def test_default_model_card_records_its_training_data_and_calibration(shipped):
    meta = read_metadata(shipped / "mobilenet_v2")
    sources = {Path(s["path"]).name: s for s in meta["dataset"]["sources"]}
    assert set(sources) == {"kaggle-scenes", "face-mask-4k"}
    assert all(len(s["fingerprint"]) == 16 for s in sources.values())
    assert meta["dataset"]["command"].startswith("python -m maskdet cut-crops --data ")
    held_out = sources["kaggle-scenes"]["photo_split"]
    assert set(held_out["train"]).isdisjoint(held_out["val"] + held_out["test"]) and held_out["val"]
    assert "scenes-dev" not in json.dumps(meta["dataset"])  # chosen and measured on, never trained on
    assert meta["hyperparameters"]["robust"] is True
    assert meta["calibration"]["val_ece_after"] <= meta["calibration"]["val_ece_before"] + 1e-9


def test_default_model_generalises_to_unseen_synthetic_masks(shipped, datasets_root):
    evaluation = evaluate_folder(Predictor(load_model(shipped / "mobilenet_v2")), datasets_root / "synthetic-masks-2k")
    assert evaluation.metrics["n"] == 2000
    assert evaluation.metrics["accuracy"] >= 0.99


def test_notebook_baselines_are_reported(shipped):
    cnn = read_metadata(shipped / "simple_cnn")["metrics"]["test"]
    mlp = read_metadata(shipped / "mlp")["metrics"]["test"]
    assert cnn["accuracy"] >= 0.96
    assert 0.5 <= mlp["accuracy"] <= 1.0
