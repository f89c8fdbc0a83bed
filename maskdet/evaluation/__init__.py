"""Evaluation: how good a model is, measured honestly.

- :mod:`maskdet.evaluation.metrics`: classification metrics, curves, calibration figures;
- :mod:`maskdet.evaluation.calibration`: temperature scaling and the expected calibration error;
- :mod:`maskdet.evaluation.folder`: a model scored on a folder of face images (or its own test split);
- :mod:`maskdet.evaluation.summary`: :class:`ModelSummary`, what the comparison reads from a model's card;
- :mod:`maskdet.evaluation.compare`: the tables that put several models side by side;
- :mod:`maskdet.evaluation.latency`: CPU time per face, as the product serves the model;
- :mod:`maskdet.evaluation.unseen`: a model scored on another data-set folder, cached on disk;
- :mod:`maskdet.evaluation.errors`: a model's mistakes at a threshold, and which errors models share;
- :mod:`maskdet.evaluation.leakage`: whether a folder overlaps a model's training data;
- :mod:`maskdet.evaluation.scenes`: detector and classifier together on photos with boxed faces.

May import: :mod:`maskdet.inference`, :mod:`maskdet.zoo`, :mod:`maskdet.data` and the bottom modules.
"""
