"""End-to-end training holds a few batches in memory, never the whole (augmented) epoch.

The epoch goes through exactly what :func:`maskdet.engine.fit` uses end to end (``ImageItems`` with
the training augmentation, ``make_loader``, ``NormalizedBatches``), in a fresh Python process so its
peak resident memory (``ru_maxrss``) is its own. Ten times more images must not raise the peak by more
than a bound derived from the batch size: the old engine decoded every image and built the whole
augmented, normalised epoch before the first step (+971 MB at 128 px on face-mask-4k), which here
would be ~440 MB more for the larger run. benchmarks/bench_train_memory.py measures whole ``fit`` runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow

IMG_SIZE = 128
BATCH = 32
ITEM_BYTES = IMG_SIZE * IMG_SIZE * 3 * 4  # one normalised RGB image
BATCHES_IN_FLIGHT = 8  # the batch being used, its uint8 twin, the augmentation's intermediates, slack
SLACK_BYTES = 32 * 2**20  # allocator and Python object noise between two runs

CHILD = r"""
import json, resource, sys
import torch
from maskdet.data import scan_dataset
from maskdet.engine import ImageItems, NormalizedBatches, build_augmentation, make_loader
from maskdet.zoo import get_spec
data, count, size, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
scan = scan_dataset(data)
samples = scan.samples[:: max(1, len(scan.samples) // count)][:count]
config = get_spec("simple_cnn").input_config(size)
items = ImageItems(scan.root, [s.relpath for s in samples], [s.label for s in samples], config, build_augmentation(config))
seen = 0
for inputs, labels in NormalizedBatches(make_loader(items, batch, torch.Generator().manual_seed(0), 0), config,
                                        torch.device("cpu")):
    assert inputs.dtype == torch.float32 and inputs.shape[1:] == (3, size, size)
    seen += len(labels)
print(json.dumps({"seen": seen, "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def epoch_peak(data: Path, count: int) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(data), str(count), str(IMG_SIZE), str(BATCH)],
                         env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO, check=True, capture_output=True,
                         text=True, timeout=1200)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_peak_memory_of_an_epoch_does_not_grow_with_its_size(datasets_root):
    data = datasets_root / "face-mask-4k"
    small, large = epoch_peak(data, 200), epoch_peak(data, 2000)
    assert (small["seen"], large["seen"]) == (200, 2000)
    bound = BATCHES_IN_FLIGHT * BATCH * ITEM_BYTES + SLACK_BYTES
    growth = large["peak"] - small["peak"]
    assert growth < bound, f"peak grew by {growth / 2**20:.0f} MB (bound {bound / 2**20:.0f} MB)"
