"""Who can reach the dashboard, and which server folders typed paths may then name.

Pure decisions, no Streamlit: :func:`is_loopback` reads a listening address (Streamlit's
``server.address``; unset means every interface), :func:`path_roots` chooses the folders
typed paths are confined to. On loopback the owner alone can open the dashboard and any path
is accepted; beyond it, unless ``MASKDET_PATH_ROOTS`` says otherwise, typed paths are confined
to the folders maskdet itself uses (fail closed): the data-set root, the models folder and the
folder uploads are extracted to.
"""

from __future__ import annotations

import ipaddress
import os
from enum import StrEnum
from pathlib import Path

from maskdet.settings import data_root, env_variable, models_dir, uploads_dir

PATH_ROOTS_ENV = env_variable("path_roots")
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})


def is_loopback(address: str | None) -> bool:
    """True when a server listening on ``address`` is reachable from this machine only.

    None or ``""`` (every interface), ``0.0.0.0``, ``::``, a LAN address, a host name other than
    ``localhost`` and anything unparsable are not loopback: when in doubt, the answer is "exposed".
    """
    text = (address or "").strip().lower().removeprefix("[").removesuffix("]")
    if text in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(text).is_loopback
    except ValueError:
        return False


def default_roots() -> list[Path]:
    """The folders maskdet reads on its own: data sets, models, extracted uploads (resolved)."""
    return [folder.expanduser().resolve() for folder in (data_root(), models_dir(), uploads_dir())]


def configured_roots(value: str | None) -> list[Path] | None:
    """The folders in a ``MASKDET_PATH_ROOTS`` value (``os.pathsep``-separated, resolved); None when unset or blank."""
    parts = [part.strip() for part in (value or "").split(os.pathsep) if part.strip()]
    return [Path(part).expanduser().resolve() for part in parts] or None


def path_roots(exposed: bool, value: str | None) -> list[Path] | None:
    """Folders typed paths must lie in, or None for "anywhere the server can read".

    ``value`` (``MASKDET_PATH_ROOTS``) wins when set; otherwise an ``exposed`` server is confined
    to :func:`default_roots` and a loopback one is not confined.
    """
    configured = configured_roots(value)
    if configured is not None:
        return configured
    return default_roots() if exposed else None


class Action(StrEnum):
    """What a person may ask the dashboard to do beyond looking and trying the demo (the owner's actions)."""

    TRAIN = "train"
    TYPE_PATH = "type a server path"
    SAVE_THRESHOLD = "save an operating threshold"
    EXPORT = "export a model"
    DELETE = "delete"
    SERVER_SETTINGS = "change server-wide settings"
    ADD_STREAM_URL = "add a camera URL"
    GET_DATASET = "download a public data set"


def may(action: Action, owner: bool) -> bool:
    """Whether a person may do ``action``: every owner's action is refused to a visitor (fail closed)."""
    return owner
