"""``choose_dataset``: one widget for every page that needs a data set folder.

A :class:`FolderKind` says which folders count: :data:`IMAGE_FOLDERS` (class sub-folders, the
default) or :data:`BOXED_PHOTOS` (``images/`` plus Pascal VOC ``annotations/`` or YOLO ``labels/``,
for :mod:`maskdet.evaluation.scenes`). Offers the folders found under the data-set root, a folder path on the server (checked by
:func:`ui.paths.typed_path`, confined when the dashboard is shared), or an uploaded .zip
(extracted safely by :func:`maskdet.data.archive.extract_zip`). Each upload is extracted once per
session and content: reruns reuse the folder, so its fingerprint and every cache keyed by it
stay valid. Extractions are kept for the most recently used uploads only (``UPLOADS_KEPT``,
``UPLOADS_MAX_BYTES``); a session whose folder was pruned meanwhile extracts its upload again.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from maskdet.data.archive import ArchiveError, extract_zip, mark_used, prune_extractions
from maskdet.data.datasets import list_datasets
from maskdet.data.annotations import list_scene_sets
from maskdet.settings import data_root, uploads_dir
from ui.markup import code, plain
from ui.paths import PathRefused, show_path_limits, typed_path

logger = logging.getLogger(__name__)

SOURCE_FOLDERS = "Data sets on the server"
SOURCE_PATH = "Folder path"
SOURCE_UPLOAD = "Upload a .zip"
SOURCES = (SOURCE_FOLDERS, SOURCE_PATH, SOURCE_UPLOAD)
UPLOADS_KEPT = 8  # extracted archives kept on disk, most recently used first
UPLOADS_MAX_BYTES = 4 * 1024**3  # and their total size (one archive may expand to maskdet.data.archive.MAX_TOTAL_BYTES)
UPLOADS_GRACE_S = 3600  # an extraction used within the last hour is never removed


@dataclass(frozen=True)
class FolderKind:
    """Which folders a picker offers, and how it describes them to the user."""

    list_folders: Callable[[Path], list[Path]]  # the usable sub-folders of the data-set root
    layout: str  # markdown: what such a folder holds
    placeholder: str  # an example typed path
    zip_label: str
    zip_help: str


IMAGE_FOLDERS = FolderKind(
    list_folders=list_datasets,
    layout="a folder with class sub-folders such as `with_mask/` and `without_mask/`",
    placeholder="/data/my-masks (holding with_mask/ and without_mask/)",
    zip_label="Zip archive of class folders",
    zip_help="e.g. with_mask/*.jpg and without_mask/*.jpg, optionally inside one top-level folder",
)
BOXED_PHOTOS = FolderKind(
    list_folders=list_scene_sets,
    layout="a folder with `images/` and `annotations/` (Pascal VOC XML) or `labels/` (YOLO with classes.txt)",
    placeholder="/data/my-photos (holding images/ and annotations/)",
    zip_label="Zip archive of boxed photos",
    zip_help="images/*.jpg with annotations/*.xml (Pascal VOC), optionally inside one top-level folder",
)


def choose_dataset(key: str, kind: FolderKind = IMAGE_FOLDERS,
                   prefer: Callable[[list[Path]], Path | None] | None = None) -> Path | None:
    """Let the user pick a data set folder of ``kind``; None until a usable choice is made.

    ``key`` prefixes every widget key, so several pickers can live in one app. Problems
    (no data sets, a missing path, a refused archive) are shown in place. ``prefer`` picks the
    preselected folder among those listed under the data-set root (the first one without it).
    """
    source = st.radio("Data set source", SOURCES, key=f"{key}_source", horizontal=True)
    if source == SOURCE_FOLDERS:
        return _choose_listed(key, kind, prefer)
    if source == SOURCE_PATH:
        return _choose_path(key, kind)
    return _choose_upload(key, kind)


def _choose_listed(key: str, kind: FolderKind, prefer: Callable[[list[Path]], Path | None] | None) -> Path | None:
    root = data_root()
    datasets = {path.name: path for path in kind.list_folders(root)}
    if not datasets:
        st.info(
            f"No data sets found under `{root}`. A data set is {kind.layout}; set `MASKDET_DATA_ROOT` to another "
            "folder, type a path or upload a .zip."
        )
        return None
    preferred = prefer(list(datasets.values())) if prefer is not None else None
    names = list(datasets)
    index = names.index(preferred.name) if preferred is not None and preferred.name in datasets else 0
    name = st.selectbox("Data set", names, index=index, key=f"{key}_listed", help=f"Folders under `{root}`")
    return datasets[name]


def _choose_path(key: str, kind: FolderKind) -> Path | None:
    text = st.text_input("Folder on the server", key=f"{key}_path", placeholder=kind.placeholder).strip()
    show_path_limits()
    if not text:
        return None
    try:
        path = typed_path(text)
    except PathRefused as exc:
        st.error(f"Cannot use this path: {plain(exc)}")
        return None
    if not path.is_dir():
        st.error(f"{code(path)} is not an existing folder on the server.")
        return None
    return path


def _choose_upload(key: str, kind: FolderKind) -> Path | None:
    upload = st.file_uploader(kind.zip_label, type=["zip"], key=f"{key}_zip", help=kind.zip_help)
    if upload is None:
        return None
    data = upload.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    uploads = uploads_dir()
    extracted: dict[str, str] = st.session_state.setdefault(f"{key}_extracted", {})
    folder = extracted.get(digest)
    if folder is not None and Path(folder).is_dir():
        mark_used(Path(folder), uploads)
        return Path(folder)
    try:
        with st.spinner(f"Extracting {plain(upload.name)}…"):
            folder = str(extract_zip(data, uploads))
    except ArchiveError as exc:
        st.error(f"Cannot use {code(upload.name)}: {plain(exc)}")
        return None
    extracted[digest] = folder
    logger.info("upload %s extracted to %s", upload.name, folder)
    prune_extractions(uploads, keep=UPLOADS_KEPT, max_bytes=UPLOADS_MAX_BYTES, grace_s=UPLOADS_GRACE_S,
                      protect=[Path(folder)])
    return Path(folder)
