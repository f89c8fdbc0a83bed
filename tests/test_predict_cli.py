"""The ``python -m maskdet predict`` contract: one JSON line per image, error records, exit status.

Photos are composed from real held-out face crops (``held_out_faces``) pasted at known places,
then saved in the unusual-but-valid forms users send (EXIF-rotated, CMYK, 16-bit, grayscale,
animated) next to broken files; the real CLI runs in a subprocess with the real CenterFace
detector and a real tiny MobileNetV2.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from maskdet.cli import main

REPO = Path(__file__).resolve().parent.parent
FACE = 180
LEFT, RIGHT = (60, 150, FACE), (400, 150, FACE)
FACE_KEYS = {"box", "label", "confidence", "face_score"}
EXIF_ORIENTATION = 0x0112


def iou(a: list[int], b: tuple[int, int, int, int]) -> float:
    iw = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def truth(place: tuple[int, int, int]) -> tuple[int, int, int, int]:
    x, y, side = place
    return x, y, x + side, y + side


def run_cli(*args: str) -> tuple[int, list[dict], str]:
    """Run ``python -m maskdet predict ARGS --json``; (exit status, parsed lines, stderr)."""
    done = subprocess.run(
        [sys.executable, "-m", "maskdet", "predict", *args, "--json"], cwd=REPO, capture_output=True, text=True,
        timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    return done.returncode, [json.loads(line) for line in done.stdout.splitlines()], done.stderr


@pytest.fixture(scope="module")
def photos(tmp_path_factory, held_out_faces, frame_composer) -> dict[str, Path]:
    """A folder (with a sub-folder) of valid photos in many forms plus broken files; name -> path."""
    root = tmp_path_factory.mktemp("predict-photos")
    (root / "more" / "deeper").mkdir(parents=True)
    scene = Image.fromarray(frame_composer([held_out_faces["with_mask"][0], held_out_faces["without_mask"][0]],
                                           [LEFT, RIGHT]))
    files = {
        "scene": root / "scene.jpg",
        "rotated": root / "rotated.jpg",
        "cmyk": root / "more" / "cmyk.jpg",
        "gray16": root / "more" / "gray16.png",
        "gray": root / "more" / "deeper" / "gray.webp",
        "animated": root / "more" / "animated.gif",
        "no_face": root / "no_face.png",
        "not_image": root / "notes.jpg",
        "truncated": root / "truncated.jpg",
        "empty": root / "empty.png",
        "enormous": root / "more" / "enormous.png",
    }
    scene.save(files["scene"], quality=95)
    # Stored sideways with EXIF orientation 6 ("rotate 90 degrees clockwise to display"): upright it is `scene`.
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    scene.transpose(Image.Transpose.ROTATE_90).save(files["rotated"], quality=95, exif=exif)
    scene.convert("CMYK").save(files["cmyk"], quality=95)
    Image.fromarray(np.asarray(scene.convert("L")).astype(np.uint16) * 257).save(files["gray16"])
    scene.convert("L").save(files["gray"], quality=95)
    scene.save(files["animated"], save_all=True, append_images=[scene.rotate(180)], duration=100, loop=0)
    Image.new("RGB", (640, 480), (96, 120, 140)).save(files["no_face"])
    files["not_image"].write_text("these are my notes, not a photo\n")
    files["truncated"].write_bytes(files["scene"].read_bytes()[:4000])
    files["empty"].write_bytes(b"")
    Image.new("1", (9000, 9000)).save(files["enormous"])  # 81 megapixels, a few kB on disk
    (root / ".hidden.jpg").write_bytes(files["scene"].read_bytes())  # hidden files are skipped
    return files


@pytest.fixture(scope="module")
def folder_run(photos, tiny_mobilenet) -> tuple[int, dict[str, dict], str]:
    """The CLI over the whole folder: (exit status, record by file name, stderr)."""
    status, records, stderr = run_cli(str(photos["scene"].parent), "--model", str(tiny_mobilenet))
    return status, {Path(r["path"]).name: r for r in records}, stderr


def test_one_record_per_file_and_exit_status_2_when_any_failed(folder_run, photos) -> None:
    status, records, stderr = folder_run
    assert status == 2, stderr
    assert sorted(records) == sorted(p.name for p in photos.values())
    for name in ("notes.jpg", "truncated.jpg", "empty.png", "enormous.png"):
        assert set(records[name]) == {"path", "error"}, records[name]
    assert "not an image" in records["notes.jpg"]["error"]
    assert "truncated" in records["truncated.jpg"]["error"]
    assert "empty" in records["empty.png"]["error"]
    assert "megapixel" in records["enormous.png"]["error"]


def test_faces_are_found_labelled_and_boxed_in_original_pixels(folder_run) -> None:
    record = folder_run[1]["scene.jpg"]
    assert set(record) == {"path", "width", "height", "faces"}
    assert (record["width"], record["height"]) == (640, 480)
    faces = sorted(record["faces"], key=lambda f: f["box"][0])
    assert len(faces) == 2, faces
    for face, place, label in zip(faces, (LEFT, RIGHT), ("with_mask", "without_mask"), strict=True):
        assert set(face) == FACE_KEYS
        assert iou(face["box"], truth(place)) >= 0.5, (face, place)
        assert all(isinstance(v, int) for v in face["box"])
        assert face["label"] == label
        assert 0.5 <= face["confidence"] <= 1.0 and 0.0 < face["face_score"] <= 1.0


def test_exif_rotated_photo_gives_boxes_of_the_upright_image(folder_run) -> None:
    records = folder_run[1]
    rotated, scene = records["rotated.jpg"], records["scene.jpg"]
    assert (rotated["width"], rotated["height"]) == (640, 480)
    pairs = zip(sorted(rotated["faces"], key=lambda f: f["box"][0]), sorted(scene["faces"], key=lambda f: f["box"][0]),
                strict=True)
    for turned, upright in pairs:
        assert iou(turned["box"], tuple(upright["box"])) >= 0.8
        assert turned["label"] == upright["label"]


@pytest.mark.parametrize("name", ["cmyk.jpg", "gray16.png", "gray.webp", "animated.gif"])
def test_unusual_but_valid_files_are_processed_normally(folder_run, name: str) -> None:
    record = folder_run[1][name]
    assert "error" not in record, record
    assert (record["width"], record["height"]) == (640, 480)
    boxes = sorted(f["box"] for f in record["faces"])
    assert len(boxes) == 2 and iou(boxes[0], truth(LEFT)) >= 0.5 and iou(boxes[1], truth(RIGHT)) >= 0.5, record


def test_photo_without_face_gives_empty_list(folder_run) -> None:
    assert folder_run[1]["no_face.png"]["faces"] == []


def test_exit_status_0_when_every_file_is_readable(photos, tiny_mobilenet) -> None:
    status, records, stderr = run_cli(str(photos["scene"]), str(photos["no_face"]), "--model", str(tiny_mobilenet))
    assert status == 0, stderr
    assert [Path(r["path"]).name for r in records] == ["scene.jpg", "no_face.png"]


def test_whole_image_classifies_the_full_image_as_one_face(photos, tiny_mobilenet, held_out_faces) -> None:
    crop = held_out_faces["with_mask"][1]
    status, records, stderr = run_cli(str(crop), str(photos["no_face"]), "--model", str(tiny_mobilenet),
                                      "--whole-image")
    assert status == 0, stderr
    width, height = Image.open(crop).size
    assert records[0]["faces"][0]["box"] == [0, 0, width, height] and len(records[0]["faces"]) == 1
    assert records[0]["faces"][0]["label"] == "with_mask"
    assert records[1]["faces"][0]["box"] == [0, 0, 640, 480]


def test_human_readable_output_and_unknown_model(photos, tiny_mobilenet, capsys) -> None:
    assert main(["predict", str(photos["scene"]), str(photos["not_image"]), "--model", str(tiny_mobilenet)]) == 2
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{photos['scene']} (640x480): ") and "with_mask" in lines[0]
    assert lines[1].startswith(f"{photos['not_image']}: ERROR not an image")

    assert main(["predict", str(photos["scene"]), "--model", "no-such-model"]) == 1
    assert "no-such-model" in capsys.readouterr().err
