"""Helpers for driving the Streamlit dashboard with Selenium (imported by the browser tests)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import psutil
import pytest
from selenium.common.exceptions import ElementClickInterceptedException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts" / "browser"
LOOPBACK_DIR = Path(__file__).resolve().parent / "loopback"
CHROMIUM_BINARIES = ("/usr/bin/chromium", "/usr/lib/chromium/chromium")
CHROMEDRIVER = "/usr/bin/chromedriver"
SERVER_START_TIMEOUT_S = 90
STREAMLIT_RUN = ("streamlit", "run", "streamlit_app.py")
"""How the README starts the dashboard; the browser tests and docs/screenshots.py start it the same way."""
CHROMIUM_FLAGS = [  # see /tests/browser/conftest.py and the WebRTC probe notes

    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1400,1100",
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection", "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1 , EXCLUDE localhost",
]
T = TypeVar("T")
WEBRTC_IFRAME = 'iframe[title="streamlit_webrtc.component.webrtc_streamer"]'


def chromium_binary() -> str | None:
    """Debian's Chromium, when it and chromedriver (packages ``chromium``, ``chromium-driver``) are installed."""
    binary = next((path for path in CHROMIUM_BINARIES if os.access(path, os.X_OK)), None)
    return binary if binary and os.access(CHROMEDRIVER, os.X_OK) else None


def new_chromium(binary: str, profile: Path, video: Path | None = None) -> WebDriver:
    """A headless Chromium with a fresh ``profile``; ``video`` (a .y4m file) becomes the fake camera."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    if video is not None:
        options.add_argument(f"--use-file-for-fake-video-capture={video}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    return driver


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the dashboard exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"the dashboard did not answer within {SERVER_START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


@contextmanager
def running_dashboard(environment: dict[str, str], log: Path, address: str = "127.0.0.1") -> Iterator[str]:
    """``streamlit run streamlit_app.py`` on a free port with ``environment`` added, listening on ``address``
    (``0.0.0.0``: shared on purpose; always reached at 127.0.0.1); yields its URL.

    ``tests/browser/loopback`` is on its PYTHONPATH (keeps WebRTC ICE on 127.0.0.1); output goes to ``log``.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(LOOPBACK_DIR), str(REPO), os.environ.get("PYTHONPATH", "")]),
           "MASKDET_ICE_SERVERS": "[]", **environment}
    command = [
        sys.executable, "-m", *STREAMLIT_RUN, "--server.address", address,
        "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
        "--server.fileWatcherType", "none", "--global.developmentMode", "false",
    ]
    with open(log, "w") as handle:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=handle, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def server_pid(url: str) -> int:
    """The process id of the dashboard :func:`running_dashboard` started at ``url`` (matched by its port)."""
    port = url.rsplit(":", 1)[1]
    for process in psutil.Process().children():
        command = process.cmdline()
        if "streamlit" in " ".join(command) and port in command:
            return process.pid
    raise LookupError(f"no dashboard of this process listens on port {port}")


def descriptor_kinds(pid: int) -> dict[str, int]:
    """Process ``pid``'s open descriptors by kind: ``socket``, ``pipe``, ``anon_inode:[eventpoll]``, ``file``..."""
    kinds: dict[str, int] = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        kind = target.split(":")[0] if ":" in target and not target.startswith("/") else "file"
        kind = f"{kind}:{target.split(':', 1)[1]}" if kind == "anon_inode" else kind
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


