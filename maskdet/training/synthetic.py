"""Synthetic training faces from a crop set's train split: masks worn low, and sunglasses.

:func:`build_synthetic_crop_set` makes more ``incorrect_mask`` faces: masks pasted below the nose of bare faces,
the MaskedFace-Net way. :func:`build_eyewear_crop_set` puts sunglasses on bare and masked faces alike, labels
kept, meant to stop "the eyes are hidden" being a cue for "masked" (the default calls bare faces in sunglasses
masked on ilc-dev; tried, not shipped: see docs/models.md).

Real faces with a mask under the nose are few (87 in a kaggle-scenes crop set's train split). MaskedFace-Net
(Cabani et al., 2020) built its "incorrectly masked" class by fitting a mask onto bare faces from facial
landmarks. :func:`build_synthetic_crop_set` does that with what the product already has: CenterFace's five
landmarks (:class:`maskdet.inference.detector.Face`) on a crop set's *train-split* crops, and
:func:`maskdet.data.augment.lower_mask`, which pastes a masked face's mask (from a train-split ``with_mask``
crop) onto a bare face (a train-split ``without_mask`` crop) below its nose tip or on its chin.

The result is a new crop set beside the source one: every file of the source linked in with the split the
source declares (so validation and test are the very same real faces), plus the synthetic faces under
``incorrect_mask/synthetic/``, all declared ``train``. Nothing of a validation or test split is read, so the
figures a model trained on it reports on those splits stay measured on real faces only. The manifest records
the source, the seed, the settings and the command; the same seed gives the same images.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from maskdet.data.augment import add_eyewear, lower_mask, proper_mask
from maskdet.data.datasets import DatasetError
from maskdet.data.images import ImageDecodeError, load_rgb
from maskdet.inference.detector import FaceDetector, get_detector
from maskdet.settings import CLASSES, KNOWN_CLASSES
from maskdet.training.derived import source_crop_manifest, write_derived_crop_set

logger = logging.getLogger(__name__)

METHOD = "maskdet.data.augment.lower_mask on CenterFace landmarks"
METHOD_PAIRED = f"{METHOD}, each with its twin from maskdet.data.augment.proper_mask (with_mask)"
SYNTHETIC_FOLDER = "synthetic"  # <class>/synthetic/<index>__<target>__<donor>.png
METHOD_EYEWEAR = "maskdet.data.augment.add_eyewear on CenterFace landmarks, each face's label kept"
EYEWEAR_FOLDER = "eyewear"  # <class>/eyewear/<index>__<face>.png


@dataclass(frozen=True)
class SynthesisSettings:
    """How many faces, from which crops, and where the mask goes (fractions of the nose-to-mouth distance)."""

    count: int = 1000
    seed: int = 0
    min_side: int = 48  # crops smaller than this (either side) have too few pixels to move a mask on
    min_face_share: float = 0.45  # the detected face must be at least this share of the crop's width
    below_nose: tuple[float, float] = (0.15, 0.6)  # upper edge between the nose tip and the mouth
    on_chin: tuple[float, float] = (0.9, 1.3)  # upper edge below the mouth
    chin_share: float = 0.3  # share of faces with the mask on the chin
    paired: bool = False  # each low face gets a twin: the same donor mask on the same face over the nose (with_mask)
    heights_per_face: int = 1  # low faces per bare face and donor, each at its own drawn height (one twin for all)


@dataclass(frozen=True)
class EyewearSettings:
    """Which train faces get a copy in sunglasses: ``share`` of each class's (bare, masked, incorrect) crops."""

    share: float = 0.25
    seed: int = 0
    min_side: int = 48  # crops smaller than this (either side) are left out, as for masks
    min_face_share: float = 0.45  # the detected face must be at least this share of the crop's width


def face_landmarks(detector: FaceDetector, image: Image.Image, min_face_share: float) -> np.ndarray | None:
    """The five landmarks (5, 2) of the one face a crop shows: the detector's best face, if it fills at least
    ``min_face_share`` of the crop's width and has landmarks; else None."""
    faces = [f for f in detector.detect(image) if f.landmarks is not None]
    if not faces:
        return None
    best = max(faces, key=lambda f: f.score)
    return np.asarray(best.landmarks, float) if best.width >= min_face_share * image.width else None


def _train_crops(source: Path, manifest: dict, label: str, min_side: int) -> list[str]:
    """Train-split crops of ``label`` (occluded copies left out: a hand is there already), large enough."""
    wanted = []
    for relpath, split in sorted(manifest["split"].items()):
        parts = relpath.split("/")
        if split != "train" or parts[0] != label or parts[1].endswith("-occluded"):
            continue
        try:
            with Image.open(source / relpath) as image:
                if min(image.size) >= min_side:
                    wanted.append(relpath)
        except OSError:
            continue
    return wanted


def _with_landmarks(source: Path, relpaths: list[str], needed: int, detector: FaceDetector,
                    min_face_share: float) -> list[tuple[str, Image.Image, np.ndarray]]:
    """Up to ``needed`` of ``relpaths`` (in their given order) whose face the detector finds, with landmarks."""
    found = []
    for relpath in relpaths:
        if len(found) >= needed:
            break
        try:
            image = load_rgb(source / relpath)
        except ImageDecodeError:
            continue
        points = face_landmarks(detector, image, min_face_share)
        if points is not None:
            found.append((relpath, image, points))
    return found


