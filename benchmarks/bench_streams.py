"""Watched streams: processed frames per second of one and of several 640x480 streams, and the accuracy of the
per-person verdict against the per-frame label.

Usage: python benchmarks/bench_streams.py [--model NAME_OR_PATH] [--frames 150] [--streams 4] [--faces 120]
                                          [--detect-every 1 2 3 4] [--skip-speed] [--skip-accuracy]

Speed: each stream is a real scenes-dev photo (1-4 faces) scaled to cover 640x480 and panned 2 px per frame,
decoded frames in memory. "Processed" is from a decoded frame to an annotated one: for the per-frame path
(``LiveProcessor.process_frame`` with the product's detector setting, what the Webcam page ran before
``maskdet.watch``) and for ``WatchSession.process`` (default :class:`WatchConfig` but for each
``--detect-every``) with the live detector setting (``centerface-live``; track-aware: detection every ``detect_every``-th frame with the tracker's boxes
carried between, a face classified when its track is new, due or moved). Both run the dashboard's classifier
(``backend="auto"``: onnxruntime for an fp32 model) and CenterFace single-threaded, inference in the process's
one inference thread, as on the dashboard. Several streams run on threads of their own, sharing the models;
every stream is fed its next frame as soon as the last one is returned (no camera pacing), so frames/s is the
processing rate and CPU ms per frame the processing cost (all threads of this process, decoding excluded:
the frames are decoded beforehand). Targets on 2 cores: one stream >= 60 frames/s, 4 streams >= 15 each.

Accuracy: every annotated with_mask / without_mask face of scenes-dev and ilc-dev (at least 24 px; an even
sample of ``--faces`` per set) is cut out with context and becomes a short clip of its own: 15 frames at 30 fps
where it drifts across a 640x480 canvas under camera-like changes (brightness, noise, JPEG quality). Per-frame
accuracy counts the frames whose detected face got the annotated label (the per-frame path above);
per-person accuracy counts the clips whose track's verdict is the annotated label, once per
``--detect-every`` value (the watch path; a clip whose face is never detected or never decided counts as
wrong in both). These sets are for choosing and measuring only; nothing is trained on them.
The load average is printed: other processes on the machine distort the speed figures.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from maskdet.data.annotations import load_scene_set  # noqa: E402
from maskdet.data.images import load_rgb  # noqa: E402
from maskdet.inference.detector import get_detector  # noqa: E402
from maskdet.inference.live import LIVE_DETECTOR_OPTIONS, LiveProcessor  # noqa: E402
from maskdet.inference.pipeline import FacePipeline  # noqa: E402
from maskdet.inference.predictor import AUTO_BACKEND, load_classifier  # noqa: E402
from maskdet.runtime import inference_worker  # noqa: E402
from maskdet.settings import data_root  # noqa: E402
from maskdet.watch import WATCH_DETECTOR, WatchConfig, WatchSession  # noqa: E402
from maskdet.watch.tracks import box_iou  # noqa: E402

WIDTH, HEIGHT = 640, 480
CLIP_FRAMES = 15
CLIP_FPS = 30.0
MIN_FACE = 24
FACE_PX = 110


def panned_stream(photo: Image.Image, frames: int) -> list[np.ndarray]:
    """``frames`` 640x480 views of ``photo`` (scaled to cover 680x520), panning 2 px per frame and back."""
    scale = max((WIDTH + 40) / photo.width, (HEIGHT + 40) / photo.height)
    big = np.asarray(photo.resize((round(photo.width * scale), round(photo.height * scale)),
                                  Image.Resampling.BILINEAR))
    views = []
    for index in range(frames):
        step = index % 40
        offset = step if step < 20 else 40 - step
        views.append(np.ascontiguousarray(big[offset:offset + HEIGHT, 2 * offset:2 * offset + WIDTH]))
    return views


def stream_photos(count: int) -> list[Image.Image]:
    """``count`` scenes-dev photos with 1 to 4 annotated faces (spread over the set)."""
    scenes = load_scene_set(data_root() / "scenes-dev")
    fitting = [image for image in scenes.images if 1 <= len(image.faces) <= 4]
    chosen = fitting[:: max(1, len(fitting) // count)][:count]
    return [load_rgb(scenes.root / image.relpath) for image in chosen]


def run_streams(streams: list[list[np.ndarray]], process_of) -> tuple[list[float], float]:
    """Frames per second of each stream when all run at once, each on a thread of its own, and the CPU
    milliseconds this process spent per frame (all threads; what a loaded machine cannot distort much)."""
    rates = [0.0] * len(streams)

    def one(index: int) -> None:
        process = process_of()
        process(streams[index][0])  # warm-up: first track, first allocation
        started = time.perf_counter()
        for frame in streams[index][1:]:
            process(frame)
        rates[index] = (len(streams[index]) - 1) / (time.perf_counter() - started)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(streams))]
    cpu = time.process_time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return rates, (time.process_time() - cpu) * 1000 / sum(len(stream) for stream in streams)


def bench_speed(per_frame: FacePipeline, watch: FacePipeline, frames: int, streams: int,
                detect_every: list[int]) -> None:
    photos = stream_photos(streams)
    clips = [panned_stream(photo, frames) for photo in photos]
    worker = inference_worker()

    def watched(every: int):
        return lambda: (lambda s: lambda frame: s.process(frame))(
            WatchSession(watch, WatchConfig(detect_every=every), run=worker.submit))

    paths = {"per-frame (LiveProcessor)": lambda: LiveProcessor(per_frame).process_frame,
             **{f"watch (detect_every={every})": watched(every) for every in detect_every}}
    for name, process_of in paths.items():
        (single,), single_cpu = run_streams(clips[:1], process_of)
        several, several_cpu = run_streams(clips, process_of)
        print(f"{name:<30} 1 stream: {single:6.1f} frames/s ({single_cpu:.1f} CPU ms/frame)   {len(clips)} streams: "
              f"{' '.join(f'{rate:5.1f}' for rate in several)} frames/s each (min {min(several):.1f}; "
              f"{several_cpu:.1f} CPU ms/frame)", flush=True)


def face_clip(photo: np.ndarray, box: tuple[float, float, float, float], rng: np.random.Generator
              ) -> tuple[list[np.ndarray], list[tuple[int, int, int, int]]]:
    """A short clip of one annotated face (with context) drifting over a canvas; its true box per frame."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    half = side  # a crop twice the face's size: the face and its surroundings
    crop_box = (max(0, int(cx - half)), max(0, int(cy - half)), min(photo.shape[1], int(cx + half)),
                min(photo.shape[0], int(cy + half)))
    crop = Image.fromarray(photo[crop_box[1]:crop_box[3], crop_box[0]:crop_box[2]])
    scale = FACE_PX / side
    crop = crop.resize((max(1, round(crop.width * scale)), max(1, round(crop.height * scale))),
                       Image.Resampling.BILINEAR)
    face = ((x0 - crop_box[0]) * scale, (y0 - crop_box[1]) * scale, (x1 - crop_box[0]) * scale,
            (y1 - crop_box[1]) * scale)
    start = np.array([rng.integers(20, WIDTH - crop.width - 60), rng.integers(20, HEIGHT - crop.height - 20)])
    frames, boxes = [], []
    for index in range(CLIP_FRAMES):
        x, y = (start + [3 * index, rng.integers(-1, 2)]).astype(int)
        canvas = Image.new("RGB", (WIDTH, HEIGHT), tuple(int(v) for v in rng.integers(60, 180, 3)))
        canvas.paste(crop, (int(x), int(y)))
        array = np.asarray(canvas).astype(np.float32) * rng.uniform(0.8, 1.2) + rng.normal(0, 4, (HEIGHT, WIDTH, 3))
        buffer = io.BytesIO()
        Image.fromarray(np.clip(array, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=int(rng.integers(60, 90)))
        frames.append(np.asarray(Image.open(buffer).convert("RGB")))
        boxes.append((int(x + face[0]), int(y + face[1]), int(x + face[2]), int(y + face[3])))
    return frames, boxes


def matching(faces, box):
    best = max(faces, key=lambda face: box_iou(face.box, box), default=None)
    return best if best is not None and box_iou(best.box, box) >= 0.3 else None


def bench_accuracy(per_frame: FacePipeline, watch: FacePipeline, faces_per_set: int,
                   detect_every: list[int]) -> None:
    rng = np.random.default_rng(0)
    for name in ("scenes-dev", "ilc-dev"):
        scenes = load_scene_set(data_root() / name)
        annotated = [(image, face) for image in scenes.images for face in image.faces
                     if face.label is not None and min(face.box[2] - face.box[0], face.box[3] - face.box[1]) >= MIN_FACE]
        sample = annotated[:: max(1, len(annotated) // faces_per_set)][:faces_per_set]
        frame_right = frame_total = 0
        person_right = dict.fromkeys(detect_every, 0)
        started = time.perf_counter()
        photos: dict[str, np.ndarray] = {}
        for image, face in sample:
            photo = photos.get(image.relpath)
            if photo is None:
                photos.clear()
                photo = photos[image.relpath] = np.asarray(load_rgb(scenes.root / image.relpath))
            frames, boxes = face_clip(photo, face.box, rng)
            for frame, box in zip(frames, boxes, strict=True):
                found = matching(per_frame.predict(frame), box)
                frame_total += 1
                frame_right += found is not None and found.label == face.label
            for every in detect_every:
                session = WatchSession(watch, WatchConfig(frame_rate=CLIP_FPS, detect_every=every))
                for index, frame in enumerate(frames):
                    session.process(frame, index / CLIP_FPS)
                verdicts = [track.verdict for track in session.book.tracks.values()
                            if any(box_iou(track.box, box) >= 0.3 for box in boxes[-3:])]
                person_right[every] += bool(verdicts) and verdicts[-1] == face.label
        people = ", ".join(f"detect_every={every}: {right / len(sample):.1%}" for every, right in person_right.items())
        print(f"{name:<11} {len(sample)} faces, {frame_total} frames: per-frame accuracy "
              f"{frame_right / frame_total:.1%}; per-person verdict accuracy {people} "
              f"({time.perf_counter() - started:.0f} s)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model")
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--faces", type=int, default=120, help="annotated faces per accuracy set")
    parser.add_argument("--detect-every", type=int, nargs="+", default=[WatchConfig().detect_every],
                        help="detect_every values whose speed and per-person accuracy are measured")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-accuracy", action="store_true")
    args = parser.parse_args()
    classifier = load_classifier(args.model, backend=AUTO_BACKEND)  # as the dashboard serves it
    per_frame = FacePipeline(classifier, get_detector("centerface-frames", **LIVE_DETECTOR_OPTIONS))
    watch = FacePipeline(classifier, get_detector(WATCH_DETECTOR, **LIVE_DETECTOR_OPTIONS))
    print(f"load average before: {' '.join(f'{v:.1f}' for v in os.getloadavg())}; cpus {os.cpu_count()}; "
          f"watch settings {WatchConfig()}", flush=True)
    if not args.skip_speed:
        bench_speed(per_frame, watch, args.frames, args.streams, args.detect_every)
    if not args.skip_accuracy:
        bench_accuracy(per_frame, watch, args.faces, args.detect_every)
    print(f"load average after: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
