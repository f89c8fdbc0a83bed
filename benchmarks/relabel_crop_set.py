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
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from maskdet.data.datasets import DatasetError
from maskdet.settings import KNOWN_CLASSES
from maskdet.training.crops import crop_sets_dir
from maskdet.training.derived import relabel_crop_set


def read_list(path: Path) -> list[str]:
    """The paths inside the included data set, one per line; ``#`` starts a comment."""
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", required=True, type=Path, help="a crop set cut with --include")
    parser.add_argument("--included", required=True, help="the included folder's name, as in the crop set")
    parser.add_argument("--list", required=True, type=Path, help="paths inside that folder, one per line")
    parser.add_argument("--to", required=True, choices=KNOWN_CLASSES, help="the class they move to")
    parser.add_argument("--name", required=True, help="name of the new crop set (under the cache's crops/)")
    args = parser.parse_args()
    try:
        record = relabel_crop_set(args.source, crop_sets_dir() / args.name, args.included, read_list(args.list),
                                  args.to, args.list, command=" ".join(["python", *sys.argv]))
    except DatasetError as exc:
        sys.exit(f"Error: {exc}")
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
