"""Where batch records go: JSON lines (stdout or a file, resumable) or Parquet.

A JSON-lines file is written with one ``os.write`` of a whole line per record on a descriptor
opened with ``O_APPEND``: a process killed at any moment leaves only whole lines behind (a
regular-file write is not interrupted half way by a signal). :func:`resume_jsonl` still trims a
torn tail (a full disk, a power cut) before a resumed run appends, drops the records of files lost
with a dead worker (they are scored again), and returns the paths done.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import sys
from pathlib import Path
from typing import Protocol, TextIO

from maskdet.batch.records import WORKER_DIED_KEY
from maskdet.store import atomic_write

logger = logging.getLogger(__name__)

PARQUET_SUFFIXES = (".parquet", ".pq")
PARQUET_ROWS_PER_GROUP = 1024


class RecordSink(Protocol):
    """Receives records one at a time; ``close`` (the run completed) makes everything durable, ``abandon`` (the
    run stopped early: Ctrl-C, a cancelled job, a failure) keeps only what a rerun can use; ``saved`` says in
    one line what is durable now."""

    def write(self, record: dict) -> None: ...

    def close(self) -> None: ...

    def abandon(self) -> None: ...

    @property
    def saved(self) -> str: ...


def record_line(record: dict) -> str:
    """The JSON line of one record (no embedded newline: ``json.dumps`` escapes them)."""
    return json.dumps(record, ensure_ascii=False) + "\n"


class StreamSink:
    """JSON lines on a text stream (stdout), flushed per record so a reader sees each as it is made."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.records = 0

    def write(self, record: dict) -> None:
        self.stream.write(record_line(record))
        self.stream.flush()
        self.records += 1

    def close(self) -> None:
        self.stream.flush()

    abandon = close

    @property
    def saved(self) -> str:
        return f"{self.records} records were printed"


class JsonLinesFileSink:
    """JSON lines appended to a file, one whole line per system call (see the module docstring)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.records = 0

    def write(self, record: dict) -> None:
        data = record_line(record).encode("utf-8")
        written = os.write(self._fd, data)
        while written < len(data):  # a short write (rare: a full disk) is completed, not left torn
            written += os.write(self._fd, data[written:])
        self.records += 1

    def close(self) -> None:
        if self._fd >= 0:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1

    abandon = close  # every whole line is a record a resumed run skips

    @property
    def saved(self) -> str:
        return f"{self.records} records saved in {self.path}; resume the run to score the rest"


class ParquetSink:
    """Records as Parquet rows (``path``, ``width``, ``height``, ``error``, ``faces`` as JSON text).

    Rows go to a hidden temporary file that becomes ``path`` only when the run completes: a Parquet
    file is whole or absent. An abandoned run deletes it (a partial file that looked complete would
    be taken for the whole run, and would block the rerun).
    """

    def __init__(self, path: str | Path, rows_per_group: int = PARQUET_ROWS_PER_GROUP) -> None:
        import pyarrow as pa

        self.path = Path(path)
        self._temporary = parquet_temporary(self.path, os.getpid())
        self._schema = pa.schema([("path", pa.string()), ("width", pa.int32()), ("height", pa.int32()),
                                  ("error", pa.string()), ("faces", pa.string())])
        self._rows: list[dict] = []
        self._rows_per_group = rows_per_group
        self._writer = None
        self._complete = False
        self.records = 0

    def write(self, record: dict) -> None:
        self._rows.append({
            "path": record["path"], "width": record.get("width"), "height": record.get("height"),
            "error": record.get("error"), "faces": json.dumps(record["faces"]) if "faces" in record else None,
        })
        self.records += 1
        if len(self._rows) >= self._rows_per_group:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self._writer is None:
            self._writer = pq.ParquetWriter(self._temporary, self._schema)
        self._writer.write_table(pa.Table.from_pylist(self._rows, schema=self._schema))
        self._rows = []

    def close(self) -> None:
        if self._rows or self._writer is None:
            self._flush()
        self._writer.close()
        os.replace(self._temporary, self.path)  # a Parquet file is whole or absent
        self._complete = True

    def abandon(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._rows = []
        self._temporary.unlink(missing_ok=True)

    @property
    def saved(self) -> str:
        if self._complete:
            return f"{self.records} records saved in {self.path}"
        return f"nothing was saved: {self.path} is written only when the run completes; rerun to score everything"


def parquet_temporary(path: str | Path, pid: int | str) -> Path:
    """The hidden file process ``pid`` writes a Parquet output's rows to until the run completes."""
    path = Path(path)
    return path.with_name(f".{path.name}.{pid}.partial")


def _pid_alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:  # another user's process
        return True
    return True


def after_killed_writer(output: str | Path) -> str:
    """What a run writing ``output`` saved once its process was killed (no ``abandon`` ran), for the job's final
    note; cleans up what it left: a Parquet output's hidden temporary of a writer that is gone is deleted
    (nothing was saved); a JSON-lines file keeps its whole lines (a torn last one is cut off by a resumed run)."""
    path = Path(output)
    if is_parquet(path):
        for temporary in path.parent.glob(f".{glob.escape(path.name)}.*.partial"):
            if not _pid_alive(temporary.name[len(path.name) + 2:-len(".partial")]):
                temporary.unlink(missing_ok=True)
                logger.info("deleted %s, left by a killed run", temporary)
        return f"nothing was saved: {path} is written only when the run completes; rerun to score everything"
    try:
        whole = path.read_bytes().count(b"\n")
    except OSError:
        whole = 0
    return f"{whole} records saved in {path} (its whole lines); resume the run to score the rest"


def is_parquet(path: str | Path) -> bool:
    return Path(path).suffix.lower() in PARQUET_SUFFIXES


def resume_jsonl(path: str | Path) -> set[str]:
    """The paths a JSON-lines output already holds, to skip when resuming.

    A torn last line is cut off first. A record of a file lost with a worker that died
    (``worker_died``) is no verdict on the file: its line is removed (the file is rewritten
    atomically) and the file is scored again.
    """
    path = Path(path)
    if not path.exists():
        return set()
    with path.open("rb+") as handle:
        data = handle.read()
        end = data.rfind(b"\n") + 1
        if end < len(data):
            logger.warning("%s: dropping a torn last line (%d bytes) before resuming", path, len(data) - end)
            handle.truncate(end)
    done: set[str] = set()
    kept: list[bytes] = []
    for number, line in enumerate(data[:end].splitlines(keepends=True), start=1):
        try:
            record = json.loads(line)
            if record.get(WORKER_DIED_KEY):
                logger.info("%s:%d: %s was lost with a worker; it will be scored again", path, number, record["path"])
                continue
            done.add(record["path"])
        except (ValueError, KeyError, TypeError, AttributeError):
            logger.warning("%s:%d is not a record; its image will be scored again", path, number)
        kept.append(line)
    if len(kept) < len(data[:end].splitlines()):
        atomic_write(path, b"".join(kept))
    return done


def open_sink(output: str | Path | None) -> RecordSink:
    """stdout for None, Parquet for ``.parquet``, else a JSON-lines file."""
    if output is None:
        return StreamSink()
    return ParquetSink(output) if is_parquet(output) else JsonLinesFileSink(output)
