"""Safe extraction of an uploaded data set archive (.zip).

An uploaded archive is hostile until proven otherwise: entries can point outside the
target folder (absolute paths, ``..``, Windows drive letters), be symbolic links to
server files, be encrypted, or expand to far more bytes than they occupy (zip bombs),
possibly with sizes that lie. :func:`extract_zip` checks every entry before writing
anything, streams each file with a byte counter, writes only inside a fresh folder of
its own and removes that folder when anything goes wrong.

Extracted uploads pile up; :func:`prune_extractions` keeps the most recently used ones
within a count and byte budget, and :func:`mark_used` refreshes a folder's "last used" time (the
order of removal). A folder in use (leased: :data:`maskdet.workspace.LEASES`, or protected by the
caller) is never removed, however old; the byte budget itself is enforced while extracting
(``max_total_bytes``: the caller passes what is left of its budget).
"""

from __future__ import annotations

import io
import logging
import os
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from maskdet.data.datasets import DatasetError, normalize_class_name
from maskdet.workspace import LEASES, tree_bytes

logger = logging.getLogger(__name__)

MAX_ENTRIES = 50_000
MAX_TOTAL_BYTES = 2 * 1024**3
"""Default limit on the uncompressed size (declared and actually written) of one archive."""
CHUNK_BYTES = 1024 * 1024
KEPT_EXTRACTIONS = 8
"""Extractions a session keeps (most recently used first); those in use are kept beyond it."""
IGNORED_TOP_LEVEL = frozenset({"__MACOSX"})  # macOS resource forks: never data
EXTRACTION_PREFIX = "upload-"
BOXED_PHOTOS_DIR = "images"  # a set of boxed photos keeps them in images/ (see maskdet.evaluation.scenes)
_DRIVE = re.compile(r"^[A-Za-z]:")


# What zipfile / zlib / the file system raise for damaged members or unsupported compression methods.
_EXTRACTION_ERRORS = (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError, EOFError, OSError)


class ArchiveError(ValueError):
    """The archive was refused or could not be extracted; the message says why, for the user."""


def _safe_parts(info: zipfile.ZipInfo) -> tuple[str, ...]:
    """Path components of an entry, or :class:`ArchiveError` if it could land outside the target."""
    name = info.filename
    if "\0" in name:
        raise ArchiveError(f"entry {name!r} has a NUL byte in its name")
    posix = name.replace("\\", "/")  # archives made on Windows may use backslashes
    if posix.startswith("/"):
        raise ArchiveError(f"entry '{name}' has an absolute path")
    if _DRIVE.match(posix):
        raise ArchiveError(f"entry '{name}' names a drive letter")
    parts = tuple(p for p in PurePosixPath(posix).parts if p not in ("", "."))
    if ".." in parts:
        raise ArchiveError(f"entry '{name}' contains '..' and would be written outside the folder")
    return parts


def _check_entry(info: zipfile.ZipInfo) -> tuple[str, ...]:
    parts = _safe_parts(info)
    file_type = stat.S_IFMT(info.external_attr >> 16)  # Unix type bits; 0 when the archiver recorded none
    if file_type == stat.S_IFLNK:
        raise ArchiveError(f"entry '{info.filename}' is a symbolic link; links are not accepted")
    if file_type not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise ArchiveError(f"entry '{info.filename}' is a special file (device, pipe or socket)")
    if info.flag_bits & 0x1:
        raise ArchiveError(f"entry '{info.filename}' is encrypted; upload an archive without a password")
    return parts


Planned = list[tuple[zipfile.ZipInfo, tuple[str, ...]]]
"""Entries to extract, each with its checked path components."""


def _plan(archive: zipfile.ZipFile, max_entries: int, max_total_bytes: int) -> Planned:
    """Validate every entry before anything is written; return the files to extract with their paths."""
    infos = archive.infolist()
    if len(infos) > max_entries:
        raise ArchiveError(f"archive has {len(infos):,} entries, more than the limit of {max_entries:,}")
    declared = sum(info.file_size for info in infos)
    if declared > max_total_bytes:
        raise ArchiveError(
            f"archive would expand to {declared / 1e6:,.1f} MB, above the {max_total_bytes / 1e6:,.1f} MB limit"
        )
    planned: Planned = []
    seen: set[tuple[str, ...]] = set()
    for info in infos:
        parts = _check_entry(info)
        if not parts or parts[0] in IGNORED_TOP_LEVEL or info.is_dir():
            continue
        if parts in seen:
            raise ArchiveError(f"archive holds '{info.filename}' twice")
        seen.add(parts)
        planned.append((info, parts))
    if not planned:
        raise ArchiveError("archive contains no files")
    return planned


def _copy_limited(source: BinaryIO, target: BinaryIO, budget: int, name: str) -> int:
    """Copy until EOF; abort as soon as more than ``budget`` bytes came out (sizes can lie)."""
    written = 0
    while chunk := source.read(CHUNK_BYTES):
        written += len(chunk)
        if written > budget:
            raise ArchiveError(f"'{name}' expands beyond the size limit (possible zip bomb)")
        target.write(chunk)
    return written


