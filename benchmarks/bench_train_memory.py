"""Peak memory of end-to-end training: what one epoch adds over the process that starts it.

    python benchmarks/bench_train_memory.py [--data PATH] [--arch simple_cnn] [--img-size 128]
                                            [--limits 0] [--epochs 1] [--batch-size N]

Each measurement runs :func:`maskdet.training.loop.fit` in a fresh Python process (its peak RSS,
``ru_maxrss``, is its own) after building the model once, so the figure printed is the peak
resident memory of the whole run minus the RSS right before ``fit`` started (torch, the
network and the optimiser's state are in neither or both). ``--limits`` takes images-per-class
caps (0 = the whole folder): the growth of the peak from one cap to the next is what the epoch
costs in memory. The catalogue is built once beforehand (cached), so it is in no figure.
Models and caches go to temporary folders.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CHILD = r"""
import json, os, resource, sys, time
import psutil
from pathlib import Path
from maskdet.training.loop import TrainConfig, fit
args = json.loads(sys.argv[1])
config = TrainConfig(arch=args["arch"], data=Path(args["data"]), name="bench-memory", epochs=args["epochs"],
                     img_size=args["img_size"], batch_size=args["batch_size"], limit_per_class=args["limit"] or None,
                     patience=100)
before = psutil.Process().memory_info().rss
started = time.monotonic()
result = fit(config)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"before": before, "peak": peak, "seconds": time.monotonic() - started,
                  "train_images": sum(result.metadata["split_counts"]["train"].values())}))
"""


def measure(args: argparse.Namespace, limit: int, env: dict[str, str]) -> dict:
    payload = json.dumps({"arch": args.arch, "data": str(args.data), "epochs": args.epochs, "img_size": args.img_size,
                          "batch_size": args.batch_size, "limit": limit})
    out = subprocess.run([sys.executable, "-c", CHILD, payload], env=env, cwd=REPO, check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    from maskdet.data.datasets import load_catalog
    from maskdet.settings import data_root

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=data_root() / "face-mask-4k")
    parser.add_argument("--arch", default="simple_cnn")
    parser.add_argument("--img-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--limits", type=int, nargs="+", default=[0])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "MASKDET_MODELS_DIR": str(Path(tmp) / "models"), "MASKDET_CACHE_DIR": str(Path(tmp) / "cache"),
               "PYTHONPATH": str(REPO)}
        os.environ["MASKDET_CACHE_DIR"] = env["MASKDET_CACHE_DIR"]
        load_catalog(args.data)  # cached for the children: the catalogue is not part of the figure
        print(f"{args.arch} end to end at {args.img_size} px on {args.data.name}, {args.epochs} epoch(s); "
              f"load average {os.getloadavg()[0]:.1f}")
        for limit in args.limits:
            row = measure(args, limit, env)
            print(f"  per-class cap {limit or 'none':>5}: {row['train_images']:5d} training images, "
                  f"RSS before fit {row['before'] / 2**20:7.0f} MB, peak {row['peak'] / 2**20:7.0f} MB, "
                  f"fit added {(row['peak'] - row['before']) / 2**20:7.0f} MB, {row['seconds']:.0f} s")
            shutil.rmtree(Path(tmp) / "models", ignore_errors=True)


if __name__ == "__main__":
    started = time.monotonic()
    main()
    print(f"done in {time.monotonic() - started:.0f} s (max RSS of this script {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MB)")
