"""The dashboard's model charts (ui/figures.py): what a reader sees must match the numbers."""

from __future__ import annotations

import numpy as np

from maskdet.evaluation.metrics import calibration
from ui.figures import reliability_figure


def test_reliability_draws_filled_bins_only_sized_by_count_with_the_ece() -> None:
    """A well-calibrated model with scores only near 0 and 1: no line across the empty bins between them."""
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.uniform(0.0, 0.06, 300), rng.uniform(0.94, 1.0, 100), [0.35]])
    labels = (rng.uniform(size=scores.size) < scores).astype(int)
    expected = calibration(labels, scores)
    figure = reliability_figure({"m": (labels.tolist(), scores.tolist())}, {"m": "rgb(0, 0, 0)"}, "t")
    trace = next(t for t in figure.data if t.name.startswith("m "))
    assert trace.mode == "markers"  # no line joins bins across empty ones
    assert len(trace.x) == len(expected["count"]) == 3  # the filled bins only
    sizes = list(trace.marker.size)
    assert sizes[0] > sizes[2] > sizes[1]  # 300 images, 100, 1
    assert f"ECE {expected['expected_calibration_error']:.3f}" in trace.name
