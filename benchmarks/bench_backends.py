"""Which backend serves a model fastest here: eager, compiled (TorchInductor) and onnxruntime, all through
:class:`maskdet.inference.predictor.Predictor` (its preprocessing, its precision), on real face crops.

Usage: python benchmarks/bench_backends.py [--model NAME_OR_PATH] [--precision fp32|bf16|auto] [--runs 50]

Prints, per backend: the load time (the onnxruntime backend exports the model once per weights into the
cache; ``--cold`` clears that first), the median ms for one face (the webcam's case) and per face in a
batch of 32 (folder evaluation, batch scoring), and the largest probability difference from eager fp32 on
the same crops. ``maskdet.inference.predictor.SERVING_BACKENDS`` is chosen from these figures. Other processes
distort them: the load average is printed alongside.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from maskdet.bench import compose_frame, median_ms, sample_face  # noqa: E402
from maskdet.zoo.folders import load_model, resolve_model  # noqa: E402
from maskdet.inference.predictor import Predictor  # noqa: E402
from maskdet.inference.detector import crop_faces, get_detector  # noqa: E402
from maskdet.settings import cache_dir  # noqa: E402

BACKEND_NAMES = ("eager", "compiled", "onnxruntime")
BATCH = 32


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model name or folder (default: the default model)")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "auto"))
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--cold", action="store_true", help="clear the onnxruntime export cache first")
    args = parser.parse_args()
    if args.cold:
        shutil.rmtree(cache_dir() / "onnx", ignore_errors=True)

    loaded = load_model(resolve_model(args.model))
    frame = compose_frame(sample_face())
    face = crop_faces(frame, get_detector("centerface").detect(frame)[:1])[0]
    single = loaded.input.to_tensor([face])
    batch = loaded.input.to_tensor([face.rotate(angle) for angle in range(BATCH)])  # 32 distinct crops
    reference = Predictor(loaded, precision="fp32", backend="eager").run(batch)

    print(f"model {loaded.name}, {loaded.input.size} px, precision {args.precision}, "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'backend':<12} {'load s':>7} {'1 face ms':>10} {'ms/face @32':>12} {'max |dp|':>9}")
    for name in BACKEND_NAMES:
        started = time.perf_counter()
        predictor = Predictor(loaded, precision=args.precision, backend=name)
        predictor.wait_for_compilation()
        load_s = time.perf_counter() - started
        one = median_ms(lambda p=predictor: p.run(single), args.runs, warmup=5)
        many = median_ms(lambda p=predictor: p.run(batch), max(args.runs // 5, 3), warmup=5) / BATCH
        diff = float(np.abs(predictor.run(batch) - reference).max())
        print(f"{name:<12} {load_s:>7.2f} {one:>10.2f} {many:>12.2f} {diff:>9.5f}  ({predictor.precision})")


if __name__ == "__main__":
    main()
