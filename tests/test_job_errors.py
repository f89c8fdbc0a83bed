"""A job that fails on bad input says so in one line on its console; a fault keeps its traceback."""

from __future__ import annotations

import threading

import pytest

from maskdet.jobs.worker import execute
from maskdet.video.decode import VideoDecodeError


def run(function) -> list:
    sent: list = []
    execute(function, {}, lambda kind, payload: sent.append((kind, payload)), threading.Event())
    return sent


def test_a_bad_video_logs_one_line_and_a_bug_its_traceback(capsys: pytest.CaptureFixture) -> None:
    def bad_clip(params, job):
        raise VideoDecodeError("clip.mp4: no video stream")

    def bug(params, job):
        raise KeyError("oops")

    assert run(bad_clip)[-1] == ("failed", "clip.mp4: no video stream")
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and "no video stream" in err
    run(bug)
    assert "Traceback" in capsys.readouterr().err
