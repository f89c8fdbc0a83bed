"""Video clips through ``predict`` and the Video page: per-frame labels, --every, --annotate, broken clips.

Clips are made here from two real face-mask-4k photos of the shipped model's held-out test split (one
masked, one not) pasted on a plain 640x480 canvas: the first half of the frames shows the masked face,
the second half the unmasked one. The real CLI runs in a subprocess with the real CenterFace detector
and the shipped MobileNetV2; the page runs under AppTest with the same model.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
import streamlit as st
from dashboard import page_test
from markdown_text import texts
from PIL import Image
from streamlit.testing.v1 import AppTest

from maskdet.checkpoint import set_default_model
from maskdet.images import load_rgb
from maskdet.video import VideoDecodeError, VideoReader

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "models" / "mobilenet_v2"
PAGE = "pages/video.py"
FPS = 10
HALF = 8  # frames per face
SIZE = (640, 480)
PLACE = (220, 140, 200)  # x, y, side of the pasted face
FRAME_KEYS = {"path", "frame", "time", "width", "height", "faces"}
TIMEOUT = 300


def expected_label(frame: int) -> str:
    return "with_mask" if frame < HALF else "without_mask"


@pytest.fixture(scope="module")
def frames(datasets_root) -> list[np.ndarray]:
    """2 * HALF RGB frames: the first held-out masked photo of the shipped model's split, then the first unmasked."""
    from maskdet.crops import locate_split_file

    split = json.loads((SHIPPED / "split.json").read_text())
    dataset = json.loads((SHIPPED / "metadata.json").read_text())["dataset"]
    canvases = []
    for cls in ("with_mask", "without_mask"):  # face-mask-4k photos (the default's split also holds cut crops)
        path = next(p for r in split["test"] if r.startswith(f"{cls}/face-mask-4k/")
                    and (p := locate_split_file(dataset, r)))
        canvas = Image.new("RGB", SIZE, (96, 120, 140))
        x, y, side = PLACE
        canvas.paste(load_rgb(path).resize((side, side), Image.Resampling.LANCZOS), (x, y))
        canvases.append(np.asarray(canvas))
    return [canvases[i // HALF] for i in range(2 * HALF)]


def write_clip(path: Path, frames: list[np.ndarray], codec: str = "libx264", options: dict | None = None) -> Path:
    """Encode ``frames`` at FPS with PyAV (the container from the file name)."""
    with av.open(str(path), "w", options=options or {}) as container:
        stream = container.add_stream(codec, rate=FPS)
        stream.width, stream.height, stream.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
        for array in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
        container.mux(stream.encode(None))
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory, frames) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("clips")
    faststart = write_clip(root / "faststart.mp4", frames, options={"movflags": "+faststart"})
    mkv = write_clip(root / "clip.mkv", frames)
    cut_mp4, cut_mkv = root / "cut.mp4", root / "cut.mkv"
    cut_mp4.write_bytes(faststart.read_bytes()[: faststart.stat().st_size * 6 // 10])
    cut_mkv.write_bytes(mkv.read_bytes()[: mkv.stat().st_size * 6 // 10])
    corrupt = root / "corrupt.mp4"
    corrupt.write_bytes(faststart.read_bytes()[:32] + bytes(np.random.default_rng(0).integers(0, 256, 4000,
                                                                                              dtype=np.uint8)))
    return {"mp4": write_clip(root / "clip.mp4", frames), "webm": write_clip(root / "clip.webm", frames, "libvpx-vp9"),
            "mkv": mkv, "cut_mp4": cut_mp4, "cut_mkv": cut_mkv, "corrupt": corrupt}


def run_predict(*args: str) -> tuple[int, list[dict], str]:
    done = subprocess.run([sys.executable, "-m", "maskdet", "predict", *args, "--model", str(SHIPPED), "--json"],
                          cwd=REPO, capture_output=True, text=True, timeout=TIMEOUT,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    return done.returncode, [json.loads(line) for line in done.stdout.splitlines()], done.stderr


def assert_labels(records: list[dict], path: Path, frames: list[int]) -> None:
    assert [r["frame"] for r in records] == frames
    for record in records:
        assert set(record) == FRAME_KEYS and record["path"] == str(path)
        assert (record["width"], record["height"]) == SIZE
        assert record["time"] == pytest.approx(record["frame"] / FPS, abs=1e-3)
        assert [f["label"] for f in record["faces"]] == [expected_label(record["frame"])], record


def test_a_clip_gives_one_record_per_frame_with_the_right_labels(clips) -> None:
    status, records, stderr = run_predict(str(clips["mp4"]))
    assert status == 0, stderr
    assert_labels(records, clips["mp4"], list(range(2 * HALF)))
    x, y, side = PLACE
    for record in records[:HALF]:  # the masked photo is a tight face crop: the box lies inside the pasted square
        x0, y0, x1, y1 = record["faces"][0]["box"]
        assert x <= x0 < x1 <= x + side and y <= y0 < y1 <= y + side


def test_every_nth_frame_of_a_webm_and_the_annotated_clip(clips, tmp_path) -> None:
    out = tmp_path / "annotated.mp4"
    status, records, stderr = run_predict(str(clips["webm"]), "--every", "3", "--annotate", str(out))
    assert status == 0, stderr
    assert_labels(records, clips["webm"], list(range(0, 2 * HALF, 3)))
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    assert len(decoded) == 2 * HALF and decoded[0].shape == (SIZE[1], SIZE[0], 3)
    # Every frame is drawn: a skipped frame carries the last processed frame's box (green, then red).
    for skipped, shown in ((1, records[0]), (2 * HALF - 2, records[-2])):
        x0, y0, _x1, y1 = shown["faces"][0]["box"]
        red, green, _blue = decoded[skipped][(y0 + y1) // 2, x0 + 1].astype(int)
        assert (green - red > 60) if expected_label(shown["frame"]) == "with_mask" else (red - green > 60), (red, green)


def test_corrupt_and_truncated_clips_give_error_records_and_no_traceback(clips, tmp_path) -> None:
    status, records, stderr = run_predict(str(clips["corrupt"]), str(clips["cut_mp4"]), str(clips["cut_mkv"]),
                                          str(clips["mkv"]))
    assert status == 2 and "Traceback" not in stderr, stderr
    by_path: dict[str, list[dict]] = {}
    for record in records:
        by_path.setdefault(record["path"], []).append(record)
    [corrupt] = by_path[str(clips["corrupt"])]
    assert set(corrupt) == {"path", "error"} and "not a readable video" in corrupt["error"], corrupt
    for name in ("cut_mp4", "cut_mkv"):
        *read, last = by_path[str(clips[name])]
        assert set(last) == {"path", "error"} and "truncated" in last["error"], last
        assert 0 < len(read) < 2 * HALF
        assert_labels(read, clips[name], list(range(len(read))))
    assert_labels(by_path[str(clips["mkv"])], clips["mkv"], list(range(2 * HALF)))


def test_reader_refuses_files_that_are_not_video(tmp_path) -> None:
    empty = tmp_path / "empty.webm"
    empty.write_bytes(b"")
    with pytest.raises(VideoDecodeError, match="not a readable video"):
        VideoReader(empty)
    text = tmp_path / "notes.avi"
    text.write_text("not a video at all\n" * 50)
    with pytest.raises(VideoDecodeError, match="not a readable video"):
        VideoReader(text)


# --- the Video page ------------------------------------------------------------------------------

@pytest.fixture
def page_models(isolated_models_dir: Path) -> Path:
    shutil.copytree(SHIPPED, isolated_models_dir / "mobilenet_v2")
    set_default_model("mobilenet_v2")
    return isolated_models_dir


@pytest.fixture
def page(page_models, tmp_path, monkeypatch) -> AppTest:
    monkeypatch.setenv("MASKDET_CACHE_DIR", str(tmp_path / "cache"))
    st.cache_data.clear()
    return page_test(PAGE, TIMEOUT).run()


def upload_and_wait(at: AppTest, name: str, data: bytes, mime: str = "video/mp4") -> AppTest:
    """Upload a clip and rerun until the progress bar is gone (the job has ended)."""
    at.file_uploader(key="video_upload").set_value([(name, data, mime)]).run()
    deadline = time.monotonic() + TIMEOUT
    while at.get("progress") and time.monotonic() < deadline:
        time.sleep(0.5)
        at.run()
    assert not at.get("progress"), "the analysis did not finish"
    return at


def test_page_shows_labels_per_frame_chart_clip_and_unmasked_strip(page, clips) -> None:
    at = upload_and_wait(page, "clip.mp4", clips["mp4"].read_bytes())
    assert not at.exception and not at.error, texts(at.exception) + texts(at.error)
    table = at.dataframe[0].value
    assert list(table["frame"]) == list(range(2 * HALF))
    for _, row in table.iterrows():
        masked = expected_label(int(row["frame"])) == "with_mask"
        assert (row["with_mask"], row["without_mask"]) == ((1, 0) if masked else (0, 1)), row
    assert len(at.get("plotly_chart")) == 1
    assert len(at.get("video")) == 1
    assert at.get("download_button")
    strip = [caption for image in at.image for caption in image.captions]  # "1.0 s (frame 8)"
    assert strip and all(int(c.split("frame ")[1].rstrip(")")) >= HALF for c in strip), strip


def test_page_reports_a_corrupt_clip_and_a_truncated_one(page, clips) -> None:
    at = upload_and_wait(page, "broken.mp4", clips["corrupt"].read_bytes())
    assert not at.exception
    assert any("Cannot read" in e.value and "not a readable video" in e.value for e in at.error), texts(at.error)
    at = upload_and_wait(at, "cut.mkv", clips["cut_mkv"].read_bytes(), mime="video/x-matroska")
    assert not at.exception
    assert any("truncated" in w.value for w in at.warning), texts(at.warning)
    frames_read = list(at.dataframe[0].value["frame"])
    assert 0 < len(frames_read) < 2 * HALF
