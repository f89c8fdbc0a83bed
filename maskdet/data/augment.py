"""What cameras do to faces, as training augmentations: light, blur, noise, compression, size, colour.

The classifier learnt on clean, frontal, large faces calls dim, blurred, small bare faces
"masked" (issue 19). These transforms put those conditions into training. Each works on one uint8
``(C, H, W)`` image tensor (the engine augments images one at a time before normalising) and keeps
its shape and dtype. torchvision's own transforms are used where it has them (JPEG, Gaussian
blur, noise, colour jitter); what it lacks (motion and defocus blur, low resolution, colour casts,
low light) is a small :class:`torchvision.transforms.v2.Transform` here.

:func:`occlude_mouth` is different: it draws a hand or another object over the mouth of a bare
face. That is a new *labelled* example (a hand is not a mask: the result stays ``without_mask``),
so the crop builder (:mod:`maskdet.training.crops`) makes those images on disk instead of the engine
drawing them on the fly.

:func:`lower_mask` makes a third-class example the way MaskedFace-Net did: it pastes the lower face of a
masked person onto a bare face *below its nose tip* (or on its chin), aligned by the five landmarks
CenterFace gives, so the nose stays bare: a mask worn incorrectly (``incorrect_mask``).

:func:`add_eyewear` draws sunglasses over the eyes, from the same landmarks. A classifier that learnt "an
unoccluded face is bare" calls bare faces in sunglasses masked (ilc-dev's costliest errors); the same glasses on
bare and masked training faces, labels unchanged, are meant to take that cue away (tried, not shipped).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFilter
from torchvision.transforms import v2

__all__ = [
    "ColourCast",
    "DefocusBlur",
    "LowLight",
    "LowResolution",
    "MotionBlur",
    "add_eyewear",
    "camera_corruptions",
    "lower_mask",
    "occlude_mouth",
]


def _uniform(low: float, high: float) -> float:
    return float(torch.empty(1).uniform_(low, high))


def _convolve(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Depthwise convolution of a uint8 (C, H, W) image with a normalised 2-D kernel, edges replicated."""
    channels = image.shape[0]
    pad_y, pad_x = kernel.shape[0] // 2, kernel.shape[1] // 2
    batch = F.pad(image.float()[None], (pad_x, pad_x, pad_y, pad_y), mode="replicate")
    weight = kernel.expand(channels, 1, *kernel.shape)
    out = F.conv2d(batch, weight, groups=channels)[0]
    return out.round_().clamp_(0, 255).to(image.dtype)


class MotionBlur(v2.Transform):
    """A straight streak of ``length`` pixels (a fraction of the image side) at a random angle:
    a moving head or a shaking hand-held camera."""

    def __init__(self, length: tuple[float, float] = (0.03, 0.10)) -> None:
        super().__init__()
        self.length = length

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        return {"length": _uniform(*self.length), "angle": _uniform(0.0, math.pi)}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        side = min(inpt.shape[-2:])
        size = max(3, int(round(params["length"] * side)) | 1)
        centre = size // 2
        steps = torch.linspace(-centre, centre, size * 2)
        xs = (centre + steps * math.cos(params["angle"])).round().long().clamp(0, size - 1)
        ys = (centre + steps * math.sin(params["angle"])).round().long().clamp(0, size - 1)
        kernel = torch.zeros(size, size)
        kernel[ys, xs] = 1.0
        return _convolve(inpt, kernel / kernel.sum())


class DefocusBlur(v2.Transform):
    """A flat disc kernel (an out-of-focus lens), radius a fraction of the image side."""

    def __init__(self, radius: tuple[float, float] = (0.01, 0.035)) -> None:
        super().__init__()
        self.radius = radius

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        return {"radius": _uniform(*self.radius)}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        radius = max(1.0, params["radius"] * min(inpt.shape[-2:]))
        half = int(math.ceil(radius))
        grid = torch.arange(-half, half + 1, dtype=torch.float32)
        kernel = ((grid[None, :] ** 2 + grid[:, None] ** 2) <= radius**2).float()
        return _convolve(inpt, kernel / kernel.sum())


