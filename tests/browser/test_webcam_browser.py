"""The Webcam page in headless Chromium: a fake camera plays real faces, the server annotates them.

The camera clip (``webcam_video``) shows held-out masked faces, then unmasked faces, then an
empty scene, in a loop. After START the readout must count frames, report FPS > 0, faces of
both classes and the no-face state; STOP must stop processing; leaving the page and coming
back must stream again. Screenshots go to ``artifacts/browser/``.
"""

from __future__ import annotations

import re
import time

import pytest
from harness import (
    people_since_start,
    fps,
    frames,
    page_text,
    screenshot,
    set_input,
    sidebar_link,
    streaming,
    wait_for,
    wait_for_text,
    wait_for_value,
    webrtc_button,
)

pytestmark = pytest.mark.browser

FIRST_FRAME_TIMEOUT_S = 60
BOTH_CLASSES_TIMEOUT_S = 60


def wait_for_new_frames(driver, timeout: float, what: str) -> str:
    """Wait until the readout shows a running stream whose frame count grows (not figures left from before)."""
    deadline = time.monotonic() + timeout
    before = now = page_text(driver)
    while time.monotonic() < deadline:
        time.sleep(1.5)
        now = page_text(driver)
        if streaming(now) and "Stopped" not in now and (frames(now) or 0) > (frames(before) or 0):
            return now
        before = now
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}; page text:\n{now}")


def test_live_readout_reports_both_classes_fps_and_no_face(dashboard, open_browser, webcam_video) -> None:
    driver = open_browser(video=webcam_video)
    driver.get(f"{dashboard.url}/webcam")
    wait_for_text(driver, lambda t: "Press START" in t, 60, "the idle readout")
    webrtc_button(driver, "START")
    wait_for_text(driver, streaming, FIRST_FRAME_TIMEOUT_S, "processed frames and FPS > 0")

    saw_no_face = False
    deadline = time.monotonic() + BOTH_CLASSES_TIMEOUT_S
    while time.monotonic() < deadline:
        text = page_text(driver)
        saw_no_face |= "No face in view" in text
        if people_since_start("with_mask", text) > 0 and people_since_start("without_mask", text) > 0 and saw_no_face:
            break
        time.sleep(0.3)
    print(text)
    assert "Compliance:" in text
    assert people_since_start("with_mask", text) > 0, text
    assert people_since_start("without_mask", text) > 0, text
    assert saw_no_face, "the empty scene never showed 'No face in view'"
    assert "could not be processed" not in text  # no errors in the frame callback
    wait_for_text(driver, lambda t: "People in view: without_mask 0, with_mask 1" in t, 30, "a masked face in view")
    text = page_text(driver)
    assert (fps(text) or 0) > 0, text
    wait_for(driver, "iframe[title='streamlit_webrtc.component.webrtc_streamer']")
    screenshot(driver, "webcam.png")

    webrtc_button(driver, "STOP")
    stopped = wait_for_text(driver, lambda t: "Stopped" in t, 30, "the stopped state")
    time.sleep(2)
    after = page_text(driver)
    assert frames(after) == frames(stopped), "frames kept being processed after STOP"
    assert fps(after) == 0.0


def test_banner_and_event_log_when_a_bare_face_stays_in_view(dashboard, open_browser, webcam_video) -> None:
    """The unmasked person stays in view 2.4 s per loop: with alerts after 1 s the banner shows and the event
    log lists the alert; the masked person never raises one."""
    driver = open_browser(video=webcam_video)
    driver.get(f"{dashboard.url}/webcam")
    wait_for_text(driver, lambda t: "Press START" in t, 60, "the idle readout")
    set_input(driver, "Alert after (s)", "1\n")
    wait_for_value(driver, "Alert after (s)", "1.00")
    webrtc_button(driver, "START")
    text = wait_for_text(driver, lambda t: "No mask:" in t, FIRST_FRAME_TIMEOUT_S + BOTH_CLASSES_TIMEOUT_S,
                         "the alert banner")
    assert re.search(r"No mask: #\d+ \(without_mask\) in view", text), text
    screenshot(driver, "webcam-alert.png")
    log = wait_for_text(driver, lambda t: re.search(r"alert\s+[\d.]+\s+\d+\s+without_mask", t), 30,
                        "the alert in the event log")
    assert not re.search(r"alert\s+[\d.]+\s+\d+\s+with_mask", log), log
    assert "Event log (CSV)" in log


def test_leaving_the_page_and_coming_back_streams_again(dashboard, open_browser, webcam_video) -> None:
    driver = open_browser(video=webcam_video)
    driver.get(f"{dashboard.url}/webcam")
    webrtc_button(driver, "START")
    wait_for_new_frames(driver, FIRST_FRAME_TIMEOUT_S, "the first stream")

    sidebar_link(driver, "dataset")  # the component unmounts while the stream runs
    wait_for_text(driver, lambda t: "Live readout" not in t, 30, "another page")
    sidebar_link(driver, "webcam")
    wait_for_text(driver, lambda t: "Live readout" in t, 30, "the Webcam page again")
    webrtc_button(driver, "START")
    wait_for_new_frames(driver, FIRST_FRAME_TIMEOUT_S, "a second stream after coming back")
    text = wait_for_new_frames(driver, 30, "the second stream to keep running")
    assert "could not be processed" not in text
    screenshot(driver, "webcam-after-navigation.png")
