"""Robust image decoding: every input becomes an upright 8-bit RGB ``PIL.Image`` or a clear error.

Real data sets and user uploads contain EXIF-rotated photos, RGBA / palette / grayscale /
16-bit / CMYK images, animated GIF and WEBP, files with misleading extensions,
truncated files and decompression bombs. One function handles them all so that the
data set scanner, training, the CLI and the pages behave identically.
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from maskdet.data.files import file_problem, is_ignored_name

MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_PIXELS = 64_000_000  # e.g. 8000 x 8000; larger images are refused before decoding

# We enforce our own pixel limit before decoding; PIL's global limit would otherwise warn or raise
# a different error type for the same condition.
Image.MAX_IMAGE_PIXELS = None


# What Pillow's format plugins raise on malformed data (struct/index errors come from hand-written parsers).
_DECODER_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, KeyError, TypeError, ZeroDivisionError)


class ImageDecodeError(ValueError):
    """An input could not be turned into an image; ``reason`` is short and human readable."""

    def __init__(self, reason: str, source: str = "") -> None:
        self.reason = reason
        self.source = source
        super().__init__(f"{source}: {reason}" if source else reason)


@dataclass(frozen=True)
class ImageInfo:
    """What the file declared before any conversion."""

    format: str
    mode: str
    width: int
    height: int
    frames: int


def _read_bytes(source: str | Path | bytes | BinaryIO, max_bytes: int) -> bytes:
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
    elif isinstance(source, str | Path):
        path = Path(source)
        problem = file_problem(path)  # a named pipe would block the read forever, a device never end it
        if problem == "missing":
            raise ImageDecodeError("cannot read file (no such file)")
        if problem is not None:
            raise ImageDecodeError(f"not a regular file ({problem})")
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise ImageDecodeError(f"cannot read file ({exc.strerror or exc})") from exc
        if size > max_bytes:
            raise ImageDecodeError(f"file is {size / 1e6:.0f} MB, above the {max_bytes / 1e6:.0f} MB limit")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ImageDecodeError(f"cannot read file ({exc.strerror or exc})") from exc
    else:
        data = source.read(max_bytes + 1)
    if not data:
        raise ImageDecodeError("empty file")
    if len(data) > max_bytes:
        raise ImageDecodeError(f"file is larger than the {max_bytes / 1e6:.0f} MB limit")
    return data


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB, compositing transparency on white."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        if mode == "F" or values.max(initial=0) > 65535:
            low, high = float(values.min(initial=0)), float(values.max(initial=1))
            values = (values - low) / max(high - low, 1e-12) * 255.0
        else:
            values = values / 257.0 if values.max(initial=0) > 255 else values
        gray = np.clip(np.rint(values), 0, 255).astype(np.uint8)
        return Image.fromarray(gray, mode="L").convert("RGB")
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV, I;16 variants handled above


def open_image(
    source: str | Path | bytes | BinaryIO,
    *,
    max_pixels: int = MAX_PIXELS,
    max_bytes: int = MAX_FILE_BYTES,
    draft_size: int | None = None,
) -> tuple[Image.Image, ImageInfo]:
    """Decode ``source`` into an upright RGB image plus what the file declared.

    ``draft_size`` lets JPEG decoding scale down on the fly (much faster) when only a
    small version is needed, e.g. for hashing or thumbnails. Animated images yield
    their first frame. Raises :class:`ImageDecodeError` for anything unusable.
    """
    label = str(source) if isinstance(source, str | Path) else ""
    try:
        data = _read_bytes(source, max_bytes)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                image = Image.open(io.BytesIO(data))
            except UnidentifiedImageError:
                raise ImageDecodeError("not an image (format not recognised)") from None
            except _DECODER_ERRORS as exc:  # a header PIL recognised but could not parse
                raise ImageDecodeError(f"corrupt image header ({exc or type(exc).__name__})") from exc
            width, height = image.size
            if width <= 0 or height <= 0:
                raise ImageDecodeError(f"invalid dimensions {width}x{height}")
            if width * height > max_pixels:
                raise ImageDecodeError(
                    f"image is {width}x{height} ({width * height / 1e6:.0f} megapixels), "
                    f"above the {max_pixels / 1e6:.0f} megapixel limit"
                )
            info = ImageInfo(
                format=image.format or "unknown",
                mode=image.mode,
                width=width,
                height=height,
                frames=getattr(image, "n_frames", 1),
            )
            if draft_size and image.format == "JPEG":
                image.draft("RGB", (draft_size, draft_size))
            try:
                image.seek(0)
                image.load()
                image = ImageOps.exif_transpose(image) or image
                rgb = _to_rgb(image)
                rgb.load()
            except _DECODER_ERRORS as exc:
                message = str(exc) or type(exc).__name__
                if "truncated" in message or isinstance(exc, EOFError):
                    raise ImageDecodeError(f"truncated or corrupt {info.format} file ({message})") from exc
                raise ImageDecodeError(f"corrupt {info.format} data ({message})") from exc
    except ImageDecodeError as exc:
        exc.source = exc.source or label
        raise
    except Image.DecompressionBombError as exc:  # pragma: no cover - we disabled PIL's own limit
        raise ImageDecodeError(str(exc), label) from exc
    except MemoryError as exc:
        raise ImageDecodeError("not enough memory to decode this image", label) from exc
    return rgb, info


def load_rgb(source: str | Path | bytes | BinaryIO, **kwargs: int | None) -> Image.Image:
    """Shorthand for :func:`open_image` when only the pixels matter."""
    return open_image(source, **kwargs)[0]  # type: ignore[arg-type]


def is_candidate_file(path: Path) -> bool:
    """Files a data set scan should try to decode: everything but hidden files and OS junk.

    Extensions are not trusted (``.jpg_1088Wx1632H``, PNGs named ``.jpg``); decoding decides.
    """
    return path.is_file() and not is_ignored_name(path.name)
