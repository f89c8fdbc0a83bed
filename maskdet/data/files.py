"""Walking folders people point maskdet at: regular files only, every odd entry skipped and reported.

A folder typed on a page, given to ``predict`` or unpacked from an upload may hold entries that
hang or loop a naive scan: opening a named pipe blocks until a writer appears, a device file
(``/dev/zero``) never ends, a socket cannot be read, a symbolic link may lead back to one of its
own ancestors (a cycle) or anywhere on the server, and a folder named ``x.jpg`` is not an image.
:func:`walk_files` classifies each entry with ``stat`` alone (nothing is opened), descends real
sub-folders only (links to folders are never followed) and returns what it skipped with a reason,
so every caller can say what it left out.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

IGNORED_FILE_NAMES = frozenset({".ds_store", "thumbs.db", "desktop.ini"})
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
"""Names that promise an image: a *folder* named so is reported, not descended."""

_KINDS = {stat.S_IFIFO: "a named pipe", stat.S_IFCHR: "a device file", stat.S_IFBLK: "a device file",
          stat.S_IFSOCK: "a socket"}


@dataclass(frozen=True)
class Skipped:
    """An entry a scan left out, and why (``"a named pipe"``, ``"a symbolic link loop"``, ...)."""

    path: Path
    reason: str


def is_ignored_name(name: str) -> bool:
    """Hidden files and operating-system junk (``Thumbs.db``): silently not data."""
    return name.startswith(".") or name.lower() in IGNORED_FILE_NAMES


def file_problem(path: Path) -> str | None:
    """Why ``path`` cannot be read as a file (links followed), or None for a regular file. Opens nothing."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return "a broken symbolic link" if os.path.islink(path) else "missing"
    except OSError as exc:
        return "a symbolic link loop" if exc.errno == errno.ELOOP else f"unreadable ({exc.strerror or exc})"
    if stat.S_ISREG(info.st_mode):
        return None
    if stat.S_ISDIR(info.st_mode):
        return "a folder"
    return _KINDS.get(stat.S_IFMT(info.st_mode), "not a regular file")


def _link_problem(path: Path, parent: Path) -> str | None:
    """Why a symbolic link is skipped; None for a link to a regular file (read like the file itself)."""
    problem = file_problem(path)
    if problem != "a folder":
        return problem
    target = path.resolve()
    if parent.resolve().is_relative_to(target):
        return f"a symbolic link loop (it leads back to {target})"
    return f"a link to the folder {target}, not followed"


def iter_files(top: Path) -> Iterator[Path | Skipped]:
    """Regular files under folder ``top`` and the entries skipped, streamed depth first, names sorted.

    Memory is bounded by the largest single folder (its entries are sorted), not by the tree, so a
    walk over millions of files starts at once. Hidden entries and OS junk are left out silently;
    named pipes, device files, sockets, broken or looping links, links to folders and folders named
    like images come as :class:`Skipped`, and so does a sub-folder that cannot be listed; ``top``
    itself must be a folder (``OSError`` otherwise).
    """
    yield from _iter_folder(Path(top), top_level=True)


def _iter_folder(folder: Path, top_level: bool = False) -> Iterator[Path | Skipped]:
    try:
        with os.scandir(folder) as scan:
            entries = sorted(scan, key=lambda entry: entry.name)
    except OSError as exc:
        if top_level:
            raise
        yield Skipped(folder, f"a folder that cannot be listed ({exc.strerror or exc})")
        return
    for entry in entries:
        if is_ignored_name(entry.name):
            continue
        path = Path(entry.path)
        if entry.is_symlink():
            problem = _link_problem(path, folder)
        elif entry.is_dir(follow_symlinks=False):
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                yield from _iter_folder(path)
                continue
            problem = "a folder named like an image"
        elif entry.is_file(follow_symlinks=False):
            problem = None
        else:
            problem = file_problem(path)
        if problem is None:
            yield path
        else:
            logger.info("skipped %s: %s", path, problem)
            yield Skipped(path, problem)


def walk_files(top: Path) -> tuple[list[Path], list[Skipped]]:
    """(regular files under folder ``top``, entries skipped): :func:`iter_files`, collected."""
    files: list[Path] = []
    skipped: list[Skipped] = []
    for item in iter_files(top):
        (skipped if isinstance(item, Skipped) else files).append(item)
    return files, skipped
