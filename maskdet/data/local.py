"""The data sets on this machine: the data root, the user's data folder, and the sample built in.

:func:`dataset_roots` are the folders whose sub-folders are data sets: the data root
(``MASKDET_DATA_ROOT``) and the user's own data folder that ``datasets get`` fills when the data
root is not writable. :func:`find_sets` lists the sets of one kind in them; when they hold none it
lists the sample shipped in ``maskdet/sample/`` (a few hundred face crops and a few boxed photos,
CC0; see its README), so every page works on a fresh machine.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from maskdet.data.annotations import IMAGES_DIR, is_scene_set, list_scene_sets
from maskdet.data.datasets import list_datasets
from maskdet.data.files import walk_files
from maskdet.data.images import is_candidate_file
from maskdet.settings import data_root, user_data_root

logger = logging.getLogger(__name__)

SAMPLE_ROOT = Path(__file__).resolve().parent.parent / "sample"
"""The built-in sample: ``sample-faces/`` (class folders) and ``sample-photos/`` (images/ + annotations/)."""

ListFolders = Callable[[Path], list[Path]]


def dataset_roots() -> list[Path]:
    """The data root and, when it exists and differs, the user's data folder."""
    roots = [data_root()]
    user = user_data_root()
    if user.is_dir() and user.resolve() != roots[0].resolve():
        roots.append(user)
    return roots


def find_sets(list_folders: ListFolders = list_datasets) -> list[Path]:
    """The sets ``list_folders`` finds in every root; the built-in sample's when the roots hold none at all."""
    roots = dataset_roots()
    found = [path for root in roots for path in list_folders(root)]
    if found or any(list_datasets(root) or list_scene_sets(root) for root in roots):
        return found
    return list_folders(SAMPLE_ROOT)


def example_photos() -> list[Path]:
    """The built-in sample's boxed photos (street scenes, CC0): the Photo page's "try an example photo"."""
    return sorted(p for p in (SAMPLE_ROOT / "sample-photos" / IMAGES_DIR).iterdir() if is_candidate_file(p))


def is_sample(path: Path) -> bool:
    """Whether ``path`` is (inside) the built-in sample."""
    return path.resolve().is_relative_to(SAMPLE_ROOT)


def image_count(path: Path) -> int:
    """Image files of a set (by name; none decoded or hashed): under its class folders, or in ``images/`` for
    boxed photos. 0 when unreadable."""
    folders = [path / IMAGES_DIR] if is_scene_set(path) else [p for p in path.iterdir() if p.is_dir()]
    try:
        return sum(1 for folder in folders for file in walk_files(folder)[0] if is_candidate_file(file))
    except OSError as exc:
        logger.info("cannot count the images of %s: %s", path, exc)
        return 0


def local_inventory() -> list[dict[str, object]]:
    """Every set on this machine (the sample always included): name, kind, path, image count, where."""
    rows = []
    seen: set[Path] = set()
    for root, where in [*((r, "data root" if r == data_root() else "user data") for r in dataset_roots()),
                        (SAMPLE_ROOT, "built-in sample")]:
        for kind, lister in (("face crops", list_datasets), ("boxed photos", list_scene_sets)):
            for path in lister(root):
                if path.resolve() in seen:
                    continue
                seen.add(path.resolve())
                rows.append({"name": path.name, "kind": kind, "path": str(path), "images": image_count(path),
                             "where": where})
    return rows
