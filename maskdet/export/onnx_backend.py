"""An exported folder loaded back: the classifier run by onnxruntime, and the whole pipeline on top of it.

:class:`OnnxClassifier` has the interface :class:`maskdet.inference.predictor.Predictor` offers its callers
(``predict_proba(images)``, ``run(normalised)``, ``input``, ``name``, ``metadata``), so it can stand in
for it wherever faces are classified (a backend registry can register it under ``"onnx"``); it reads
nothing but the folder. :func:`load_exported_pipeline` adds the folder's CenterFace detector with the
settings in its card.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
from PIL import Image

from maskdet.zoo.decision import THRESHOLD
from maskdet.zoo.architectures import InputConfig

logger = logging.getLogger(__name__)


class ExportedModelError(ValueError):
    """A folder is not a maskdet ONNX export (or is damaged)."""


def read_export_card(folder: str | Path) -> dict:
    """The metadata.json of an exported folder, checked for the fields a runtime needs."""
    from maskdet.export.onnx_export import FORMAT, METADATA_FILE

    path = Path(folder) / METADATA_FILE
    try:
        card = json.loads(path.read_text())
        if card.get("format") != FORMAT:
            raise ExportedModelError(f"{folder} is not a maskdet ONNX export (format {card.get('format')!r})")
        InputConfig.from_json(card["input"])
        for section in ("classifier", "detector"):
            if not (Path(folder) / card[section]["file"]).is_file():
                raise ExportedModelError(f"{folder}: {card[section]['file']} is missing")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, ExportedModelError):
            raise
        raise ExportedModelError(f"{folder} is not a readable maskdet ONNX export ({exc})") from exc
    return card


class OnnxClassifier:
    """The classifier of an exported folder, run by onnxruntime (fp32, CPU).

    Thread-safe: onnxruntime sessions may be run from several threads at once.
    """

    precision = "fp32"

    def __init__(self, folder: str | Path, threads: int = 0) -> None:
        from maskdet.export.onnx_export import onnx_session

        self.folder = Path(folder)
        self.metadata = read_export_card(self.folder)
        self.input = InputConfig.from_json(self.metadata["input"])
        self.classes = tuple(self.metadata["classes"])
        # The pipeline labels faces at this p(with_mask), as for the PyTorch Predictor (the card copies the model's).
        self.threshold = float(self.metadata.get("operating_threshold", THRESHOLD))
        graph = self.metadata["classifier"]
        self._input_name, self._output_name = graph["input_name"], graph["output_name"]
        self._session = onnx_session(self.folder / graph["file"], threads=threads)
        self._mean = np.asarray(self.input.mean, dtype=np.float32).reshape(1, -1, 1, 1)
        self._std = np.asarray(self.input.std, dtype=np.float32).reshape(1, -1, 1, 1)
        logger.info("ONNX classifier %s loaded from %s", self.name, self.folder)

    @property
    def name(self) -> str:
        return str(self.metadata["name"])

    def normalise(self, images: list[Image.Image]) -> np.ndarray:
        """RGB images -> the float32 NCHW batch the graph takes (the same resize as the PyTorch classifier)."""
        batch = np.stack([self.input.to_uint8(image) for image in images]).transpose(0, 3, 1, 2)
        return (batch.astype(np.float32) / 255.0 - self._mean) / self._std

    def run(self, inputs) -> np.ndarray:
        """Class probabilities (N, classes) for a normalised batch (numpy array or torch tensor)."""
        array = np.ascontiguousarray(np.asarray(inputs, dtype=np.float32))
        return self._session.run([self._output_name], {self._input_name: array})[0]

    def predict_proba(self, images: list[Image.Image]) -> np.ndarray:
        """Probabilities (N, classes) for RGB images (face crops)."""
        if not images:
            return np.zeros((0, len(self.classes)), dtype=np.float32)
        return self.run(self.normalise(images))


def load_exported_pipeline(folder: str | Path):
    """A :class:`maskdet.inference.pipeline.FacePipeline` running only the folder's two ONNX graphs, as its card says."""
    from maskdet.inference.detector import CenterFaceDetector
    from maskdet.inference.pipeline import FacePipeline

    classifier = OnnxClassifier(folder)
    detector = classifier.metadata["detector"]
    return FacePipeline(
        classifier,  # type: ignore[arg-type] - the same interface as Predictor
        CenterFaceDetector(model_path=Path(folder) / detector["file"], threshold=detector["threshold"],
                           nms_iou=detector["nms_iou"], input_long_side=detector["input"]["resize_long_side_to"],
                           # cards written before these keys existed describe one pass without a border
                           pad=detector["input"].get("border_fraction", 0.0),
                           upscale=detector["input"].get("upscale", True),
                           extra_long_sides=tuple(detector["input"].get("extra_long_sides", ())),
                           zoom_below=detector["input"].get("zoom_below"),
                           extra_max_zoom=detector["input"].get("extra_max_zoom"),
                           extra_max_face=detector["input"].get("extra_max_face")),
        margin=detector["crop_margin"],
    )


class OnnxRuntimeBackend:
    """The ``onnxruntime`` backend of :class:`maskdet.inference.predictor.Predictor` (registered by :mod:`maskdet.export`).

    The model is exported once per weights into the cache (``CACHE/onnx/<weights sha256>``, checked against
    PyTorch by the export itself) and run by onnxruntime in fp32; ``Predictor`` keeps the preprocessing.
    """

    name = "onnxruntime"

    def __init__(self, loaded, dtype) -> None:  # noqa: ANN001 - the BackendFactory signature
        import torch

        from maskdet.export.onnx_export import METADATA_FILE, ExportError, export_model
        from maskdet.runtime import configure_threads
        from maskdet.settings import cache_dir

        if dtype != torch.float32:
            raise ValueError("the onnxruntime backend computes in fp32 only")
        folder = cache_dir() / "onnx" / str(loaded.metadata["weights"]["sha256"])[:32]
        if not (folder / METADATA_FILE).is_file():
            try:  # staged and renamed into place: another process sees the whole folder or none
                export_model(loaded.folder, folder, force=folder.exists())  # a damaged folder is replaced
            except ExportError:
                if not (folder / METADATA_FILE).is_file():  # else another process exported it meanwhile
                    raise
        self.classifier = OnnxClassifier(folder, threads=configure_threads())  # the process's count, as torch's

    def run(self, inputs) -> np.ndarray:  # noqa: ANN001 - a torch tensor or numpy array
        return self.classifier.run(inputs)
