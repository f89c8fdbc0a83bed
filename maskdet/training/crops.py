"""Training sets of face crops cut from boxed photos by the product's own detector.

At inference the classifier sees what :class:`maskdet.inference.pipeline.FacePipeline` gives it: a CenterFace
box, cut by :func:`maskdet.inference.detector.crop_faces` with the same margin, then resized by the model's
input configuration. Training on tight, clean data-set crops and running on detector crops of
street photos is a mismatch the classifier pays for (issue 19), so :func:`build_crop_set` cuts the
faces of a boxed-photo folder (:func:`maskdet.evaluation.scenes.load_scene_set`) exactly that way:

- every detection matched to an annotated face (IoU >= ``iou``, as the scene evaluator matches:
  :func:`maskdet.evaluation.scenes.matching.match_detections`) is cut from the *detector's* box and takes the
  annotated label; faces the detector misses are cut from the annotation box
  (``from_annotation``) or left out; faces whose label is not a known class (for example
  ``face_shield``) are skipped and counted; ``mask_weared_incorrect`` faces are kept as ``incorrect_mask``;
- the split is decided per *photo*, near-duplicate photos grouped (:mod:`maskdet.data.split`), so
  crops of one photo never sit on both sides of a split, and declared in the set's manifest
  (:data:`maskdet.data.datasets.DATASET_MANIFEST`) where the training engine picks it up;
- ImageFolder sets given in ``include`` are linked in (never copied) with the split
  :func:`maskdet.data.split.make_split` gives them on their own, so their held-out images stay held out;
- a share (``occlude``) of the bare faces gets a copy with a hand or another object over the
  mouth (:func:`maskdet.data.augment.occlude_mouth`), labelled ``without_mask``, in the same split.

The set is written under the cache folder (:func:`crop_sets_dir`), never into the repository,
atomically (a half-built set is never seen), with a manifest recording every source (folder,
fingerprint, counts), the settings and the command.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import random
import shutil
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from maskdet.data.augment import occlude_mouth
from maskdet.data.datasets import (
    DATASET_MANIFEST,
    DatasetError,
    ProgressFn,
    build_catalog,
    perceptual_signature,
    read_manifest,
    scan_dataset,
)
from maskdet.inference.detector import Face, FaceDetector, crop_faces
from maskdet.data.images import ImageDecodeError, load_rgb
from maskdet.data.provenance import CropOrigin, CropProvenance, parse_origin
from maskdet.data.annotations import load_scene_set, SceneSet
from maskdet.data.annotations import SceneImage
from maskdet.evaluation.scenes.evaluate import describe_detector
from maskdet.evaluation.scenes.matching import match_detections
from maskdet.settings import CLASSES, KNOWN_CLASSES, REPO_ROOT, cache_dir, data_root
from maskdet.data.split import DEFAULT_FRACTIONS, SPLIT_NAMES, assign_groups, make_split, near_duplicate_groups
from maskdet.store import write_json

logger = logging.getLogger(__name__)

MANIFEST_FORMAT = "maskdet-crop-set"
MANIFEST_VERSION = 1
HELD_OUT_SPLITS = ("val", "test")  # the crops a model folder records the origin of (crops.json)


def locate_split_file(dataset: dict, relpath: str) -> Path | None:
    """Where a file of a model's saved split lies here, or None.

    ``dataset`` is the model card's ``dataset`` record. The file is looked for in the training folder (as
    recorded, or by name under the data root); for a crop set, whose linked-in ImageFolder sources keep their
    layout as ``<class>/<source>/<path>``, also in that source under the data root, so a machine without the
    crop set (it lives in a cache) still finds the face-mask-4k part.
    """
    from maskdet.settings import data_root, recorded_path

    recorded = recorded_path(str(dataset.get("path", "")))
    for candidate in (recorded / relpath, data_root() / recorded.name / relpath):
        if candidate.is_file():
            return candidate
    parts = relpath.split("/", 2)
    sources = {Path(str(source.get("path", ""))).name for source in dataset.get("sources", [])}
    if len(parts) == 3 and parts[1] in sources and (data_root() / parts[1] / parts[2]).is_file():
        return data_root() / parts[1] / parts[2]
    return None


def crop_sets_dir() -> Path:
    """Where crop sets are written: ``<cache>/crops``."""
    return cache_dir() / "crops"


def split_counts(split: dict[str, str]) -> dict[str, dict[str, int]]:
    """A crop set's ``counts``: files per class (the first folder of each path) in each split, from its ``split``."""
    return {name: dict(Counter(relpath.split("/", 1)[0] for relpath, placed in split.items() if placed == name))
            for name in SPLIT_NAMES}


