"""Evaluation: how good a model is, measured honestly.

- :mod:`maskdet.evaluation.metrics`: classification metrics, curves, calibration figures;
- :mod:`maskdet.evaluation.calibration`: temperature scaling and the expected calibration error;
- :mod:`maskdet.evaluation.folder`: a model scored on a folder of face images (or its own test split);
- :mod:`maskdet.evaluation.compare`: several models side by side, with cached evaluations;
- :mod:`maskdet.evaluation.leakage`: whether a folder overlaps a model's training data;
- :mod:`maskdet.evaluation.scenes`: detector and classifier together on photos with boxed faces.

May import: :mod:`maskdet.inference`, :mod:`maskdet.zoo`, :mod:`maskdet.data` and the bottom modules.
"""
