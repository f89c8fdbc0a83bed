"""``list_trained_models``: the trained-model list every page shows, cached yet never stale.

Listing reads every ``models/*/metadata.json``; pages call it on each rerun, so it is
cached. The cache key includes a cheap signature of the models folder (its own
modification time, which every atomic save, replacement or deletion of a model folder
changes, plus the default-model pointer's), so a model finished by a training job shows
up on every page at once. :func:`invalidate_models` drops the cache explicitly.

Folders that are not usable models (metadata failing the schema, weights that are a link out
of the folder or a device...) are never offered; :func:`show_broken_models` names each with
its reason, one line per folder.
"""

from __future__ import annotations

import logging
from pathlib import Path

import streamlit as st

from maskdet.zoo.folders import DEFAULT_POINTER, BrokenModel, default_model_name, recover_interrupted_saves, scan_models
from maskdet.inference.drawing import BOX_TEXT
from maskdet.settings import POSITIVE_CLASS, models_dir
from maskdet.zoo.decision import THRESHOLD
from ui.markup import code, plain

logger = logging.getLogger(__name__)

MODELS_TTL_S = 60  # a safety net for changes the signature cannot see (a metadata.json edited in place)


def _signature(folder: Path) -> tuple[int, int]:
    """(folder mtime, default pointer mtime) in ns; 0 for what does not exist."""

    def mtime(path: Path) -> int:
        try:
            return path.stat().st_mtime_ns
        except OSError:
            return 0

    return mtime(folder), mtime(folder / DEFAULT_POINTER)


@st.cache_resource(show_spinner=False)
def _recover_once(folder: str) -> bool:
    recover_interrupted_saves(Path(folder))
    return True


def recover_models_once() -> None:
    """Recovery of an interrupted save, once per server process and models folder (listing never moves folders)."""
    _recover_once(str(models_dir()))


@st.cache_data(ttl=MODELS_TTL_S, show_spinner=False)
def _scan_models(folder: str, signature: tuple[int, int]) -> tuple[list[dict], list[BrokenModel]]:
    return scan_models(Path(folder))


def _scan() -> tuple[list[dict], list[BrokenModel]]:
    recover_models_once()
    folder = models_dir()
    return _scan_models(str(folder), _signature(folder))


def list_trained_models() -> list[dict]:
    """Metadata of every usable model in ``models_dir()``, newest first (see :func:`maskdet.zoo.folders.scan_models`)."""
    return _scan()[0]


def show_broken_models(container=st) -> None:
    """One warning line per folder of ``models_dir()`` that is not a usable model: which folder, what is wrong."""
    for broken in _scan()[1]:
        container.caption(f"⚠️ Not offered: {code(broken.name)} is not a usable model ({plain(broken.reason)})")


def invalidate_models() -> None:
    """Forget cached model lists (for every session), e.g. right after a training job saved a model."""
    _scan_models.clear()


def choose_model(container, key: str) -> str:
    """A "Model" selectbox in ``container`` with the default model preselected; broken folders named with it.

    With no trained model it explains where to get one and stops the page.
    """
    models = list_trained_models()
    show_broken_models(container)
    if not models:
        st.info("No trained model yet: train one on the Train page, then come back.")
        st.stop()
    names = [m["name"] for m in models]
    default = default_model_name()
    return container.selectbox("Model", names, index=names.index(default) if default in names else 0, key=key)


def threshold_caption(threshold: float) -> str:
    """How the chosen model's operating threshold labels faces, in one caption (Photo, Webcam and Video say the same).

    Above 0.5 a face can be likeliest masked yet not called masked: its box then reads like 'No mask (mask 93%)',
    and the caption says so, since the verdict's own probability would look like a contradiction."""
    rule = (f"A face is labelled with mask from p(with mask) ≥ {threshold:g}, the model's operating threshold (set "
            "on the Compare page).")
    if threshold <= THRESHOLD:
        return rule
    return (f"{rule} A face likeliest masked but under it gets the likelier of the other classes, and its box says "
            f"how likely the mask was, as in '{BOX_TEXT['without_mask']} ({BOX_TEXT[POSITIVE_CLASS].lower()} 93%)': "
            "a bare or incorrectly masked face called masked is the costly error.")
