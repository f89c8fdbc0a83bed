"""Data sets in ImageFolder layout: class-name normalisation, scanning and cataloguing.

A *scan* lists the files (cheap, no decoding). A *catalog* decodes every file once,
records size / format / mode / perceptual hash or the reason it is unreadable, and is
cached on disk by the folder's content fingerprint (:mod:`maskdet.store`), so that the Dataset page, the split used
by training and the tests all share one pass over the pixels.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from maskdet.data.files import walk_files
from maskdet.data.images import ImageDecodeError, open_image
from maskdet.settings import KNOWN_CLASSES, classes_of_labels
from maskdet.store import artifact_key, artifact_path, fingerprint_files, write_json

logger = logging.getLogger(__name__)

CATALOG_VERSION = 2
HASH_SIZE = 8  # difference hash of 8x8 gradients -> 64 bits
THUMB_SIZE = 4
DRAFT_SIZE = 64

_CLASS_ALIASES = {
    "withmask": "with_mask",
    "mask": "with_mask",
    "masked": "with_mask",
    "masks": "with_mask",
    "withoutmask": "without_mask",
    "nomask": "without_mask",
    "unmasked": "without_mask",
    "withoutmasks": "without_mask",
    "incorrectmask": "incorrect_mask",
    "incorrectmasks": "incorrect_mask",
    "maskincorrect": "incorrect_mask",
    "withincorrectmask": "incorrect_mask",
    "maskwearedincorrect": "incorrect_mask",
    "maskwornincorrect": "incorrect_mask",
    "maskwornincorrectly": "incorrect_mask",
    "incorrectlywornmask": "incorrect_mask",
    "incorrectlymasked": "incorrect_mask",
    "improperlywornmask": "incorrect_mask",
    "impropermask": "incorrect_mask",
    "partialmask": "incorrect_mask",
}

DATASET_MANIFEST = "maskdet-dataset.json"
"""Optional file at a data-set root written by the tools that build data sets (:mod:`maskdet.training.crops`):
where the images came from (``sources``, ``command``) and, in ``split``, the split each file must
go to (relpath -> ``train`` / ``val`` / ``test``), e.g. to keep all crops of one photo together."""

ProgressFn = Callable[[int, int], None]
"""Called as ``progress(done, total)``."""


class DatasetError(ValueError):
    """The folder is not a usable data set; the message names the folder and the problem."""


def normalize_class_name(folder_name: str) -> str:
    """Map a class folder name (``WithMask``, ``no_mask``, ...) to a canonical class name."""
    key = re.sub(r"[^a-z]", "", folder_name.lower())
    try:
        return _CLASS_ALIASES[key]
    except KeyError:
        raise DatasetError(
            f"unknown class folder '{folder_name}': expected a name such as with_mask / WithMask / mask, "
            "without_mask / WithoutMask / no_mask or incorrect_mask / mask_weared_incorrect"
        ) from None


@dataclass(frozen=True)
class Sample:
    """One file of a data set: its path relative to the data set root and its label index."""

    relpath: str
    label: int

    @property
    def class_name(self) -> str:
        return KNOWN_CLASSES[self.label]


@dataclass
class DatasetScan:
    """The files of a data set, grouped by canonical class; no pixels read yet."""

    root: Path
    samples: list[Sample]
    class_folders: dict[str, list[str]]
    fingerprint: str  # content of the files (relative paths and bytes): the same data anywhere has one fingerprint
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(relative path, reason) of entries left out: pipes, devices, sockets, link loops, folders named like images."""

    def path(self, sample: Sample) -> Path:
        return self.root / sample.relpath

    @property
    def classes(self) -> tuple[str, ...]:
        """The set's class list: two classes, or three when it has an ``incorrect_mask`` folder."""
        return classes_of_labels(sample.label for sample in self.samples)

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(self.classes, 0)
        for sample in self.samples:
            counts[sample.class_name] += 1
        return counts


