"""What a model saw, without the pictures: content and near-duplicate hashes of its train / val files.

A model folder carries ``seen.json`` (written at training time, or added to an older folder by
``python -m maskdet fingerprint-model``): per train / validation file its SHA-256 (the same bytes), its
64-bit difference hash and 4x4 colour thumbnail (the same picture re-encoded, resized or downloaded again
from a public original: :func:`maskdet.data.split.near_duplicate_groups`). The overlap check
(:mod:`maskdet.evaluation.leakage`) compares a folder with these, so it needs no training data on the machine.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from maskdet.data.datasets import THUMB_SIZE, Catalog
from maskdet.store import sha256_file

SEEN_FORMAT = "maskdet-seen-files"
SEEN_VERSION = 1
THUMB_HEX = THUMB_SIZE * THUMB_SIZE * 3 * 2


class SeenFilesError(ValueError):
    """A ``seen.json`` that is not ours or is damaged."""


@dataclass(frozen=True)
class SeenFiles:
    """The train / validation files of a model, as hashes: relative path -> (SHA-256, dHash, thumbnail)."""

    files: dict[str, tuple[str, str, str]] = field(repr=False)

    def sha256s(self) -> set[str]:
        return {sha for sha, _, _ in self.files.values()}

    def hashes(self) -> np.ndarray:
        """64-bit difference hashes as uint64, in :attr:`files` order."""
        return np.array([int(dhash, 16) for _, dhash, _ in self.files.values()], dtype=np.uint64)

    def thumbs(self) -> np.ndarray:
        """4x4 RGB thumbnails as (N, 48) uint8, in :attr:`files` order."""
        if not self.files:
            return np.zeros((0, THUMB_SIZE * THUMB_SIZE * 3), dtype=np.uint8)
        return np.stack([np.frombuffer(bytes.fromhex(thumb), dtype=np.uint8) for _, _, thumb in self.files.values()])

    def to_json(self) -> dict:
        return {"format": SEEN_FORMAT, "version": SEEN_VERSION, "files": {k: list(v) for k, v in self.files.items()}}


def seen_files(catalog: Catalog, relpaths: Iterable[str]) -> SeenFiles:
    """The hashes of ``relpaths`` (the train and val files of a split) that ``catalog`` read; unreadable ones are
    left out (they were never trained on)."""
    wanted = set(relpaths)
    return SeenFiles({r.relpath: (sha256_file(catalog.root / r.relpath), r.dhash, r.thumb)
                      for r in catalog.readable if r.relpath in wanted})


def parse_seen_files(data: bytes) -> SeenFiles:
    """A :class:`SeenFiles` from ``seen.json`` bytes; :class:`SeenFilesError` saying what is wrong."""
    try:
        payload = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise SeenFilesError(f"not readable JSON ({exc})") from None
    if not isinstance(payload, dict) or payload.get("format") != SEEN_FORMAT:
        raise SeenFilesError(f"not a {SEEN_FORMAT} file")
    if payload.get("version") != SEEN_VERSION:
        raise SeenFilesError(f"version {payload.get('version')!r} is not one this maskdet reads ({SEEN_VERSION})")
    files = payload.get("files")
    if not isinstance(files, dict):
        raise SeenFilesError("'files' is not an object")
    checked = {}
    for relpath, entry in files.items():
        if not (isinstance(entry, list) and len(entry) == 3 and all(isinstance(v, str) for v in entry)
                and len(entry[0]) == 64 and len(entry[1]) == 16 and len(entry[2]) == THUMB_HEX):
            raise SeenFilesError(f"entry {str(relpath)[:60]!r} is not [sha256, dhash, thumbnail]")
        try:
            bytes.fromhex(entry[0] + entry[1] + entry[2])
        except ValueError:
            raise SeenFilesError(f"entry {str(relpath)[:60]!r} holds non-hexadecimal hashes") from None
        checked[str(relpath)] = (entry[0], entry[1], entry[2])
    return SeenFiles(checked)
