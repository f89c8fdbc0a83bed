"""What a training run costs the rest of the dashboard: webcam FPS, page rerun time and server memory.

Usage: python benchmarks/bench_during_training.py [--data DIR] [--arch simple_cnn] [--img-size 128]
                                                  [--seconds 40] [--modes idle job thread]

This process plays the Streamlit server: it holds the served classifier (``backend="auto"``) and the
webcam detector, and for ``--seconds`` it alternates webcam frames (``LiveProcessor.process_frame`` on a
640x480 frame with one real face, as the Webcam page) with reruns of the Photo page (``AppTest``: the
script the server reruns on every widget change). Per mode:

- ``idle``: nothing else runs (the reference);
- ``job``: a training job runs through :class:`maskdet.jobs.TrainingJobRunner` (a child process, the
  product's way since issue 18);
- ``thread``: the same training runs in a thread of this process (how the dashboard trained before
  issue 18): its torch threads, generators and memory are the server's.

The training is end to end (every image decoded and augmented on every epoch, the heavy case) with more
epochs than the window lasts, and is cancelled at the end of it: nothing is saved. Printed: median and
90th-percentile ms per webcam frame (and the FPS the median gives), median ms per page rerun, and how much
this process's peak resident memory grew during the mode. Caches go to a temporary folder. Other
processes distort the numbers: the load average is printed alongside.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

MODES = ("idle", "job", "thread")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(seconds: float, webcam, frame, page_file: str) -> dict:  # noqa: ANN001 - see main
    from dashboard import page_test

    frames, reruns = [], []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for _ in range(10):
            started = time.perf_counter()
            webcam.process_frame(frame)
            frames.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        page_test(page_file, timeout=120).run()
        reruns.append((time.perf_counter() - started) * 1000)
    frames.sort()
    return {"frame_ms": statistics.median(frames), "frame_p90_ms": frames[int(len(frames) * 0.9)],
            "fps": 1000 / statistics.median(frames), "rerun_ms": statistics.median(reruns), "reruns": len(reruns)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="training folder (default: DATA_ROOT/face-mask-4k)")
    parser.add_argument("--arch", default="simple_cnn", help="an end-to-end architecture")
    parser.add_argument("--img-size", type=int, default=128)
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="maskdet-bench-"))
    os.environ.setdefault("MASKDET_CACHE_DIR", str(scratch / "cache"))

    import streamlit.logger

    from maskdet.bench import compose_frame, sample_face
    from maskdet.zoo.folders import resolve_model
    from maskdet.inference.predictor import AUTO_BACKEND, load_classifier
    from maskdet.inference.detector import get_detector
    from maskdet.training.loop import CancelToken, TrainConfig, TrainingCancelled, fit
    from maskdet.jobs import TrainingJobRunner
    from maskdet.inference.live import LIVE_DETECTOR_OPTIONS, LiveProcessor
    from maskdet.inference.pipeline import FacePipeline
    from maskdet.settings import data_root

    streamlit.logger.set_log_level("error")  # AppTest outside a server warns about its missing context on every run
    served = str(resolve_model(None))
    webcam = LiveProcessor(FacePipeline(load_classifier(served, backend=AUTO_BACKEND),
                                        get_detector("centerface-frames", **LIVE_DETECTOR_OPTIONS)))
    frame = compose_frame(sample_face())
    config = TrainConfig(arch=args.arch, data=args.data or data_root() / "face-mask-4k", img_size=args.img_size,
                         epochs=100, patience=100, seed=0, name="bench-during-training").resolved()
    measure(3, webcam, frame, "pages/photo.py")  # warm-up: imports, caches, the first page run

    print(f"served {Path(served).name}; training {config.arch} {config.img_size}px on {config.data.name}; "
          f"{args.seconds:.0f} s per mode; load average {os.getloadavg()[0]:.2f}")
    print(f"{'mode':<8} {'frame ms':>9} {'p90 ms':>7} {'FPS':>6} {'rerun ms':>9} {'reruns':>7} {'peak RSS +MB':>13}")
    for mode in args.modes:
        before = peak_rss_mb()
        cancel = CancelToken()
        runner = None
        if mode == "job":
            runner = TrainingJobRunner()
            runner.start(config)
        elif mode == "thread":
            def train() -> None:
                try:
                    fit(config, cancel=cancel)
                except TrainingCancelled:
                    pass

            worker = threading.Thread(target=train, daemon=True)
            worker.start()
        time.sleep(5 if mode != "idle" else 0)  # past the start-up, into the epochs
        result = measure(args.seconds, webcam, frame, "pages/photo.py")
        if runner is not None:
            runner.cancel()
            runner.wait(60)
        elif mode == "thread":
            cancel.cancel()
            worker.join(60)
        print(f"{mode:<8} {result['frame_ms']:>9.1f} {result['frame_p90_ms']:>7.1f} {result['fps']:>6.1f} "
              f"{result['rerun_ms']:>9.0f} {result['reruns']:>7} {peak_rss_mb() - before:>13.0f}", flush=True)


if __name__ == "__main__":
    main()
