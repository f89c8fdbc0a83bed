"""Build a crop set whose train split also holds bare and masked faces in sunglasses (labels kept).

Links every file of ``--source`` (a crop set from ``maskdet cut-crops``, two or three classes) into
``$MASKDET_CACHE_DIR/crops/<--name>`` with the split it declares, and adds a copy in sunglasses of ``--share``
of each class's train faces (:func:`maskdet.training.synthetic.build_eyewear_crop_set`); the same ``--seed``
gives the same images. Prints the manifest's ``synthetic`` record.

    python benchmarks/build_eyewear_synthetic.py --source $MASKDET_CACHE_DIR/crops/kaggle-scenes-face-mask-4k \\
        --name kaggle-scenes-eyewear-face-mask-4k --share 0.25 --seed 0
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from maskdet.training.crops import crop_sets_dir
from maskdet.training.synthetic import EyewearSettings, build_eyewear_crop_set


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", required=True, type=Path, help="a crop set (two or three classes)")
    parser.add_argument("--name", required=True, help="name of the new crop set (under the cache's crops/)")
    parser.add_argument("--share", type=float, default=EyewearSettings.share,
                        help="share of each class's train faces that get a copy in sunglasses")
    parser.add_argument("--seed", type=int, default=EyewearSettings.seed)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    record = build_eyewear_crop_set(args.source, crop_sets_dir() / args.name,
                                    EyewearSettings(share=args.share, seed=args.seed))
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