def scan_dataset(root: str | Path) -> DatasetScan:
    """List every regular file under the class folders of ``root`` (see :func:`maskdet.data.files.walk_files`).

    Named pipes, device files, sockets, link loops and folders named like images are never opened:
    they land in ``skipped`` with the reason. Raises :class:`DatasetError` for a missing or unreadable
    folder, no class folders, an unknown class folder name or no files at all.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetError(f"data set folder {root} does not exist")
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder")
    try:
        folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "__")))
    except OSError as exc:
        raise DatasetError(f"{root} cannot be listed ({exc.strerror or exc})") from None
    if not folders:
        raise DatasetError(
            f"{root} has no class folders: expected sub-folders such as with_mask/ and without_mask/"
        )
    class_folders: dict[str, list[str]] = {name: [] for name in KNOWN_CLASSES}
    samples: list[Sample] = []
    skipped: list[tuple[str, str]] = []
    for folder in folders:
        class_name = normalize_class_name(folder.name)
        class_folders[class_name].append(folder.name)
        label = KNOWN_CLASSES.index(class_name)
        try:
            files, odd = walk_files(folder)
        except OSError as exc:
            raise DatasetError(f"class folder {folder} cannot be listed ({exc.strerror or exc})") from None
        skipped += [(item.path.relative_to(root).as_posix(), item.reason) for item in odd]
        for path in files:
            relpath = path.relative_to(root).as_posix()
            try:
                path.stat()
            except OSError as exc:  # removed or made unreadable since the walk
                skipped.append((relpath, f"unreadable ({exc.strerror or exc})"))
                continue
            samples.append(Sample(relpath, label))
    if not samples:
        raise DatasetError(f"{root} contains no files in its class folders ({', '.join(f.name for f in folders)})")
    fingerprint = fingerprint_files(root, (sample.relpath for sample in samples))
    for name in KNOWN_CLASSES[len(classes_of_labels(sample.label for sample in samples)):]:
        del class_folders[name]  # a two-class set lists two classes
    return DatasetScan(root=root, samples=samples, class_folders=class_folders, fingerprint=fingerprint,
                       skipped=skipped)


@dataclass
class FileRecord:
    """What decoding one file revealed."""

    relpath: str
    label: int
    ok: bool
    error: str = ""
    format: str = ""
    mode: str = ""
    width: int = 0
    height: int = 0
    frames: int = 1
    bytes: int = 0
    dhash: str = ""  # 16 hex digits
    thumb: str = ""  # 4x4 RGB thumbnail, 96 hex digits: tells apart images whose gradients agree but colours do not


@dataclass
class Catalog:
    """Every file of a scan, decoded once; cached by fingerprint."""

    root: Path
    fingerprint: str
    records: list[FileRecord] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # the scan's (relpath, reason); never cached

    @property
    def readable(self) -> list[FileRecord]:
        return [r for r in self.records if r.ok]

    @property
    def classes(self) -> tuple[str, ...]:
        """The set's class list: two classes, or three when it holds ``incorrect_mask`` files."""
        return classes_of_labels(r.label for r in self.records)

    @property
    def unreadable(self) -> list[FileRecord]:
        return [r for r in self.records if not r.ok]

    def hashes(self, records: list[FileRecord] | None = None) -> np.ndarray:
        """64-bit difference hashes of ``records`` (default: the readable ones) as uint64."""
        chosen = self.readable if records is None else records
        return np.array([int(r.dhash, 16) for r in chosen], dtype=np.uint64)

    def thumbs(self, records: list[FileRecord] | None = None) -> np.ndarray:
        """4x4 RGB thumbnails of ``records`` (default: the readable ones) as (N, 48) uint8."""
        chosen = self.readable if records is None else records
        if not chosen:
            return np.zeros((0, THUMB_SIZE * THUMB_SIZE * 3), dtype=np.uint8)
        return np.stack([np.frombuffer(bytes.fromhex(r.thumb), dtype=np.uint8) for r in chosen])


def difference_hash(gray: np.ndarray) -> int:
    """64-bit dHash of a (HASH_SIZE, HASH_SIZE + 1) grayscale array: robust to resizing and re-encoding."""
    bits = (gray[:, 1:] > gray[:, :-1]).flatten()
    return int(np.packbits(bits).view(">u8")[0])


