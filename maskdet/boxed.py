"""Boxed-photo folders: ``images/`` plus Pascal VOC ``annotations/`` with one ``<object>`` per face.

The layout of ``scenes-dev`` and of the public Kaggle face-mask-detection set. Class names are
normalised as everywhere else (:func:`maskdet.data.normalize_class_name`); other names (for example
``mask_weared_incorrect``) are kept as they are and counted, so callers can skip or report them.
Malformed XML and annotations without an image are listed, never fatal.
"""

from __future__ import annotations

import hashlib
import logging
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from maskdet.data import DatasetError, normalize_class_name
from maskdet.settings import CLASSES

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BoxedFace:
    """One annotated face: ``box`` = (x0, y0, x1, y1) in image pixels; ``label`` a canonical class
    name, or the annotation's own name when it is not one of :data:`maskdet.settings.CLASSES`."""

    box: tuple[int, int, int, int]
    label: str

    @property
    def known(self) -> bool:
        return self.label in CLASSES


@dataclass(frozen=True)
class BoxedPhoto:
    image: Path
    faces: tuple[BoxedFace, ...]

    @property
    def name(self) -> str:
        return self.image.name


@dataclass
class BoxedFolder:
    """The photos of a boxed-photo folder and what could not be read."""

    root: Path
    photos: list[BoxedPhoto]
    fingerprint: str
    errors: list[tuple[str, str]] = field(default_factory=list)  # (file name, reason)

    def label_counts(self) -> dict[str, int]:
        return dict(Counter(face.label for photo in self.photos for face in photo.faces))


def _canonical_label(name: str) -> str:
    try:
        return normalize_class_name(name)
    except DatasetError:
        return name.strip()


def read_voc(path: Path) -> list[BoxedFace]:
    """The faces of one Pascal VOC file; raises ``ValueError`` for malformed XML or boxes."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise ValueError(f"malformed XML ({exc})") from None
    faces = []
    for obj in root.iter("object"):
        name, box = obj.findtext("name"), obj.find("bndbox")
        if not name or box is None:
            raise ValueError("an <object> without <name> or <bndbox>")
        try:
            x0, y0, x1, y1 = (int(round(float(box.findtext(k) or ""))) for k in ("xmin", "ymin", "xmax", "ymax"))
        except ValueError:
            raise ValueError("a <bndbox> with missing or non-numeric corners") from None
        if x1 <= x0 or y1 <= y0:
            raise ValueError(f"an empty box ({x0}, {y0}, {x1}, {y1})")
        faces.append(BoxedFace(box=(x0, y0, x1, y1), label=_canonical_label(name)))
    return faces


def scan_boxed_folder(root: str | Path) -> BoxedFolder:
    """Every ``annotations/*.xml`` with its image in ``images/`` (same stem, any extension)."""
    root = Path(root).expanduser()
    images_dir, annotations_dir = root / "images", root / "annotations"
    if not images_dir.is_dir() or not annotations_dir.is_dir():
        raise DatasetError(f"{root} is not a boxed-photo folder: expected images/ and annotations/ (Pascal VOC)")
    images = {p.stem: p for p in sorted(images_dir.iterdir()) if p.is_file() and not p.name.startswith(".")}
    photos, errors = [], []
    digest = hashlib.sha1()
    for xml in sorted(annotations_dir.glob("*.xml")):
        image = images.get(xml.stem)
        if image is None:
            errors.append((xml.name, "no image with this name in images/"))
            continue
        try:
            faces = read_voc(xml)
        except (ValueError, OSError) as exc:
            errors.append((xml.name, str(exc)))
            continue
        for path in (xml, image):
            stat = path.stat()
            digest.update(f"{path.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        photos.append(BoxedPhoto(image=image, faces=tuple(faces)))
    if not photos:
        raise DatasetError(f"{root} holds no readable annotated photo")
    return BoxedFolder(root=root, photos=photos, fingerprint=digest.hexdigest()[:16], errors=errors)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box of ``a`` (N, 4) with every box of ``b`` (M, 4)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    iw = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def match_boxes(truth: np.ndarray, detections: np.ndarray, iou: float = 0.5) -> dict[int, int]:
    """Face index -> detection index, greedily by highest IoU, each detection and face used at most once."""
    overlaps = iou_matrix(truth, detections)
    matches: dict[int, int] = {}
    used: set[int] = set()
    for flat in np.argsort(-overlaps, axis=None, kind="stable"):
        face, det = divmod(int(flat), overlaps.shape[1])
        if overlaps[face, det] < iou:
            break
        if face not in matches and det not in used:
            matches[face] = det
            used.add(det)
    return matches
