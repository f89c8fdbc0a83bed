"""Training: crop sets cut by the product's detector, and the loop that trains a model folder.

- :mod:`maskdet.training.crops`: ``cut-crops``, face crops of boxed photos, split per photo;
- :mod:`maskdet.training.derived`: crop sets derived from one (files linked in, some relabelled, some made);
- :mod:`maskdet.training.synthetic`: made train faces (masks worn low, sunglasses) for a derived set;
- :mod:`maskdet.training.loop`: data loading, feature caching, epochs, calibration, saving.

May import: :mod:`maskdet.evaluation`, :mod:`maskdet.inference`, :mod:`maskdet.zoo`, :mod:`maskdet.data` and the
bottom modules.
"""
