"""``typed_path``: a server path typed into a page, checked before anything touches it.

Text boxes (a data-set folder, a pretrained-weights file) are user input reaching the
server's file system. The text is turned into an absolute path with ``~`` expanded and
``..`` and symbolic links resolved, so every check applies to where it really leads.

``MASKDET_PATH_ROOTS`` (folders separated by ``os.pathsep``) confines typed paths to those
folders: set it when people other than the server's owner can reach the dashboard, so the
text boxes cannot be used to list folders, read images or hash files elsewhere on the
server. Unset (a dashboard on one's own machine), any path the server can read is accepted.
"""

from __future__ import annotations

import os
from pathlib import Path

PATH_ROOTS_ENV = "MASKDET_PATH_ROOTS"


class PathRefused(ValueError):
    """A typed path cannot be used; the message says why, for the user."""


def allowed_roots() -> list[Path] | None:
    """The folders typed paths must lie in (resolved), or None when any path is allowed."""
    value = os.environ.get(PATH_ROOTS_ENV, "").strip()
    if not value:
        return None
    return [Path(part).expanduser().resolve() for part in value.split(os.pathsep) if part.strip()]


def typed_path(text: str) -> Path:
    """The absolute, resolved path ``text`` names; :class:`PathRefused` when it is malformed or not allowed.

    Existence is not checked: callers say what they expected (a folder, a file).
    """
    text = text.strip()
    if "\0" in text:
        raise PathRefused("a path cannot contain a NUL character")
    try:
        path = Path(text).expanduser()
    except RuntimeError:  # "~name" for a user that does not exist
        raise PathRefused(f"`{text}`: no such user's home folder") from None
    if not path.is_absolute():
        raise PathRefused(f"`{text}` is not an absolute path: start it with / (or ~ for your home folder)")
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError) as exc:  # a symbolic-link loop
        raise PathRefused(f"`{text}` cannot be resolved ({exc})") from None
    roots = allowed_roots()
    if roots is not None and not any(resolved.is_relative_to(root) for root in roots):
        allowed = ", ".join(f"`{root}`" for root in roots)
        raise PathRefused(f"`{text}` is outside the folders this server allows ({allowed})")
    return resolved
