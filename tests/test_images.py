"""Robust decoding: messy real files and every unusual-but-valid format become RGB; bad input is a clear error."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from maskdet.data.images import ImageDecodeError, open_image


def _encode(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def _gradient(width: int = 64, height: int = 48) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.uint8)[None, :].repeat(height, 0)
    y = np.linspace(0, 255, height, dtype=np.uint8)[:, None].repeat(width, 1)
    return Image.fromarray(np.stack([x, y, 255 - x], axis=-1), "RGB")


def test_real_messy_files_decode(datasets_root):
    folder = datasets_root / "face-mask-4k" / "with_mask"
    odd = [p for p in folder.iterdir() if p.suffix.lower() not in (".jpg", ".jpeg")]
    assert any(p.name.endswith("jpg_1088Wx1632H") for p in odd)
    for path in odd:
        image, info = open_image(path)
        assert image.mode == "RGB" and image.size[0] > 0
        assert info.format in ("PNG", "WEBP", "JPEG")


def test_png_with_alpha_is_composited_on_white():
    rgba = Image.new("RGBA", (10, 10), (255, 0, 0, 0))
    image, info = open_image(_encode(rgba, "PNG"))
    assert info.mode == "RGBA"
    assert image.getpixel((0, 0)) == (255, 255, 255)


@pytest.mark.parametrize(
    "make",
    [
        lambda: _encode(_gradient().convert("CMYK"), "JPEG"),
        lambda: _encode(_gradient().convert("L"), "PNG"),
        lambda: _encode(_gradient().convert("P"), "GIF"),
        lambda: _encode(_gradient(), "WEBP"),
        lambda: _encode(Image.fromarray((np.arange(64 * 48, dtype=np.uint16) * 20).reshape(48, 64)), "PNG"),
        lambda: _encode(_gradient().convert("1"), "BMP"),
    ],
    ids=["cmyk-jpeg", "gray-png", "palette-gif", "webp", "16bit-png", "1bit-bmp"],
)
def test_unusual_valid_formats_become_rgb(make):
    image, _ = open_image(make())
    assert image.mode == "RGB"
    assert image.size == (64, 48)
    assert np.asarray(image).std() > 5  # content survived the conversion


def test_16bit_png_keeps_its_range():
    values = np.linspace(0, 65535, 64 * 48).astype(np.uint16).reshape(48, 64)
    image, info = open_image(_encode(Image.fromarray(values), "PNG"))
    pixels = np.asarray(image)[..., 0]
    assert info.mode.startswith("I")
    assert pixels.min() <= 1 and pixels.max() >= 254


def test_exif_rotation_is_applied():
    base = _gradient(80, 40)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    image, info = open_image(_encode(base, "JPEG", exif=exif.tobytes()))
    assert (info.width, info.height) == (80, 40)
    assert image.size == (40, 80)


def test_animated_gif_and_webp_give_first_frame():
    frames = [Image.new("RGB", (32, 32), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    for fmt in ("GIF", "WEBP"):
        data = _encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
        image, info = open_image(data)
        assert info.frames == 2
        red, _, blue = image.getpixel((16, 16))
        assert red > 200 and blue < 60


def test_extension_that_lies(tmp_path):
    path = tmp_path / "photo.jpg"
    path.write_bytes(_encode(_gradient(), "PNG"))
    image, info = open_image(path)
    assert info.format == "PNG" and image.size == (64, 48)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file"),
        (b"this is not an image at all" * 10, "not an image"),
        (b"<html><body>hello</body></html>", "not an image"),
    ],
)
def test_bad_bytes_give_clear_reason(data, reason):
    with pytest.raises(ImageDecodeError, match=reason):
        open_image(data)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_files_are_refused(fmt):
    data = _encode(_gradient(256, 256), fmt)
    with pytest.raises(ImageDecodeError, match="truncated|corrupt"):
        open_image(data[: len(data) // 2])


def _png_bomb(width: int, height: int) -> bytes:
    """A valid grayscale PNG header declaring a huge image, with a tiny compressed body."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    compressor = zlib.compressobj(9)
    row = b"\x00" + b"\x00" * width
    body = b"".join(compressor.compress(row) for _ in range(16)) + compressor.flush()
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def test_decompression_bomb_refused_before_decoding():
    data = _png_bomb(30000, 30000)
    assert len(data) < 100_000
    with pytest.raises(ImageDecodeError, match="megapixel limit"):
        open_image(data)


def test_missing_file(tmp_path):
    with pytest.raises(ImageDecodeError, match="cannot read file"):
        open_image(tmp_path / "nope.jpg")
