"""Every CLI entry point against the same zoo of bad and unusual files: valid ones are processed,
invalid ones get a clear per-file message, nothing crashes and nothing half-written is left."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from maskdet.settings import REPO_ROOT

VALID = ("cmyk.jpg", "16bit.png", "animated.gif", "animated.webp", "rotated.jpg", "gray.png", "tiny.png", "large.jpg")
INVALID = ("empty.jpg", "text.jpg", "truncated.jpg", "truncated.png", "bomb.png")


def _png_bomb(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    compressor = zlib.compressobj(9)
    body = compressor.compress(b"\x00" * (width + 1)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def _save(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def write_zoo(folder: Path, face: Image.Image) -> None:
    """One file of each kind, built from a real face photo."""
    folder.mkdir(parents=True, exist_ok=True)
    exif = Image.Exif()
    exif[0x0112] = 6
    frames = [face, face.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    files = {
        "cmyk.jpg": _save(face.convert("CMYK"), "JPEG"),
        "16bit.png": _save(Image.fromarray((np.asarray(face.convert("L"), dtype=np.uint16) * 257)), "PNG"),
        "animated.gif": _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100),
        "animated.webp": _save(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=100),
        "rotated.jpg": _save(face.rotate(90, expand=True), "JPEG", exif=exif.tobytes()),
        "gray.png": _save(face.convert("L"), "PNG"),
        "tiny.png": _save(face.resize((8, 8)), "PNG"),
        "large.jpg": _save(face.resize((4000, 4000)), "JPEG", quality=70),
        "empty.jpg": b"",
        "text.jpg": b"this is not an image\n" * 20,
        "truncated.jpg": _save(face, "JPEG")[:2000],
        "truncated.png": _save(face, "PNG")[:3000],
        "bomb.png": _png_bomb(30000, 30000),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)


@pytest.fixture(scope="module")
def face(datasets_root) -> Image.Image:
    return Image.open(datasets_root / "synthetic-masks-2k" / "with_mask" / "with_mask_1.jpg").convert("RGB")


def run_cli(*args: str, models_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "MASKDET_MODELS_DIR": str(models_dir)}
    return subprocess.run([sys.executable, "-m", "maskdet", *args], capture_output=True, text=True, env=env,
                          cwd=REPO_ROOT, timeout=600)


@pytest.fixture(scope="module")
def zoo_dataset(tmp_path_factory, face, tiny_dataset) -> Path:
    """tiny_dataset plus the whole zoo of files filed under with_mask."""
    import shutil

    root = tmp_path_factory.mktemp("zoo-dataset")
    shutil.copytree(tiny_dataset, root, dirs_exist_ok=True)
    write_zoo(root / "with_mask", face)
    return root


def test_predict_processes_valid_files_and_reports_invalid_ones(tmp_path, face, tiny_models_dir):
    write_zoo(tmp_path / "zoo", face)
    result = run_cli("predict", str(tmp_path / "zoo"), "--model", "tiny-cnn", "--json", models_dir=tiny_models_dir)
    assert result.returncode == 2, result.stderr
    records = {Path(r["path"]).name: r for r in map(json.loads, result.stdout.splitlines())}
    assert set(records) == set(VALID) | set(INVALID)
    for name in VALID:
        assert "error" not in records[name], records[name]
        assert records[name]["width"] > 0 and isinstance(records[name]["faces"], list)
    for name in INVALID:
        assert records[name]["error"], name
    assert "megapixel" in records["bomb.png"]["error"]
    assert records["empty.jpg"]["error"] == "empty file"


def test_evaluate_skips_and_lists_unreadable_files(zoo_dataset, tiny_models_dir):
    result = run_cli("evaluate", "--data", str(zoo_dataset), "--model", "tiny-cnn", models_dir=tiny_models_dir)
    assert result.returncode == 0, result.stderr
    for name in INVALID:
        assert f"skipped unreadable with_mask/{name}" in result.stdout
    payload = json.loads(run_cli("evaluate", "--data", str(zoo_dataset), "--model", "tiny-cnn", "--json",
                                 models_dir=tiny_models_dir).stdout)
    assert payload["n"] == 24 + len(VALID)


def test_train_uses_valid_files_and_saves_once(zoo_dataset, tmp_path):
    result = run_cli("train", "--arch", "mlp", "--data", str(zoo_dataset), "--epochs", "1", "--name", "zoo", "-q",
                     models_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    meta = json.loads((tmp_path / "zoo" / "metadata.json").read_text())
    assert meta["dataset"]["unreadable"] == len(INVALID)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["zoo"]


def test_train_on_an_empty_folder_fails_clearly(tmp_path):
    (tmp_path / "data" / "with_mask").mkdir(parents=True)
    result = run_cli("train", "--arch", "mlp", "--data", str(tmp_path / "data"), "-q", models_dir=tmp_path / "m")
    assert result.returncode == 1
    assert "error:" in result.stderr and "no files" in result.stderr
    assert "Traceback" not in result.stderr
