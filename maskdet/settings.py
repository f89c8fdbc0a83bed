"""Where maskdet finds data sets, trained models and downloaded assets.

Every location can be overridden with an environment variable so that tests,
benchmarks and deployments never need to edit code:

- ``MASKDET_DATA_ROOT``: folder whose sub-folders are data sets
  (default: ``../shared/datasets`` next to the repository).
- ``MASKDET_MODELS_DIR``: trained checkpoints (default: ``<repo>/models``).
- ``MASKDET_CACHE_DIR``: downloaded weights, detector files and analysis caches
  (default: ``~/.cache/maskdet``); uploaded data-set archives are extracted to its ``uploads/``.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

CLASSES: tuple[str, str] = ("without_mask", "with_mask")
"""Canonical class names, indexed by label; ``with_mask`` (1) is the positive class."""
POSITIVE_CLASS = "with_mask"


def data_root() -> Path:
    """Folder holding the data sets (one sub-folder per data set)."""
    return Path(os.environ.get("MASKDET_DATA_ROOT", REPO_ROOT.parent / "shared" / "datasets"))


def models_dir() -> Path:
    """Folder holding trained models (one sub-folder per model)."""
    return Path(os.environ.get("MASKDET_MODELS_DIR", REPO_ROOT / "models"))


def cache_dir() -> Path:
    """Folder for downloaded assets and analysis caches; created on demand."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "maskdet"
    path = Path(os.environ.get("MASKDET_CACHE_DIR", default))
    path.mkdir(parents=True, exist_ok=True)
    return path


def uploads_dir() -> Path:
    """Folder uploaded data-set archives are extracted to (``cache_dir()/uploads``); not created here."""
    return cache_dir() / "uploads"
