"""Where batch records go: JSON lines (stdout or a file, resumable) or Parquet.

A JSON-lines file is written with one ``os.write`` of a whole line per record on a descriptor
opened with ``O_APPEND``: a process killed at any moment leaves only whole lines behind (a
regular-file write is not interrupted half way by a signal). :func:`resume_jsonl` still trims a
torn tail (a full disk, a power cut) before a resumed run appends, and returns the paths done.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Protocol, TextIO

logger = logging.getLogger(__name__)

PARQUET_SUFFIXES = (".parquet", ".pq")
PARQUET_ROWS_PER_GROUP = 1024


class RecordSink(Protocol):
    """Receives records one at a time; ``close`` makes everything durable."""

    def write(self, record: dict) -> None: ...

    def close(self) -> None: ...


def record_line(record: dict) -> str:
    """The JSON line of one record (no embedded newline: ``json.dumps`` escapes them)."""
    return json.dumps(record, ensure_ascii=False) + "\n"


class StreamSink:
    """JSON lines on a text stream (stdout), flushed per record so a reader sees each as it is made."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def write(self, record: dict) -> None:
        self.stream.write(record_line(record))
        self.stream.flush()

    def close(self) -> None:
        self.stream.flush()


class JsonLinesFileSink:
    """JSON lines appended to a file, one whole line per system call (see the module docstring)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, record: dict) -> None:
        data = record_line(record).encode("utf-8")
        written = os.write(self._fd, data)
        while written < len(data):  # a short write (rare: a full disk) is completed, not left torn
            written += os.write(self._fd, data[written:])

    def close(self) -> None:
        if self._fd >= 0:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1


class ParquetSink:
    """Records as Parquet rows (``path``, ``width``, ``height``, ``error``, ``faces`` as JSON text)."""

    def __init__(self, path: str | Path, rows_per_group: int = PARQUET_ROWS_PER_GROUP) -> None:
        import pyarrow as pa

        self.path = Path(path)
        self._temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.partial")
        self._schema = pa.schema([("path", pa.string()), ("width", pa.int32()), ("height", pa.int32()),
                                  ("error", pa.string()), ("faces", pa.string())])
        self._rows: list[dict] = []
        self._rows_per_group = rows_per_group
        self._writer = None

    def write(self, record: dict) -> None:
        self._rows.append({
            "path": record["path"], "width": record.get("width"), "height": record.get("height"),
            "error": record.get("error"), "faces": json.dumps(record["faces"]) if "faces" in record else None,
        })
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


def is_parquet(path: str | Path) -> bool:
    return Path(path).suffix.lower() in PARQUET_SUFFIXES


def resume_jsonl(path: str | Path) -> set[str]:
    """The paths a JSON-lines output already holds; a torn last line is cut off first."""
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
    for number, line in enumerate(data[:end].splitlines(), start=1):
        try:
            done.add(json.loads(line)["path"])
        except (ValueError, KeyError, TypeError):
            logger.warning("%s:%d is not a record; its image will be scored again", path, number)
    return done


def open_sink(output: str | Path | None) -> RecordSink:
    """stdout for None, Parquet for ``.parquet``, else a JSON-lines file."""
    if output is None:
        return StreamSink()
    return ParquetSink(output) if is_parquet(output) else JsonLinesFileSink(output)
