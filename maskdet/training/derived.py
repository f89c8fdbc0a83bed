"""Crop sets derived from another crop set: every file linked in, some moved to another class, some made.

A derived set keeps its source's split file by file (validation and test stay the very same faces), so a model
trained on it is measured as one trained on the source. Two kinds are built from here:
:mod:`maskdet.training.synthetic` adds made train faces (masks worn low, sunglasses), and :func:`relabel_crop_set`
moves faces found mislabelled by eye to their class (face-mask-4k's masks below the nose, in
``benchmarks/data/face-mask-4k-mask-below-nose.txt``). Both are written by :func:`write_derived_crop_set`: staged
beside the destination and renamed into place, so a derived set appears whole or not at all, and the manifest
records what was done under its own key.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from PIL import Image

from maskdet.data.datasets import DATASET_MANIFEST, DatasetError, read_manifest
from maskdet.store import write_json
from maskdet.training.crops import split_counts


def source_crop_manifest(source: Path, out: Path) -> dict:
    """The manifest of the crop set ``source``; DatasetError unless it declares a split and ``out`` is free."""
    manifest = read_manifest(source)
    if not isinstance(manifest.get("split"), dict):
        raise DatasetError(f"{source}: not a crop set with a declared split (cut one with `maskdet cut-crops`)")
    if out.exists():
        raise DatasetError(f"{out} exists already: choose another name or remove it")
    return manifest


def write_derived_crop_set(source: Path, manifest: dict, out: Path, key: str,
                           describe: Callable[[dict[str, int]], dict], *, moves: Mapping[str, str] | None = None,
                           made: Iterable[tuple[str, Image.Image]] = ()) -> dict:
    """Write ``out``: every file of ``source`` linked in with the split it declares, at ``moves[relpath]`` where
    ``moves`` names it (another class folder, the same split), plus the ``made`` images (relpath, image; each saved
    as it comes, so they are never all in memory), all declared ``train``, and a manifest whose ``key`` entry is
    ``describe(images made per class)``, which it returns (``describe`` may raise to refuse the result).
    Staged beside ``out`` and renamed into place: ``out`` appears whole or not at all."""
    moves = moves or {}
    staging = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}")
    try:
        split = {}
        for relpath, placed in manifest["split"].items():
            target = moves.get(relpath, relpath)
            (staging / target).parent.mkdir(parents=True, exist_ok=True)
            os.symlink((source / relpath).absolute(), staging / target)
            split[target] = placed
        per_class: Counter[str] = Counter()
        for relpath, image in made:
            (staging / relpath).parent.mkdir(parents=True, exist_ok=True)
            image.save(staging / relpath)
            split[relpath] = "train"
            per_class[relpath.split("/", 1)[0]] += 1
        record = describe(dict(per_class))
        write_json(staging / DATASET_MANIFEST, {**manifest, "split": split, "counts": split_counts(split),
                                                key: record})
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return record


def relabel_crop_set(source: Path, out: Path, included: str, paths: list[str], to: str, list_file: Path,
                     command: str) -> dict:
    """Write ``out``, the crop set ``source`` with the faces ``paths`` (paths inside the included folder
    ``included``, as in ``list_file``) moved to class ``to``, each in its own split; return the manifest's
    ``relabelled`` record (what moved per split, the list's hash, ``command``). A list naming a face the crop set
    lacks, or an ``out`` that exists, is refused in one line and nothing is written."""
    manifest = source_crop_manifest(source, out)
    # the crop set's layout: <class>/<source folder name>/<path inside the source>
    moves = {f"{path.split('/', 1)[0]}/{included}/{path}": f"{to}/{included}/{path}" for path in paths}
    missing = sorted(set(moves) - set(manifest["split"]))
    if missing:
        raise DatasetError(f"{len(missing)} listed faces are not in {source}, e.g. {missing[0]}")
    moved = Counter(manifest["split"][relpath] for relpath in moves)
    record = {"included": included, "to": to, "list": str(list_file),
              "list_sha256": hashlib.sha256(list_file.read_bytes()).hexdigest(),
              "moved": {name: moved[name] for name in split_counts(manifest["split"])}, "command": command}
    return write_derived_crop_set(source, manifest, out, "relabelled", lambda _made: record, moves=moves)
