"""``choose_dataset``: one widget for every page that needs a data set folder.

A :class:`FolderKind` says which folders count: :data:`IMAGE_FOLDERS` (class sub-folders, the
default) or :data:`BOXED_PHOTOS` (``images/`` plus Pascal VOC ``annotations/`` or YOLO ``labels/``,
for :mod:`maskdet.evaluation.scenes`). Offers the folders found under the data-set root, a folder path on the server (checked by
:func:`ui.paths.typed_path`, confined when the dashboard is shared), or an uploaded .zip
(extracted safely by :func:`maskdet.data.archive.extract_zip`). A visitor of a shared dashboard is offered its
own uploads and the sample built into maskdet (``maskdet/sample/``: small, read-only, nothing written for
it, so within any quota), never the server's folders nor typed paths. Each upload is extracted once per
session and content: reruns reuse the folder, so its fingerprint and every cache keyed by it
stay valid. Uploads are extracted into the session's own folder (:func:`ui.storage.session_uploads`),
never reachable from another session and deleted when the session ends; an extraction stops at what is
left of the session's disk budget (:func:`ui.storage.storage_room`). The session keeps its
``KEPT_EXTRACTIONS`` most recently used extractions; the one on the page, and any a job is reading, is
never removed.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from maskdet.data.archive import KEPT_EXTRACTIONS, MAX_TOTAL_BYTES, ArchiveError, extract_zip, mark_used, prune_extractions
from maskdet.data.datasets import list_datasets
from maskdet.data.annotations import list_scene_sets
from maskdet.data.local import SAMPLE_ROOT, dataset_roots, find_sets, is_sample
from maskdet.sharing import Action
from ui.access import may
from ui.markup import code, plain
from ui.paths import PathRefused, show_path_limits, typed_path
from ui.storage import session_uploads, storage_room

logger = logging.getLogger(__name__)

Prefer = Callable[[list[Path]], Path | None] | None
"""Picks the preselected folder among those listed (``choose_dataset``'s ``prefer``)."""

SOURCE_FOLDERS = "Data sets on the server"
SOURCE_PATH = "Folder path"
SOURCE_UPLOAD = "Upload a .zip"
SOURCE_SAMPLE = "Sample built into maskdet"
SOURCES = (SOURCE_FOLDERS, SOURCE_PATH, SOURCE_UPLOAD)
VISITOR_SOURCES = (SOURCE_UPLOAD, SOURCE_SAMPLE)


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
                   prefer: Prefer = None) -> Path | None:
    """Let the user pick a data set folder of ``kind``; None until a usable choice is made.

    ``key`` prefixes every widget key, so several pickers can live in one app. Problems
    (no data sets, a missing path, a refused archive) are shown in place. ``prefer`` picks the
    preselected folder among those listed under the data-set root (the first one without it).
    """
    # A visitor works on its own uploads and the built-in sample; server folders and typed paths are the owner's.
    sources = SOURCES if may(Action.TYPE_PATH) else VISITOR_SOURCES
    source = st.radio("Data set source", sources, key=f"{key}_source", horizontal=True)
    return CHOOSERS[source](key, kind, prefer)


def _choose_listed(key: str, kind: FolderKind, prefer: Prefer) -> Path | None:
    roots = ", ".join(f"`{root}`" for root in dataset_roots())
    datasets = {path.name: path for path in find_sets(kind.list_folders)}
    if not datasets:
        st.info(
            f"No data sets found under {roots}. A data set is {kind.layout}; get a public one on the Dataset page, "
            "set `MASKDET_DATA_ROOT` to another folder, type a path or upload a .zip."
        )
        return None
    preferred = prefer(list(datasets.values())) if prefer is not None else None
    names = list(datasets)
    index = names.index(preferred.name) if preferred is not None and preferred.name in datasets else 0
    name = st.selectbox("Data set", names, index=index, key=f"{key}_listed", help=f"Folders under {roots}")
    if is_sample(datasets[name]):
        st.caption("The data root holds no data set yet: this is the small sample built into maskdet (CC0). "
                   "Get a public set on the Dataset page.")
    return datasets[name]


def _choose_sample(key: str, kind: FolderKind, prefer: Prefer) -> Path | None:
    """The built-in sample's set of ``kind`` (read-only; shipped with maskdet, CC0)."""
    samples = {path.name: path for path in kind.list_folders(SAMPLE_ROOT)}
    if not samples:
        st.info(f"maskdet has no built-in sample of this kind ({kind.layout}): upload a .zip.")
        return None
    name = st.selectbox("Sample", list(samples), key=f"{key}_sample",
                        help="A small sample built into maskdet (CC0), the same for everyone and read-only.")
    return samples[name]


def _choose_path(key: str, kind: FolderKind, prefer: Prefer = None) -> Path | None:
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


def _choose_upload(key: str, kind: FolderKind, prefer: Prefer = None) -> Path | None:
    upload = st.file_uploader(kind.zip_label, type=["zip"], key=f"{key}_zip", help=kind.zip_help)
    if upload is None:
        return None
    data = upload.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    uploads = session_uploads()
    extracted: dict[str, str] = st.session_state.setdefault(f"{key}_extracted", {})
    folder = extracted.get(digest)
    if folder is not None and Path(folder).is_dir():
        mark_used(Path(folder), uploads)
        return Path(folder)
    room = storage_room()
    try:
        with st.spinner(f"Extracting {plain(upload.name)}…"):
            folder = str(extract_zip(data, uploads, max_total_bytes=min(MAX_TOTAL_BYTES, room)))
    except ArchiveError as exc:
        st.error(f"Cannot use {code(upload.name)}: {plain(exc)}")
        return None
    extracted[digest] = folder
    logger.info("upload %s extracted to %s", upload.name, folder)
    prune_extractions(uploads, keep=KEPT_EXTRACTIONS, max_bytes=MAX_TOTAL_BYTES * KEPT_EXTRACTIONS,
                      protect=[Path(folder)])
    return Path(folder)


CHOOSERS: dict[str, Callable[[str, FolderKind, Prefer], Path | None]] = {
    SOURCE_FOLDERS: _choose_listed,
    SOURCE_PATH: _choose_path,
    SOURCE_UPLOAD: _choose_upload,
    SOURCE_SAMPLE: _choose_sample,
}
"""How each source is chosen from (``choose_dataset``'s registry; ``prefer`` matters to listed folders only)."""
