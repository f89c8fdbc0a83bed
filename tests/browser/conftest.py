"""Real-browser test harness: the dashboard in a subprocess, headless Chromium driven by Selenium.

- ``dashboard``: ``streamlit run streamlit_app.py`` on a free loopback port (one per session),
  with ``MASKDET_MODELS_DIR`` holding a copy of the real ``tiny_mobilenet`` (the default model),
  ``MASKDET_DATA_ROOT`` holding one tiny real data set, and ``tests/browser/loopback`` on its
  PYTHONPATH: a test-only ``sitecustomize`` that keeps WebRTC ICE on 127.0.0.1 (this machine
  is offline; see that file). Its log is saved to ``artifacts/browser/server.log``.
- ``open_browser(video=None)``: Debian Chromium + chromedriver with a fresh profile; ``video``
  (a .y4m file) becomes the fake camera. Flags from the WebRTC probe notes: loopback ICE,
  no DNS, no background traffic.
- ``webcam_video``: a y4m clip of real held-out faces on a 640x480 background: masked faces,
  then unmasked faces, then an empty scene (Chromium loops it).

Missing Chromium fails the tests when ``CI`` is set and skips them elsewhere.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from harness import ARTIFACTS, CHROMEDRIVER, chromium_binary, new_chromium, running_dashboard

DEFAULT_MODEL = "tiny-mobilenet"
DATASET_NAME = "tiny-faces"
VIDEO_FPS = 20
FRAMES_PER_FACE = 12  # 0.6 s per face; 4 faces per class + an empty scene = a 5.4 s loop
FACES_PER_CLASS = 4
EMPTY_FRAMES = 30  # 1.5 s of empty scene: longer than a track outlives its face, so each loop's people leave


def _unavailable(message: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@dataclass(frozen=True)
class Dashboard:
    url: str
    models_dir: Path
    data_root: Path
    log: Path


@pytest.fixture(scope="session")
def chromium() -> tuple[str, str]:
    """(browser binary, chromedriver) from the Debian packages ``chromium`` and ``chromium-driver``."""
    binary = chromium_binary()
    if binary is None:
        _unavailable("headless Chromium not found: apt-get install chromium chromium-driver")
    return binary, CHROMEDRIVER


def _browser_folders(tmp_path_factory, tiny_mobilenet: Path, tiny_dataset: Path) -> tuple[Path, Path]:  # noqa: ANN001
    """A models folder holding a copy of the tiny MobileNetV2 and a data-set root holding the tiny data set."""
    models = tmp_path_factory.mktemp("browser-models")
    shutil.copytree(tiny_mobilenet, models / DEFAULT_MODEL)
    data_root = tmp_path_factory.mktemp("browser-data")
    shutil.copytree(tiny_dataset, data_root / DATASET_NAME)
    return models, data_root


@pytest.fixture(scope="session")
def dashboard(chromium, tmp_path_factory, tiny_mobilenet: Path, tiny_dataset: Path) -> Iterator[Dashboard]:
    """The real dashboard on a free loopback port, with one real model and one real tiny data set."""
    models, data_root = _browser_folders(tmp_path_factory, tiny_mobilenet, tiny_dataset)
    log = ARTIFACTS / "server.log"
    environment = {"MASKDET_MODELS_DIR": str(models), "MASKDET_DEFAULT_MODEL": DEFAULT_MODEL,
                   "MASKDET_DATA_ROOT": str(data_root)}
    with running_dashboard(environment, log) as url:
        yield Dashboard(url=url, models_dir=models, data_root=data_root, log=log)


OWNER_SECRET = "browser-test owner secret"


@pytest.fixture(scope="session")
def shared_dashboard(chromium, tmp_path_factory, tiny_mobilenet: Path, tiny_dataset: Path) -> Iterator[Dashboard]:
    """The real dashboard shared on purpose (listening on every interface, as the README's sharing recipe says),
    with an owner secret and its own cache: every browser that is not signed in is a visitor."""
    models, data_root = _browser_folders(tmp_path_factory, tiny_mobilenet, tiny_dataset)
    cache = tmp_path_factory.mktemp("shared-cache")
    source = Path(os.environ.get("MASKDET_CACHE_DIR", "/nonexistent")) / "detectors"
    if source.is_dir():  # the face detector, when the test cache holds it (else fetched once)
        shutil.copytree(source, cache / "detectors")
    log = ARTIFACTS / "shared-server.log"
    environment = {"MASKDET_MODELS_DIR": str(models), "MASKDET_DEFAULT_MODEL": DEFAULT_MODEL,
                   "MASKDET_DATA_ROOT": str(data_root), "MASKDET_OWNER_SECRET": OWNER_SECRET,
                   "MASKDET_CACHE_DIR": str(cache), "MASKDET_SESSION_GRACE_S": "5"}
    with running_dashboard(environment, log, address="0.0.0.0") as url:
        yield Dashboard(url=url, models_dir=models, data_root=data_root, log=log)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def open_browser(chromium, tmp_path, request) -> Iterator[Callable[..., object]]:
    """Factory: a fresh headless Chromium (``video``: a .y4m fake camera); a failing test saves a screenshot."""
    drivers = []

    def open_(video: Path | None = None):
        driver = new_chromium(chromium[0], tmp_path / f"profile-{len(drivers)}", video)
        drivers.append(driver)
        return driver

    yield open_
    failed = getattr(request.node, "report_call", None) is not None and request.node.report_call.failed
    for index, driver in enumerate(drivers):
        if failed:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(ARTIFACTS / f"FAILED-{request.node.name}-{index}.png"))
        driver.quit()


@pytest.fixture(scope="session")
def webcam_video(tmp_path_factory, held_out_faces, frame_composer) -> Path:
    """A looping fake-camera clip (y4m, 640x480, 20 fps): 4 masked faces (one place, one person to the tracker),
    4 unmasked faces elsewhere (another person, in view 2.4 s), 1.5 s of empty scene."""
    import av

    path = tmp_path_factory.mktemp("camera") / "faces.y4m"
    scenes = [[held_out_faces["with_mask"][i]] for i in range(FACES_PER_CLASS)]
    scenes += [[held_out_faces["without_mask"][i]] for i in range(FACES_PER_CLASS)]
    scenes.append([])
    with av.open(str(path), "w", format="yuv4mpegpipe") as container:
        stream = container.add_stream("wrapped_avframe", rate=VIDEO_FPS)
        stream.width, stream.height, stream.pix_fmt = 640, 480, "yuv420p"
        for index, faces in enumerate(scenes):
            masked = index < FACES_PER_CLASS  # masked people on the left, unmasked on the right: two tracks
            for step in range(FRAMES_PER_FACE if faces else EMPTY_FRAMES):
                box = ((20 if masked else 380) + 10 * (index % 4) + 2 * step, 110 + 2 * step, 180)  # drifts like a head
                rgb = frame_composer(faces, [box] * len(faces))
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
                for packet in stream.encode(frame):
                    container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
