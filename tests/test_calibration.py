"""Temperature scaling finds the temperature that produced over-confident scores, and the expected
calibration error tells calibrated from over-confident scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from maskdet.evaluation.calibration import apply_temperature, expected_calibration_error, fit_temperature, fold_temperature


def _calibrated_sample(n: int = 20000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Scores that are exactly calibrated: each label drawn with the probability its score says."""
    rng = np.random.default_rng(seed)
    scores = 1 / (1 + np.exp(-rng.normal(0, 2.5, n)))
    labels = (rng.random(n) < scores).astype(np.int64)
    return labels, scores


def test_fit_recovers_the_temperature_of_overconfident_scores():
    labels, calibrated = _calibrated_sample()
    overconfident = apply_temperature(calibrated, 1 / 3.0)  # logits multiplied by 3
    assert fit_temperature(labels, overconfident) == pytest.approx(3.0, rel=0.08)
    assert fit_temperature(labels, calibrated) == pytest.approx(1.0, rel=0.08)


def test_ece_is_small_for_calibrated_and_large_for_overconfident_scores():
    labels, calibrated = _calibrated_sample()
    overconfident = apply_temperature(calibrated, 1 / 3.0)
    assert expected_calibration_error(labels, calibrated) < 0.02
    assert expected_calibration_error(labels, overconfident) > 0.08
    # By hand: four predictions at confidence 0.9, three right -> |0.75 - 0.9| = 0.15.
    assert expected_calibration_error(np.array([1, 1, 1, 0]), np.full(4, 0.9)) == pytest.approx(0.15)
    assert expected_calibration_error(np.array([]), np.array([])) is None


def test_folding_divides_the_logits_and_keeps_the_labels():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 2))
    x = torch.randn(32, 8)
    before = model(x).detach()
    fold_temperature(model, 2.5)
    after = model(x).detach()
    torch.testing.assert_close(after, before / 2.5)
    assert torch.equal(after.argmax(1), before.argmax(1))
