"""Video speed: processed frames per second for a 640x480 clip with one face (target >= 25, as the webcam).

Usage: python benchmarks/bench_video.py [--model NAME_OR_PATH] [--frames 150] [--every 1] [--onnx]

The clip is made here: one real face-mask-4k photo (the first unmasked one of the default model's test split) at 180 px
drifting across smooth colour noise, H.264 at 25 fps. Timed, end to end as ``predict clip.mp4 --json``
does it (:func:`maskdet.video.predict_video`): decode + detect + classify, then again with ``--annotate``
(every frame drawn and H.264-encoded), then as the Video page runs it: an ``analyse-video`` job
(:mod:`maskdet.jobs`, a fresh process that loads the models, analyses, draws, encodes and writes the
thumbnails and counts; timed from submit to result, and its analysis alone). ``--onnx`` adds the same run on the model exported to ONNX
(:func:`maskdet.export.load_exported_pipeline`, onnxruntime only). Other processes distort the numbers:
the load average and CPU seconds are printed alongside.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from maskdet.zoo.folders import load_split, read_metadata, resolve_model  # noqa: E402
from maskdet.training.crops import locate_split_file  # noqa: E402
from maskdet.data.images import load_rgb  # noqa: E402
from maskdet.jobs import JobRunner, JobState  # noqa: E402
from maskdet.inference.pipeline import FacePipeline, build_pipeline  # noqa: E402
from maskdet.video import AnnotatedVideoWriter, predict_video  # noqa: E402
from maskdet.video.results import read_results  # noqa: E402

SIZE = (640, 480)
FACE = 180
FPS = 25.0


def make_clip(path: Path, model_folder: Path, frames: int) -> Path:
    """``frames`` 640x480 frames: one held-out face drifting over smooth colour noise."""
    dataset = read_metadata(model_folder)["dataset"]  # the default's split also holds cut crops: take a photo
    photo = next(found for r in load_split(model_folder)["test"] if r.startswith("without_mask/face-mask-4k/")
                 and (found := locate_split_file(dataset, r)))
    face = load_rgb(photo).resize((FACE, FACE), Image.Resampling.LANCZOS)
    rng = np.random.default_rng(0)
    background = Image.fromarray(rng.integers(40, 220, (SIZE[1] // 16, SIZE[0] // 16, 3), dtype=np.uint8))
    background = background.resize(SIZE, Image.Resampling.BILINEAR)
    writer = AnnotatedVideoWriter(path, *SIZE, fps=FPS)
    for index in range(frames):
        canvas = background.copy()
        canvas.paste(face, (100 + (index * 2) % 300, 150))
        writer.write(np.asarray(canvas))
    return writer.close()


def timed_run(pipeline: FacePipeline, clip: Path, every: int, annotate: Path | None) -> tuple[float, float, dict]:
    """(processed frames per second, CPU seconds per processed frame, labels seen) of one run over ``clip``."""
    labels: dict[str, int] = {}
    wall, cpu = time.perf_counter(), time.process_time()
    processed = 0
    for record in predict_video(pipeline, clip, every=every, annotate=annotate):
        if "error" in record:
            raise SystemExit(f"benchmark clip unreadable: {record['error']}")
        processed += 1
        for face in record["faces"]:
            labels[face["label"]] = labels.get(face["label"], 0) + 1
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return processed / wall, cpu / processed, labels


def timed_job(model_folder: Path, clip: Path, every: int, output: Path) -> tuple[float, float, float]:
    """(processed frames per second of the job's analysis, seconds from submit to result, seconds before the
    first frame: process start and model loading) of one ``analyse-video`` job, the Video page's path."""
    runner = JobRunner()
    started = time.perf_counter()
    runner.submit("analyse-video", {"clip": str(clip), "model": str(model_folder), "every": every,
                                    "output": str(output)})
    first_frame = None
    while (status := runner.snapshot()).active:
        if first_frame is None and status.progress is not None and status.progress.phase == "analyse":
            first_frame = time.perf_counter() - started
        time.sleep(0.01)
    total = time.perf_counter() - started
    if status.state != JobState.FINISHED:
        raise SystemExit(f"benchmark job {status.state}: {status.error}")
    results = read_results(output)
    return len(results.frames) / results.seconds, total, first_frame or total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model name or folder (default: the default model)")
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--every", type=int, default=1)
    parser.add_argument("--onnx", action="store_true", help="also time the ONNX export of the model")
    args = parser.parse_args()

    folder = resolve_model(args.model)
    pipeline = build_pipeline(str(folder))
    with tempfile.TemporaryDirectory() as scratch:
        clip = make_clip(Path(scratch) / "clip.mp4", folder, args.frames)
        pipeline.predict(np.zeros((SIZE[1], SIZE[0], 3), np.uint8))  # warm-up: first-call allocations
        load = " ".join(f"{v:.1f}" for v in os.getloadavg())
        print(f"model {pipeline.classifier.name} ({pipeline.classifier.precision}); {torch.get_num_threads()} torch "
              f"threads on {os.cpu_count()} CPUs, load average {load}")
        print(f"clip 640x480, {args.frames} frames at {FPS:.0f} fps, one face; every {args.every}. frame processed")
        runs = [("decode + detect + classify", pipeline, None),
                ("... + draw + H.264 encode (--annotate)", pipeline, Path(scratch) / "annotated.mp4")]
        if args.onnx:
            from maskdet.export import export_model, load_exported_pipeline

            exported = export_model(str(folder), Path(scratch) / "exported").output
            runs.append(("onnxruntime only (exported folder)", load_exported_pipeline(exported), None))
        results = {}
        for name, runner, annotate in runs:
            fps, cpu, labels = timed_run(runner, clip, args.every, annotate)
            results[name] = round(fps, 1)
            print(f"  {name:<42} {fps:6.1f} frames/s   (CPU {cpu * 1000:.1f} ms/frame; faces {labels})")
        name = "analyse-video job (the Video page's path)"
        fps, total, startup = timed_job(folder, clip, args.every, Path(scratch) / "job")
        results[name] = round(fps, 1)
        print(f"  {name:<42} {fps:6.1f} frames/s   ({total:.1f} s from submit to result, of which {startup:.1f} s "
              "process start + model loading before the first frame)")
        print(json.dumps({"target_fps": 25, "processed_fps": results, "job_seconds": round(total, 1),
                          "job_startup_seconds": round(startup, 1)}))


if __name__ == "__main__":
    main()
