"""Inference: a trained classifier ready for fast batches, and the detect -> crop -> classify pipeline."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image

from maskdet.checkpoint import LoadedModel, load_model, resolve_model
from maskdet.images import ImageInfo, open_image
from maskdet.runtime import configure_threads, cpu_has_fast_bf16
from maskdet.settings import CLASSES

logger = logging.getLogger(__name__)

BF16_MAX_PROB_DIFF = 0.05  # bf16 is used only when it changes no probability by more than this (and no label)


class Classifier:
    """A loaded model plus the fastest numerically faithful way to run it on this machine.

    Thread-safe: the model is never mutated after construction and inference runs under
    ``torch.inference_mode``; several sessions may share one instance.
    """

    def __init__(self, loaded: LoadedModel, precision: str = "auto") -> None:
        if precision not in ("auto", "fp32", "bf16"):
            raise ValueError("precision must be auto, fp32 or bf16")
        configure_threads()
        self.loaded = loaded
        self.input = loaded.input
        self.model = loaded.model.eval()
        self.model.to(memory_format=torch.channels_last)
        self.use_bf16 = False
        if precision == "bf16" or (precision == "auto" and cpu_has_fast_bf16()):
            self.use_bf16 = self._bf16_matches_fp32() or precision == "bf16"
        logger.info("classifier %s ready (%s, %dpx)", loaded.name, self.precision, self.input.size)

    @property
    def name(self) -> str:
        return self.loaded.name

    @property
    def precision(self) -> str:
        return "bf16" if self.use_bf16 else "fp32"

    def _probe_batch(self) -> torch.Tensor:
        """Smooth, image-like random inputs (a fixed seed) used to compare precisions."""
        generator = torch.Generator().manual_seed(0)
        coarse = torch.rand(16, self.input.channels, 8, 8, generator=generator) * 255
        images = torch.nn.functional.interpolate(coarse, size=(self.input.size,) * 2, mode="bilinear")
        return self.input.normalize(images.to(torch.uint8))

    def _bf16_matches_fp32(self) -> bool:
        batch = self._probe_batch()
        reference = self.run(batch, bf16=False)
        reduced = self.run(batch, bf16=True)
        diff = float(np.abs(reference - reduced).max())
        agree = bool((reference.argmax(1) == reduced.argmax(1)).all())
        logger.debug("bf16 vs fp32: max prob diff %.4f, argmax agree %s", diff, agree)
        return agree and diff <= BF16_MAX_PROB_DIFF

    @torch.inference_mode()
    def run(self, inputs: torch.Tensor, bf16: bool | None = None) -> np.ndarray:
        """Class probabilities (N, 2) for normalised inputs."""
        bf16 = self.use_bf16 if bf16 is None else bf16
        inputs = inputs.contiguous(memory_format=torch.channels_last)
        if bf16:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                logits = self.model(inputs)
        else:
            logits = self.model(inputs)
        return torch.softmax(logits.float(), dim=1).numpy()

    def predict_proba(self, images: list[Image.Image]) -> np.ndarray:
        """Probabilities (N, 2) for RGB images (face crops)."""
        if not images:
            return np.zeros((0, len(CLASSES)), dtype=np.float32)
        return self.run(self.input.to_tensor(images))


def load_classifier(name_or_path: str | None = None, precision: str = "auto") -> Classifier:
    """The named model (a folder name in ``models/`` or a path), or the default model."""
    return Classifier(load_model(resolve_model(name_or_path)), precision=precision)


@dataclass(frozen=True)
class FacePrediction:
    """One face: where it is, what the classifier says and how sure the detector was."""

    box: tuple[int, int, int, int]
    label: str
    confidence: float
    face_score: float
    p_with_mask: float

    def to_json(self) -> dict:
        payload = asdict(self)
        payload["box"] = list(self.box)
        payload["confidence"] = round(self.confidence, 4)
        payload["face_score"] = round(self.face_score, 4)
        del payload["p_with_mask"]
        return payload


def label_probabilities(probabilities: np.ndarray) -> list[tuple[str, float]]:
    """(label, confidence) per row of class probabilities."""
    return [(CLASSES[int(row.argmax())], float(row.max())) for row in probabilities]


class FacePipeline:
    """Detect faces, crop each with a margin, classify all crops of an image in one batch."""

    def __init__(self, classifier: Classifier, detector, margin: float = 0.2) -> None:
        self.classifier = classifier
        self.detector = detector
        self.margin = margin

    def predict(self, image: Image.Image | np.ndarray) -> list[FacePrediction]:
        from maskdet.detect import crop_faces

        array = np.asarray(image.convert("RGB")) if isinstance(image, Image.Image) else image
        faces = self.detector.detect(array)
        if not faces:
            return []
        crops = crop_faces(array, faces, margin=self.margin)
        probabilities = self.classifier.predict_proba(crops)
        return [
            FacePrediction(
                box=tuple(int(v) for v in face.box), label=label, confidence=conf,
                face_score=float(face.score), p_with_mask=float(row[1]),
            )
            for face, row, (label, conf) in zip(faces, probabilities, label_probabilities(probabilities), strict=True)
        ]


LABEL_COLOURS_RGB = {"with_mask": (40, 167, 69), "without_mask": (220, 53, 69)}
UNCERTAIN_COLOUR_RGB = (128, 128, 128)


def draw_predictions(
    image: np.ndarray, faces: list[FacePrediction], uncertain_below: float = 0.0
) -> np.ndarray:
    """A copy of an RGB uint8 image with a coloured box and 'label confidence' per face.

    Faces whose confidence is below ``uncertain_below`` are drawn in grey as 'Unsure: label confidence'.
    """
    import cv2

    canvas = np.ascontiguousarray(image).copy()
    thickness = max(2, round(max(canvas.shape[:2]) / 320))
    scale = max(0.5, max(canvas.shape[:2]) / 1000)
    for face in faces:
        x0, y0, x1, y1 = face.box
        uncertain = face.confidence < uncertain_below
        colour = UNCERTAIN_COLOUR_RGB if uncertain else LABEL_COLOURS_RGB[face.label]
        cv2.rectangle(canvas, (x0, y0), (x1, y1), colour, thickness)
        text = f"{'Unsure: ' if uncertain else ''}{'Mask' if face.label == 'with_mask' else 'No mask'} {face.confidence:.0%}"
        (width, height), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, max(1, thickness // 2))
        top = max(0, y0 - height - baseline - 4)
        cv2.rectangle(canvas, (x0, top), (x0 + width + 6, top + height + baseline + 4), colour, -1)
        cv2.putText(canvas, text, (x0 + 3, top + height + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255),
                    max(1, thickness // 2), cv2.LINE_AA)
    return canvas


def build_pipeline(
    model: str | None = None, whole_image: bool = False, detector: str = "centerface", margin: float = 0.2
) -> FacePipeline:
    """The classifier ``model`` (None = the default model) behind a face detector.

    ``whole_image`` skips detection and classifies each full image as one face (for inputs
    that already are face crops). Raises :class:`maskdet.checkpoint.CheckpointError` and
    :class:`maskdet.assets.AssetUnavailableError` when the model or detector cannot be loaded.
    """
    from maskdet.detect import get_detector

    classifier = load_classifier(model)
    return FacePipeline(classifier, get_detector("whole-image" if whole_image else detector), margin=margin)


def predict_file(pipeline: FacePipeline, path: str | Path) -> dict:
    """The ``predict --json`` record of one image file.

    ``{"path", "width", "height", "faces": [FacePrediction.to_json(), ...]}`` with boxes in pixels
    of the upright image (after EXIF orientation). Raises :class:`maskdet.images.ImageDecodeError`
    for a file that is not a usable image.
    """
    image, _info = open_image(path)
    faces = pipeline.predict(image)
    return {"path": str(path), "width": image.width, "height": image.height, "faces": [f.to_json() for f in faces]}


@dataclass(frozen=True)
class PhotoAnalysis:
    """One analysed photo: faces, their crops (as classified) and the annotated image."""

    name: str
    info: ImageInfo  # what the file declared (format, mode, size before EXIF rotation, frames)
    image: np.ndarray  # HxWx3 uint8, upright RGB
    faces: list[FacePrediction]
    crops: list[Image.Image]  # the crop of each face, in the order of ``faces``
    annotated: np.ndarray  # ``image`` with a box and label per face

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])


def analyse_photo(source: str | Path | bytes | BinaryIO, pipeline: FacePipeline, name: str = "") -> PhotoAnalysis:
    """Decode, detect, classify and annotate one photo (path, bytes or file object).

    Raises :class:`maskdet.images.ImageDecodeError` (with a readable ``reason``) when ``source``
    is not a usable image.
    """
    from maskdet.detect import Face, crop_faces

    image, info = open_image(source)
    array = np.asarray(image)
    faces = pipeline.predict(array)
    crops = crop_faces(image, [Face(box=f.box, score=f.face_score) for f in faces], margin=pipeline.margin)
    return PhotoAnalysis(
        name=name or (str(source) if isinstance(source, str | Path) else ""), info=info, image=array,
        faces=faces, crops=crops, annotated=draw_predictions(array, faces),
    )
