"""Build a crop set with synthetic ``incorrect_mask`` train faces (masks pasted below the nose of bare faces).

Links every file of ``--source`` (a three-class crop set from ``maskdet cut-crops``) into
``$MASKDET_CACHE_DIR/crops/<--name>`` with the split it declares, and adds ``--count`` synthetic faces made
from its train split only (:mod:`maskdet.training.synthetic`); the same ``--seed`` gives the same images.
Prints the manifest's ``synthetic`` record.

    python benchmarks/build_incorrect_synthetic.py \\
        --source $MASKDET_CACHE_DIR/crops/kaggle-scenes-3class-face-mask-4k \\
        --name kaggle-scenes-3class-synth-face-mask-4k --count 1000 --seed 0
    # pairs: the same donor mask on the same bare face over the nose (with_mask) and low (incorrect_mask)
    python benchmarks/build_incorrect_synthetic.py --source ... --name kaggle-scenes-3class-pairs-face-mask-4k \\
        --count 1000 --seed 0 --paired
    # several heights: each bare face low three times (each height drawn anew), one twin for the three
    python benchmarks/build_incorrect_synthetic.py --source ... --name kaggle-scenes-3class-pairs3-face-mask-4k \\
        --count 1000 --seed 0 --paired --heights-per-face 3
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from maskdet.training.crops import crop_sets_dir  # noqa: E402
from maskdet.training.synthetic import SynthesisSettings, build_synthetic_crop_set  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", required=True, type=Path, help="a three-class crop set")
    parser.add_argument("--name", required=True, help="name of the new crop set (under the cache's crops/)")
    parser.add_argument("--count", type=int, default=SynthesisSettings.count)
    parser.add_argument("--seed", type=int, default=SynthesisSettings.seed)
    parser.add_argument("--chin-share", type=float, default=SynthesisSettings.chin_share,
                        help="share of faces with the mask on the chin (the rest: just below the nose)")
    parser.add_argument("--paired", action="store_true",
                        help="each low face gets a with_mask twin: the same donor mask on the same face over the nose")
    parser.add_argument("--heights-per-face", type=int, default=SynthesisSettings.heights_per_face,
                        help="low faces per bare face and donor, each at its own height (one twin for all)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = SynthesisSettings(count=args.count, seed=args.seed, chin_share=args.chin_share,
                                 paired=args.paired, heights_per_face=args.heights_per_face)
    record = build_synthetic_crop_set(args.source, crop_sets_dir() / args.name, settings)
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
