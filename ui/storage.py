"""This session's files: where its uploads and results go, and how much it may still write.

A visitor's files go to its own session folder (:func:`maskdet.workspace.session_folder`), deleted when the
session ends (``ui.jobs`` watches sessions); the owner's go to the owner's folder, which is kept. The budget
(``MASKDET_SESSION_STORAGE_MB`` per visitor, ``MASKDET_VISITOR_STORAGE_MB`` for all of them) is enforced
while writing: writers take :func:`storage_room` as their limit.
"""

from __future__ import annotations

from pathlib import Path

from maskdet.settings import current_settings
from maskdet.workspace import MB, OWNER, ensure_room, room, session_folder
from ui.access import is_owner, session_id


def storage_session() -> str:
    """The name of this session's folder: :data:`maskdet.workspace.OWNER` for the owner, else the session id."""
    return OWNER if is_owner() else session_id()


def session_files(*parts: str) -> Path:
    """A folder of this session's files (``uploads``, ``videos``, ...); created."""
    folder = session_folder(storage_session()).joinpath(*parts)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def session_uploads() -> Path:
    """Where this session's uploaded archives are extracted."""
    return session_files("uploads")


def storage_room() -> int:
    """Bytes this session may still write."""
    settings = current_settings()
    return room(storage_session(), settings.session_storage_mb * MB, settings.visitor_storage_mb * MB)


def ensure_storage(needed: int) -> None:
    """:class:`maskdet.workspace.StorageFull` unless this session may write ``needed`` more bytes."""
    settings = current_settings()
    ensure_room(storage_session(), needed, settings.session_storage_mb * MB, settings.visitor_storage_mb * MB)