def held_out_photos(crop_set: str | Path, split: str) -> dict[Path, set[str]]:
    """Boxed-photo folder (resolved) -> the photos (relative paths) that ``crop_set`` put in ``split``.

    ``crop_set`` is a name under :func:`crop_sets_dir` or a path: how evaluations keep to the photos a
    model trained on that set held out (``split="val"`` to choose settings, ``"test"`` to report).
    """
    folder = Path(crop_set) if Path(crop_set).is_dir() else crop_sets_dir() / str(crop_set)
    return {Path(source["path"]).resolve(): set(source["photo_split"][split])
            for source in read_manifest(folder)["sources"] if source["kind"] == "boxed-photos"}


@dataclass(frozen=True)
class CropSettings:
    """How faces are cut and split; recorded in the manifest."""

    margin: float = 0.2  # as maskdet.inference.pipeline.FacePipeline
    iou: float = 0.5
    seed: int = 0
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS
    occlude: float = 0.5  # share of bare faces that also get an occluded copy
    from_annotation: bool = True  # cut faces the detector misses from their annotation box
    min_face: int = 10  # faces smaller than this (pixels, shorter side) are left out


@dataclass
class _Crop:
    relpath: str
    image: Image.Image
    photo: str
    box: tuple[int, int, int, int]  # the face box the crop was cut around (before the margin)
    origin: str  # "detector" or "annotation"
    occluded: bool = False

    def provenance(self, source: str) -> CropOrigin:
        return CropOrigin(source, self.photo, self.box, self.origin, self.occluded)


@dataclass
class CropSetReport:
    """What :func:`build_crop_set` wrote: the folder and the manifest it holds."""

    path: Path
    manifest: dict = field(default_factory=dict)


def _photo_crops(photo: SceneImage, image: Image.Image, detector: FaceDetector, settings: CropSettings,
                 source: str, counts: Counter) -> list[_Crop]:
    detections = detector.detect(np.asarray(image))
    known = [index for index, face in enumerate(photo.faces) if face.label is not None]
    counts.update(f"skipped {face.raw_label}" for face in photo.faces if face.label is None)
    matching = match_detections([d.box for d in detections], [d.score for d in detections],
                                [photo.faces[i].box for i in known], iou=settings.iou,
                                ignored_faces=[f.box for f in photo.faces if f.label is None])
    detection_of = {known[f]: d for d, f in enumerate(matching.face_of) if f is not None}
    stem = Path(photo.relpath).stem
    crops = []
    for index in known:  # crops are named after the face's place in the annotation file
        face = photo.faces[index]
        if index in detection_of:
            box, origin = detections[detection_of[index]].box, "detector"
        elif settings.from_annotation:
            box, origin = face.box, "annotation"
        else:
            counts["missed by the detector (left out)"] += 1
            continue
        x0, y0 = max(0, round(box[0])), max(0, round(box[1]))
        x1, y1 = min(image.width, round(box[2])), min(image.height, round(box[3]))
        if min(x1 - x0, y1 - y0) < settings.min_face:
            counts[f"smaller than {settings.min_face} px (left out)"] += 1
            continue
        counts[f"{face.label} from {origin}"] += 1
        crop = crop_faces(image, [Face(box=(x0, y0, x1, y1), score=1.0)], margin=settings.margin)[0]
        crops.append(_Crop(f"{face.label}/{source}/{stem}__{index:03d}.png", crop, photo.relpath,
                           (x0, y0, x1, y1), origin))
    return crops


def split_photos(signatures: dict[str, tuple[str, str]], face_counts: dict[str, list[int]],
                 seed: int, fractions: tuple[float, float, float]) -> dict[str, str]:
    """Photo -> split: near-duplicate photos (``signatures``: dHash and thumbnail hex) grouped, each
    label's faces (``face_counts``) spread over the splits as ``fractions`` asks."""
    names = sorted(signatures)
    if not names:
        return {}
    hashes = np.array([int(signatures[n][0], 16) for n in names], dtype=np.uint64)
    thumbs = np.stack([np.frombuffer(bytes.fromhex(signatures[n][1]), dtype=np.uint8) for n in names])
    groups = near_duplicate_groups(hashes, thumbs)
    members: dict[int, list[str]] = {}
    for name, group in zip(names, groups, strict=True):
        members.setdefault(int(group), []).append(name)
    ordered = list(members.values())
    counts = [np.sum([face_counts[n] for n in group], axis=0) for group in ordered]
    assigned = assign_groups(counts, fractions, random.Random(seed))
    return {name: split for group, split in zip(ordered, assigned, strict=True) for name in group}


