"""Near-duplicate grouping speed: ``maskdet.data.split.near_duplicate_groups`` on synthetic catalogues.

Usage: python benchmarks/bench_groups.py [--sizes 4000 20000 100000] [--repeats 3]

Hashes are uniform random 64-bit dHashes with 10% planted near-copies (1-6 bits flipped) and
thumbnails to match, the structure of a public face-mask set. Prints the median seconds per call
and the groups found per size. Other processes on the machine distort the numbers: the load average
is printed alongside.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from maskdet.data.split import near_duplicate_groups  # noqa: E402


def synthetic(size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(hashes uint64 (N,), thumbnails uint8 (N, 48)) with a tenth of the images near-copies of others."""
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, 2**63, size=size, dtype=np.uint64) ^ (rng.integers(0, 2, size=size, dtype=np.uint64) << np.uint64(63))
    thumbs = rng.integers(0, 256, size=(size, 48), dtype=np.uint8)
    copies = rng.choice(size, size // 10, replace=False)
    sources = rng.choice(size, size // 10)
    for flips in range(6):
        bit = rng.integers(0, 64, size // 10).astype(np.uint64)
        use = rng.random(size // 10) < (1.0 if flips == 0 else 0.5)
        hashes[copies] = np.where(use, hashes[sources] ^ (np.uint64(1) << bit), hashes[sources]) if flips == 0 else \
            np.where(use, hashes[copies] ^ (np.uint64(1) << bit), hashes[copies])
    noise = rng.integers(-6, 7, size=(size // 10, 48))
    thumbs[copies] = np.clip(thumbs[sources].astype(np.int16) + noise, 0, 255).astype(np.uint8)
    return hashes, thumbs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4000, 20000, 100000])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    near_duplicate_groups(*synthetic(100))  # imports (scipy) outside the timings
    print(f"load average before: {os.getloadavg()[0]:.2f} (on {os.cpu_count()} CPUs)")
    for size in args.sizes:
        hashes, thumbs = synthetic(size)
        timings = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            ids = near_duplicate_groups(hashes, thumbs)
            timings.append(time.perf_counter() - start)
        groups = np.bincount(ids)
        print(f"{size:>7} images: {statistics.median(timings):.2f} s per call (median of {args.repeats}); "
              f"{int((groups > 1).sum())} groups of 2+ holding {int(groups[groups > 1].sum())} images")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
