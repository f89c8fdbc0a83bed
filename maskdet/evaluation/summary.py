"""What the comparison knows about one trained model without loading its weights: :class:`ModelSummary`.

:func:`summarize` turns a model's metadata (held-out test metrics, raw test scores, history, size,
training time) into the typed record the tables, the latency timer, the unseen-data evaluations and
the error lists share.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from maskdet.settings import CLASSES
from maskdet.zoo.folders import card_scores, model_classes, operating_threshold


@dataclass(frozen=True)
class ModelSummary:
    """What the comparison needs about one trained model, read from its metadata (no weights loaded)."""

    name: str
    arch: str
    path: Path
    created: str
    weights_sha256: str
    input_size: int
    test: dict | None  # compute_metrics() of the held-out test split; None if the model did not record it
    labels: list[int] = field(repr=False)  # held-out test labels, for curves
    scores: list = field(repr=False)  # P(with_mask) of the same images (three-class models: class probabilities)
    history: list[dict] = field(repr=False)  # per epoch: epoch, train_loss, train_acc, val_loss, val_acc
    params: int | None
    weights_bytes: int | None
    training_seconds: float | None
    training_data: str | None
    training_fingerprint: str | None
    latency_ms: float | None = None  # filled in by with_latency()
    identity: str = ""  # weights SHA-256 plus how they are read (arch, input, classes): the cache key
    operating_threshold: float = 0.5  # the card's p(with_mask) from which a face is with_mask
    threshold_chosen_on: str | None = None  # which data that threshold was chosen on, when recorded
    classes: tuple[str, ...] = CLASSES  # the model's classes (its card's list)
    has_validation_scores: bool = False  # the card stores them: the threshold can be chosen on them

    @property
    def cache_key(self) -> str:
        return self.identity or self.weights_sha256


def summarize(metadata: dict) -> ModelSummary:
    """A :class:`ModelSummary` from :func:`maskdet.zoo.folders.list_model_folders` metadata; missing parts become None."""
    test_eval = (metadata.get("evaluation") or {}).get("test") or {}
    dataset = metadata.get("dataset") or {}
    weights = metadata.get("weights") or {}
    params = (metadata.get("params") or {}).get("total")
    seconds = metadata.get("training_seconds")
    return ModelSummary(
        name=str(metadata["name"]),
        arch=str(metadata.get("arch", "?")),
        path=Path(metadata["path"]),
        created=str(metadata.get("created", "")),
        weights_sha256=str(weights.get("sha256", "")),
        input_size=int((metadata.get("input") or {}).get("size", 0)),
        test=(metadata.get("metrics") or {}).get("test"),
        labels=[int(v) for v in test_eval.get("labels", [])],
        scores=list(test_eval.get("probabilities") or test_eval.get("scores") or []),
        history=list(metadata.get("history") or []),
        params=int(params) if params is not None else None,
        weights_bytes=int(weights["bytes"]) if "bytes" in weights else None,
        training_seconds=float(seconds) if seconds is not None else None,
        training_data=dataset.get("path"),
        training_fingerprint=dataset.get("fingerprint"),
        identity=_identity(metadata, str(weights.get("sha256", ""))),
        operating_threshold=operating_threshold(metadata),
        threshold_chosen_on=metadata.get("operating_threshold_chosen_on"),
        classes=model_classes(metadata),
        has_validation_scores=card_scores(metadata, "val") is not None,
    )


def _identity(metadata: dict, weights_sha256: str) -> str:
    """Same weights read as another arch, input or class list are another model: key caches on all of it."""
    if not weights_sha256:
        return ""
    described = {"weights": weights_sha256, "arch": metadata.get("arch"), "input": metadata.get("input"),
                 "classes": metadata.get("classes")}
    return hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()[:32]
