"""Small real data sets built in temp folders from the shared face-mask-4k images (never committed)."""

from __future__ import annotations

import shutil
from pathlib import Path


def real_jpegs(datasets_root: Path, class_name: str, count: int) -> list[Path]:
    """``count`` real JPEG photos of one class, spread over the folder and not copies of each other
    (the set's own near-copies are named ``... copy N.jpg``)."""
    files = sorted(p for p in (datasets_root / "face-mask-4k" / class_name).glob("*.jpg") if "copy" not in p.name)
    return files[:: len(files) // count][:count]


def build(root: Path, files: dict[str, list[Path]]) -> Path:
    """Copy ``files`` into ``root/<class folder>/`` and return ``root``."""
    for class_folder, paths in files.items():
        (root / class_folder).mkdir(parents=True, exist_ok=True)
        for path in paths:
            shutil.copy(path, root / class_folder / path.name)
    return root


def link_files(root: Path, source: Path, relpaths: list[str]) -> Path:
    """A folder ``root`` of symbolic links to ``source/relpath`` for each relpath (e.g. a model's test split)."""
    for relpath in relpaths:
        (root / relpath).parent.mkdir(parents=True, exist_ok=True)
        (root / relpath).symlink_to(source / relpath)
    return root
