"""One artifact store: content-addressed cache keys, one atomic write, one file hash.

Every derived artifact maskdet keeps on disk (data-set catalogues, backbone features,
evaluations) is addressed by *what it was computed from*, never by where the input lives
or when it was modified: a key is the SHA-256 of a canonical JSON description holding the
content fingerprint of the data, the model's weights hash, the settings that matter and the
artifact's code / preprocessing version. The same zip extracted twice (two folders, new
modification times) therefore has one fingerprint, and every cache hits.

:func:`atomic_write` is the only way maskdet replaces a file: a unique temporary name in
the same folder (two processes writing one artifact never share a temporary file), fsync,
``os.replace``, fsync of the folder. :func:`sha256_file` is the only file hash.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from maskdet.settings import cache_dir

logger = logging.getLogger(__name__)

MAX_MEMO_ENTRIES = 500_000  # ~100 MB at most; the memo is dropped (not evicted piecemeal) past it

Writer = Callable[[BinaryIO], None]

_memo_lock = threading.Lock()
_digest_memo: dict[tuple, str] = {}


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in blocks (the standard library's ``hashlib.file_digest``)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def content_digest(path: Path, stat: os.stat_result | None = None) -> str:
    """:func:`sha256_file` remembered for this process while the file's (device, inode, size, mtime) stay the same.

    Scanning a folder again (every page rerun) then costs a ``stat`` per file, not a read.
    """
    stat = stat or path.stat()
    key = (str(path), stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
    with _memo_lock:
        known = _digest_memo.get(key)
    if known is not None:
        return known
    digest = sha256_file(path)
    with _memo_lock:
        if len(_digest_memo) >= MAX_MEMO_ENTRIES:
            _digest_memo.clear()
        _digest_memo[key] = digest
    return digest


def fingerprint_files(root: Path, relpaths: Iterable[str]) -> str:
    """Content fingerprint of a file set: relative paths and bytes, nothing about location or timestamps.

    A file that cannot be read counts by its size and modification time instead (the catalogue
    records it as unreadable; making it readable changes the fingerprint).
    """
    digest = hashlib.sha256()
    for relpath in relpaths:
        path = root / relpath
        try:
            content = content_digest(path)
        except OSError as exc:
            stat = path.stat() if path.exists() else None
            content = f"unreadable:{exc.errno}:{stat.st_size if stat else -1}:{stat.st_mtime_ns if stat else -1}"
        digest.update(f"{relpath}\0{content}\n".encode())
    return digest.hexdigest()[:24]


def artifact_key(kind: str, version: int, **parts: object) -> str:
    """Key of an artifact: SHA-256 of its kind, code version and inputs as canonical JSON."""
    described = json.dumps({"kind": kind, "version": version, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(described.encode()).hexdigest()[:32]


def artifact_path(kind: str, key: str, suffix: str) -> Path:
    """Where the artifact of ``kind`` with ``key`` lives: ``cache_dir()/kind/key+suffix``."""
    return cache_dir() / kind / f"{key}{suffix}"


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable (best effort: some file systems refuse directory fsync)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | Path, data: bytes | str | Writer) -> Path:
    """Replace ``path`` with ``data`` (bytes, text, or a function writing to a binary file) atomically.

    Readers see the old file or the new one, never a part; a failure leaves the old file and no
    temporary behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            if callable(data):
                data(handle)
            else:
                handle.write(data.encode() if isinstance(data, str) else data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def write_json(path: str | Path, payload: object, indent: int | None = None) -> Path:
    """:func:`atomic_write` of ``payload`` as JSON."""
    return atomic_write(path, json.dumps(payload, indent=indent))


def parse_versioned_json(data: bytes, fmt: str, version: int, error: type[ValueError]) -> dict:
    """The JSON object in ``data`` when its ``format`` is ``fmt`` and its ``version`` is ``version``; else ``error``
    saying in one line what is wrong (not JSON, another format, a version this maskdet does not read)."""
    try:
        payload = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise error(f"not readable JSON ({exc})") from None
    if not isinstance(payload, dict) or payload.get("format") != fmt:
        raise error(f"not a {fmt} file")
    if payload.get("version") != version:
        raise error(f"version {payload.get('version')!r} is not one this maskdet reads ({version})")
    return payload
