"""What stalls a dashboard server with live streams: full garbage collections and recompiled classifiers.

Usage: python benchmarks/bench_stalls.py [--model NAME_OR_PATH] [--runs 5]
(``TORCHINDUCTOR_CACHE_DIR=$(mktemp -d)`` for a cold compile)

Loads what a dashboard process holds (Streamlit, the page modules' imports, the compiled default
classifier, CenterFace), then prints:

- the median wall time of one full ``gc.collect()``: what Streamlit's ``runner.postScriptGC``
  (off in ``.streamlit/config.toml``) would add to every script and fragment run, holding the GIL
  while webcam frames wait;
- the compiled classifier's ms per face at the thread count it was compiled for, and at another
  count (where ``Predictor`` answers with its eager network instead of recompiling), and what
  compiling the network at that other count takes: the stall a recompile inside a webcam frame
  callback or a page run would cause.

Other processes on the machine distort the numbers: the load average is printed alongside.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import streamlit  # noqa: E402, F401 -- loaded as in the dashboard process: its objects are collected too
import streamlit_webrtc  # noqa: E402, F401

from maskdet.evaluation.latency import probe_face  # noqa: E402
from maskdet.inference.detector import get_detector  # noqa: E402
from maskdet.inference.live import LIVE_DETECTOR_OPTIONS  # noqa: E402
from maskdet.inference.predictor import Predictor, load_classifier  # noqa: E402
from maskdet.runtime import compile_network, inference_network  # noqa: E402


def median_ms(action, runs: int) -> float:  # noqa: ANN001 - any zero-argument callable
    """Median wall time of ``action()`` in ms over ``runs`` calls."""
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        timings.append(time.perf_counter() - start)
    return statistics.median(timings) * 1000


def per_face_ms(classifier: Predictor, runs: int) -> float:
    face = probe_face()
    classifier.predict_proba([face])  # warm
    return median_ms(lambda: classifier.predict_proba([face]), runs * 10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model name or folder (default: the default model)")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    start = time.perf_counter()
    classifier = load_classifier(args.model, compile=True)  # as the dashboard serves a bf16 model
    if not classifier.wait_for_compilation(timeout=900) or not classifier.compiled:
        sys.exit("the classifier did not compile (no C++ compiler, or MASKDET_COMPILE=0): nothing to measure")
    print(f"model {classifier.name} ({classifier.precision}) loaded and compiled in "
          f"{time.perf_counter() - start:.1f} s (process CPU {time.process_time():.1f} s); "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    get_detector("centerface-frames", **LIVE_DETECTOR_OPTIONS)
    gc.collect()
    print(f"full gc.collect(): {median_ms(gc.collect, args.runs):.0f} ms (median of {args.runs}); "
          f"{len(gc.get_objects()):,} tracked objects")

    compiled_with = classifier.compiled_threads
    other = 1 if compiled_with != 1 else 2
    print(f"classify, {compiled_with} thread(s) (compiled graph): {per_face_ms(classifier, args.runs):.2f} ms per face")
    torch.set_num_threads(other)
    print(f"classify, {other} thread(s) (eager network, not recompiled): "
          f"{per_face_ms(classifier, args.runs):.2f} ms per face")
    dtype = torch.bfloat16 if classifier.use_bf16 else torch.float32
    with torch.inference_mode():
        example = torch.zeros(1, classifier.input.channels, classifier.input.size, classifier.input.size,
                              dtype=dtype).contiguous(memory_format=torch.channels_last)
    start = time.perf_counter()
    compile_network(inference_network(classifier.model, dtype), example)
    print(f"compiling the network again at {other} thread(s), what a recompile costs: "
          f"{time.perf_counter() - start:.2f} s")
    torch.set_num_threads(compiled_with)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
