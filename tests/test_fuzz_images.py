"""Fuzz the decoding path: any byte string gives an RGB image or an ImageDecodeError, nothing else."""

from __future__ import annotations

import io

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from maskdet.data.images import ImageDecodeError, open_image

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)


def _seed_images() -> list[bytes]:
    rng = np.random.default_rng(0)
    pixels = Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8))
    seeds = []
    for fmt, mode in (("JPEG", "RGB"), ("PNG", "RGBA"), ("PNG", "I;16"), ("GIF", "P"), ("WEBP", "RGB"),
                      ("BMP", "L"), ("TIFF", "CMYK"), ("JPEG", "CMYK")):
        buffer = io.BytesIO()
        image = pixels.convert("L").convert(mode) if mode == "I;16" else pixels.convert(mode)
        image.save(buffer, format=fmt)
        seeds.append(buffer.getvalue())
    return seeds


SEEDS = _seed_images()


def _check(data: bytes) -> None:
    try:
        image, info = open_image(data, max_pixels=4_000_000)
    except ImageDecodeError as exc:
        assert exc.reason
        return
    assert image.mode == "RGB"
    assert image.size[0] > 0 and image.size[1] > 0
    assert info.width * info.height <= 4_000_000


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes(data):
    _check(data)


@FUZZ
@given(
    seed=st.sampled_from(range(len(SEEDS))),
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=12),
    cut=st.one_of(st.none(), st.integers(1, 10_000)),
)
def test_mutated_valid_images(seed, flips, cut):
    data = bytearray(SEEDS[seed])
    for position, value in flips:
        data[position % len(data)] = value
    if cut is not None:
        data = data[: cut % len(data) or 1]
    _check(bytes(data))
