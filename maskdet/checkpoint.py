"""Trained models on disk: ``models/NAME/{model.safetensors, metadata.json, split.json}``.

Weights are stored as safetensors (loading executes no code) and the metadata records
the SHA-256 of the weights, so a metadata file never points at missing or different
weights. A model folder is written under a temporary name and swapped in with
renames, so a crash or cancel mid-save leaves the previous model intact.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import platform
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from maskdet.settings import CLASSES, models_dir
from maskdet.zoo import BuildOptions, InputConfig, MaskClassifier, get_spec

logger = logging.getLogger(__name__)

FORMAT = "maskdet-checkpoint"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
METADATA_FILE = "metadata.json"
SPLIT_FILE = "split.json"
DEFAULT_POINTER = "DEFAULT"
MAX_METADATA_BYTES = 64 * 1024 * 1024


class CheckpointError(ValueError):
    """A model file or folder is missing, not ours, damaged, or does not match its metadata."""


@dataclass
class LoadedModel:
    """A ready-to-run model with everything needed to feed it."""

    name: str
    path: Path
    model: MaskClassifier
    input: InputConfig
    metadata: dict

    @property
    def arch(self) -> str:
        return str(self.metadata["arch"])


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    import torchvision

    from maskdet import __version__

    return {
        "maskdet": __version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "python": platform.python_version(),
    }


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_model(
    model: MaskClassifier,
    metadata: dict,
    name: str,
    split: dict | None = None,
    directory: Path | None = None,
) -> Path:
    """Write ``directory/name`` atomically and return its path.

    ``metadata`` must hold at least ``arch`` and ``input``; format, classes, weights hash,
    versions and creation time are filled in here.
    """
    validate_model_name(name)
    directory = directory or models_dir()
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / name
    staging = directory / f".staging-{name}-{uuid.uuid4().hex[:8]}"
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
            "positive_class": CLASSES[1],
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "versions": library_versions(),
            **metadata,
            "weights": {"file": WEIGHTS_FILE, "sha256": _sha256_file(weights), "bytes": weights.stat().st_size},
        }
        if split is not None:
            (staging / SPLIT_FILE).write_text(json.dumps(split))
            full["split_file"] = SPLIT_FILE
        (staging / METADATA_FILE).write_text(json.dumps(full, indent=2))
        for child in staging.iterdir():
            with open(child, "rb") as handle:
                os.fsync(handle.fileno())
        _fsync_dir(staging)
        retired = None
        if final.exists():
            retired = directory / f".retired-{name}-{uuid.uuid4().hex[:8]}"
            os.rename(final, retired)
        os.rename(staging, final)
        _fsync_dir(directory)
        if retired is not None:
            shutil.rmtree(retired, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info("saved model %s", final)
    return final


def recover_interrupted_saves(directory: Path | None = None) -> None:
    """Undo what a crash between the two renames of :func:`save_model` left behind."""
    directory = directory or models_dir()
    if not directory.is_dir():
        return
    for retired in directory.glob(".retired-*"):
        name = retired.name[len(".retired-") : -9]
        target = directory / name
        if not target.exists():
            os.rename(retired, target)
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
        raise CheckpointError(f"model {path} does not exist")
    if not (folder / METADATA_FILE).is_file():
        raise CheckpointError(f"{folder} is not a maskdet model: {METADATA_FILE} is missing")
    return folder


def read_metadata(folder: Path) -> dict:
    """Parse and check a model's metadata (no weights loaded)."""
    meta_path = folder / METADATA_FILE
    try:
        if meta_path.stat().st_size > MAX_METADATA_BYTES:
            raise CheckpointError(f"{meta_path} is too large to be maskdet metadata")
        metadata = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{meta_path} is not readable JSON metadata ({exc})") from exc
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise CheckpointError(f"{folder} is not a maskdet model (metadata format is not {FORMAT!r})")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{folder}: unsupported checkpoint version {metadata.get('format_version')!r}")
    if list(metadata.get("classes", [])) != list(CLASSES):
        raise CheckpointError(f"{folder}: classes {metadata.get('classes')} differ from {list(CLASSES)}")
    try:
        get_spec(str(metadata.get("arch")))
        InputConfig.from_json(metadata["input"])
        sha256 = metadata["weights"]["sha256"]
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{folder}: invalid metadata ({exc})") from exc
    if not isinstance(sha256, str):
        raise CheckpointError(f"{folder}: invalid metadata (weights.sha256 is not a string)")
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


def load_model(path: Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Load a model folder: verify metadata, weights hash and tensor shapes; never unpickles."""
    folder = resolve_model_dir(path)
    metadata = read_metadata(folder)
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(f"{folder}: {WEIGHTS_FILE} is missing")
    if _sha256_file(weights) != metadata["weights"]["sha256"]:
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
    return LoadedModel(name=metadata.get("name", folder.name), path=folder, model=model, input=config, metadata=metadata)


def list_models(directory: Path | None = None) -> list[dict]:
    """Metadata of every valid model folder, newest first; invalid folders are logged and skipped.

    Each entry's ``name`` is its folder's name, whatever the metadata says: pages and the CLI
    pass it back to :func:`resolve_model`, so a copied or hand-edited folder (or a metadata
    ``name`` such as ``../elsewhere``) can never make a listed name point at another folder.
    """
    directory = directory or models_dir()
    recover_interrupted_saves(directory)
    found = []
    if not directory.is_dir():
        return found
    for folder in sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            metadata = read_metadata(folder)
        except CheckpointError as exc:
            logger.warning("skipping %s: %s", folder, exc)
            continue
        if not (folder / WEIGHTS_FILE).is_file():
            logger.warning("skipping %s: %s missing", folder, WEIGHTS_FILE)
            continue
        if metadata.get("name") != folder.name:
            logger.info("listing %s under its folder name (metadata says %r)", folder, metadata.get("name"))
        metadata["name"] = folder.name
        metadata["path"] = str(folder)
        found.append(metadata)
    found.sort(key=lambda m: str(m.get("created", "")), reverse=True)
    return found


def default_model_name(directory: Path | None = None) -> str | None:
    """The model used when none is chosen: ``MASKDET_DEFAULT_MODEL``, then ``models/DEFAULT``, then the newest."""
    directory = directory or models_dir()
    available = {m["name"]: m for m in list_models(directory)}
    for candidate in (os.environ.get("MASKDET_DEFAULT_MODEL"), _read_pointer(directory)):
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
            raise CheckpointError(
                f"no trained model found in {directory}: train one with "
                "`python -m maskdet train --arch mobilenet_v2 --data DIR` or on the Train page"
            )
        return directory / name
    candidate = directory / name_or_path
    if os.sep not in name_or_path and "/" not in name_or_path and candidate.is_dir():
        return candidate
    return resolve_model_dir(Path(name_or_path))


def load_split(folder: Path) -> dict | None:
    path = folder / SPLIT_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def set_default_model(name: str, directory: Path | None = None) -> None:
    """Record ``name`` as the default model (``models/DEFAULT``), atomically."""
    directory = directory or models_dir()
    folder = directory / name
    read_metadata(resolve_model_dir(folder))
    tmp = directory / f".{DEFAULT_POINTER}.{uuid.uuid4().hex[:8]}"
    tmp.write_text(name + "\n")
    os.replace(tmp, directory / DEFAULT_POINTER)
