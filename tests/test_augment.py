"""Camera corruptions keep the image a uint8 image of the same shape and really change it; the
mouth occluder covers the mouth, not the eyes; the robust flag puts the corruptions into training."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from maskdet.data.augment import ColourCast, DefocusBlur, LowLight, LowResolution, MotionBlur, camera_corruptions, occlude_mouth
from maskdet.training.loop import build_augmentation
from maskdet.data.images import load_rgb
from maskdet.zoo.architectures import get_spec

from datasets_helpers import real_jpegs


@pytest.fixture(scope="module")
def face(datasets_root) -> Image.Image:
    return load_rgb(real_jpegs(datasets_root, "without_mask", 1)[0]).resize((160, 160))


@pytest.fixture
def face_tensor(face) -> torch.Tensor:
    return torch.from_numpy(np.asarray(face).copy()).permute(2, 0, 1).contiguous()


CORRUPTIONS = [MotionBlur(), DefocusBlur(), LowResolution(), ColourCast(), LowLight(), camera_corruptions(p=1.0)]


@pytest.mark.parametrize("transform", CORRUPTIONS, ids=lambda t: type(t).__name__)
def test_corruptions_keep_shape_and_dtype_and_change_pixels(transform, face_tensor):
    torch.manual_seed(0)
    out = transform(face_tensor)
    assert out.shape == face_tensor.shape and out.dtype == torch.uint8
    assert (out.int() - face_tensor.int()).abs().float().mean() > 1.0


def test_blurs_remove_detail_and_low_light_darkens(face_tensor):
    torch.manual_seed(0)

    def detail(image: torch.Tensor) -> float:  # mean absolute horizontal gradient
        return float((image[:, :, 1:].int() - image[:, :, :-1].int()).abs().float().mean())

    for blur in (MotionBlur(length=(0.08, 0.08)), DefocusBlur(radius=(0.03, 0.03)), LowResolution(side=(24, 24))):
        assert detail(blur(face_tensor)) < 0.7 * detail(face_tensor), type(blur).__name__
    dim = LowLight(exposure=(0.3, 0.3), gamma=(1.0, 1.0), noise=(0.0, 0.0))(face_tensor)
    assert dim.float().mean() == pytest.approx(0.3 * face_tensor.float().mean(), rel=0.05)


def test_robust_augmentation_is_the_plain_one_plus_corruptions():
    config = get_spec("mobilenet_v2").input_config(96)
    plain, robust = build_augmentation(config), build_augmentation(config, robust=True)
    assert len(robust.transforms) == len(plain.transforms) + 1
    assert isinstance(robust.transforms[-1], v2.Compose)
    image = torch.randint(0, 256, (3, 120, 120), dtype=torch.uint8)
    assert robust(image).shape == (3, 96, 96) and robust(image).dtype == torch.uint8


def test_occluder_covers_the_mouth_and_leaves_the_eyes(face):
    changed_rows = []
    for seed in range(8):
        out = occlude_mouth(face, np.random.default_rng(seed))
        assert out.size == face.size and out.mode == "RGB"
        diff = np.abs(np.asarray(out, dtype=np.int16) - np.asarray(face, dtype=np.int16)).sum(axis=2)
        assert diff[: face.height // 4].max() == 0  # forehead and eyes untouched
        changed_rows.append(np.nonzero(diff.max(axis=1) > 30)[0])
    # Every occluder lies over the lower half of the face, where the mouth is.
    assert all(len(rows) > 10 and np.median(rows) > face.height * 0.5 for rows in changed_rows)
