"""``typed_path``: a server path typed into a page, checked before anything touches it.

Text boxes (a data-set folder, a pretrained-weights file) are user input reaching the
server's file system. The text is turned into an absolute path with ``~`` expanded and
``..`` and symbolic links resolved, so every check applies to where it really leads.

Which folders a typed path may name (:func:`maskdet.sharing.path_roots`):

- ``MASKDET_PATH_ROOTS`` set (folders separated by ``os.pathsep``): those folders only.
- unset, server on loopback (the default ``.streamlit/config.toml``): anywhere the server can read.
- unset, server reachable from the network: only the data-set root and the models folder (fail
  closed), so the text boxes cannot be used to list folders, read images or hash files elsewhere
  on the server, nor reach the visitors' uploads. :func:`show_path_limits` says so on the page.

Typing a server path at all is the owner's (:data:`maskdet.sharing.Action.TYPE_PATH`): a visitor's
typed path is refused whatever it names, and pages do not offer the text boxes to visitors.
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from maskdet.settings import current_settings
from maskdet.sharing import PATH_ROOTS_ENV, Action, path_roots
from ui.access import may
from ui.exposure import server_exposed
from ui.markup import code


class PathRefused(ValueError):
    """A typed path cannot be used; the message says why, for the user."""


def allowed_roots() -> list[Path] | None:
    """The folders typed paths must lie in (resolved), or None when any path is allowed."""
    return path_roots(server_exposed(), current_settings().path_roots)


def path_limits() -> str | None:
    """One line saying where typed paths may lead and how to widen it; None when they are not confined."""
    roots = allowed_roots()
    if roots is None:
        return None
    folders = ", ".join(code(root) for root in roots)
    if (current_settings().path_roots or "").strip():
        return f"Typed paths are limited to {folders} (`{PATH_ROOTS_ENV}`)."
    return (f"This dashboard is reachable from the network, so typed paths are limited to {folders}; "
            f"set `{PATH_ROOTS_ENV}` (folders separated by `{os.pathsep}`) to widen it.")


def show_path_limits() -> None:
    """:func:`path_limits` as a caption, when typed paths are confined."""
    limits = path_limits()
    if limits is not None:
        st.caption(limits)


def typed_path(text: str) -> Path:
    """The absolute, resolved path ``text`` names; :class:`PathRefused` when it is malformed or not allowed.

    Existence is not checked: callers say what they expected (a folder, a file).
    """
    if not may(Action.TYPE_PATH):
        raise PathRefused(f"on a shared dashboard only the owner may {Action.TYPE_PATH.value}")
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
