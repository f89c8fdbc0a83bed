"""Take a trained model out of maskdet: a folder that runs the whole pipeline with onnxruntime alone.

:func:`export_model` writes ``DIR/classifier.onnx``, ``DIR/detector.onnx`` and ``DIR/metadata.json``
(checked against PyTorch on real face crops before anything is written); :class:`OnnxClassifier`
loads such a folder back as a classifier backend with the same ``predict_proba``/``run`` interface
as :class:`maskdet.classifier.Classifier`.
"""

from maskdet.export.onnx_backend import OnnxClassifier, load_exported_pipeline
from maskdet.export.onnx_export import EXPORT_FORMATS, ExportError, ExportReport, export_model

__all__ = ["EXPORT_FORMATS", "ExportError", "ExportReport", "OnnxClassifier", "export_model", "load_exported_pipeline"]
