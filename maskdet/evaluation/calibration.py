"""Confidences that mean something: temperature scaling and the expected calibration error.

A network trained to near-zero loss is over-confident: on unfamiliar faces it says "mask, 97%"
and is wrong. Temperature scaling (Guo et al., 2017) divides the logits by one number ``T``
fitted on the validation split (negative log-likelihood, :func:`scipy.optimize.minimize_scalar`);
labels never change, only how sure the model says it is. :func:`fold_temperature` writes ``1/T``
into the network's last linear layer, so every consumer of the saved model (the classifier
runtime, explanations, exports) gets calibrated probabilities without knowing about it.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import minimize_scalar
from torch import nn

ECE_BINS = 15
_EPS = 1e-6


def _log_probabilities(scores: np.ndarray) -> np.ndarray:
    """Log class probabilities (N, C) of ``scores``: class probabilities, or a two-class model's p(with_mask)."""
    probabilities = np.asarray(scores, dtype=np.float64)
    if probabilities.ndim == 1:
        probabilities = np.column_stack([1.0 - probabilities, probabilities])
    return np.log(np.clip(probabilities, _EPS, 1.0))


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def apply_temperature(scores: np.ndarray, temperature: float) -> np.ndarray:
    """``scores`` (class probabilities, or p(with_mask)) after dividing the logits by ``temperature``;
    the same shape back."""
    scaled = _softmax(_log_probabilities(scores) / temperature)
    return scaled[:, 1] if np.asarray(scores).ndim == 1 else scaled


def fit_temperature(labels: np.ndarray, scores: np.ndarray) -> float:
    """The temperature in [0.05, 20] that minimises the negative log-likelihood of ``labels``."""
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) == 0 or len(np.unique(labels)) < 2:
        return 1.0
    z = _log_probabilities(scores)
    rows = np.arange(len(labels))

    def nll(log_t: float) -> float:
        p = np.clip(_softmax(z / np.exp(log_t))[rows, labels], _EPS, 1.0)
        return float(-np.mean(np.log(p)))

    result = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(result.x))


def expected_calibration_error(labels: np.ndarray, scores: np.ndarray, bins: int = ECE_BINS) -> float | None:
    """|accuracy - confidence| averaged over ``bins`` equal-width confidence bins, weighted by their
    size; the confidence is that of the most probable class (ties: the later class, so p(with_mask) = 0.5
    is ``with_mask`` as at threshold 0.5). ``None`` for no samples."""
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) == 0:
        return None
    probabilities = np.exp(_log_probabilities(scores))
    classes = probabilities.shape[1]
    predicted = classes - 1 - np.argmax(probabilities[:, ::-1], axis=1)
    confidence = probabilities[np.arange(len(labels)), predicted]
    correct = (predicted == labels).astype(np.float64)
    edges = np.linspace(1.0 / classes, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            error += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(error)


@torch.no_grad()
def fold_temperature(model: nn.Module, temperature: float) -> None:
    """Divide the logits of ``model`` by ``temperature`` by scaling its last linear layer in place."""
    last = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not last:
        raise ValueError("the model has no linear output layer to fold a temperature into")
    last[-1].weight.div_(temperature)
    if last[-1].bias is not None:
        last[-1].bias.div_(temperature)
