"""The face record: one detected, classified face, as every consumer (drawing, JSON, pages, video) takes it."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class FacePrediction:
    """One face: where it is, what the classifier says and how sure the detector was."""

    box: tuple[int, int, int, int]
    label: str
    confidence: float
    face_score: float
    p_with_mask: float

    def to_json(self) -> dict:
        payload = asdict(self)
        payload["box"] = list(self.box)
        payload["confidence"] = round(self.confidence, 4)
        payload["face_score"] = round(self.face_score, 4)
        del payload["p_with_mask"]
        return payload