def _is_class_folder(path: Path) -> bool:
    try:
        normalize_class_name(path.name)
    except DatasetError:
        return False
    return path.is_dir()


def _data_set_root(folder: Path) -> Path:
    """``folder`` itself, or its single top-level sub-folder when that one holds the class folders
    (or the ``images/`` folder of a set of boxed photos).

    The sub-folder is tested first: a wrapper folder may itself have a class-like name (``masks/``).
    """
    children = [p for p in folder.iterdir() if not p.name.startswith(".")]
    if len(children) == 1 and children[0].is_dir() and any(
        _is_class_folder(p) or (p.name == BOXED_PHOTOS_DIR and p.is_dir()) for p in children[0].iterdir()
    ):
        return children[0]
    return folder


def extract_zip(
    data: bytes | str | Path,
    dest_root: str | Path,
    *,
    max_entries: int = MAX_ENTRIES,
    max_total_bytes: int = MAX_TOTAL_BYTES,
) -> Path:
    """Extract a zip (its bytes or its path) into a new unique folder under ``dest_root``.

    Returns the data set folder: the extraction folder, or the archive's single top-level
    folder when the class folders live inside it. Raises :class:`ArchiveError` (and leaves
    nothing behind) for unreadable archives, unsafe entries or archives over the limits.
    """
    source: BinaryIO | Path = io.BytesIO(data) if isinstance(data, bytes | bytearray) else Path(data)
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as exc:
        raise ArchiveError(f"not a readable zip archive ({exc})") from exc
    with archive:
        planned = _plan(archive, max_entries, max_total_bytes)
        dest_root = Path(dest_root)
        dest_root.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=EXTRACTION_PREFIX, dir=dest_root)).resolve()
        budget = max_total_bytes
        try:
            for info, parts in planned:
                target = folder.joinpath(*parts)
                if not target.resolve().is_relative_to(folder):  # defence in depth; _safe_parts should forbid it
                    raise ArchiveError(f"entry '{info.filename}' would be written outside the folder")
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as entry, open(target, "xb") as out:
                    budget -= _copy_limited(entry, out, budget, info.filename)
        except BaseException as exc:
            shutil.rmtree(folder, ignore_errors=True)
            if isinstance(exc, _EXTRACTION_ERRORS):
                raise ArchiveError(f"archive is corrupt or uses an unsupported feature ({exc})") from exc
            raise
    logger.info("extracted %d files (%d bytes) into %s", len(planned), max_total_bytes - budget, folder)
    return _data_set_root(folder)


def _extraction_of(path: Path, dest_root: Path) -> Path | None:
    """The extraction folder (``dest_root/upload-*``) holding ``path``, or None if it is not inside one."""
    try:
        parts = Path(path).resolve().relative_to(Path(dest_root).resolve()).parts
    except ValueError:
        return None
    if not parts or not parts[0].startswith(EXTRACTION_PREFIX):
        return None
    return Path(dest_root).resolve() / parts[0]


def mark_used(path: Path, dest_root: str | Path) -> None:
    """Record that the extraction holding ``path`` was just used (its modification time), so pruning keeps it."""
    folder = _extraction_of(path, Path(dest_root))
    if folder is not None:
        try:
            os.utime(folder)
        except OSError:  # pruned meanwhile: the caller extracts again when it finds the folder gone
            pass


def prune_extractions(
    dest_root: str | Path,
    *,
    keep: int,
    max_bytes: int,
    protect: Iterable[Path] = (),
) -> list[Path]:
    """Delete old extraction folders under ``dest_root``; return the folders removed.

    Folders holding a path in ``protect`` and folders in use (:data:`maskdet.workspace.LEASES`: an
    extraction a page shows, a job's data set) always stay and count first, whatever their age. Then
    the others, most recently used first (see :func:`mark_used`), stay while the total is at most
    ``keep`` folders and ``max_bytes``; from the first that does not fit, every older one is removed.
    """
    root = Path(dest_root).resolve()
    try:  # symbolic links are never followed: only real extraction folders are candidates
        folders = [root / p.name for p in root.iterdir()
                   if p.name.startswith(EXTRACTION_PREFIX) and p.is_dir() and not p.is_symlink()]
    except OSError:
        return []
    protected = {folder for path in protect if (folder := _extraction_of(path, root)) is not None}

    def last_used(folder: Path) -> float:
        try:
            return folder.stat().st_mtime
        except OSError:
            return 0.0

    ranked = sorted(folders, key=last_used, reverse=True)
    pinned = [f for f in ranked if f in protected or LEASES.in_use(f)]
    count, total = len(pinned), sum(tree_bytes(f) for f in pinned)
    removed: list[Path] = []
    for folder in (f for f in ranked if f not in pinned):
        if not removed:
            size = tree_bytes(folder)
            if count < keep and total + size <= max_bytes:
                count, total = count + 1, total + size
                continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    if removed:
        logger.info("removed %d old upload extraction(s) from %s; %d kept (%d bytes)", len(removed), root, count,
                    total)
    return removed