def _occluded(crops: list[_Crop], settings: CropSettings, source: str, rng: np.random.Generator) -> list[_Crop]:
    bare = [c for c in crops if c.relpath.startswith(f"{CLASSES[0]}/")]
    chosen = [c for c in bare if rng.random() < settings.occlude]
    return [
        _Crop(f"{CLASSES[0]}/{source}-occluded/{Path(c.relpath).name}", occlude_mouth(c.image, rng), c.photo,
              c.box, c.origin, occluded=True)
        for c in chosen
    ]


def _cut_boxed(folder: SceneSet, detector: FaceDetector, settings: CropSettings, staging: Path,
               progress: ProgressFn | None) -> tuple[dict[str, str], dict]:
    """Cut, split and write the crops of one boxed folder; returns (relpath -> split, source record)."""
    source = folder.root.name
    counts: Counter = Counter()
    crops: list[_Crop] = []
    signatures, face_counts = {}, {}
    errors = list(folder.problems)
    for done, photo in enumerate(folder.images, start=1):
        try:
            image = load_rgb(folder.root / photo.relpath)
        except ImageDecodeError as exc:
            errors.append((photo.relpath, exc.reason))
            continue
        signatures[photo.relpath] = perceptual_signature(image)
        # Balanced on bare and masked faces only: the photos' split is the one two-class crop sets had, so
        # two- and three-class models cut from the same photos hold out the same photos.
        face_counts[photo.relpath] = [sum(1 for f in photo.faces if f.label == c) for c in CLASSES]
        crops.extend(_photo_crops(photo, image, detector, settings, source, counts))
        if progress:
            progress(done, len(folder.images))
    photo_split = split_photos(signatures, face_counts, settings.seed, settings.fractions)
    crops += _occluded(crops, settings, source, np.random.default_rng(settings.seed))
    split = {}
    for crop in crops:
        target = staging / crop.relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        crop.image.save(target)
        split[crop.relpath] = photo_split[crop.photo]
    record = {
        "path": str(folder.root), "kind": "boxed-photos", "fingerprint": folder.fingerprint,
        "photos": len(folder.images), "faces": dict(Counter(f.raw_label if f.label is None else f.label
                                                             for photo in folder.images for f in photo.faces)),
        "crops": dict(sorted(counts.items())),
        "occluded_copies": sum(1 for r in split if "-occluded/" in r),
        "photo_split": {name: sorted(p for p, s in photo_split.items() if s == name) for name in SPLIT_NAMES},
        "errors": [list(e) for e in errors],
        "crop_origins": {crop.relpath: crop.provenance(source).to_json() for crop in crops},
    }
    return split, record


def _link_image_folder(root: Path, settings: CropSettings, staging: Path) -> tuple[dict[str, str], dict]:
    """Link an ImageFolder set in, split as :func:`make_split` splits it alone; bare faces get occluded copies."""
    scan = scan_dataset(root)
    catalog = build_catalog(scan)
    own_split = make_split(catalog, seed=settings.seed)
    source = scan.root.name
    rng = np.random.default_rng(settings.seed)
    split, occluded = {}, 0
    for name in SPLIT_NAMES:
        for relpath in getattr(own_split, name):
            label = KNOWN_CLASSES[own_split.labels[relpath]]
            link = staging / label / source / relpath
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink((scan.root / relpath).resolve(), link)
            split[link.relative_to(staging).as_posix()] = name
            if label == CLASSES[0] and rng.random() < settings.occlude:
                copy = staging / label / f"{source}-occluded" / Path(relpath).with_suffix(".png")
                copy.parent.mkdir(parents=True, exist_ok=True)
                occlude_mouth(load_rgb(scan.root / relpath), rng).save(copy)
                split[copy.relative_to(staging).as_posix()] = name
                occluded += 1
    record = {
        "path": str(scan.root), "kind": "image-folder", "fingerprint": scan.fingerprint,
        "images": len(scan.samples), "split_counts": own_split.counts(),
        "excluded_conflicts": len(own_split.excluded_conflicts), "unreadable": len(catalog.unreadable),
        "occluded_copies": occluded, "layout": "<class>/<source folder name>/<path inside the source>",
    }
    return split, record


