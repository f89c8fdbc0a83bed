"""What to score, streamed: files as given, folders walked one directory at a time, never listed whole."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path

from maskdet.data.files import Skipped, file_problem, iter_files

Item = Path | Skipped
"""A file to score, or an entry that cannot be read (reported as an error record, never opened)."""


def iter_image_paths(paths: Iterable[str | Path]) -> Iterator[Item]:
    """Files as given, folders walked (:func:`maskdet.data.files.iter_files`); unreadable entries as ``Skipped``.

    Nothing is opened here: a named pipe or device given by name, or found in a folder, is reported, not read.
    """
    for raw in paths:
        path = Path(raw)
        problem = file_problem(path)
        if problem == "a folder":
            try:
                yield from iter_files(path)
            except OSError as exc:
                yield Skipped(path, f"a folder that cannot be listed ({exc.strerror or exc})")
        elif problem is None or problem == "missing":
            yield path  # decoding reports a missing file like any unreadable one
        else:
            yield Skipped(path, problem)


def item_path(item: Item) -> Path:
    return item.path if isinstance(item, Skipped) else item


def count_image_paths(paths: Iterable[str | Path]) -> int:
    """How many items :func:`iter_image_paths` yields (one cheap walk, no decoding), for an ETA."""
    return sum(1 for _ in iter_image_paths(paths))


def chunked(items: Iterable, size: int) -> Iterator[list]:
    """Consecutive lists of at most ``size`` items."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk
