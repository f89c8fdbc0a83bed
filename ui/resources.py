"""Models shared by every session: classifiers and face detectors, each loaded once per server.

Loading a classifier verifies its weights hash and builds the network; building CenterFace
parses and optimises an ONNX graph. Pages call these on every rerun, and the Webcam page's
frame callback must never load anything, so both are ``st.cache_resource`` singletons.
A classifier's cache key includes its metadata file's modification time, so a model that was
retrained under the same name is reloaded rather than served stale.

NOTE (threading): the cached objects are shared across sessions and threads; ``Predictor``
and the detectors are safe to call concurrently. Different options give separate instances
(the Webcam page asks for a single-threaded CenterFace of its own).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import streamlit as st

from maskdet.zoo.folders import METADATA_FILE, ModelFolder, resolve_model
from maskdet.inference.detector import FaceDetector
from maskdet.inference.detector import get_detector as build_detector
from maskdet.inference.predictor import AUTO_BACKEND, Predictor

logger = logging.getLogger(__name__)


@st.cache_resource(show_spinner="Loading the model…", max_entries=8)
def _classifier(path: str, metadata_mtime_ns: int, _opened: ModelFolder | None) -> Predictor:
    logger.info("loading classifier %s", path)
    opened = _opened if _opened is not None else ModelFolder.at(Path(path))
    return Predictor(opened.load(), backend=AUTO_BACKEND)  # the server lives long: the fastest faithful backend


def get_classifier(model: str | ModelFolder | None = None) -> Predictor:
    """The classifier of ``model``: a folder name in ``models/`` or a path (None = the default model), or a model
    folder the caller opened already.

    Raises :class:`maskdet.zoo.folders.CheckpointError` for a missing or damaged model.
    """
    opened = model if isinstance(model, ModelFolder) else None
    folder = opened.path if opened is not None else resolve_model(model)
    try:
        mtime = (folder / METADATA_FILE).stat().st_mtime_ns
    except OSError:
        mtime = 0  # opening the folder raises the readable CheckpointError
    return _classifier(str(folder), mtime, opened)


@st.cache_resource(show_spinner="Loading the face detector…")
def get_detector(name: str = "centerface", **options: Any) -> FaceDetector:
    """The face detector ``name`` built with ``options`` (see :func:`maskdet.inference.detector.get_detector`).

    Raises ``KeyError`` for an unknown name and :class:`maskdet.zoo.assets.AssetUnavailableError`
    when the detector's model file cannot be obtained.
    """
    return build_detector(name, **options)
