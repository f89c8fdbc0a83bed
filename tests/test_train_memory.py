"""End-to-end training holds a few batches in memory, never the whole (augmented) epoch or split.

The epoch goes through exactly what :func:`maskdet.training.loop.fit` uses end to end (``ImageItems`` with
the training augmentation, ``make_loader``, ``NormalizedBatches``), in a fresh Python process so its
peak resident memory (``ru_maxrss``) is its own. Ten times more images must not raise the peak by more
than a bound derived from the batch size: the old engine decoded every image and built the whole
augmented, normalised epoch before the first step (+971 MB at 128 px on face-mask-4k), which here
would be ~440 MB more for the larger run. After the epochs ``fit`` chooses the model's precision probe from
the validation split (:func:`maskdet.zoo.probe.select_probe_crops`): it scored the whole split in one forward pass
(+3.8 MB per validation image at 128 px, all of end-to-end ``fit``'s growth with the data set, issue 18 defect
3); five times more validation images must now cost no more than a fraction of one image each.
benchmarks/bench_train_memory.py measures whole ``fit`` runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

IMG_SIZE = 128
BATCH = 32
ITEM_BYTES = IMG_SIZE * IMG_SIZE * 3 * 4  # one normalised RGB image
BATCHES_IN_FLIGHT = 8  # the batch being used, its uint8 twin, the augmentation's intermediates, slack
SLACK_BYTES = 32 * 2**20  # allocator and Python object noise between two runs
PROBE_BYTES_PER_IMAGE = 2**19  # per validation image while choosing the probe; one-pass scoring took ~7x this

EPOCH_CHILD = r"""
import json, resource, sys
import torch
from maskdet.data.datasets import scan_dataset
from maskdet.training.loop import ImageItems, NormalizedBatches, build_augmentation, make_loader
from maskdet.zoo.architectures import get_spec
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


PROBE_CHILD = r"""
import json, resource, sys
import psutil
from maskdet.zoo.folders import load_model
from maskdet.data.datasets import scan_dataset
from maskdet.zoo.probe import PROBE_CROPS, select_probe_crops
data, count, model = sys.argv[1], int(sys.argv[2]), sys.argv[3]
scan = scan_dataset(data)
samples = scan.samples[:: max(1, len(scan.samples) // count)][:count]
loaded = load_model(model)
before = psutil.Process().memory_info().rss
crops = select_probe_crops(loaded.model, loaded.input, scan.root, [s.relpath for s in samples], [s.label for s in samples])
assert len(crops) == PROBE_CROPS
print(json.dumps({"seen": len(samples), "added": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before}))
"""


def child_run(script: str, *args: object) -> dict:
    """The JSON ``script`` prints last, run in a fresh Python process (so its peak RSS is its own)."""
    out = subprocess.run([sys.executable, "-c", script, *map(str, args)], env={**os.environ, "PYTHONPATH": str(REPO)},
                         cwd=REPO, check=True, capture_output=True, text=True, timeout=1200)
    return json.loads(out.stdout.strip().splitlines()[-1])


def epoch_peak(data: Path, count: int) -> dict:
    return child_run(EPOCH_CHILD, data, count, IMG_SIZE, BATCH)


@pytest.mark.slow
def test_peak_memory_of_an_epoch_does_not_grow_with_its_size(datasets_root):
    data = datasets_root / "face-mask-4k"
    small, large = epoch_peak(data, 200), epoch_peak(data, 2000)
    assert (small["seen"], large["seen"]) == (200, 2000)
    bound = BATCHES_IN_FLIGHT * BATCH * ITEM_BYTES + SLACK_BYTES
    growth = large["peak"] - small["peak"]
    assert growth < bound, f"peak grew by {growth / 2**20:.0f} MB (bound {bound / 2**20:.0f} MB)"


def test_choosing_the_precision_probe_does_not_grow_with_the_validation_split(datasets_root):
    """The shipped simple_cnn (128 px) chooses its probe from 64 and from 320 validation files: the 256 more
    cost far less than the 3.8 MB each that scoring the split in one pass took (~970 MB here)."""
    data = datasets_root / "face-mask-4k"
    model = REPO / "models" / "simple_cnn"
    small, large = child_run(PROBE_CHILD, data, 64, model), child_run(PROBE_CHILD, data, 320, model)
    assert (small["seen"], large["seen"]) == (64, 320)
    bound = (large["seen"] - small["seen"]) * PROBE_BYTES_PER_IMAGE + SLACK_BYTES
    growth = large["added"] - small["added"]
    assert growth < bound, f"choosing the probe grew by {growth / 2**20:.0f} MB (bound {bound / 2**20:.0f} MB)"