class LowResolution(v2.Transform):
    """Down to a ``side`` of 24-64 pixels and back up: a face far from the camera, cut out and enlarged
    by the pipeline exactly like a small detection."""

    def __init__(self, side: tuple[int, int] = (24, 64)) -> None:
        super().__init__()
        self.side = side

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        return {"side": int(torch.randint(self.side[0], self.side[1] + 1, (1,)))}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        height, width = inpt.shape[-2:]
        side = min(params["side"], height, width)
        small = v2.functional.resize(inpt, [side, side], antialias=True)
        return v2.functional.resize(small, [height, width], antialias=True)


class ColourCast(v2.Transform):
    """Per-channel gains: tungsten, fluorescent and LED light, wrong white balance."""

    def __init__(self, strength: float = 0.25) -> None:
        super().__init__()
        self.strength = strength

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        return {"gains": torch.empty(3).uniform_(1 - self.strength, 1 + self.strength)}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if inpt.shape[0] != 3:
            return inpt
        return (inpt.float() * params["gains"].view(3, 1, 1)).round_().clamp_(0, 255).to(inpt.dtype)


class LowLight(v2.Transform):
    """A dim room: exposure cut to ``exposure`` of normal and a gamma curve (darker shadows or a
    flat, lifted image), then the sensor noise that low light brings."""

    def __init__(self, exposure: tuple[float, float] = (0.2, 0.7), gamma: tuple[float, float] = (0.7, 1.8),
                 noise: tuple[float, float] = (0.01, 0.05)) -> None:
        super().__init__()
        self.exposure, self.gamma, self.noise = exposure, gamma, noise

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        return {"exposure": _uniform(*self.exposure), "gamma": _uniform(*self.gamma), "noise": _uniform(*self.noise)}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        image = (inpt.float() / 255.0).pow_(params["gamma"]).mul_(params["exposure"])
        image += torch.randn_like(image) * params["noise"]
        return (image * 255.0).round_().clamp_(0, 255).to(inpt.dtype)


def camera_corruptions(p: float = 0.35) -> v2.Transform:
    """Camera conditions in the order a camera makes them (light, colour, optics, size, sensor,
    compression), each applied with probability ``p``; on average about two per image."""
    return v2.Compose([
        v2.RandomApply([LowLight()], p=p),
        v2.RandomApply([v2.ColorJitter(brightness=(0.5, 1.4), contrast=(0.6, 1.3))], p=p),
        v2.RandomApply([ColourCast()], p=p),
        v2.RandomApply([v2.RandomChoice([MotionBlur(), DefocusBlur(), v2.GaussianBlur(7, sigma=(0.5, 2.0))])], p=p),
        v2.RandomApply([LowResolution()], p=p),
        v2.RandomApply([v2.ToDtype(torch.float32, scale=True), v2.GaussianNoise(sigma=0.04, clip=True),
                        v2.ToDtype(torch.uint8, scale=True)], p=p / 2),
        v2.RandomApply([v2.JPEG((15, 75))], p=p),
    ])


# ------------------------------------------------------------------------------------------------
# Things over the mouth that are not masks
# ------------------------------------------------------------------------------------------------


def _skin_colour(array: np.ndarray) -> np.ndarray:
    """Median colour of the cheeks and forehead band of a face crop: the colour of this person's hand."""
    height, width = array.shape[:2]
    band = array[int(height * 0.3) : int(height * 0.55), int(width * 0.25) : int(width * 0.75)]
    return np.median(band.reshape(-1, 3), axis=0) if band.size else np.array([180.0, 140.0, 120.0])