def perceptual_signature(image: Image.Image) -> tuple[str, str]:
    """(64-bit dHash as hex, 4x4 RGB thumbnail as hex) of an RGB image."""
    small = image.convert("L").resize((HASH_SIZE + 1, HASH_SIZE), Image.Resampling.LANCZOS)
    dhash = f"{difference_hash(np.asarray(small, dtype=np.int16)):016x}"
    thumb = image.resize((THUMB_SIZE, THUMB_SIZE), Image.Resampling.BOX).tobytes().hex()
    return dhash, thumb


def _catalog_one(root: Path, sample: Sample) -> FileRecord:
    path = root / sample.relpath
    record = FileRecord(relpath=sample.relpath, label=sample.label, ok=False)
    try:
        record.bytes = path.stat().st_size
        image, info = open_image(path, draft_size=DRAFT_SIZE)
    except ImageDecodeError as exc:
        record.error = exc.reason
        return record
    record.ok = True
    record.format, record.mode, record.frames = info.format, info.mode, info.frames
    # Report upright dimensions (EXIF rotation swaps them), independent of JPEG draft scaling.
    rotated = image.size[0] < image.size[1] and info.width > info.height
    rotated |= image.size[0] > image.size[1] and info.width < info.height
    record.width, record.height = (info.height, info.width) if rotated else (info.width, info.height)
    record.dhash, record.thumb = perceptual_signature(image)
    return record


def _catalog_cache_path(scan: DatasetScan) -> Path:
    """Records hold relative paths only, so one catalogue serves every copy of the same files."""
    return artifact_path("catalogs", artifact_key("catalog", CATALOG_VERSION, data=scan.fingerprint), ".json")


def build_catalog(scan: DatasetScan, progress: ProgressFn | None = None, workers: int | None = None) -> Catalog:
    """Decode every file of ``scan`` (in parallel; decoders release the GIL) and cache the result."""
    cache_path = _catalog_cache_path(scan)
    if cache_path.is_file():
        try:
            payload = json.loads(cache_path.read_text())
            records = [FileRecord(**r) for r in payload["records"]]
            logger.debug("catalog cache hit %s", cache_path)
            if progress:
                progress(len(records), len(records))
            return Catalog(root=scan.root, fingerprint=scan.fingerprint, records=records, skipped=scan.skipped)
        except (OSError, ValueError, KeyError, TypeError):
            logger.warning("ignoring unreadable catalog cache %s", cache_path)
    total = len(scan.samples)
    records: list[FileRecord] = []
    with ThreadPoolExecutor(max_workers=workers or max(2, os.cpu_count() or 2)) as pool:
        for done, record in enumerate(pool.map(lambda s: _catalog_one(scan.root, s), scan.samples), start=1):
            records.append(record)
            if progress and (done % 25 == 0 or done == total):
                progress(done, total)
    catalog = Catalog(root=scan.root, fingerprint=scan.fingerprint, records=records, skipped=scan.skipped)
    write_json(cache_path, {"version": CATALOG_VERSION, "records": [asdict(r) for r in records]})
    return catalog


def load_catalog(root: str | Path, progress: ProgressFn | None = None) -> Catalog:
    """Scan and catalogue ``root`` (cached)."""
    return build_catalog(scan_dataset(root), progress=progress)


def read_manifest(root: str | Path) -> dict:
    """The data set's :data:`DATASET_MANIFEST` (``{}`` when it has none); raises :class:`DatasetError`
    for a manifest that is not a JSON object."""
    path = Path(root) / DATASET_MANIFEST
    if not path.is_file():
        return {}
    try:
        payload = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: unreadable data-set manifest ({exc})") from None
    if not isinstance(payload, dict):
        raise DatasetError(f"{path}: the data-set manifest must be a JSON object")
    return payload


def list_datasets(root: Path | None = None) -> list[Path]:
    """Sub-folders of the data-set root that look like data sets (they have a known class folder)."""
    from maskdet.settings import data_root

    root = root or data_root()
    try:
        candidates = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:  # missing or unreadable: no data sets here
        return []
    found = []
    for candidate in candidates:
        try:
            children = list(candidate.iterdir())
        except OSError as exc:
            logger.info("not listing %s: %s", candidate, exc)
            continue
        for child in children:
            if child.is_dir():
                try:
                    normalize_class_name(child.name)
                except DatasetError:
                    continue
                found.append(candidate)
                break
    return found
