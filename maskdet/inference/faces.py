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
    track_id: int | None = None  # the person this face belongs to across frames (maskdet.watch); None: untracked

    def to_json(self) -> dict:
        payload = asdict(self)
        if self.track_id is None:
            del payload["track_id"]
        payload["box"] = list(self.box)
        payload["confidence"] = round(self.confidence, 4)
        payload["face_score"] = round(self.face_score, 4)
        del payload["p_with_mask"]
        return payload
