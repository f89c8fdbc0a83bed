"""Sessions that end give back what the server held for them: its descriptor count returns to where it was.

Streamlit keeps a disconnected session for ``server.disconnectedSessionTTL`` (120 s) with its own asyncio
event loop (an epoll descriptor and a socket pair); the session watcher (``ui.jobs``) closes it once the
session has been gone for ``MASKDET_SESSION_GRACE_S``. Before that fix a server's descriptors grew by about
three per ended session (13 -> 82 after 16 visitors in ``benchmarks/bench_visitors.py``).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from harness import ARTIFACTS, descriptor_kinds, new_chromium, running_dashboard, server_pid, wait_for_text, wait_idle

from ui.jobs import WATCH_S

pytestmark = pytest.mark.browser

GRACE_S = 1
SESSIONS = 3
LOOP_KINDS = ("anon_inode:[eventpoll]", "socket")  # what one stored session's event loop holds
SETTLE_S = 4 * WATCH_S + GRACE_S  # a few watcher rounds after the grace, on a loaded machine


def _visit(binary: str, profile: Path, url: str) -> None:
    """One visitor: opens the Photo page, waits for it to be drawn, closes the browser (the session ends)."""
    driver = new_chromium(binary, profile)
    try:
        driver.get(f"{url}/photo")
        wait_for_text(driver, lambda t: "Upload photos" in t, 90, "the Photo page")
        wait_idle(driver, 90)
    finally:
        driver.quit()


def _loop_descriptors(pid: int) -> dict[str, int]:
    kinds = descriptor_kinds(pid)
    return {kind: kinds.get(kind, 0) for kind in LOOP_KINDS}


def _settled(pid: int, at_most: dict[str, int]) -> dict[str, int]:
    """The server's loop descriptors once they are back to ``at_most`` (or after :data:`SETTLE_S`)."""
    deadline = time.monotonic() + SETTLE_S
    while True:
        now = _loop_descriptors(pid)
        if all(now[kind] <= at_most[kind] for kind in LOOP_KINDS) or time.monotonic() > deadline:
            return now
        time.sleep(0.5)


def test_ended_sessions_do_not_leave_event_loops_in_the_server(chromium, tmp_path) -> None:
    environment = {"MASKDET_CACHE_DIR": str(tmp_path / "cache"), "MASKDET_SESSION_GRACE_S": str(GRACE_S)}
    with running_dashboard(environment, ARTIFACTS / "server-session-end.log") as url:
        pid = server_pid(url)
        _visit(chromium[0], tmp_path / "profile-first", url)  # loads what every later session shares
        time.sleep(SETTLE_S)
        before = _loop_descriptors(pid)
        for index in range(SESSIONS):
            _visit(chromium[0], tmp_path / f"profile-{index}", url)
        after = _settled(pid, before)
    assert all(after[kind] <= before[kind] for kind in LOOP_KINDS), (f"{SESSIONS} ended sessions left descriptors in the server: {before} -> {after} "
                             f"(Streamlit's stored sessions were not closed after the grace)")
