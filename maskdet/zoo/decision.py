"""The one decision rule: how a model's class probabilities become a face's label.

The pipeline labels faces with it at the model's operating threshold (stored in its card), and the
metrics count errors with it, so what the pages show and what the metrics say never disagree.
"""

from __future__ import annotations

import math

import numpy as np

THRESHOLD = 0.5
"""The default operating threshold on p(with_mask)."""


def validate_threshold(threshold: float) -> float:
    """``threshold`` as a float, or ValueError unless it is a finite number strictly between 0 and 1.

    0 and 1 are refused: they would label every face (or no face but a certain one) ``with_mask``.
    """
    if isinstance(threshold, bool) or not isinstance(threshold, int | float | np.floating):
        raise ValueError(f"threshold must be a number, got {threshold!r}")  # noqa: TRY004 - one error type for callers
    value = float(threshold)
    if not (math.isfinite(value) and 0.0 < value < 1.0):
        raise ValueError(f"threshold must be strictly between 0 and 1, got {threshold!r}")
    return value


def predicted_labels(scores: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """The decision rule: label 1 (``with_mask``) where ``p(with_mask) >= threshold``, else 0."""
    return (np.asarray(scores, dtype=np.float64) >= threshold).astype(np.int64)