def _draw_hand(draw: ImageDraw.ImageDraw, centre: tuple[float, float], width: float, colour: tuple[int, ...],
               rng: np.random.Generator) -> None:
    """A palm and four fingers lying across, the way a hand covers a mouth (fingers spread or not)."""
    cx, cy = centre
    palm_w, palm_h = width * 0.55, width * 0.45
    side = rng.choice([-1.0, 1.0])  # which side the hand comes from
    palm_x = cx + side * width * 0.22
    draw.ellipse([palm_x - palm_w / 2, cy - palm_h / 2, palm_x + palm_w / 2, cy + palm_h / 2], fill=colour)
    finger_len, finger_w = width * rng.uniform(0.55, 0.75), width * rng.uniform(0.09, 0.13)
    spread = rng.uniform(0.0, 0.05) * width
    for index in range(4):
        y = cy - palm_h * 0.45 + index * (finger_w + spread)
        x_root = palm_x
        x_tip = palm_x - side * finger_len * rng.uniform(0.85, 1.0)
        shade = tuple(int(np.clip(c * rng.uniform(0.85, 1.05), 0, 255)) for c in colour)
        draw.line([(x_root, y), (x_tip, y + rng.uniform(-0.04, 0.04) * width)], fill=shade, width=max(1, round(finger_w)))
        draw.ellipse([x_tip - finger_w / 2, y - finger_w / 2, x_tip + finger_w / 2, y + finger_w / 2], fill=shade)


def _draw_object(draw: ImageDraw.ImageDraw, centre: tuple[float, float], width: float, colour: tuple[int, ...],
                 rng: np.random.Generator) -> None:
    """A phone, cup or microphone: smaller than a mask, covering part of the mouth only."""
    cx, cy = centre
    w, h = width * rng.uniform(0.2, 0.4), width * rng.uniform(0.3, 0.6)
    x0, y0 = cx - w / 2 + rng.uniform(-0.2, 0.2) * width, cy - h * rng.uniform(0.2, 0.5)
    draw.rounded_rectangle([x0, y0, x0 + w, y0 + h], radius=w * 0.2, fill=colour)


