"""Inference: from pixels to labelled faces.

- :mod:`maskdet.inference.detector`: face detectors (CenterFace via onnxruntime, whole-image);
- :mod:`maskdet.inference.predictor`: a trained classifier served by a backend (eager, compiled, onnxruntime);
- :mod:`maskdet.inference.faces`: the face record every consumer takes;
- :mod:`maskdet.inference.pipeline`: detect -> crop -> classify, and the ``predict --json`` records;
- :mod:`maskdet.inference.photo`: one photo analysed for a page;
- :mod:`maskdet.inference.drawing`: annotated images;
- :mod:`maskdet.inference.live`: the webcam's frame processing;
- :mod:`maskdet.inference.explain`: Integrated Gradients and other attributions.

May import: :mod:`maskdet.zoo`, :mod:`maskdet.data`, ``maskdet.settings``, ``maskdet.store``, ``maskdet.runtime``.
"""
