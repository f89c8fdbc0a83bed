"""Trained models on disk: ``models/NAME/{model.safetensors, metadata.json, split.json, probe.safetensors}``.

Weights are stored as safetensors (loading executes no code) and the metadata records
the SHA-256 of the weights, so a metadata file never points at missing or different
weights. A folder from elsewhere is refused before anything uses it: its metadata must pass
the one schema in :mod:`maskdet.zoo.card`, and its files must be regular files of plausible
size inside the folder (no links out of it, no devices or pipes, no safetensors header that
describes more bytes than the file holds). A model folder is written under a temporary name and swapped in with
renames, so a crash or cancel mid-save leaves the previous model intact.

A model's card may carry an ``operating_threshold``: the p(with_mask) from which a face is
labelled ``with_mask`` (default 0.5). :func:`set_operating_threshold` changes it in place by an
atomic replace of ``metadata.json`` alone; the weights and their recorded hash are untouched.

Saves and the recovery of an interrupted save (:func:`recover_interrupted_saves`) hold one
exclusive lock (``fcntl.flock`` on ``models/.lock``), across threads and processes. Listing
reads only: pages and the CLI list on every rerun, and a listing that moved folders could run
between a save's two renames and destroy the model just saved. Recovery runs once at start
(the CLI's and the dashboard's), under the lock.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import platform
import shutil
import stat
import struct
import uuid
from collections.abc import Callable, Iterator
from typing import TypeVar
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from maskdet.zoo.decision import (
    MAX_BARE_CALLED_MASKED,
    THRESHOLD,
    WITH_MASK,
    as_probabilities,
    choose_threshold,
    threshold_rule,
    validate_threshold,
)
from maskdet.zoo.card import FORMAT, FORMAT_VERSION, MAX_METADATA_BYTES, MAX_NESTING, MAX_WEIGHTS_BYTES, CardError
from maskdet.zoo.card import nesting_depth, parse_model_card
from maskdet.data.fingerprints import SeenFiles, SeenFilesError, parse_seen_files
from maskdet.data.provenance import CropProvenance, ProvenanceError, parse_provenance
from maskdet.settings import CLASSES, POSITIVE_CLASS, current_settings, models_dir
from maskdet.store import atomic_write, fsync_dir, sha256_file
from maskdet.zoo.architectures import BuildOptions, InputConfig, MaskClassifier, get_spec

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "model.safetensors"
METADATA_FILE = "metadata.json"
SPLIT_FILE = "split.json"
PROBE_FILE = "probe.safetensors"  # real validation crops the bf16 check runs on (see maskdet.zoo.probe)
PROBE_FORMAT = "maskdet-probe"
SEEN_FILE = "seen.json"  # content and near-duplicate hashes of the train / val files (maskdet.data.fingerprints)
DEFAULT_POINTER = "DEFAULT"
T = TypeVar("T")
CROPS_FILE = "crops.json"  # what each held-out crop of a crop-set model is (maskdet.data.provenance)
MAX_SPLIT_BYTES = 64 * 1024 * 1024  # a split of a million files
MAX_SEEN_BYTES = 64 * 1024 * 1024  # ~250 bytes a file: a training set of 250,000 files
MAX_CROPS_BYTES = 64 * 1024 * 1024
MAX_PROBE_BYTES = 48 * 1024 * 1024
"""A probe holds 64 crops at the model's input size (9.6 MB at 224 px); a larger file is refused unread."""
MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024  # the safetensors format's own limit
_FILE_KINDS = {stat.S_IFIFO: "a named pipe", stat.S_IFCHR: "a device file", stat.S_IFBLK: "a device file",
               stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a folder"}
LOCK_FILE = ".lock"
STAGING_PREFIX = ".staging-"
RETIRED_PREFIX = ".retired-"


class CheckpointError(ValueError):
    """A model file or folder is missing, not ours, damaged, or does not match its metadata."""


class ModelMissing(CheckpointError):
    """No model where one was named (or none at all): a missing model, as opposed to one refused."""


@dataclass
class LoadedModel:
    """A ready-to-run model with everything needed to feed it."""

    name: str
    path: Path
    model: MaskClassifier
    input: InputConfig
    metadata: dict
    folder: ModelFolder = field(repr=False)  # the folder it was loaded from: its other members (split, crops, …)

    @property
    def arch(self) -> str:
        return str(self.metadata["arch"])

    @property
    def classes(self) -> tuple[str, ...]:
        """The model's classes as its card lists them (the order of its outputs)."""
        return model_classes(self.metadata)


def library_versions() -> dict[str, str]:
    import torchvision

    from maskdet import __version__

    return {
        "maskdet": __version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "python": platform.python_version(),
    }


@contextlib.contextmanager
def models_lock(directory: Path) -> Iterator[None]:
    """Exclusive lock on ``directory`` shared by every thread and process that saves or recovers models."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / LOCK_FILE, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def save_model(
    model: MaskClassifier,
    metadata: dict,
    name: str,
    split: dict | None = None,
    directory: Path | None = None,
    probe: torch.Tensor | None = None,
    seen: SeenFiles | None = None,
    crops: CropProvenance | None = None,
) -> Path:
    """Write ``directory/name`` atomically and return its path.

    ``metadata`` must hold at least ``arch`` and ``input``; format, classes, weights hash,
    versions and creation time are filled in here. ``probe``: uint8 (N, H, W, C) validation crops
    for the precision check (:mod:`maskdet.zoo.probe`), stored as ``probe.safetensors``; ``seen`` and ``crops``
    as ``seen.json`` and ``crops.json`` (:mod:`maskdet.data.fingerprints`, :mod:`maskdet.data.provenance`).
    """
    validate_model_name(name)
    directory = directory or models_dir()
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / name
    staging = directory / f"{STAGING_PREFIX}{name}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
        weights = staging / WEIGHTS_FILE
        save_file(state, str(weights), metadata={"format": FORMAT, "arch": str(metadata["arch"])})
        full = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "name": name,
            "classes": list(CLASSES),
            "positive_class": POSITIVE_CLASS,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "versions": library_versions(),
            **metadata,
            "weights": {"file": WEIGHTS_FILE, "sha256": sha256_file(weights), "bytes": weights.stat().st_size},
        }
        if probe is not None:
            save_file({"crops": probe.contiguous()}, str(staging / PROBE_FILE), metadata={"format": PROBE_FORMAT})
        if seen is not None:
            (staging / SEEN_FILE).write_text(json.dumps(seen.to_json()))
        if crops is not None:
            (staging / CROPS_FILE).write_text(json.dumps(crops.to_json()))
        if split is not None:
            (staging / SPLIT_FILE).write_text(json.dumps(split))
            full["split_file"] = SPLIT_FILE
        card = json.dumps(full, indent=2)
        parse_model_card(card.encode())  # never save what loading would refuse (CardError)
        (staging / METADATA_FILE).write_text(card)
        for child in staging.iterdir():
            with open(child, "rb") as handle:
                os.fsync(handle.fileno())
        fsync_dir(staging)
        with models_lock(directory):
            _swap_in(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info("saved model %s", final)
    return final


def _swap_in(staging: Path, final: Path) -> None:
    """Replace ``final`` by ``staging`` with two renames (the caller holds :func:`models_lock`)."""
    retired = None
    if final.exists():
        retired = final.parent / f"{RETIRED_PREFIX}{final.name}-{uuid.uuid4().hex[:8]}"
        os.rename(final, retired)
    os.rename(staging, final)
    fsync_dir(final.parent)
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)


def recover_interrupted_saves(directory: Path | None = None) -> None:
    """Undo what a crash between the two renames of :func:`save_model` left behind (a retired folder).

    Call it once when a process starts (the CLI, the dashboard); it waits for saves in progress
    (the lock) and changes nothing when nothing was interrupted.
    """
    directory = directory or models_dir()
    if not directory.is_dir() or not any(directory.glob(f"{RETIRED_PREFIX}*")):
        return  # nothing to recover; no lock file is created for it
    with models_lock(directory):
        for retired in directory.glob(f"{RETIRED_PREFIX}*"):
            target = directory / retired.name[len(RETIRED_PREFIX) : -9]
            if not target.exists():
                os.rename(retired, target)
                logger.warning("recovered model %s from an interrupted save", target)
            else:
                shutil.rmtree(retired, ignore_errors=True)


def validate_model_name(name: str) -> None:
    """Model names become folder names: letters, digits, ``-``, ``_`` and ``.`` only."""
    if not name or len(name) > 100 or name.startswith(".") or not all(c.isalnum() or c in "-_." for c in name):
        raise CheckpointError(f"invalid model name {name!r}: use letters, digits, '-', '_' or '.'")


def resolve_model_dir(path: Path) -> Path:
    """Accept a model folder, its metadata.json or its weights file; refuse anything else."""
    path = Path(path).expanduser()
    if path.is_dir():
        folder = path
    elif path.is_file() and path.name in (METADATA_FILE, WEIGHTS_FILE):
        folder = path.parent
    elif path.exists():
        raise CheckpointError(
            f"{path} is not a maskdet model: expected a folder holding {METADATA_FILE} and {WEIGHTS_FILE} "
            "(pickled .pt/.pth files are never loaded)"
        )
    else:
        raise ModelMissing(f"model {path} does not exist")
    if not os.path.lexists(folder / METADATA_FILE):  # present but odd (a pipe, a link): read_metadata says how
        raise CheckpointError(f"{folder} is not a maskdet model: {METADATA_FILE} is missing")
    return folder


def _open_member(folder: Path, name: str, max_bytes: int) -> tuple[Path, int]:
    """``folder/name`` resolved, and its size, if it is a regular file of at most ``max_bytes`` inside ``folder``.

    Checked with ``stat`` before anything opens it: opening a named pipe would block and a device
    file never ends, and a link out of the folder would let a model read any file of the server.
    """
    path = folder / name
    try:
        real = path.resolve(strict=True)
        info = real.stat()
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing") from None
    except (OSError, RuntimeError) as exc:
        raise CheckpointError(f"{path} cannot be read ({exc})") from None
    if not real.is_relative_to(folder.resolve()):
        raise CheckpointError(f"{path} is a link to {real}, outside the model folder; refusing it")
    if not stat.S_ISREG(info.st_mode):
        kind = _FILE_KINDS.get(stat.S_IFMT(info.st_mode), "not a regular file")
        raise CheckpointError(f"{path} is {kind}, not a regular file; refusing it")
    if info.st_size > max_bytes:
        raise CheckpointError(f"{path} is {info.st_size / 1e6:.1f} MB, above the {max_bytes / 1e6:.0f} MB limit")
    return real, info.st_size


def _read_member(folder: Path, name: str, max_bytes: int) -> bytes:
    """The bytes of ``folder/name`` after :func:`_open_member`'s checks; never more than ``max_bytes``."""
    real, _ = _open_member(folder, name, max_bytes)
    try:
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)  # swapped for a pipe meanwhile: no hang
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise CheckpointError(f"{folder / name} changed into something that is not a regular file")
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise CheckpointError(f"{folder / name} cannot be read ({exc})") from None
    if len(data) > max_bytes:
        raise CheckpointError(f"{folder / name} grew above the {max_bytes / 1e6:.0f} MB limit while being read")
    return data