def build_synthetic_crop_set(source: Path, out: Path, settings: SynthesisSettings = SynthesisSettings(),
                             detector: FaceDetector | None = None) -> dict:
    """Write ``out``: ``source`` (a crop set) linked in, plus ``settings.count`` synthetic ``incorrect_mask``
    train faces. Returns the manifest's ``synthetic`` record (counts, settings, source). ``out`` must not exist;
    it appears whole or not at all."""
    manifest = source_crop_manifest(source, out)
    detector = detector or get_detector("centerface")
    rng = np.random.default_rng(settings.seed)
    # Heights after the first draw from their own generator: the first low face of every bare face (and its twin)
    # is then byte-identical to a one-height build's, so a build with more heights only adds faces.
    more_heights = np.random.default_rng([settings.seed, 1])
    bare = _train_crops(source, manifest, CLASSES[0], settings.min_side)
    masked = _train_crops(source, manifest, CLASSES[1], settings.min_side)
    rng.shuffle(bare)
    rng.shuffle(masked)
    targets = _with_landmarks(source, bare, settings.count, detector, settings.min_face_share)
    donors = _with_landmarks(source, masked, max(50, settings.count // 4), detector, settings.min_face_share)
    if not targets or not donors:
        raise DatasetError(f"{source}: no train-split faces with landmarks of at least {settings.min_side} px")
    logger.info("synthesising from %d bare and %d masked train faces", len(targets), len(donors))

    def low_faces() -> Iterator[tuple[str, Image.Image]]:
        for index in range(settings.count):
            target_path, target, target_points = targets[index % len(targets)]
            donor_path, donor, donor_points = donors[int(rng.integers(len(donors)))]
            name = f"{index:05d}__{Path(target_path).stem}__{Path(donor_path).stem}"
            images = {}  # relpath -> image
            try:
                for height in range(settings.heights_per_face):
                    draw = rng if height == 0 else more_heights
                    chin = draw.random() < settings.chin_share
                    drop = float(draw.uniform(*(settings.on_chin if chin else settings.below_nose)))
                    suffix = f"__{height}" if height else ""  # the first height keeps the one-height name
                    images[f"{KNOWN_CLASSES[2]}/{SYNTHETIC_FOLDER}/{name}{suffix}.png"] = lower_mask(
                        target, target_points, donor, donor_points, drop=drop)
                if settings.paired:
                    images[f"{CLASSES[1]}/{SYNTHETIC_FOLDER}/{name}.png"] = proper_mask(
                        target, target_points, donor, donor_points)
            except ValueError as exc:  # degenerate landmarks on one of the two
                logger.info("skipped %s + %s: %s", target_path, donor_path, exc)
                continue
            yield from images.items()

    def describe(made: dict[str, int]) -> dict:
        return {"source": str(source), "made": sum(made.values()), "bare_faces": len(targets),
                "masked_donors": len(donors), "settings": asdict(settings),
                "method": METHOD_PAIRED if settings.paired else METHOD, "command": " ".join(sys.argv)}

    return write_derived_crop_set(source, manifest, out, "synthetic", describe, made=low_faces())


def build_eyewear_crop_set(source: Path, out: Path, settings: EyewearSettings = EyewearSettings(),
                           detector: FaceDetector | None = None) -> dict:
    """Write ``out``: ``source`` (a crop set) linked in, plus a copy in sunglasses
    (:func:`maskdet.data.augment.add_eyewear`) of ``settings.share`` of each class's train-split faces, under
    ``<class>/eyewear/`` with the face's own label and declared ``train``. Validation and test stay the real
    faces they were. Returns the manifest's ``synthetic`` record; ``out`` must not exist and appears whole or not
    at all. The same seed gives the same images."""
    if not 0.0 < settings.share <= 1.0:
        raise ValueError(f"share must be in (0, 1], got {settings.share}")
    manifest = source_crop_manifest(source, out)
    detector = detector or get_detector("centerface")
    rng = np.random.default_rng(settings.seed)
    labels = [label for label in KNOWN_CLASSES if any(path.startswith(f"{label}/") for path in manifest["split"])]
    def faces_in_sunglasses() -> Iterator[tuple[str, Image.Image]]:
        for label in labels:
            crops = _train_crops(source, manifest, label, settings.min_side)
            rng.shuffle(crops)
            wanted = round(settings.share * len(crops))
            for index, (relpath, image, points) in enumerate(
                    _with_landmarks(source, crops, wanted, detector, settings.min_face_share)):
                try:
                    yield f"{label}/{EYEWEAR_FOLDER}/{index:05d}__{Path(relpath).stem}.png", add_eyewear(image, points, rng)
                except ValueError as exc:  # degenerate landmarks
                    logger.info("skipped %s: %s", relpath, exc)

    def describe(made: dict[str, int]) -> dict:
        if not made:
            raise DatasetError(f"{source}: no train-split faces with landmarks of at least {settings.min_side} px")
        logger.info("sunglasses on %s train faces", made)
        return {"source": str(source), "made": sum(made.values()), "per_class": made, "settings": asdict(settings),
                "method": METHOD_EYEWEAR, "command": " ".join(sys.argv)}

    return write_derived_crop_set(source, manifest, out, "synthetic", describe, made=faces_in_sunglasses())
