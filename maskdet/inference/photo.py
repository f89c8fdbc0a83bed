"""One photo analysed for a page: faces, crops and the annotated image, and the compact form a page keeps."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

from maskdet.data.images import ImageInfo, open_image
from maskdet.inference.drawing import draw_predictions, encode_jpeg
from maskdet.inference.faces import FacePrediction
from maskdet.inference.pipeline import FacePipeline
from maskdet.zoo.architectures import InputConfig


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

    Raises :class:`maskdet.data.images.ImageDecodeError` (with a readable ``reason``) when ``source``
    is not a usable image.
    """
    from maskdet.inference.detector import Face, crop_faces

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
