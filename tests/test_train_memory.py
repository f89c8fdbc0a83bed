"""End-to-end training holds a few batches in memory, never the whole (augmented) epoch.

Each run is a fresh Python process, so its peak resident memory (``ru_maxrss``) is its own. Two
end-to-end runs that differ only in how many images they train on must peak within a bound
derived from the batch size: the old engine decoded every image and built the whole augmented,
normalised epoch before the first step, so its peak grew with the data set (+971 MB at 128 px
on face-mask-4k; see benchmarks/bench_train_memory.py for figures).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from maskdet.data import load_catalog

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow

IMG_SIZE = 192  # the MLP reads grey images: 147 kB per normalised image
BATCH = 32
ITEM_BYTES = IMG_SIZE * IMG_SIZE * 4
BATCHES_IN_FLIGHT = 8  # the batch being trained, the loader's prefetched batches, their uint8 twins, slack
SLACK_BYTES = 32 * 2**20  # allocator and Python object noise between two runs

CHILD = r"""
import json, resource, sys
from pathlib import Path
from maskdet.engine import TrainConfig, fit
data, limit = sys.argv[1], int(sys.argv[2])
fit(TrainConfig(arch="mlp", data=Path(data), name=f"memory-{limit}", epochs=1, img_size=%d, batch_size=%d,
                limit_per_class=limit, workers=0))
print(json.dumps({"peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
""" % (IMG_SIZE, BATCH)


def peak_bytes(data, limit: int, env: dict) -> int:
    out = subprocess.run([sys.executable, "-c", CHILD, str(data), str(limit)], env=env, cwd=REPO, check=True,
                         capture_output=True, text=True, timeout=900)
    return json.loads(out.stdout.strip().splitlines()[-1])["peak"]


def test_peak_memory_does_not_grow_with_the_epoch(datasets_root, tmp_path, monkeypatch):
    data = datasets_root / "face-mask-4k"
    monkeypatch.setenv("MASKDET_CACHE_DIR", str(tmp_path / "cache"))
    load_catalog(data)  # both runs read the same cached catalogue of the whole folder
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    small, large = peak_bytes(data, 20, env), peak_bytes(data, 500, env)
    bound = BATCHES_IN_FLIGHT * BATCH * ITEM_BYTES + SLACK_BYTES
    # 25x more images: the old engine's epoch alone (700 training + 300 held-out images as float32) was ~150 MB.
    assert large - small < bound, f"peak grew by {(large - small) / 2**20:.0f} MB (bound {bound / 2**20:.0f} MB)"