def occlude_mouth(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """``image`` (a bare face crop) with a hand (mostly) or a small object over the mouth.

    The face is assumed roughly centred, as in detector crops and face-crop data sets: the mouth
    sits at about 70% of the height. The hand takes the face's own skin colour, with shading;
    position, size and angle vary. Returns a new RGB image of the same size.
    """
    rgb = image.convert("RGB")
    array = np.asarray(rgb)
    width, height = rgb.size
    layer = Image.new("RGBA", (width * 2, height * 2), (0, 0, 0, 0))  # drawn at 2x, rotated, then shrunk
    draw = ImageDraw.Draw(layer)
    centre = (width * rng.uniform(0.85, 1.15), height * rng.uniform(1.3, 1.55))
    face_width = width * 2 * rng.uniform(0.5, 0.7)
    if rng.random() < 0.8:
        skin = _skin_colour(array) * rng.uniform(0.8, 1.15) * rng.uniform(0.96, 1.04, size=3)
        _draw_hand(draw, centre, face_width, tuple(int(v) for v in np.clip(skin, 0, 255)) + (255,), rng)
    else:
        colour = rng.integers(0, 256, size=3)
        _draw_object(draw, centre, face_width, tuple(int(v) for v in colour) + (255,), rng)
    layer = layer.rotate(rng.uniform(-25, 25), resample=Image.Resampling.BICUBIC, center=centre)
    layer = layer.filter(ImageFilter.GaussianBlur(radius=max(0.5, width / 120)))
    layer = layer.resize((width, height), Image.Resampling.LANCZOS)
    out = rgb.copy()
    out.paste(layer, (0, 0), layer)
    return out


# ------------------------------------------------------------------------------------------------
# A mask worn below the nose (MaskedFace-Net style)
# ------------------------------------------------------------------------------------------------

Landmarks = np.ndarray
"""Five (x, y) points of one face in its image's pixels: left eye, right eye, nose tip, left and right mouth
corner (CenterFace's order, :class:`maskdet.inference.detector.Face`)."""


_MASK_TOP = 0.45
"""Where a worn mask's upper edge sits: this share of the way from the eyes' height down to the nose tip."""


def _mask_patch(masked: np.ndarray, points: Landmarks) -> tuple[np.ndarray, float, float, float]:
    """The mask of a masked face: from between the eyes and the nose tip (where a mask's upper edge sits) down
    to below the chin, as wide as the cheeks. Returns (RGB patch, its top's y, its centre x, inter-eye distance)
    in ``masked`` pixels; the patch is cut at the image's borders."""
    eyes, nose, mouth = points[:2], points[2], points[3:]
    eye_y, eye_d = float(eyes[:, 1].mean()), float(np.linalg.norm(eyes[1] - eyes[0]))
    top = eye_y + _MASK_TOP * (nose[1] - eye_y)
    bottom = mouth[:, 1].mean() + 1.6 * (mouth[:, 1].mean() - nose[1])
    centre_x = float(mouth[:, 0].mean())
    half_w = 1.25 * eye_d
    h, w = masked.shape[:2]
    x0, x1 = max(0, round(centre_x - half_w)), min(w, round(centre_x + half_w))
    y0, y1 = max(0, round(top)), min(h, round(bottom))
    return masked[y0:y1, x0:x1], float(y0), centre_x - x0, eye_d


def _feathered_alpha(height: int, width: int, feather: float) -> np.ndarray:
    """An opaque rounded shape (a mask's outline: straight top, rounded lower corners) with soft edges, 0..1."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    nx = (xs + 0.5) / width * 2 - 1  # -1..1 across
    ny = (ys + 0.5) / height  # 0 at the top edge, 1 at the bottom
    # Inside when |x| <= 1 above 40% of the height, then an ellipse closing towards the chin.
    lower = np.clip((ny - 0.4) / 0.6, 0, None)
    radius = np.sqrt(nx**2 + lower**2)
    edge = max(feather, 1e-3)
    alpha = np.clip((1 - radius) / edge, 0, 1)
    alpha *= np.clip(ny * height / max(1.0, feather * height), 0, 1)  # soft upper edge, inside the patch only
    return alpha


def _check_landmarks(*points_list: np.ndarray) -> None:
    """ValueError unless every array is five (x, y) points with the eyes apart and the mouth below the nose."""
    for points in points_list:
        if points.shape != (5, 2) or np.linalg.norm(points[1] - points[0]) < 2 or points[3:, 1].mean() <= points[2, 1]:
            raise ValueError("landmarks must be five (x, y) points with the eyes apart and the mouth below the nose")


def _paste_mask(bare: Image.Image, bare_points: Landmarks, masked: Image.Image, masked_points: Landmarks,
                top_of: Callable[[Landmarks], float], feather: float) -> Image.Image:
    """``bare`` with ``masked``'s mask pasted, its upper edge at row ``top_of(bare_points)``, scaled by the ratio
    of the inter-eye distances, centred on ``bare``'s mouth, outline feathered (see :func:`lower_mask`)."""
    bare_rgb, masked_rgb = np.asarray(bare.convert("RGB")), np.asarray(masked.convert("RGB"))
    bare_points, masked_points = np.asarray(bare_points, float), np.asarray(masked_points, float)
    _check_landmarks(bare_points, masked_points)
    patch, _, patch_cx, masked_eye_d = _mask_patch(masked_rgb, masked_points)
    if patch.shape[0] < 2 or patch.shape[1] < 2:
        raise ValueError("the masked face's mask region lies outside its image")
    eyes, mouth = bare_points[:2], bare_points[3:]
    scale = float(np.linalg.norm(eyes[1] - eyes[0])) / masked_eye_d
    new_w, new_h = max(2, round(patch.shape[1] * scale)), max(2, round(patch.shape[0] * scale))
    patch = np.asarray(Image.fromarray(patch).resize((new_w, new_h), Image.Resampling.LANCZOS), dtype=np.float32)
    alpha = _feathered_alpha(new_h, new_w, feather)[..., None]
    top = math.ceil(top_of(bare_points))
    left = round(float(mouth[:, 0].mean()) - patch_cx * scale)
    height, width = bare_rgb.shape[:2]
    # Clip the patch to the image.
    y0, x0 = max(0, top), max(0, left)
    y1, x1 = min(height, top + new_h), min(width, left + new_w)
    out = bare_rgb.astype(np.float32)
    if y1 > y0 and x1 > x0:
        py, px = y0 - top, x0 - left
        region = (slice(py, py + y1 - y0), slice(px, px + x1 - x0))
        a = alpha[region]
        out[y0:y1, x0:x1] = a * patch[region] + (1 - a) * out[y0:y1, x0:x1]
    return Image.fromarray(np.clip(out.round(), 0, 255).astype(np.uint8))


def lower_mask(bare: Image.Image, bare_points: Landmarks, masked: Image.Image, masked_points: Landmarks,
               drop: float = 0.3, feather: float = 0.12) -> Image.Image:
    """``bare`` with ``masked``'s mask pasted so that its upper edge sits ``drop`` of the nose-to-mouth distance
    below ``bare``'s nose tip (0.2-0.6: under the nose over the mouth; >= 1: on the chin, mouth bare too).

    The mask is scaled by the ratio of the two faces' inter-eye distances and centred on ``bare``'s mouth;
    its outline is feathered (``feather`` of the patch's size) so no hard seam marks it. Only pixels lower
    than the nose tip change, by construction: the nose stays visible. Returns a new RGB image of
    ``bare``'s size (the caller labels it ``incorrect_mask``). Landmarks are (5, 2) arrays in each image's
    pixels (:data:`Landmarks`). Raises ValueError when the landmarks are degenerate (eyes on top of each
    other, mouth above the nose).
    """
    def below_nose(points: Landmarks) -> float:
        nose_y = float(points[2, 1])
        return nose_y + drop * float(points[3:, 1].mean() - nose_y) + 1  # strictly below the nose tip

    return _paste_mask(bare, bare_points, masked, masked_points, below_nose, feather)


def proper_mask(bare: Image.Image, bare_points: Landmarks, masked: Image.Image, masked_points: Landmarks,
                feather: float = 0.12) -> Image.Image:
    """``bare`` with ``masked``'s mask pasted at the height it had on ``masked``: its upper edge between the eyes
    and the nose tip, so the nose tip is covered (the caller labels it ``with_mask``).

    The twin of :func:`lower_mask`: the same donor on the same bare face, once here and once low, differ only
    in the mask's position, which is what a model must learn to tell a mask from one worn below the nose.
    Same scaling, feathering, landmarks and errors as :func:`lower_mask`.
    """
    def over_nose(points: Landmarks) -> float:
        eye_y = float(points[:2, 1].mean())
        return eye_y + _MASK_TOP * (float(points[2, 1]) - eye_y)

    return _paste_mask(bare, bare_points, masked, masked_points, over_nose, feather)


# ------------------------------------------------------------------------------------------------
# Sunglasses: an occluded face that is no masked face
# ------------------------------------------------------------------------------------------------

_LENS_TINTS = {"black": (15, 15, 18), "brown": (60, 36, 20), "grey": (50, 55, 60), "green": (40, 60, 35),
               "blue": (30, 50, 90), "mirror": (150, 130, 70)}
_FRAME_COLOURS = ((10, 10, 10), (70, 50, 30), (185, 170, 140), (120, 120, 125))


def _lens_outline(centre_x: float, centre_y: float, width: float, height: float, shape: str, side: float,
                  steps: int = 32) -> list[tuple[float, float]]:
    """A lens as a polygon: an ellipse (round), a squarer superellipse (rect) or a teardrop (aviator, wider at
    the top and dropping towards the nose). ``side`` is -1 for the left lens, +1 for the right one."""
    exponent = {"round": 2.0, "rect": 4.0, "aviator": 2.0}[shape]
    outline = []
    for t in np.linspace(0, 2 * math.pi, steps, endpoint=False):
        c, s = math.cos(t), math.sin(t)
        x = math.copysign(abs(c) ** (2 / exponent), c) * width / 2
        y = math.copysign(abs(s) ** (2 / exponent), s) * height / 2
        if shape == "aviator" and s > 0:  # lower half: deeper on the nose's side
            y *= 1.0 + 0.35 * max(0.0, -c * side)
        outline.append((centre_x + x, centre_y + y))
    return outline


def add_eyewear(image: Image.Image, points: Landmarks, rng: np.random.Generator) -> Image.Image:
    """``image`` with sunglasses drawn over the eyes of the face whose five landmarks are ``points``.

    Lens shape (round, rectangular, aviator), size (0.75-0.95 of the inter-eye distance each), tint (dark
    colours mostly, some mirrored), opacity (mostly opaque, the eyes show faintly through some), frame colour and
    thickness vary; the glasses follow the eye line's tilt and carry a faint reflection. Drawn at 4x and shrunk,
    then blurred to the crop's sharpness. Only the band around the eyes changes: the mouth and what covers it are
    untouched, so the caller keeps the face's label. Returns a new RGB image of ``image``'s size; raises
    ValueError for degenerate landmarks (as :func:`lower_mask`).
    """
    points = np.asarray(points, float)
    _check_landmarks(points)
    rgb = image.convert("RGB")
    width, height = rgb.size
    scale = 4
    left_eye, right_eye = points[0] * scale, points[1] * scale
    eye_distance = float(np.linalg.norm(right_eye - left_eye))
    tilt = math.degrees(math.atan2(right_eye[1] - left_eye[1], right_eye[0] - left_eye[0]))
    centre_x, centre_y = (left_eye + right_eye) / 2
    centre_y += rng.uniform(-0.03, 0.1) * eye_distance  # glasses sit on the nose, a little below the pupils
    lens_w = eye_distance * rng.uniform(0.75, 0.95)
    lens_h = lens_w * rng.uniform(0.6, 0.85)
    shape = str(rng.choice(["round", "rect", "aviator"]))
    tint = _LENS_TINTS[str(rng.choice(list(_LENS_TINTS), p=[0.35, 0.2, 0.15, 0.1, 0.1, 0.1]))]
    lens = tuple(int(np.clip(c * rng.uniform(0.75, 1.25), 0, 255)) for c in tint) + (int(rng.uniform(200, 250)),)
    frame = _FRAME_COLOURS[int(rng.integers(len(_FRAME_COLOURS)))] + (255,)
    frame_w = max(1, round(eye_distance * rng.uniform(0.02, 0.06)))

    layer = Image.new("RGBA", (width * scale, height * scale), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    for side in (-1.0, 1.0):
        lens_x = centre_x + side * eye_distance / 2
        outline = _lens_outline(lens_x, centre_y, lens_w, lens_h, shape, side)
        draw.polygon(outline, fill=lens, outline=frame, width=frame_w)
        glint_x, glint_y = lens_x - 0.2 * lens_w, centre_y - 0.22 * lens_h
        draw.ellipse([glint_x - 0.15 * lens_w, glint_y - 0.06 * lens_h, glint_x + 0.15 * lens_w, glint_y + 0.06 * lens_h],
                     fill=(255, 255, 255, int(rng.uniform(10, 45))))
        temple_x = lens_x + side * lens_w / 2
        draw.line([(temple_x, centre_y - 0.3 * lens_h), (temple_x + side * 0.45 * eye_distance, centre_y - 0.38 * lens_h)],
                  fill=frame, width=frame_w)
    bridge_y = centre_y - 0.25 * lens_h
    draw.line([(centre_x - eye_distance / 2 + lens_w / 2, bridge_y), (centre_x + eye_distance / 2 - lens_w / 2, bridge_y)],
              fill=frame, width=frame_w)
    layer = layer.rotate(-tilt, resample=Image.Resampling.BICUBIC, center=(centre_x, centre_y))
    layer = layer.resize((width, height), Image.Resampling.LANCZOS)
    layer = layer.filter(ImageFilter.GaussianBlur(radius=max(0.3, width / 300)))
    out = rgb.copy()
    out.paste(layer, (0, 0), layer)
    return out
