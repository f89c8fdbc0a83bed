"""How many Integrated Gradients steps real face crops need to converge, and how long that takes here.

Usage: python benchmarks/bench_ig_convergence.py [--model NAME_OR_PATH] [--crops 12]

Explains held-out face-mask-4k test crops (the model's own ``split.json``, else the folder's first files)
with automatic steps (:func:`maskdet.inference.explain.explain`, ``steps=None``) and prints, per crop, the
steps chosen, the convergence error as a share of the log-odds change explained, the seconds and whether
it met IG_TOLERANCE within IG_TIME_BUDGET_S; then the share that converged. Other processes slow the runs
(fewer steps fit the budget): the load average is printed alongside.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from maskdet.data.images import load_rgb  # noqa: E402
from maskdet.inference.explain import IG_TIME_BUDGET_S, IG_TOLERANCE, explain  # noqa: E402
from maskdet.inference.predictor import load_classifier  # noqa: E402
from maskdet.settings import data_root  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenet_v2")
    parser.add_argument("--crops", type=int, default=12)
    args = parser.parse_args()
    predictor = load_classifier(args.model)
    folder = data_root() / "face-mask-4k"
    files = sorted(p for cls in ("with_mask", "without_mask") for p in (folder / cls).glob("*.jp*g"))
    chosen = files[:: max(1, len(files) // args.crops)][: args.crops]
    print(f"model {args.model}; bound {IG_TOLERANCE:.0%} of the change explained within {IG_TIME_BUDGET_S:g} s; "
          f"load average {os.getloadavg()[0]:.2f}")
    converged = 0
    for path in chosen:
        result = explain(predictor, load_rgb(path))
        converged += bool(result.converged)
        relative = "n/a" if result.relative_delta is None else f"{result.relative_delta:.1%}"
        print(f"{path.parent.name}/{path.name}: steps {result.settings['steps']}, error {relative}, "
              f"{result.seconds:.2f} s, {'converged' if result.converged else 'NOT converged'}")
    print(f"converged: {converged}/{len(chosen)}; load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
