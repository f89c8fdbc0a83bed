"""maskdet: face-mask detection studio (data, model zoo, training, evaluation, detection, explanations).

The folders are the architecture; each package may import only the packages below it (the import-linter
contracts in ``pyproject.toml`` enforce this, and the library never imports Streamlit):

- ``cli``, ``bench``: the command line and the product's speed figures (top);
- :mod:`maskdet.jobs`: long work in a process of its own (training, evaluations, video, batch scoring);
- :mod:`maskdet.batch`, :mod:`maskdet.video`, :mod:`maskdet.export`: photo archives, video clips, ONNX folders;
- :mod:`maskdet.training`: the training loop and the crop sets it trains on;
- :mod:`maskdet.evaluation`: metrics, calibration, folder and scene evaluations, comparisons, leakage checks;
- :mod:`maskdet.inference`: detector, predictor, pipeline, the face record, drawing, live streams, explanations;
- :mod:`maskdet.zoo`: architectures, trained model folders and their cards, probes, downloaded assets, the
  decision rule;
- :mod:`maskdet.data`: files, images, data sets, archives, splits, audits, augmentation, boxed-photo annotations;
- ``settings``, ``store``, ``runtime``, ``sharing``: configuration, atomic files, torch's process-wide set-up and
  the server's exposure (bottom; they import nothing of maskdet but ``settings``).
"""

__version__ = "0.1.0"
