"""Every annotated face of a boxed-photo set, cut from its box the way the pipeline cuts a detected face.

Classification-only measurements on boxed photos (``benchmarks/three_class_split.py``, ``benchmarks/camera_threshold.py``)
score the annotated faces themselves, not what the detector finds: one reader here, so they cut the same crops.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from maskdet.data.annotations import load_scene_set
from maskdet.data.images import load_rgb
from maskdet.inference.detector import crop_box
from maskdet.inference.pipeline import DEFAULT_MARGIN
from maskdet.settings import KNOWN_CLASSES


@dataclass(frozen=True)
class AnnotatedFace:
    """One annotated face of a known class, cut with the pipeline's margin."""

    relpath: str  # its photo, relative to the set's folder
    index: int  # its position among the photo's annotated faces (all of them, known class or not)
    label: str  # one of KNOWN_CLASSES
    crop: Image.Image


def annotated_faces(root: str | Path, margin: float = DEFAULT_MARGIN) -> Iterator[AnnotatedFace]:
    """The annotated faces of the boxed-photo set at ``root`` whose class is known, photo by photo (one photo
    decoded at a time); faces of other classes are left out."""
    root = Path(root)
    for scene in load_scene_set(root).images:
        image = load_rgb(root / scene.relpath)
        for index, face in enumerate(scene.faces):
            if face.label in KNOWN_CLASSES:
                yield AnnotatedFace(scene.relpath, index, face.label, image.crop(crop_box(face.box, image.size, margin)))
