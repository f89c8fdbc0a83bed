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
from typing import Any

import streamlit as st

from maskdet.zoo.folders import METADATA_FILE, resolve_model
from maskdet.inference.detector import FaceDetector
from maskdet.inference.detector import get_detector as build_detector
from maskdet.inference.predictor import AUTO_BACKEND, Predictor, load_classifier

logger = logging.getLogger(__name__)


@st.cache_resource(show_spinner="Loading the model…", max_entries=8)
def _classifier(path: str, metadata_mtime_ns: int) -> Predictor:
    logger.info("loading classifier %s", path)
    return load_classifier(path, backend=AUTO_BACKEND)  # the server lives long: the fastest faithful backend


def get_classifier(name: str | None = None) -> Predictor:
    """The classifier named ``name`` (a folder in ``models/`` or a path; None = the default model).

    Raises :class:`maskdet.zoo.folders.CheckpointError` for a missing or damaged model.
    """
    folder = resolve_model(name)
    try:
        mtime = (folder / METADATA_FILE).stat().st_mtime_ns
    except OSError:
        mtime = 0  # load_classifier raises the readable CheckpointError
    return _classifier(str(folder), mtime)


@st.cache_resource(show_spinner="Loading the face detector…")
def get_detector(name: str = "centerface", **options: Any) -> FaceDetector:
    """The face detector ``name`` built with ``options`` (see :func:`maskdet.inference.detector.get_detector`).

    Raises ``KeyError`` for an unknown name and :class:`maskdet.zoo.assets.AssetUnavailableError`
    when the detector's model file cannot be obtained.
    """
    return build_detector(name, **options)
