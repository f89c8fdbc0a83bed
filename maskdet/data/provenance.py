"""What each held-out crop of a crop-set model is, so it can be cut again when the crop set is gone.

A crop set (:mod:`maskdet.training.crops`) lives in a cache folder; a model trained on it travels without it.
Its folder carries ``crops.json`` (written at training time, or added to an older folder by
``python -m maskdet fingerprint-model``): for each validation / test crop cut from a boxed photo, the data set
it came from (a folder name under the data root, never a machine's path), the photo inside it, the face box
the crop was cut around and whether it came from the detector or the annotation; once for the set, the crop
margin and the detector setting. :func:`maskdet.evaluation.errors.crop_image` cuts the crop again from that
photo (:func:`maskdet.inference.detector.crop_faces`, the same margin): the same pixels, byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from maskdet.store import parse_versioned_json

PROVENANCE_FORMAT = "maskdet-crop-provenance"
PROVENANCE_VERSION = 1
ORIGINS = ("detector", "annotation")


class ProvenanceError(ValueError):
    """A ``crops.json`` that is not ours or is damaged."""


@dataclass(frozen=True)
class CropOrigin:
    """Where one crop was cut: ``photo`` (relative to data set ``source``), around ``box`` (x0, y0, x1, y1)."""

    source: str
    photo: str
    box: tuple[int, int, int, int]
    origin: str  # "detector" or "annotation": which box the crop was cut around
    occluded: bool = False  # an occluded copy (maskdet.data.augment.occlude_mouth): its re-cut shows the bare face

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "photo": self.photo, "box": list(self.box), "from": self.origin,
                "occluded": self.occluded}


@dataclass(frozen=True)
class CropProvenance:
    """The origin of each held-out crop of a crop-set model (relative path in the set -> :class:`CropOrigin`)."""

    margin: float
    detector: dict[str, Any]
    crops: dict[str, CropOrigin] = field(repr=False)

    def to_json(self) -> dict[str, Any]:
        return {"format": PROVENANCE_FORMAT, "version": PROVENANCE_VERSION, "margin": self.margin,
                "detector": self.detector, "crops": {k: v.to_json() for k, v in self.crops.items()}}


def parse_origin(relpath: str, entry: object) -> CropOrigin:
    """One ``crops`` entry of ``crops.json`` (or of a crop set's manifest) checked; :class:`ProvenanceError` if bad."""
    if not isinstance(entry, dict):
        raise ProvenanceError(f"entry {relpath[:60]!r} is not an object")
    box = entry.get("box")
    if not (isinstance(box, list) and len(box) == 4 and all(isinstance(v, int) and v >= 0 for v in box)
            and box[0] < box[2] and box[1] < box[3]):
        raise ProvenanceError(f"entry {relpath[:60]!r}: 'box' is not [x0, y0, x1, y1] in pixels")
    source, photo = entry.get("source"), entry.get("photo")
    if not (isinstance(source, str) and source and "/" not in source and source not in (".", "..")):
        raise ProvenanceError(f"entry {relpath[:60]!r}: 'source' is not a data-set folder name")
    if not (isinstance(photo, str) and photo and not photo.startswith("/") and ".." not in photo.split("/")):
        raise ProvenanceError(f"entry {relpath[:60]!r}: 'photo' is not a path inside its data set")
    if entry.get("from") not in ORIGINS or not isinstance(entry.get("occluded", False), bool):
        raise ProvenanceError(f"entry {relpath[:60]!r}: 'from' is not one of {', '.join(ORIGINS)}")
    return CropOrigin(source, photo, (box[0], box[1], box[2], box[3]), entry["from"], entry.get("occluded", False))


def parse_provenance(data: bytes) -> CropProvenance:
    """A :class:`CropProvenance` from ``crops.json`` bytes; :class:`ProvenanceError` saying what is wrong."""
    payload = parse_versioned_json(data, PROVENANCE_FORMAT, PROVENANCE_VERSION, ProvenanceError)
    margin, detector, crops = payload.get("margin"), payload.get("detector"), payload.get("crops")
    if not isinstance(margin, (int, float)) or isinstance(margin, bool) or not 0 <= margin <= 2:
        raise ProvenanceError("'margin' is not a number between 0 and 2")
    if not isinstance(detector, dict) or not isinstance(crops, dict):
        raise ProvenanceError("'detector' or 'crops' is not an object")
    return CropProvenance(float(margin), detector, {str(k): parse_origin(str(k), v) for k, v in crops.items()})
