"""Who can reach the dashboard, who is its owner, and which server folders typed paths may then name.

Pure decisions, no Streamlit: :func:`is_loopback` reads a listening address (Streamlit's
``server.address``; unset means every interface), :func:`forwarded` reads a request's headers (a
reverse proxy adds ``X-Forwarded-For`` / ``Forwarded`` / ``X-Real-IP``), and :func:`is_exposed`
combines both, failing closed: a request that came through a proxy is from the network even when the
server listens on loopback. :func:`path_roots` chooses the folders typed paths are confined to. On
loopback the owner alone can open the dashboard and any path is accepted; beyond it, unless
``MASKDET_PATH_ROOTS`` says otherwise, typed paths are confined to the data-set root and the models
folder (never the visitors' uploads).

On an exposed dashboard a person is a visitor until signed in as the owner: :func:`secret_matches`
(constant-time) checks a typed secret, and :class:`SignInLimiter` bounds attempts per session and
server-wide. :func:`may` decides an :class:`Action`.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import threading
import time
from collections import deque
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path

from maskdet.settings import data_root, env_variable, models_dir

PATH_ROOTS_ENV = env_variable("path_roots")
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
FORWARDED_HEADERS = ("x-forwarded-for", "forwarded", "x-real-ip", "x-forwarded-host", "x-forwarded-proto")
"""Headers a reverse proxy adds: any of them means the request came from beyond this machine."""


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


def forwarded(headers: Mapping[str, str] | None) -> bool:
    """True when a request carries a reverse proxy's forwarding header (any of :data:`FORWARDED_HEADERS`)."""
    names = {name.lower() for name in (headers or {})}
    return any(header in names for header in FORWARDED_HEADERS)


def is_exposed(address: str | None, headers: Mapping[str, str] | None) -> bool:
    """True unless the server listens on loopback and the request did not come through a proxy (fail closed)."""
    return not is_loopback(address) or forwarded(headers)


def default_roots() -> list[Path]:
    """The folders typed paths may reach on an exposed server by default: data sets and models (resolved).

    The visitors' upload folders are never among them: one visitor's files are not another's to read.
    """
    return [folder.expanduser().resolve() for folder in (data_root(), models_dir())]


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


def secret_matches(typed: str, secret: str | None) -> bool:
    """True when ``typed`` is the owner's ``secret`` (compared in constant time); never for an unset or blank secret."""
    if not secret or not secret.strip():
        return False
    return hmac.compare_digest(typed.encode("utf-8"), secret.encode("utf-8"))


def owner_email(email: str | None, owners: str) -> bool:
    """True when ``email`` (an OIDC sign-in's) is one of the comma-separated ``owners`` (case-insensitive)."""
    allowed = {part.strip().lower() for part in owners.split(",") if part.strip()}
    return bool(email) and email.strip().lower() in allowed


class SignInLimiter:
    """Bounds owner sign-in attempts: ``per_session`` failures per session and ``server_wide`` failures over all
    sessions within ``window_s`` seconds (a new tab never buys more guesses than the server allows). Thread-safe."""

    def __init__(self, per_session: int = 5, server_wide: int = 20, window_s: float = 600.0) -> None:
        self.per_session, self.server_wide, self.window_s = per_session, server_wide, window_s
        self._lock = threading.Lock()
        self._failures: deque[tuple[float, str]] = deque()

    def _forget_old(self, now: float) -> None:
        while self._failures and now - self._failures[0][0] > self.window_s:
            self._failures.popleft()

    def wait_s(self, session: str, now: float | None = None) -> float:
        """0 when ``session`` may try now, else the seconds until it may."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._forget_old(now)
            mine = [t for t, s in self._failures if s == session]
            if len(mine) >= self.per_session:
                return self.window_s - (now - mine[-self.per_session])
            if len(self._failures) >= self.server_wide:
                return self.window_s - (now - self._failures[-self.server_wide][0])
            return 0.0

    def failed(self, session: str, now: float | None = None) -> None:
        """Record a failed attempt of ``session``."""
        with self._lock:
            self._failures.append((time.monotonic() if now is None else now, session))