def read_metadata(folder: Path) -> dict:
    """Parse and validate a model's metadata (no weights touched); :class:`CheckpointError` naming the file."""
    data = _read_member(folder, METADATA_FILE, MAX_METADATA_BYTES)
    try:
        return parse_model_card(data)
    except CardError as exc:
        raise CheckpointError(f"{folder / METADATA_FILE}: {exc}") from None


def check_weights_file(folder: Path, metadata: dict) -> Path:
    """The weights file's real path, once it is plausible; checked before a single tensor is read.

    It must be a regular file inside ``folder`` (see :func:`_open_member`) of the size the metadata
    records, and its safetensors header must be bounded JSON whose tensors all lie inside the file:
    a truncated or forged file is refused here with a clear message instead of failing deep in a loader.
    """
    return _check_safetensors(folder, WEIGHTS_FILE, MAX_WEIGHTS_BYTES, metadata["weights"].get("bytes"))


def _check_safetensors(folder: Path, name: str, max_bytes: int, recorded: int | None = None) -> Path:
    """``folder/name``'s real path once it passes :func:`_open_member` (of ``recorded`` bytes, when given) and
    its safetensors header is bounded JSON whose tensors all lie inside the file."""
    path = folder / name
    real, size = _open_member(folder, name, max_bytes)
    if recorded is not None and size != recorded:
        raise CheckpointError(f"{path} holds {size} bytes, its metadata records {recorded}")
    with open(real, "rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise CheckpointError(f"{path} is {size} bytes: too short to be a safetensors file")
        (header_bytes,) = struct.unpack("<Q", prefix)
        if header_bytes > min(MAX_SAFETENSORS_HEADER, size - 8):
            raise CheckpointError(f"{path} is not a safetensors file: its header claims {header_bytes} bytes, "
                                  f"the file has {size}")
        raw = handle.read(header_bytes)
    if nesting_depth(raw) > MAX_NESTING:
        raise CheckpointError(f"{path} is not a safetensors file: its header is nested too deeply")
    try:
        header = json.loads(raw.decode("utf-8"))
        ends = [int(entry["data_offsets"][1]) for key, entry in header.items() if key != "__metadata__"]
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise CheckpointError(f"{path} is not a safetensors file: unreadable header ({exc})") from None
    available = size - 8 - header_bytes
    if ends and max(ends) > available:
        raise CheckpointError(f"{path} is truncated or forged: its header claims {max(ends)} bytes of tensors, "
                              f"the file holds {available}")
    return real


def stored_scores(labels: np.ndarray, probabilities: np.ndarray) -> dict:
    """A split's labels and scores as the card stores them (``evaluation.<split>``): ``scores`` is
    p(with_mask) for every model; a three-class model adds the class ``probabilities`` rows."""
    probabilities = as_probabilities(probabilities)
    stored = {"labels": [int(v) for v in labels],
              "scores": [round(float(s), 6) for s in probabilities[:, WITH_MASK]]}
    if probabilities.shape[1] > 2:
        stored["probabilities"] = np.round(probabilities, 6).tolist()
    return stored


def card_scores(metadata: dict, split: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(labels, class probabilities) of ``split`` (``val`` or ``test``) as the card stores them, or None."""
    stored = (metadata.get("evaluation") or {}).get(split) or {}
    scores = stored.get("probabilities") or stored.get("scores")
    if not scores or len(scores) != len(stored.get("labels") or []):
        return None
    return np.asarray(stored["labels"], dtype=np.int64), as_probabilities(scores)


def set_card_scores(folder: Path, split: str, labels: np.ndarray, probabilities: np.ndarray) -> dict:
    """Store a split's labels and scores in the card (``evaluation.<split>``, as training stores them), e.g. the
    validation scores of a model trained before training stored them; returns the new metadata. Only
    ``metadata.json`` is rewritten (atomically): the weights and their hash stay as they are."""
    folder = resolve_model_dir(Path(folder))
    metadata = read_metadata(folder)
    metadata["evaluation"] = {**(metadata.get("evaluation") or {}), split: stored_scores(labels, probabilities)}
    parse_model_card(json.dumps(metadata).encode())
    atomic_write(folder / METADATA_FILE, json.dumps(metadata, indent=2))
    return metadata


def choose_operating_threshold(folder: Path, max_bare_called_masked: float = MAX_BARE_CALLED_MASKED,
                               scored: tuple[np.ndarray, np.ndarray] | None = None,
                               chosen_on: str = "validation split") -> dict:
    """Choose the model's operating threshold by the one rule (:func:`maskdet.zoo.decision.choose_threshold`) and
    save it; returns the new metadata. On the validation scores its card stores, or on ``scored`` (labels, scores)
    of other faces, e.g. the camera's the model will watch, which ``chosen_on`` names in the card (with the rule).

    Raises :class:`CheckpointError` when no ``scored`` is given and the card holds no validation scores (add them
    with ``benchmarks/add_validation_scores.py``), ValueError when the faces hold no bare or incorrectly masked one
    (the bound would hold at any threshold). Nothing is written then."""
    folder = resolve_model_dir(Path(folder))
    if scored is None:
        scored = card_scores(read_metadata(folder), "val")
        if scored is None:
            raise CheckpointError(f"{folder}: its card holds no validation scores to choose a threshold on")
    labels = np.asarray(scored[0])
    if not (labels != WITH_MASK).any():
        raise ValueError(f"{chosen_on} holds no bare or incorrectly masked face among its {len(labels):,}: the threshold "
                         "bounds how many of them are called masked, so it cannot be chosen on masked faces alone")
    threshold = choose_threshold(*scored, max_bare_called_masked=max_bare_called_masked)
    return set_operating_threshold(folder, threshold,
                                   chosen_on=f"{chosen_on} ({threshold_rule(max_bare_called_masked)})")


def model_classes(metadata: dict) -> tuple[str, ...]:
    """The classes a model card lists (checked by :mod:`maskdet.zoo.card`), two classes when it lists none."""
    return tuple(metadata.get("classes") or CLASSES)


def _read_record(folder: Path, name: str, max_bytes: int, parse: Callable[[bytes], T]) -> T | None:
    """An optional JSON member ``name`` parsed by ``parse`` (which raises ValueError for a damaged one), None when the
    folder has none; checked as every member, a damaged one is a :class:`CheckpointError`."""
    if not os.path.lexists(folder / name):
        return None
    try:
        return parse(_read_member(folder, name, max_bytes))
    except (SeenFilesError, ProvenanceError) as exc:
        raise CheckpointError(f"{folder / name}: {exc}") from None


def _write_record(folder: Path, name: str, record: SeenFiles | CropProvenance) -> None:
    """Add (or replace) member ``name`` in an existing model folder, atomically; weights and card stay as they are."""
    atomic_write(resolve_model_dir(Path(folder)) / name, json.dumps(record.to_json()))


def read_seen(folder: Path) -> SeenFiles | None:
    """The model's ``seen.json`` (:mod:`maskdet.data.fingerprints`), None when it has none."""
    return _read_record(folder, SEEN_FILE, MAX_SEEN_BYTES, parse_seen_files)


def write_seen(folder: Path, seen: SeenFiles) -> None:
    """Add (or replace) ``seen.json`` in an existing model folder."""
    _write_record(folder, SEEN_FILE, seen)


def read_crops(folder: Path) -> CropProvenance | None:
    """The model's ``crops.json`` (:mod:`maskdet.data.provenance`), None when it has none."""
    return _read_record(folder, CROPS_FILE, MAX_CROPS_BYTES, parse_provenance)


def write_crops(folder: Path, crops: CropProvenance) -> None:
    """Add (or replace) ``crops.json`` in an existing model folder."""
    _write_record(folder, CROPS_FILE, crops)


def read_probe(folder: Path) -> torch.Tensor | None:
    """The probe crops stored in ``folder`` (``probe.safetensors``), None when it has none.

    The file goes through the checks every member gets (a regular file inside the folder, at most
    :data:`MAX_PROBE_BYTES`, a bounded safetensors header); :class:`CheckpointError` when it fails them.
    """
    if not os.path.lexists(folder / PROBE_FILE):
        return None
    real = _check_safetensors(folder, PROBE_FILE, MAX_PROBE_BYTES)
    try:
        return load_file(str(real))["crops"]
    except (SafetensorError, OSError, KeyError, ValueError) as exc:
        raise CheckpointError(f"{folder / PROBE_FILE} is not a probe file ({exc})") from None


@dataclass(frozen=True)
class ModelFolder:
    """A model folder opened once: where it is and its checked card (``metadata.json``).

    Every other member (weights, split, seen, crops, probe) is read through the same checks: a regular file inside
    the folder, a size limit, a schema or a bounded safetensors header. :meth:`open` is the one place that
    decides whether a reference (a name in ``models/``, a path, or None for the default) is a model of ours.
    """

    path: Path
    metadata: dict

    @classmethod
    def open(cls, reference: str | Path | None = None, directory: Path | None = None) -> ModelFolder:
        """The model ``reference`` names (see :func:`resolve_model`), its card read and checked;
        :class:`ModelMissing` / :class:`CheckpointError` otherwise."""
        folder = resolve_model(None if reference is None else str(reference), directory)
        return cls(path=folder, metadata=read_metadata(folder))

    @classmethod
    def at(cls, path: Path) -> ModelFolder:
        """The model folder at ``path`` (the folder, its metadata.json or its weights file), never a name."""
        folder = resolve_model_dir(Path(path))
        return cls(path=folder, metadata=read_metadata(folder))

    @property
    def name(self) -> str:
        return self.path.name

    def split(self) -> dict | None:
        """The recorded train / val / test split (:func:`load_split`), None when the model kept none."""
        return load_split(self.path)

    def seen(self) -> SeenFiles | None:
        """The hashes of the train / val files (``seen.json``), None for a folder from before they were kept."""
        return read_seen(self.path)

    def crops(self) -> CropProvenance | None:
        """What each held-out crop of a crop-set model is (``crops.json``), None for other folders and older ones."""
        return read_crops(self.path)

    def probe(self) -> torch.Tensor | None:
        """The stored probe crops (:func:`read_probe`), None when there are none."""
        return read_probe(self.path)

    def load(self, device: str | torch.device = "cpu") -> LoadedModel:
        """The model itself: weights checked against the card's hash and the architecture's shapes."""
        return _load(self, device)


def operating_threshold(metadata: dict) -> float:
    """The card's ``operating_threshold`` (its range checked by :mod:`maskdet.zoo.card`), 0.5 when it has none."""
    value = metadata.get("operating_threshold")
    return THRESHOLD if value is None else float(value)


def set_operating_threshold(folder: Path, threshold: float, chosen_on: str | None = None) -> dict:
    """Record ``threshold`` as the model's operating threshold; returns the new metadata.

    Only ``metadata.json`` is rewritten (a temporary file, fsynced, then renamed over it), so a
    crash leaves the old card or the new one, and the weights hash stays valid. ``chosen_on``
    says which data the threshold was chosen on (shown next to it, e.g. ``"test split"``).
    Raises :class:`CheckpointError` for a folder that is not a valid model and for a bad threshold.
    """
    folder = resolve_model_dir(Path(folder))
    try:
        value = validate_threshold(threshold)
    except ValueError as exc:
        raise CheckpointError(str(exc)) from exc
    metadata = read_metadata(folder)
    metadata["operating_threshold"] = value
    if chosen_on:
        metadata["operating_threshold_chosen_on"] = str(chosen_on)
    else:
        metadata.pop("operating_threshold_chosen_on", None)
    atomic_write(folder / METADATA_FILE, json.dumps(metadata, indent=2))
    logger.info("operating threshold of %s set to %.4f", folder, value)
    return metadata


def _shape_mismatch(expected: dict[str, tuple[int, ...]], found: dict[str, tuple[int, ...]]) -> str:
    """How the weights' tensors differ from what the architecture needs ("" when they fit)."""
    missing, unexpected = sorted(expected.keys() - found.keys()), sorted(found.keys() - expected.keys())
    if missing or unexpected:
        return (f"{len(missing)} tensors missing, e.g. {missing[:2]}; "
                f"{len(unexpected)} unexpected, e.g. {unexpected[:2]}")
    for key, shape in expected.items():
        if found[key] != shape:
            return f"{key} has shape {list(found[key])}, expected {list(shape)}"
    return ""


def load_model(path: Path | ModelFolder, device: str | torch.device = "cpu") -> LoadedModel:
    """Load a model folder: verify metadata, weights hash and tensor shapes; never unpickles."""
    return (path if isinstance(path, ModelFolder) else ModelFolder.at(path)).load(device)


def _load(opened: ModelFolder, device: str | torch.device) -> LoadedModel:
    folder, metadata = opened.path, opened.metadata
    weights = check_weights_file(folder, metadata)
    if sha256_file(weights) != metadata["weights"]["sha256"]:
        raise CheckpointError(f"{folder}: {WEIGHTS_FILE} does not match the SHA-256 recorded in its metadata")
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{folder}: {WEIGHTS_FILE} is not a valid safetensors file ({exc})") from exc
    spec = get_spec(metadata["arch"])
    config = InputConfig.from_json(metadata["input"])
    try:
        options = BuildOptions(
            pretrained=False,
            finetune_blocks=int((metadata.get("build") or {}).get("finetune_blocks", 0)),
            img_size=config.size,
            num_classes=len(model_classes(metadata)),
        )
        with torch.device("meta"):  # shapes only, no memory: forged sizes cannot make us allocate gigabytes
            expected = {key: tuple(value.shape) for key, value in spec.build(options).state_dict().items()}
    except (AttributeError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{folder}: cannot build architecture {spec.name!r} from its metadata ({exc})") from exc
    mismatch = _shape_mismatch(expected, {key: tuple(value.shape) for key, value in state.items()})
    if mismatch:
        raise CheckpointError(f"{folder}: weights do not fit architecture {spec.name!r} ({mismatch})")
    model = spec.build(options)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(f"{folder}: weights do not fit architecture {spec.name!r} ({first})") from exc
    model.eval().to(device)
    for param in model.parameters():
        param.requires_grad_(False)
    return LoadedModel(name=metadata.get("name", folder.name), path=folder, model=model, input=config, metadata=metadata,
                       folder=opened)


@dataclass(frozen=True)
class BrokenModel:
    """A folder in ``models/`` that is not a usable model, and why (one line naming the file)."""

    name: str
    path: Path
    reason: str


def scan_models(directory: Path | None = None) -> tuple[list[dict], list[BrokenModel]]:
    """(metadata of every valid model folder, newest first; the folders refused, by name). Read-only.

    A valid folder has metadata passing the schema and a regular weights file inside it (its
    content is checked when it is loaded). Each entry's ``name`` is its folder's name, whatever
    the metadata says: pages and the CLI pass it back to :func:`resolve_model`, so a copied or
    hand-edited folder (or a metadata ``name`` such as ``../elsewhere``) can never make a listed
    name point at another folder.
    """
    directory = directory or models_dir()
    found: list[dict] = []
    broken: list[BrokenModel] = []
    try:
        folders = sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:  # no models folder (yet), or one this process cannot read
        return found, broken
    for folder in folders:
        try:
            metadata = read_metadata(folder)
            _open_member(folder, WEIGHTS_FILE, MAX_WEIGHTS_BYTES)
        except CheckpointError as exc:
            logger.warning("not listing %s: %s", folder, exc)
            broken.append(BrokenModel(name=folder.name, path=folder, reason=str(exc)))
            continue
        if metadata.get("name") != folder.name:
            logger.info("listing %s under its folder name (metadata says %r)", folder, metadata.get("name"))
        metadata["name"] = folder.name
        metadata["path"] = str(folder)
        found.append(metadata)
    found.sort(key=lambda m: str(m.get("created", "")), reverse=True)
    return found, broken


def list_model_folders(directory: Path | None = None) -> list[dict]:
    """Metadata of every valid model folder, newest first; see :func:`scan_models` (broken ones are left out)."""
    return scan_models(directory)[0]


def default_model_name(directory: Path | None = None) -> str | None:
    """The model used when none is chosen: the ``default_model`` setting, then ``models/DEFAULT``, then the newest."""
    directory = directory or models_dir()
    available = {m["name"]: m for m in list_model_folders(directory)}
    for candidate in (current_settings().default_model, _read_pointer(directory)):
        if candidate and candidate in available:
            return candidate
    return next(iter(available), None)


def _read_pointer(directory: Path) -> str | None:
    pointer = directory / DEFAULT_POINTER
    try:
        return pointer.read_text().strip() or None
    except OSError:
        return None


def resolve_model(name_or_path: str | None, directory: Path | None = None) -> Path:
    """Turn a CLI/page model reference (a name in ``models/``, a path, or None for the default) into a folder."""
    directory = directory or models_dir()
    if name_or_path is None:
        name = default_model_name(directory)
        if name is None:
            raise ModelMissing(
                f"no trained model found in {directory}: train one with "
                "`python -m maskdet train --arch mobilenet_v2 --data DIR` or on the Train page"
            )
        return directory / name
    candidate = directory / name_or_path
    if os.sep not in name_or_path and "/" not in name_or_path and candidate.is_dir():
        return candidate
    return resolve_model_dir(Path(name_or_path))


def load_split(folder: Path) -> dict | None:
    """The model's recorded train / val / test split, None when it has none; bounded like its metadata."""
    if not (folder / SPLIT_FILE).exists():
        return None
    data = _read_member(folder, SPLIT_FILE, MAX_SPLIT_BYTES)
    if nesting_depth(data) > MAX_NESTING:
        raise CheckpointError(f"{folder / SPLIT_FILE} is nested too deeply to be a split")
    try:
        split = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"{folder / SPLIT_FILE} is not readable JSON ({exc})") from None
    if not isinstance(split, dict):
        raise CheckpointError(f"{folder / SPLIT_FILE} is not a split (a JSON object)")
    return split


def set_default_model(name: str, directory: Path | None = None) -> None:
    """Record ``name`` as the default model (``models/DEFAULT``), atomically."""
    directory = directory or models_dir()
    folder = directory / name
    read_metadata(resolve_model_dir(folder))
    atomic_write(directory / DEFAULT_POINTER, name + "\n")
