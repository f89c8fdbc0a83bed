"""Per-session storage: each browser session's uploads, extractions and results in a folder of its own.

A visitor's files live under ``cache_dir()/sessions/<session id>/`` (:func:`session_folder`): no other
session is ever given a path inside it, typed paths never reach it (:func:`maskdet.sharing.default_roots`),
and it is deleted when the session ends (:func:`end_session`). The owner's files live in the
:data:`OWNER` folder, which is kept.

Disk is budgeted when writing, not afterwards: :func:`room` is what a session may still write (its own
budget, and what is left of the budget all visitors share); writers pass it as their limit (an
archive's extraction stops at it, a clip larger than it is refused with :class:`StorageFull`).

Nothing in use is ever deleted: a running job's folder, or the data set a page shows, is held by a
lease (:data:`LEASES`, reference counts in this process, the server's), and pruning or ending a
session skips every folder that holds or lies inside a leased path. Modification times decide nothing.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from maskdet.settings import cache_dir

logger = logging.getLogger(__name__)

SESSIONS_DIR = "sessions"
OWNER = "owner"
_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MB = 1024 * 1024


class StorageFull(ValueError):
    """Writing would go beyond a session's or the server's disk budget; the message says which, for the user."""


class Leases:
    """Reference counts of paths in use (thread-safe): a leased path, and every folder holding it, is kept."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[Path] = Counter()

    def acquire(self, path: str | Path) -> Path:
        resolved = Path(path).resolve()
        with self._lock:
            self._counts[resolved] += 1
        return resolved

    def release(self, path: str | Path) -> None:
        resolved = Path(path).resolve()
        with self._lock:
            self._counts[resolved] -= 1
            if self._counts[resolved] <= 0:
                del self._counts[resolved]

    @contextmanager
    def hold(self, path: str | Path) -> Iterator[Path]:
        """Lease ``path`` for the block."""
        resolved = self.acquire(path)
        try:
            yield resolved
        finally:
            self.release(resolved)

    def in_use(self, folder: str | Path) -> bool:
        """True when ``folder`` is leased, holds a leased path or lies inside a leased folder."""
        resolved = Path(folder).resolve()
        with self._lock:
            return any(path.is_relative_to(resolved) or resolved.is_relative_to(path) for path in self._counts)

    def paths(self) -> list[Path]:
        with self._lock:
            return sorted(self._counts)


LEASES = Leases()
"""The server process's leases (pages and the job service hold them)."""


def sessions_root() -> Path:
    """``cache_dir()/sessions``: one sub-folder per session that wrote anything."""
    return cache_dir() / SESSIONS_DIR


def session_folder(session: str) -> Path:
    """The folder of ``session`` (a Streamlit session id, or :data:`OWNER`); not created. ValueError for an id that
    is not a plain name (it is joined to a path)."""
    if not _SAFE_ID.match(session):
        raise ValueError(f"not a session id: {session!r}")
    return sessions_root() / session


def tree_bytes(folder: str | Path) -> int:
    """Bytes of every file under ``folder`` (symbolic links not followed; 0 when it is gone)."""
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def visitor_folders() -> list[Path]:
    """Every session folder but the owner's."""
    try:
        return [p for p in sessions_root().iterdir() if p.is_dir() and not p.is_symlink() and p.name != OWNER]
    except OSError:
        return []


def room(session: str, session_bytes: int, visitors_bytes: int) -> int:
    """Bytes ``session`` may still write: within its own budget and what is left of all visitors' budget
    (the owner's folder is not budgeted: a very large number)."""
    if session == OWNER:
        return 1 << 62
    mine = tree_bytes(session_folder(session))
    everyone = sum(tree_bytes(folder) for folder in visitor_folders())
    return max(0, min(session_bytes - mine, visitors_bytes - everyone))


def ensure_room(session: str, needed: int, session_bytes: int, visitors_bytes: int) -> None:
    """:class:`StorageFull` unless ``session`` may write ``needed`` more bytes."""
    left = room(session, session_bytes, visitors_bytes)
    if needed > left:
        raise StorageFull(f"this needs {needed / MB:,.1f} MB but only {left / MB:,.1f} MB of this dashboard's "
                          "upload space is left for you: remove an upload or try later")


def prune(folders: Iterable[Path], keep: int) -> list[Path]:
    """Delete all but the first ``keep`` of ``folders`` (in the given order, newest first) that are not in use;
    folders in use (:data:`LEASES`) are kept and counted first. Returns the folders deleted."""
    candidates = list(folders)
    in_use = [f for f in candidates if LEASES.in_use(f)]
    room_left = max(0, keep - len(in_use))
    removed = []
    for folder in (f for f in candidates if f not in in_use):
        if room_left:
            room_left -= 1
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def end_session(session: str) -> bool:
    """Delete the folder of a visitor's ended session; False (kept) for the owner's, or while something in it is
    in use (a later call deletes it)."""
    if session == OWNER:
        return False
    folder = session_folder(session)
    if not folder.exists():
        return True
    if LEASES.in_use(folder):
        return False
    shutil.rmtree(folder, ignore_errors=True)
    logger.info("deleted the files of ended session %s", session)
    return not folder.exists()
