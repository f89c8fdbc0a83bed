"""Take a trained model out of maskdet: a folder that runs the whole pipeline with onnxruntime alone.

:func:`export_model` writes ``DIR/classifier.onnx``, ``DIR/detector.onnx`` and ``DIR/metadata.json``
(checked against PyTorch on real face crops before anything is written); :class:`OnnxClassifier`
loads such a folder back as a classifier backend with the same ``predict_proba``/``run`` interface
as :class:`maskdet.inference.predictor.Predictor`, and :class:`OnnxRuntimeBackend` plugs it into the Predictor's
backend registry (``load_classifier(name, backend="onnxruntime")``).

May import: :mod:`maskdet.training`, :mod:`maskdet.evaluation`, :mod:`maskdet.inference`, :mod:`maskdet.zoo`,
:mod:`maskdet.data` and the bottom modules.
"""

from maskdet.inference.predictor import register_backend
from maskdet.export.onnx_backend import OnnxClassifier, OnnxRuntimeBackend, load_exported_pipeline
from maskdet.export.onnx_export import EXPORT_FORMATS, ExportError, ExportReport, export_model

register_backend("onnxruntime", OnnxRuntimeBackend)  # Predictor(loaded, backend="onnxruntime")

__all__ = ["EXPORT_FORMATS", "ExportError", "ExportReport", "OnnxClassifier", "export_model", "load_exported_pipeline"]