def retrying(action: Callable[[], T], timeout: float = 30) -> T:
    """Run ``action`` again while Streamlit re-renders under it (stale or covered elements)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return action()
        except (StaleElementReferenceException, ElementClickInterceptedException):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def page_text(driver: WebDriver) -> str:
    """All visible text of the Streamlit page (component iframes excluded)."""
    driver.switch_to.default_content()
    return retrying(lambda: driver.find_element(By.TAG_NAME, "body").text)


def wait_for_text(driver: WebDriver, predicate: Callable[[str], object], timeout: float, what: str) -> str:
    """Poll the page text until ``predicate(text)`` is truthy; fail with the last text seen."""
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = page_text(driver)
        if predicate(text):
            return text
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}; page text:\n{text}")


def wait_for(driver: WebDriver, css: str, timeout: float = 60) -> WebElement:
    return WebDriverWait(driver, timeout).until(EC.presence_of_element_located((By.CSS_SELECTOR, css)))


def click_button(driver: WebDriver, label: str, timeout: float = 60) -> None:
    """Click the Streamlit button whose visible text is ``label``."""
    xpath = f"//button[normalize-space(.)={label!r}]"
    retrying(lambda: WebDriverWait(driver, timeout).until(EC.element_to_be_clickable((By.XPATH, xpath))).click())


def webrtc_button(driver: WebDriver, label: str, timeout: float = 60) -> None:
    """Click START / STOP inside the streamlit-webrtc component iframe, then return to the page."""
    xpath = ("//button[translate(normalize-space(.), 'abcdefghijklmnopqrstuvwxyz', 'ABCDEFGHIJKLMNOPQRSTUVWXYZ')"
             f"={label.upper()!r}]")

    def click() -> None:
        driver.switch_to.default_content()
        driver.switch_to.frame(wait_for(driver, WEBRTC_IFRAME, timeout))
        try:
            WebDriverWait(driver, timeout).until(EC.element_to_be_clickable((By.XPATH, xpath))).click()
        finally:
            driver.switch_to.default_content()

    retrying(click)


def expand(driver: WebDriver, label: str, timeout: float = 30) -> None:
    """Open the st.expander titled ``label`` (its inputs are hidden, so not clickable, while it is closed)."""
    xpath = f"//details[not(@open)]/summary[.//*[normalize-space(.)={label!r}]]"
    if driver.find_elements(By.XPATH, xpath):
        retrying(lambda: WebDriverWait(driver, timeout).until(EC.element_to_be_clickable((By.XPATH, xpath))).click())


NAVIGATION_LINKS = "[data-testid='stSidebar'] a[data-testid='stPageLink-NavLink']"  # ui/navigation.py


def sidebar_link(driver: WebDriver, url_path: str, timeout: float = 30) -> None:
    """Navigate inside the app (same session) with the sidebar link to ``/url_path`` ("" = the home page)."""
    css = f"{NAVIGATION_LINKS}[href={url_path!r}]"
    retrying(lambda: WebDriverWait(driver, timeout).until(EC.element_to_be_clickable((By.CSS_SELECTOR, css))).click())


def _open_selectbox(driver: WebDriver, label: str, timeout: float) -> WebElement:
    box = WebDriverWait(driver, timeout).until(
        EC.element_to_be_clickable((By.CSS_SELECTOR, f"input[role='combobox'][aria-label={label!r}]")))
    box.click()
    return box


def choose_option(driver: WebDriver, label: str, option: str, timeout: float = 30) -> None:
    """Pick ``option`` in the st.selectbox labelled ``label``."""
    def pick() -> None:
        _open_selectbox(driver, label, timeout)
        WebDriverWait(driver, timeout).until(EC.element_to_be_clickable((
            By.XPATH, f"//*[@role='option'][normalize-space(.)={option!r}]",
        ))).click()

    retrying(pick)


def selectbox_options(driver: WebDriver, label: str, timeout: float = 30) -> list[str]:
    """The options of the st.selectbox labelled ``label`` (opens its list, then closes it with Escape)."""
    def read() -> list[str]:
        box = _open_selectbox(driver, label, timeout)
        options = WebDriverWait(driver, timeout).until(
            EC.presence_of_all_elements_located((By.XPATH, "//*[@role='option']")))
        names = [option.text.strip() for option in options]
        box.send_keys(Keys.ESCAPE)
        return names

    return retrying(read)


def input_value(driver: WebDriver, label: str) -> str | None:
    """The current value of the input labelled ``label`` (None while it is not on the page)."""
    def read() -> str | None:  # looks the input up again when a rerun replaced it
        fields = driver.find_elements(By.CSS_SELECTOR, f"input[aria-label={label!r}]")
        return fields[0].get_attribute("value") if fields else None

    return retrying(read)


def wait_for_value(driver: WebDriver, label: str, value: str, timeout: float = 30) -> None:
    """Wait until the input labelled ``label`` shows ``value`` (e.g. after a rerun rebuilt a form)."""
    WebDriverWait(driver, timeout, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda d: input_value(d, label) == value, f"input {label!r} never showed {value!r}")


def wait_idle(driver: WebDriver, timeout: float = 60, quiet_s: float = 1.0) -> None:
    """Wait until no script run is in progress for ``quiet_s`` (Streamlit's status widget is gone)."""
    deadline = time.monotonic() + timeout
    quiet_since = None
    while time.monotonic() < deadline:
        driver.switch_to.default_content()
        if driver.find_elements(By.CSS_SELECTOR, "[data-testid='stStatusWidget']"):
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= quiet_s:
            return
        time.sleep(0.2)
    pytest.fail(f"the app kept running for {timeout:.0f} s")


def set_input(driver: WebDriver, label: str, value: str, timeout: float = 30) -> None:
    """Type ``value`` into the text / number input labelled ``label``."""
    def type_() -> None:
        field = WebDriverWait(driver, timeout).until(
            EC.element_to_be_clickable((By.CSS_SELECTOR, f"input[aria-label={label!r}]")))
        field.click()
        field.send_keys(Keys.CONTROL, "a")
        field.send_keys(Keys.DELETE)
        field.send_keys(value)

    retrying(type_)


def fill_inputs(driver: WebDriver, values: dict[str, str], timeout: float = 60) -> None:
    """Type every ``label: value`` and check they all hold, typing again if a rerun rebuilt the inputs."""
    deadline = time.monotonic() + timeout
    while True:
        wait_idle(driver)
        for label, value in values.items():
            if input_value(driver, label) != value:
                set_input(driver, label, value)
        time.sleep(0.5)
        wait_idle(driver)
        shown = {label: input_value(driver, label) for label in values}
        if shown == values:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"inputs show {shown}, expected {values}")


def number(pattern: str, text: str) -> float | None:
    """The first group of ``pattern`` in ``text`` as a float, or None."""
    match = re.search(pattern, text)
    return float(match.group(1)) if match else None


# The Webcam page's live readout, read from the page text.
def frames(text: str) -> float | None:
    return number(r"Frames processed: (\d+)", text)


def fps(text: str) -> float | None:
    return number(r"FPS: ([\d.]+)", text)


def people_since_start(cls: str, text: str) -> float:
    """People of class ``cls`` counted since START (one per tracked person, not per frame)."""
    return number(rf"People since START:[^\n]*?(?<![a-z]){cls} (\d+)", text) or 0


def streaming(text: str) -> bool:
    """True when the readout shows processed frames and a frame rate above zero."""
    return (frames(text) or 0) > 0 and (fps(text) or 0) > 0


def screenshot(driver: WebDriver, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    driver.switch_to.default_content()
    driver.save_screenshot(str(path))
    return path
