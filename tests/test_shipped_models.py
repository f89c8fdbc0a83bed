"""The models shipped in models/ keep their promises (full-data checks, marked slow; CI runs them)."""

from __future__ import annotations

import numpy as np
import pytest

from maskdet.checkpoint import default_model_name, load_model, load_split, read_metadata
from maskdet.evaluation import evaluate_folder
from maskdet.images import load_rgb
from maskdet.metrics import compute_metrics
from maskdet.classifier import Classifier
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


def test_default_model_on_its_held_out_split_as_the_product_runs_it(shipped, datasets_root):
    """Re-classify the saved test split through the product's Classifier (bf16 where faithful)."""
    folder = shipped / "mobilenet_v2"
    classifier = Classifier(load_model(folder))
    split = load_split(folder)
    root = datasets_root / "face-mask-4k"
    scores, labels = [], []
    for start in range(0, len(split["test"]), 64):
        chunk = split["test"][start : start + 64]
        scores.extend(classifier.predict_proba([load_rgb(root / p) for p in chunk])[:, 1])
        labels.extend(split["labels"][p] for p in chunk)
    metrics = compute_metrics(np.array(labels), np.array(scores))
    assert metrics["n"] >= 600
    assert metrics["accuracy"] >= 0.995
    assert metrics["roc_auc"] >= 0.999
    stored = read_metadata(folder)["metrics"]["test"]
    assert abs(metrics["accuracy"] - stored["accuracy"]) <= 0.005  # same images, same model: within noise


def test_default_model_generalises_to_unseen_synthetic_masks(shipped, datasets_root):
    evaluation = evaluate_folder(Classifier(load_model(shipped / "mobilenet_v2")), datasets_root / "synthetic-masks-2k")
    assert evaluation.metrics["n"] == 2000
    assert evaluation.metrics["accuracy"] >= 0.99


def test_notebook_baselines_are_reported(shipped):
    cnn = read_metadata(shipped / "simple_cnn")["metrics"]["test"]
    mlp = read_metadata(shipped / "mlp")["metrics"]["test"]
    assert cnn["accuracy"] >= 0.96
    assert 0.5 <= mlp["accuracy"] <= 1.0
