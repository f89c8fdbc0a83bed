"""The face record: one detected, classified face, as every consumer (drawing, JSON, pages, video) takes it."""

from __future__ import annotations

from dataclasses import dataclass, field

from maskdet.settings import POSITIVE_CLASS
from maskdet.zoo.decision import held_back_by_threshold


@dataclass(frozen=True)
class FacePrediction:
    """One face: where it is, what the classifier says and how sure the detector was.

    ``probabilities`` maps each of the model's classes (its card's order) to its probability, so any
    class can be explained and counted; ``label`` is the decision rule's verdict
    (:func:`maskdet.zoo.decision.predicted_labels`) and ``confidence`` the probability of that label.
    """

    box: tuple[int, int, int, int]
    label: str
    confidence: float
    face_score: float
    probabilities: dict[str, float] = field(default_factory=dict)
    track_id: int | None = None  # the person this face belongs to across frames (maskdet.watch); None: untracked

    @property
    def p_with_mask(self) -> float:
        """p(with_mask): the score the operating threshold applies to."""
        return self.probabilities.get(POSITIVE_CLASS, 0.0)

    @property
    def held_back(self) -> float | None:
        """p(with_mask) when the operating threshold kept this face from masked, its likeliest class; else None."""
        return held_back_by_threshold(self.probabilities, self.label)

    def to_json(self) -> dict:
        """``{"box", "label", "confidence", "face_score"}`` (+ ``track_id`` when tracked): the ``predict --json`` face."""
        payload = {"box": list(self.box), "label": self.label, "confidence": round(self.confidence, 4),
                   "face_score": round(self.face_score, 4)}
        if self.track_id is not None:
            payload["track_id"] = self.track_id
        return payload
