"""The one decision rule: how a model's class probabilities become a face's label.

Compliance rule: a face is called ``with_mask`` only when ``p(with_mask) >= threshold`` (the model's operating
threshold, stored in its card); otherwise it gets the more probable of the other classes (``without_mask`` or,
for a three-class model, ``incorrect_mask``). A bare or incorrectly masked face called "masked" is the costly
error, and the threshold bounds it alone. For a two-class model this is exactly ``p(with_mask) >= threshold``.

The pipeline labels faces with it and the metrics count errors with it, so what the pages show and what the
metrics say never disagree. :func:`choose_threshold` picks the operating threshold on validation scores.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from maskdet.settings import KNOWN_CLASSES, POSITIVE_CLASS

THRESHOLD = 0.5
"""The default operating threshold on p(with_mask)."""
WITH_MASK = KNOWN_CLASSES.index(POSITIVE_CLASS)
"""Label index of ``with_mask`` in every class list."""
MAX_BARE_CALLED_MASKED = 0.005
"""Default bound of :func:`choose_threshold`: at most this fraction of not-masked validation faces called masked."""


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


def as_probabilities(scores: np.ndarray) -> np.ndarray:
    """(N, C) class probabilities; a 1-D array is read as a two-class model's p(with_mask)."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim == 1:
        return np.column_stack([1.0 - scores, scores])
    if scores.ndim != 2 or not 2 <= scores.shape[1] <= len(KNOWN_CLASSES):
        raise ValueError(f"scores must be p(with_mask) (N,) or class probabilities (N, 2..3), got {scores.shape}")
    return scores


def compact_scores(probabilities: np.ndarray) -> np.ndarray:
    """What is stored of class probabilities (cards, evaluations): p(with_mask) (N,) for a two-class model,
    as before three classes existed; the rows (N, C) otherwise. :func:`as_probabilities` reads both."""
    probabilities = as_probabilities(probabilities)
    return probabilities[:, WITH_MASK] if probabilities.shape[1] == 2 else probabilities


def predicted_labels(scores: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """The decision rule: label 1 (``with_mask``) where ``p(with_mask) >= threshold``, else the more probable
    of the other classes. ``scores``: class probabilities (N, C), or a two-class model's p(with_mask) (N,)."""
    probabilities = as_probabilities(scores)
    others = probabilities.copy()
    others[:, WITH_MASK] = -np.inf
    return np.where(probabilities[:, WITH_MASK] >= threshold, WITH_MASK, others.argmax(axis=1)).astype(np.int64)


def held_back_by_threshold(probabilities: Mapping[str, float], label: str) -> float | None:
    """p(with_mask) when the rule kept a face from being called masked although masked was its most probable class
    (p(with_mask) the highest, yet under the operating threshold, since ``label``, the rule's verdict, is another
    class): its verdict is then the likelier of the other classes, whose own probability can be small, so the
    pages draw and explain such a face apart. None when the verdict is the most probable class."""
    p_masked = probabilities.get(POSITIVE_CLASS)
    if p_masked is None or label == POSITIVE_CLASS:
        return None
    return p_masked if p_masked == max(probabilities.values()) else None


def threshold_rule(max_bare_called_masked: float = MAX_BARE_CALLED_MASKED) -> str:
    """How :func:`choose_threshold` chooses, in words (recorded beside the threshold in the card)."""
    return f"lowest threshold >= 0.5 calling at most {max_bare_called_masked:.1%} of not-masked faces masked"


def choose_threshold(labels: np.ndarray, scores: np.ndarray,
                     max_bare_called_masked: float = MAX_BARE_CALLED_MASKED) -> float:
    """The lowest threshold (in 0.01 steps, 0.5 to 0.99) at which at most ``max_bare_called_masked`` of the
    not-masked faces (``labels`` != with_mask) are called masked; 0.5 when that already holds (then the
    masked faces' recall is untouched). Meant for validation scores (the card's), never the test split."""
    labels = np.asarray(labels, dtype=np.int64)
    p_masked = as_probabilities(scores)[:, WITH_MASK]
    not_masked = p_masked[labels != WITH_MASK]
    for threshold in np.round(np.arange(0.5, 0.995, 0.01), 2):
        if not len(not_masked) or np.mean(not_masked >= threshold) <= max_bare_called_masked:
            return float(threshold)
    return 0.99