def build_crop_set(
    boxed: list[Path],
    name: str,
    *,
    include: list[Path] | None = None,
    detector: FaceDetector | None = None,
    settings: CropSettings | None = None,
    command: str | None = None,
    progress: ProgressFn | None = None,
) -> CropSetReport:
    """Cut the faces of the boxed-photo folders ``boxed`` (plus linked ``include`` ImageFolders) into
    the ImageFolder ``crop_sets_dir()/name``, replacing an older set of that name; see the module docstring.

    Raises :class:`maskdet.data.datasets.DatasetError` (:class:`maskdet.evaluation.scenes.SceneSetError` is one) for folders
    that are not boxed-photo folders or data sets.
    """
    from maskdet.inference.detector import get_detector

    settings = settings or CropSettings()
    if not name or Path(name).name != name or name.startswith("."):
        raise DatasetError(f"invalid crop-set name {name!r}: use a plain folder name")
    folders = [load_scene_set(path) for path in boxed]  # fail before any work
    if not folders:
        raise DatasetError("give at least one boxed-photo folder (images/ + annotations/)")
    detector = detector or get_detector("centerface")
    final = crop_sets_dir() / name
    if final.resolve().is_relative_to(REPO_ROOT):
        raise DatasetError(f"{final} lies inside the repository: crop sets belong in the cache folder")
    staging = final.parent / f".staging-{name}-{uuid.uuid4().hex[:8]}"
    staging.mkdir(parents=True)
    try:
        split: dict[str, str] = {}
        sources = []
        for folder in folders:
            part, record = _cut_boxed(folder, detector, settings, staging, progress)
            split.update(part)
            sources.append(record)
        for root in include or []:
            part, record = _link_image_folder(Path(root), settings, staging)
            split.update(part)
            sources.append(record)
        manifest = {
            "format": MANIFEST_FORMAT, "version": MANIFEST_VERSION,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "command": command,
            "settings": {**asdict(settings), "detector": describe_detector(detector)},
            "sources": sources,
            "counts": split_counts(split),
            "split": split,
        }
        write_json(staging / DATASET_MANIFEST, manifest)
        if final.exists():
            shutil.rmtree(final)
        os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info("crop set %s: %s", final, manifest["counts"])
    return CropSetReport(path=final, manifest=manifest)



def _detector_of(settings: dict) -> FaceDetector:
    """The detector a crop set's manifest describes (:func:`describe_detector`): the registered setting it equals."""
    from maskdet.inference.detector import DETECTORS

    for setting in DETECTORS.values():
        detector = setting.build()
        if json.loads(json.dumps(describe_detector(detector))) == settings:  # as the manifest holds it
            return detector
    raise DatasetError(f"no registered face detector has the settings this crop set was cut with: {settings}")


def crop_provenance(crop_set: Path, relpaths: Iterable[str]) -> CropProvenance:
    """What each crop of ``relpaths`` that ``crop_set`` cut from a boxed photo is (:mod:`maskdet.data.provenance`).

    A set cut since crop origins are kept has them in its manifest. For an older set the photos behind
    ``relpaths`` are detected again with the set's recorded detector and settings, and every crop cut again
    must equal the file in the set pixel for pixel, else :class:`DatasetError` (the photos or the detector
    differ from the ones the set was cut with).
    """
    manifest = read_manifest(crop_set)
    settings = CropSettings(**{k: tuple(v) if k == "fractions" else v
                               for k, v in manifest["settings"].items() if k != "detector"})
    wanted = set(relpaths)
    origins: dict[str, CropOrigin] = {}
    detector: FaceDetector | None = None
    for source in manifest["sources"]:
        if source["kind"] != "boxed-photos":
            continue
        name = Path(source["path"]).name
        if "crop_origins" in source:
            origins.update({r: parse_origin(r, e) for r, e in source["crop_origins"].items() if r in wanted})
            continue
        mine = {r for r in wanted if r.split("/", 2)[1:2] in ([name], [f"{name}-occluded"])}
        stems = {Path(r).name.rsplit("__", 1)[0] for r in mine}
        recorded = Path(source["path"])
        folder = load_scene_set(recorded if recorded.is_dir() else data_root() / name)
        detector = detector or _detector_of(manifest["settings"]["detector"])
        for photo in folder.images:
            if Path(photo.relpath).stem not in stems:
                continue
            for crop in _photo_crops(photo, load_rgb(folder.root / photo.relpath), detector, settings, name,
                                     Counter()):
                copy = f"{CLASSES[0]}/{name}-occluded/{Path(crop.relpath).name}"
                for relpath, occluded in ((crop.relpath, False), (copy, True)):
                    if relpath not in mine:
                        continue
                    if not occluded and not np.array_equal(np.asarray(crop.image), np.asarray(load_rgb(crop_set / relpath))):
                        raise DatasetError(f"{relpath}: cut again from {photo.relpath} it differs from the crop in "
                                           f"{crop_set}; the photos or the detector are not the ones it was cut with")
                    origins[relpath] = CropOrigin(name, photo.relpath, crop.box, crop.origin, occluded)
        missing = sorted(mine - set(origins))
        if missing:
            raise DatasetError(f"{missing[0]} (and {len(missing) - 1} more) could not be cut again from {folder.root}")
    return CropProvenance(settings.margin, manifest["settings"]["detector"], origins)
