"""Benchmark the data set audit and the Dataset page: first scan vs. cached renders.

Targets (issue "Dataset page"): the first scan of face-mask-4k finishes in about 30 s or
less, and once cached by the folder's fingerprint the page renders in under 2 s.

    python benchmarks/bench_dataset.py [--dataset PATH] [--repeat N] [--cold]

Every measurement starts from a fresh, temporary ``MASKDET_CACHE_DIR``, so nothing cached
by earlier runs is reused. ``--cold`` also asks the kernel to drop the data set's files
from its page cache before each first scan (Linux ``posix_fadvise``; only those files), so
the first scan includes reading from disk.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a plain script; the page under test imports `maskdet` and `ui`

import streamlit as st  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

from maskdet.data.audit import audit_dataset  # noqa: E402
from maskdet.settings import data_root  # noqa: E402

ENTRY = REPO / "streamlit_app.py"
PAGE = "pages/dataset.py"  # run as a deep link runs it: the app of ENTRY at this page
PAGE_TIMEOUT_S = 600


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def median_of(repeat: int, action: Callable[[], object]) -> float:
    return statistics.median(timed(action) for _ in range(repeat))


def evict_from_page_cache(dataset: Path) -> None:
    """Drop ``dataset``'s files from the OS page cache so the next read comes from disk."""
    for path in dataset.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def render(at: AppTest) -> AppTest:
    at.run()
    if at.exception:
        raise RuntimeError(f"page raised: {at.exception[0].value}")
    return at


def new_session(dataset: Path) -> AppTest:
    """A fresh page session with ``dataset`` chosen in the picker (as if the user had picked it)."""
    at = AppTest.from_file(str(ENTRY), default_timeout=PAGE_TIMEOUT_S).switch_page(PAGE)
    at.session_state["dataset_listed"] = dataset.name
    return at


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=data_root() / "face-mask-4k")
    parser.add_argument("--repeat", type=int, default=5, help="runs per cached measurement (median reported)")
    parser.add_argument("--cold", action="store_true", help="drop the data set from the OS file cache first")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # AppTest outside a server warns "missing ScriptRunContext" on every run
    dataset: Path = args.dataset.resolve()
    os.environ["MASKDET_DATA_ROOT"] = str(dataset.parent)  # the picker lists the data set's siblings

    results: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory() as library_cache, tempfile.TemporaryDirectory() as page_cache:
        os.environ["MASKDET_CACHE_DIR"] = library_cache
        audit = None

        def first_audit() -> None:
            nonlocal audit
            audit = audit_dataset(dataset)

        if args.cold:
            evict_from_page_cache(dataset)
        results.append(("library: first scan + audit (empty cache)", timed(first_audit)))
        cached = median_of(args.repeat, lambda: audit_dataset(dataset))
        results.append(("library: audit, catalogue cached on disk", cached))

        os.environ["MASKDET_CACHE_DIR"] = page_cache
        st.cache_data.clear()
        at = new_session(dataset)
        if args.cold:
            evict_from_page_cache(dataset)
        results.append(("page: first visit, scans with progress bar", timed(lambda: render(at))))
        results.append(("page: rerun in the same session", median_of(args.repeat, lambda: render(at))))
        new_sessions = median_of(args.repeat, lambda: render(new_session(dataset)))
        results.append(("page: new session, audit cached", new_sessions))

        def after_restart() -> None:
            st.cache_data.clear()
            render(new_session(dataset))

        results.append(("page: after server restart (disk cache only)", median_of(args.repeat, after_restart)))

    assert audit is not None
    print(f"data set: {dataset} ({audit.total_files:,} files, {len(audit.duplicates.groups):,} near-duplicate groups)")
    print(f"cpus: {os.cpu_count()}, OS file cache: {'dropped' if args.cold else 'as found'}, "
          f"cached measurements: median of {args.repeat}")
    width = max(len(label) for label, _ in results)
    for label, seconds in results:
        print(f"{label:<{width}}  {seconds:7.2f} s")


if __name__ == "__main__":
    main()
