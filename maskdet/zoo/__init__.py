"""The model zoo: architectures, and the trained model folders built from them.

- :mod:`maskdet.zoo.architectures`: the architecture registry (MLP, small CNN, MobileNetV2, DenseNet121) and
  their input configurations;
- :mod:`maskdet.zoo.folders`: trained model folders (``models/NAME``): resolving, reading, checking, saving;
- :mod:`maskdet.zoo.card`: the model card schema (``metadata.json``);
- :mod:`maskdet.zoo.probe`: the stored validation crops that decide a model's serving precision;
- :mod:`maskdet.zoo.assets`: verified downloads (pretrained weights, the face detector graph);
- :mod:`maskdet.zoo.decision`: the one decision rule from class probabilities to a label.

May import: :mod:`maskdet.data`, ``maskdet.settings``, ``maskdet.store``, ``maskdet.runtime``.
"""
