"""The detect -> crop -> classify pipeline, and the records it produces for files and photos."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

from maskdet.classifier import Classifier, load_classifier
from maskdet.drawing import draw_predictions, encode_jpeg
from maskdet.images import ImageInfo, open_image
from maskdet.metrics import THRESHOLD, predicted_labels
from maskdet.settings import CLASSES
from maskdet.zoo import InputConfig

logger = logging.getLogger(__name__)

DEFAULT_MARGIN = 0.2  # context around each detected face, per side, as a fraction of its size


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


def label_probabilities(probabilities: np.ndarray, threshold: float = THRESHOLD) -> list[tuple[str, float]]:
    """(label, confidence) per row of class probabilities, at the operating ``threshold`` on p(with_mask).

    The label follows :func:`maskdet.metrics.predicted_labels` (the rule the metrics count with); the
    confidence is the probability of that label, so below 0.5 when the threshold overrules the argmax.
    """
    probabilities = np.asarray(probabilities).reshape(-1, len(CLASSES))
    labels = predicted_labels(probabilities[:, 1], threshold)
    return [(CLASSES[int(label)], float(row[int(label)])) for row, label in zip(probabilities, labels, strict=True)]


class FacePipeline:
    """Detect faces, crop each with a margin, classify all crops of an image in one batch.

    Faces are labelled at the classifier's operating threshold (its model card's, default 0.5).
    """

    def __init__(self, classifier: Classifier, detector, margin: float = DEFAULT_MARGIN) -> None:
        self.classifier = classifier
        self.detector = detector
        self.margin = margin

    def predict(self, image: Image.Image | np.ndarray) -> list[FacePrediction]:
        return self.predict_many([image])[0]

    def predict_many(self, images: list[Image.Image | np.ndarray]) -> list[list[FacePrediction]]:
        """The faces of each image; the crops of all images are classified in one batch (throughput)."""
        from maskdet.detect import crop_faces

        arrays = [np.asarray(image.convert("RGB")) if isinstance(image, Image.Image) else image for image in images]
        faces_per_image = [self.detector.detect(array) for array in arrays]
        crops = [crop for array, faces in zip(arrays, faces_per_image, strict=True) if faces
                 for crop in crop_faces(array, faces, margin=self.margin)]
        if not crops:
            return [[] for _ in arrays]
        probabilities = self.classifier.predict_proba(crops)
        labels = label_probabilities(probabilities, self.classifier.threshold)
        results: list[list[FacePrediction]] = []
        index = 0
        for faces in faces_per_image:
            results.append([
                FacePrediction(
                    box=tuple(int(v) for v in face.box), label=labels[index + k][0], confidence=labels[index + k][1],
                    face_score=float(face.score), p_with_mask=float(probabilities[index + k][1]),
                )
                for k, face in enumerate(faces)
            ])
            index += len(faces)
        return results


def build_pipeline(
    model: str | None = None, whole_image: bool = False, detector: str = "centerface", margin: float = DEFAULT_MARGIN,
    detector_options: dict | None = None,
) -> FacePipeline:
    """The classifier ``model`` (None = the default model) behind a face detector.

    ``whole_image`` skips detection and classifies each full image as one face (for inputs
    that already are face crops); ``detector_options`` go to the detector (e.g. ``threads``). Raises :class:`maskdet.checkpoint.CheckpointError` and
    :class:`maskdet.assets.AssetUnavailableError` when the model or detector cannot be loaded.
    """
    from maskdet.detect import get_detector

    classifier = load_classifier(model)
    face_detector = get_detector("whole-image") if whole_image else get_detector(detector, **(detector_options or {}))
    return FacePipeline(classifier, face_detector, margin=margin)


def predict_file(pipeline: FacePipeline, path: str | Path) -> dict:
    """The ``predict --json`` record of one image file.

    ``{"path", "width", "height", "faces": [FacePrediction.to_json(), ...]}`` with boxes in pixels
    of the upright image (after EXIF orientation). Raises :class:`maskdet.images.ImageDecodeError`
    for a file that is not a usable image.
    """
    image, _info = open_image(path)
    return image_record(path, image, pipeline.predict(image))


def image_record(path: str | Path, image: Image.Image, faces: list[FacePrediction]) -> dict:
    """``{"path", "width", "height", "faces"}``: the record ``predict --json`` prints for one image."""
    return {"path": str(path), "width": image.width, "height": image.height, "faces": [f.to_json() for f in faces]}


def error_record(path: str | Path, reason: str) -> dict:
    """``{"path", "error"}``: the record of a file that could not be scored, and why."""
    return {"path": str(path), "error": reason}


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


DISPLAY_MAX_SIDE = 1600  # a page column is narrower; the download keeps the full size
DOWNLOAD_QUALITY = 92


@dataclass(frozen=True)
class PhotoResult:
    """What a page keeps of one analysed photo: no full-resolution arrays, the images already encoded once."""

    info: ImageInfo
    width: int
    height: int
    faces: list[FacePrediction]
    crops: list[Image.Image]  # each face as the model sees it (its input size): what explanations start from
    shown: bytes  # the annotated photo as JPEG, longer side at most DISPLAY_MAX_SIDE
    download: bytes  # the annotated photo as full-size JPEG


def compact_photo(analysis: PhotoAnalysis, config: InputConfig) -> PhotoResult:
    """The :class:`PhotoResult` of ``analysis`` for a model fed by ``config``."""
    return PhotoResult(
        info=analysis.info, width=analysis.width, height=analysis.height, faces=analysis.faces,
        crops=[Image.fromarray(config.to_uint8(crop).squeeze(axis=2) if config.channels == 1 else config.to_uint8(crop))
               for crop in analysis.crops],
        shown=encode_jpeg(analysis.annotated, max_side=DISPLAY_MAX_SIDE),
        download=encode_jpeg(analysis.annotated, quality=DOWNLOAD_QUALITY),
    )
