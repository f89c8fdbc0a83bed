"""Data: files on disk and what they hold, before any model is involved.

- :mod:`maskdet.data.files`: walking folders safely (odd entries skipped and reported);
- :mod:`maskdet.data.images`: decoding any image Pillow reads, with limits and clear errors;
- :mod:`maskdet.data.datasets`: class-folder data sets, their catalogues and manifests;
- :mod:`maskdet.data.archive`: uploaded ``.zip`` data sets, extracted with entry checks and budgets;
- :mod:`maskdet.data.split`: near-duplicate groups and the duplicate-aware train / val / test split;
- :mod:`maskdet.data.audit`: what a data set holds (classes, sizes, formats, duplicates, conflicts);
- :mod:`maskdet.data.augment`: camera corruptions and occlusions for training;
- :mod:`maskdet.data.annotations`: photos with boxed faces (Pascal VOC or YOLO).

May import: ``maskdet.settings``, ``maskdet.store``.
"""
