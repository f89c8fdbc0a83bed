"""A copy of a crop set with some faces of an included class folder moved to another class (corrections by eye).

face-mask-4k's ``with_mask/`` holds faces whose mask is worn below the nose
(``benchmarks/data/face-mask-4k-mask-below-nose.txt``): a three-class model trained on them learns that a mask
under the nose is "with mask". This links every file of ``--source`` (a crop set from ``maskdet cut-crops
--include ...``) into ``$MASKDET_CACHE_DIR/crops/<--name>`` with the split it declares, the listed faces of the
included folder under ``--to`` instead of their folder's class (same split: validation and test move too, so what
a model is measured on is labelled alike), and records the corrections in the manifest (``relabelled``). Prints
what moved, per split.

    python benchmarks/relabel_crop_set.py --source $MASKDET_CACHE_DIR/crops/kaggle-scenes-3class-face-mask-4k \\
        --included face-mask-4k --list benchmarks/data/face-mask-4k-mask-below-nose.txt --to incorrect_mask \\
        --name kaggle-scenes-3class-relabel-face-mask-4k
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from maskdet.data.datasets import DATASET_MANIFEST, DatasetError, read_manifest
from maskdet.settings import KNOWN_CLASSES
from maskdet.store import write_json
from maskdet.training.crops import crop_sets_dir, split_counts


def read_list(path: Path) -> list[str]:
    """The paths inside the included data set, one per line; ``#`` starts a comment."""
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def relabel(source: Path, out: Path, included: str, paths: list[str], to: str, list_file: Path) -> dict:
    """Write ``out`` (staged, renamed into place) and return the manifest's ``relabelled`` record."""
    manifest = read_manifest(source)
    if not isinstance(manifest.get("split"), dict):
        raise DatasetError(f"{source}: not a crop set with a declared split (cut one with `maskdet cut-crops`)")
    if out.exists():
        raise DatasetError(f"{out} exists already: choose another name or remove it")
    # the crop set's layout: <class>/<source folder name>/<path inside the source>
    moves = {f"{path.split('/', 1)[0]}/{included}/{path}": f"{to}/{included}/{path}" for path in paths}
    missing = sorted(set(moves) - set(manifest["split"]))
    if missing:
        raise DatasetError(f"{len(missing)} listed faces are not in {source}, e.g. {missing[0]}")
    staging = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}")
    try:
        split = {}
        for relpath, name in manifest["split"].items():
            target = moves.get(relpath, relpath)
            (staging / target).parent.mkdir(parents=True, exist_ok=True)
            os.symlink((source / relpath).absolute(), staging / target)
            split[target] = name
        counts = split_counts(split)
        moved = {name: sum(1 for target in moves.values() if split[target] == name) for name in counts}
        record = {"included": included, "to": to, "list": str(list_file),
                  "list_sha256": hashlib.sha256(list_file.read_bytes()).hexdigest(), "moved": moved,
                  "command": " ".join(["python", *sys.argv])}
        write_json(staging / DATASET_MANIFEST, {**manifest, "split": split, "counts": counts, "relabelled": record})
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", required=True, type=Path, help="a crop set cut with --include")
    parser.add_argument("--included", required=True, help="the included folder's name, as in the crop set")
    parser.add_argument("--list", required=True, type=Path, help="paths inside that folder, one per line")
    parser.add_argument("--to", required=True, choices=KNOWN_CLASSES, help="the class they move to")
    parser.add_argument("--name", required=True, help="name of the new crop set (under the cache's crops/)")
    args = parser.parse_args()
    try:
        record = relabel(args.source, crop_sets_dir() / args.name, args.included, read_list(args.list), args.to,
                         args.list)
    except DatasetError as exc:
        sys.exit(f"Error: {exc}")
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
