"""Builders of bad and hostile inputs shared by the hardening tests (CLI, library and pages).

- The image "zoo": one file of each awkward kind built from a real face photo, the usable
  ones (CMYK, 16-bit, animated, EXIF-rotated, grayscale, 8x8, 16 megapixels) and the unusable
  ones (empty, text named .jpg, truncated JPEG and PNG, a 30000x30000 PNG bomb of a few kB).
- Model folders that are not ours: pickles that would run code when unpickled, a weights file
  that is secretly a pickle (with metadata forged to match its hash), truncated weights,
  metadata for another architecture or other classes, and metadata shaped to break listings.
  Code that runs writes the ``marker`` file, so a test proves nothing ran by its absence.
  :func:`add_refused_models` adds the schema and file-type cases (absurd metadata, pipes,
  devices, links out of the folder, lying headers), each with the message it must be refused with.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import shutil
import stat
import struct
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ZOO_VALID = ("cmyk.jpg", "16bit.png", "animated.gif", "animated.webp", "rotated.jpg", "gray.png", "tiny.png",
             "large.jpg")
ZOO_INVALID = ("empty.jpg", "text.jpg", "truncated.jpg", "truncated.png", "bomb.png")
ZOO_FACE = ("synthetic-masks-2k", "with_mask", "with_mask_1.jpg")  # a 128x128 masked face crop
LARGE_SIDE = 4000  # large.jpg: 16 megapixels, under the 64 megapixel decoding limit
BOMB_SIDE = 30000  # bomb.png: 900 megapixels declared, a few kB on disk


def zoo_face(datasets_root: Path) -> Image.Image:
    """The real face photo every zoo file is made from."""
    return Image.open(datasets_root.joinpath(*ZOO_FACE)).convert("RGB")


def _png_bomb(width: int, height: int) -> bytes:
    """A valid PNG header declaring ``width`` x ``height`` with one compressed row of data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    compressor = zlib.compressobj(9)
    body = compressor.compress(b"\x00" * (width + 1)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def _save(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def zoo_files(face: Image.Image) -> dict[str, bytes]:
    """Name -> bytes of one file of each kind (``ZOO_VALID`` then ``ZOO_INVALID``)."""
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    frames = [face, face.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    return {
        "cmyk.jpg": _save(face.convert("CMYK"), "JPEG"),
        "16bit.png": _save(Image.fromarray((np.asarray(face.convert("L"), dtype=np.uint16) * 257)), "PNG"),
        "animated.gif": _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100),
        "animated.webp": _save(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=100),
        "rotated.jpg": _save(face.rotate(90, expand=True), "JPEG", exif=exif.tobytes()),
        "gray.png": _save(face.convert("L"), "PNG"),
        "tiny.png": _save(face.resize((8, 8)), "PNG"),
        "large.jpg": _save(face.resize((LARGE_SIDE, LARGE_SIDE)), "JPEG", quality=70),
        "empty.jpg": b"",
        "text.jpg": b"this is not an image\n" * 20,
        "truncated.jpg": _save(face, "JPEG")[:2000],
        "truncated.png": _save(face, "PNG")[:3000],
        "bomb.png": _png_bomb(BOMB_SIDE, BOMB_SIDE),
    }


def write_zoo(folder: Path, face: Image.Image) -> Path:
    """Write the zoo into ``folder`` (created) and return it."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in zoo_files(face).items():
        (folder / name).write_bytes(data)
    return folder


# --- model folders that are not ours ---------------------------------------------------------------


class RunsCode:
    """Unpickling this creates ``marker`` (any code could run instead); loading must never get that far."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204 - the pickle protocol
        return (open, (str(self.marker), "w"))


def malicious_pickle(marker: Path) -> bytes:
    """A plain pickle that creates ``marker`` when loaded."""
    return pickle.dumps(RunsCode(marker))


def malicious_torch_file(path: Path, marker: Path) -> Path:
    """A ``torch.save`` file whose pickle creates ``marker`` when loaded without ``weights_only``."""
    torch.save({"state_dict": RunsCode(marker)}, path)
    return path


def _rewrite_metadata(folder: Path, **changes: object) -> None:
    path = folder / "metadata.json"
    metadata = json.loads(path.read_text())
    metadata.update(changes)
    path.write_text(json.dumps(metadata))


def _forge_weights(folder: Path, data: bytes) -> None:
    """Replace the weights with ``data`` and record its real hash, as a forger who controls both files would."""
    weights = folder / "model.safetensors"
    weights.write_bytes(data)
    metadata = json.loads((folder / "metadata.json").read_text())
    _rewrite_metadata(folder, weights={**metadata["weights"], "sha256": hashlib.sha256(data).hexdigest(),
                                       "bytes": len(data)})


HOSTILE_LISTED = ("evil-weights", "truncated-weights")
"""Hostile folders with well-formed metadata: listed, refused only when loaded."""
HOSTILE_UNLISTED = ("evil-pickle", "evil-torch", "wrong-arch", "wrong-classes", "not-json")
"""Hostile folders refused from their metadata alone: never listed."""
ODD_METADATA = ("odd-fields", "renamed")
"""Real weights under metadata shaped to break listings and reports (fields of the wrong type, a name that is
a path): listed under the folder name and loadable."""


def add_hostile_models(directory: Path, good: Path, marker: Path) -> None:
    """Add hostile model folders (``HOSTILE_*`` and ``ODD_METADATA``) next to the models in ``directory``.

    ``good`` is a real model folder they are derived from; ``marker`` is created by any code that runs.
    """
    pickles = directory / "evil-pickle"  # no metadata, only pickles named like model files
    pickles.mkdir()
    (pickles / "model.pkl").write_bytes(malicious_pickle(marker))
    malicious_torch_file(pickles / "model.pt", marker)
    (pickles / "metadata.json").write_bytes(malicious_pickle(marker))

    torch_folder = directory / "evil-torch"  # a torch checkpoint in place of everything
    torch_folder.mkdir()
    malicious_torch_file(torch_folder / "model.safetensors", marker)
    shutil.copy(torch_folder / "model.safetensors", torch_folder / "model.pth")

    evil = shutil.copytree(good, directory / "evil-weights")  # a pickle behind forged metadata
    _forge_weights(evil, malicious_torch_file(directory / "evil.pt", marker).read_bytes())
    (directory / "evil.pt").unlink()

    truncated = shutil.copytree(good, directory / "truncated-weights")
    data = (truncated / "model.safetensors").read_bytes()
    _forge_weights(truncated, data[: len(data) // 2])

    wrong_arch = shutil.copytree(good, directory / "wrong-arch")
    metadata = json.loads((good / "metadata.json").read_text())
    _rewrite_metadata(wrong_arch, arch="simple_cnn" if metadata["arch"] != "simple_cnn" else "mlp")

    _rewrite_metadata(shutil.copytree(good, directory / "wrong-classes"), classes=["cat", "dog"])
    (shutil.copytree(good, directory / "not-json") / "metadata.json").write_text("{not json")

    odd = shutil.copytree(good, directory / "odd-fields")
    _rewrite_metadata(odd, created=20240101, name=None, weights={**metadata["weights"], "file": 5}, metrics="high",
                      history=5)
    _rewrite_metadata(shutil.copytree(good, directory / "renamed"), name="../../outside")


REFUSED_AT_LISTING = {
    "deep-nesting": "nested 100001 levels deep (at most 32)",
    "huge-metadata": "above the 8 MB limit",
    "nan-mean": "not readable JSON (NaN is not a JSON number)",
    "billion-pixels": "input.size: mlp takes inputs of 8 to 512 px, not 1000000000",
    "size-as-text": "input.size: Input should be a valid integer",
    "two-channels": "input.channels: Input should be 1 or 3",
    "mean-length": "mean has 3 values for 1 channel(s)",
    "zero-std": "input.std.0: Input should be greater than 0",
    "no-weights-record": "weights: Field required",
    "threshold-above-1": "operating_threshold: Input should be less than 1",
    "fifo-metadata": "metadata.json is a named pipe, not a regular file",
    "metadata-link-out": "is a link to",
    "device-weights": "model.safetensors is a device file, not a regular file",
    "weights-link-out": "outside the model folder",
    "weights-folder": "model.safetensors is a folder, not a regular file",
}
"""Model folders refused from their files alone (never offered), each with the text its refusal contains."""
REFUSED_AT_LOADING = {
    "evil-weights": "is not a safetensors file: its header claims",
    "truncated-weights": "is truncated or forged: its header claims",
    "padded-weights": "bytes, its metadata records",
}
"""Model folders with plausible files, refused when loaded (before a tensor is read)."""


def add_refused_models(directory: Path, good: Path, outside: Path) -> None:
    """Add the ``REFUSED_AT_LISTING`` folders and ``padded-weights`` next to ``good`` in ``directory``.

    The other ``REFUSED_AT_LOADING`` folders come from :func:`add_hostile_models`.

    ``outside`` is a folder outside ``directory`` where link targets are put. Needs root for the device node.
    """
    import os

    metadata = json.loads((good / "metadata.json").read_text())

    def variant(name: str, **changes: object) -> Path:
        folder = shutil.copytree(good, directory / name)
        _rewrite_metadata(folder, **changes)
        return folder

    (variant("deep-nesting") / "metadata.json").write_text(
        json.dumps({**metadata, "history": "HERE"}).replace('"HERE"', "[" * 100_000 + "]" * 100_000))
    (variant("huge-metadata") / "metadata.json").write_text(json.dumps({**metadata, "notes": "x" * 9_000_000}))
    (variant("nan-mean") / "metadata.json").write_text(
        json.dumps({**metadata, "input": {**metadata["input"], "mean": [float("nan")]}}))
    variant("billion-pixels", input={**metadata["input"], "size": 1_000_000_000})
    variant("size-as-text", input={**metadata["input"], "size": str(metadata["input"]["size"])})
    variant("two-channels", input={**metadata["input"], "channels": 2, "mean": [0.5, 0.5], "std": [0.5, 0.5]})
    variant("mean-length", input={**metadata["input"], "mean": [0.5, 0.5, 0.5]})
    variant("zero-std", input={**metadata["input"], "std": [0]})
    folder = variant("no-weights-record")
    stripped = json.loads((folder / "metadata.json").read_text())
    del stripped["weights"]
    (folder / "metadata.json").write_text(json.dumps(stripped))
    variant("threshold-above-1", operating_threshold=7)

    fifo = variant("fifo-metadata")
    (fifo / "metadata.json").unlink()
    os.mkfifo(fifo / "metadata.json")
    outside.mkdir(parents=True, exist_ok=True)
    linked = variant("metadata-link-out")
    shutil.move(linked / "metadata.json", outside / "metadata.json")
    (linked / "metadata.json").symlink_to(outside / "metadata.json")
    device = variant("device-weights")
    (device / "model.safetensors").unlink()
    os.mknod(device / "model.safetensors", 0o600 | stat.S_IFCHR, os.makedev(1, 5))  # /dev/zero: never ends
    linked = variant("weights-link-out")
    shutil.move(linked / "model.safetensors", outside / "model.safetensors")
    (linked / "model.safetensors").symlink_to(outside / "model.safetensors")
    folder = variant("weights-folder")
    (folder / "model.safetensors").unlink()
    (folder / "model.safetensors").mkdir()

    padded = variant("padded-weights")  # a real file and hash, but not the size its metadata records
    with open(padded / "model.safetensors", "ab") as handle:
        handle.write(b"\0" * 64)
    data = (padded / "model.safetensors").read_bytes()
    _rewrite_metadata(padded, weights={**metadata["weights"], "sha256": hashlib.sha256(data).hexdigest()})


def tree_state(folder: Path) -> dict[str, tuple[int, int]]:
    """(size, modification time) of every entry under ``folder``, links not followed: proves nothing was written."""
    state = {}
    for path in sorted(folder.rglob("*")):
        info = path.lstat()
        state[str(path.relative_to(folder))] = (info.st_size, info.st_mtime_ns)
    return state
