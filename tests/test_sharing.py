"""Private by default, shared on purpose: the dashboard listens on loopback with the repo's config, and a
server reachable from the network confines typed paths to maskdet's own folders unless told otherwise."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import streamlit as st
from dashboard import page_test
from markdown_text import texts
from streamlit import config as st_config
from streamlit.testing.v1 import AppTest

from maskdet.settings import REPO_ROOT
from maskdet.sharing import PATH_ROOTS_ENV, default_roots, is_loopback, path_roots
from ui.access import OWNER_KEY, SECRET_KEY
from ui.dataset_picker import SOURCE_PATH, SOURCE_SAMPLE, SOURCE_UPLOAD

DATASET_PAGE = "pages/dataset.py"
STARTUP_S = 90
REFUSED = "is outside the folders this server allows"


@pytest.mark.parametrize("address", ["localhost", "LOCALHOST", "127.0.0.1", "127.3.2.1", "::1", "[::1]"])
def test_loopback_addresses(address: str) -> None:
    assert is_loopback(address)


@pytest.mark.parametrize("address", [None, "", "0.0.0.0", "::", "192.168.1.20", "10.0.0.5", "example.org",
                                     "my-laptop", "localhost.evil.org", "unix:///tmp/streamlit.sock"])
def test_everything_else_counts_as_exposed(address: str | None) -> None:
    assert not is_loopback(address)


def test_path_roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MASKDET_DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.setenv("MASKDET_CACHE_DIR", str(tmp_path / "cache"))
    assert path_roots(exposed=False, value=None) is None  # the owner on loopback: anything readable
    assert path_roots(exposed=True, value="  ") == default_roots()  # exposed and unset: fail closed
    monkeypatch.setenv("MASKDET_MODELS_DIR", str(tmp_path / "models"))
    assert default_roots() == [tmp_path / "data", tmp_path / "models"]
    assert not any((tmp_path / "cache").is_relative_to(root) for root in default_roots())  # never the uploads
    chosen = f"{tmp_path / 'a'}{os.pathsep}{tmp_path / 'b'}"
    for exposed in (False, True):  # the variable wins either way
        assert path_roots(exposed=exposed, value=chosen) == [tmp_path / "a", tmp_path / "b"]


@contextlib.contextmanager
def server_address(address: str | None):
    """Run with Streamlit's ``server.address`` set as ``streamlit run --server.address`` would."""
    previous = st.get_option("server.address")
    st_config.set_option("server.address", address, "command-line argument or environment variable")
    try:
        yield
    finally:
        st_config.set_option("server.address", previous, "command-line argument or environment variable")


def type_path(at: AppTest, path: Path) -> AppTest:
    return at.text_input(key="dataset_path").input(str(path)).run()


def test_an_exposed_server_confines_typed_paths_to_maskdets_folders(tiny_dataset: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "root"
    shutil.copytree(tiny_dataset, root / "tiny")
    elsewhere = shutil.copytree(tiny_dataset, tmp_path / "elsewhere")
    monkeypatch.setenv("MASKDET_DATA_ROOT", str(root))
    monkeypatch.setenv("MASKDET_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(PATH_ROOTS_ENV, raising=False)
    st.cache_data.clear()

    with server_address("0.0.0.0"):
        at = page_test(DATASET_PAGE, 120)
        at.session_state[OWNER_KEY] = True  # the owner, signed in: typed paths are the owner's
        at.run()
        at.radio(key="dataset_source").set_value(SOURCE_PATH).run()
        limits = texts(at.caption)
        assert "reachable from the network, so typed paths are limited to" in limits
        assert str(root) in limits and PATH_ROOTS_ENV in limits  # where, and how to widen it
        for outside in (elsewhere, Path("/etc"), root / ".." / "elsewhere"):
            type_path(at, outside)
            assert not at.exception
            assert REFUSED in texts(at.error), outside
            assert not at.metric
        type_path(at, root / "tiny")  # the data-set root stays usable
        assert not at.exception and not at.error
        assert {m.label: m.value for m in at.metric}["Readable images"] == "24"

        monkeypatch.setenv(PATH_ROOTS_ENV, str(tmp_path))  # widened on purpose
        type_path(at, elsewhere)
        assert not at.error and at.metric
        assert f"Typed paths are limited to `{tmp_path}`" in texts(at.caption)

    monkeypatch.delenv(PATH_ROOTS_ENV)
    with server_address("localhost"):  # the owner on loopback: nothing changes
        at = page_test(DATASET_PAGE, 120).run()
        at.radio(key="dataset_source").set_value(SOURCE_PATH).run()
        type_path(at, elsewhere)
        assert not at.exception and not at.error and at.metric
        assert "typed paths are limited" not in texts(at.caption).lower()


def _sidebar_app() -> None:
    from ui.exposure import exposure_notice

    exposure_notice()


def test_the_sidebar_says_who_can_reach_the_dashboard() -> None:
    for address, expected in (("localhost", "Private to this machine"), ("0.0.0.0", "Reachable from the network"),
                              (None, "Reachable from the network")):
        with server_address(address):
            at = AppTest.from_function(_sidebar_app).run()
        assert not at.exception
        assert [expected in c.value for c in at.sidebar.caption] == [True], address


# --- issue 23: owner and visitors ------------------------------------------------------------------------


@pytest.mark.parametrize("header", ["X-Forwarded-For", "x-forwarded-for", "Forwarded", "X-Real-IP"])
def test_a_request_through_a_reverse_proxy_is_from_the_network(header: str) -> None:
    """Defect 2: behind the README's reverse proxy the server listens on loopback, yet every request comes from
    the network; the forwarded headers say so (fail closed)."""
    from maskdet.sharing import is_exposed

    assert is_exposed("127.0.0.1", {header: "203.0.113.7", "Host": "masks.example.org"})
    assert is_exposed("0.0.0.0", {})
    assert not is_exposed("127.0.0.1", {"Host": "localhost:8501", "User-Agent": "x"})


def test_owner_sign_in_secret_and_rate_limits() -> None:
    from maskdet.sharing import SignInLimiter, owner_email, secret_matches

    assert secret_matches("s3cret-long", "s3cret-long")
    assert not secret_matches("s3cret-lonG", "s3cret-long") and not secret_matches("", "") and not secret_matches(
        "x", None)
    assert owner_email("Ann@Example.org", "bob@example.org, ann@example.org")
    assert not owner_email("eve@example.org", "ann@example.org") and not owner_email(None, "")
    limiter = SignInLimiter(per_session=3, server_wide=5, window_s=60)
    for _ in range(3):
        assert limiter.wait_s("tab-1", now=0) == 0
        limiter.failed("tab-1", now=0)
    assert limiter.wait_s("tab-1", now=1) > 0  # this tab has used its attempts
    for tab in ("tab-2", "tab-3"):  # new tabs do not buy more than the server allows
        limiter.failed(tab, now=2)
    assert limiter.wait_s("tab-4", now=3) > 0
    assert limiter.wait_s("tab-4", now=63) == 0  # the window has passed


def _train_page(owner: bool | None = None) -> AppTest:
    at = page_test("pages/train.py", 120)
    if owner is not None:
        at.session_state[OWNER_KEY] = owner
    return at.run()


def test_a_visitor_of_a_shared_server_cannot_train_type_paths_or_save_thresholds(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Defect 2: every owner's action was offered to whoever reached an exposed server."""
    monkeypatch.setenv("MASKDET_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MASKDET_OWNER_SECRET", "correct horse battery staple")
    with server_address("0.0.0.0"):
        at = _train_page()
        assert not at.exception
        assert "Start training" not in [b.label for b in at.button]
        assert "only the owner may train" in texts(at.info)
        assert any("Visitor" in c.value for c in at.sidebar.caption)
        assert SOURCE_PATH not in (at.radio(key="train_source").options if at.get("radio") else [])

        dataset = page_test(DATASET_PAGE, 120).run()
        assert SOURCE_PATH not in dataset.radio(key="dataset_source").options

        at.text_input(key=SECRET_KEY).input("wrong")
        at.button(key="access_sign_in").click().run()
        assert "That is not the owner's secret." in texts(at.sidebar.caption)
        assert "Start training" not in [b.label for b in at.button]
        at.text_input(key=SECRET_KEY).input("correct horse battery staple")
        at.button(key="access_sign_in").click().run()
        assert not at.exception
        assert "Start training" in [b.label for b in at.button]
        assert any("Owner (signed in)" in c.value for c in at.sidebar.caption)
        assert at.session_state[SECRET_KEY] == ""  # the secret is not kept in the session
    with server_address("localhost"):  # on loopback nothing changes for the owner
        at = _train_page()
        assert "Start training" in [b.label for b in at.button]
        assert any("Owner (this machine)" in c.value for c in at.sidebar.caption)


def test_a_visitors_uploads_are_never_reachable_from_another_session(
        tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Defect 1: the upload folder was an allowed root of an exposed server, so a second visitor who typed the
    printed path was shown the first visitor's extraction."""
    from test_page_dataset import zip_of

    from maskdet.workspace import sessions_root

    monkeypatch.setenv("MASKDET_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(PATH_ROOTS_ENV, raising=False)
    with server_address("0.0.0.0"):
        first = page_test(DATASET_PAGE, 120).run()
        if first.radio(key="dataset_source").value != "Upload a .zip":
            first.radio(key="dataset_source").set_value("Upload a .zip").run()
        first.file_uploader(key="dataset_zip").set_value(("masks.zip", zip_of(tiny_dataset), "application/zip")).run()
        assert not first.exception and not first.error
        extracted = [p for p in (tmp_path / "cache").rglob("upload-*") if p.is_dir()]
        assert len(extracted) == 1
        assert extracted[0].is_relative_to(sessions_root())  # in the first visitor's own folder

        second = page_test(DATASET_PAGE, 120).run()
        if SOURCE_PATH in second.radio(key="dataset_source").options:  # today's main: the second visitor types it
            second.radio(key="dataset_source").set_value(SOURCE_PATH).run()
            second.text_input(key="dataset_path").input(str(extracted[0])).run()
            assert not second.metric, "the second visitor was shown the first visitor's upload"
        typed = AppTest.from_function(_typed, args=(str(extracted[0]),)).run()
        assert "only the owner may type a server path" in typed.exception[0].message
    assert not any(extracted[0].is_relative_to(root) for root in default_roots())


def test_a_visitor_may_use_the_built_in_sample_but_still_not_type_paths(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Visitors get the read-only sample built into maskdet as a data source (the Dataset page, the Compare
    page's evaluations), beside their uploads; server folders and typed paths stay the owner's."""
    from maskdet.data.local import SAMPLE_ROOT

    monkeypatch.setenv("MASKDET_CACHE_DIR", str(tmp_path / "cache"))
    with server_address("0.0.0.0"):
        at = page_test(DATASET_PAGE, 120).run()
        assert at.radio(key="dataset_source").options == [SOURCE_UPLOAD, SOURCE_SAMPLE]
        at.radio(key="dataset_source").set_value(SOURCE_SAMPLE).run()
        assert not at.exception and not at.error
        assert at.selectbox(key="dataset_sample").value == "sample-faces"
        assert at.metric, "the visitor was not shown the sample's audit"
        assert not (tmp_path / "cache" / "sessions").exists() or not any((tmp_path / "cache" / "sessions").rglob("*.jpg"))

        pickers = AppTest.from_function(_pick_both_kinds).run()  # the Compare page's two pickers
        for key in ("unseen", "scenes"):
            assert pickers.radio(key=f"{key}_source").options == [SOURCE_UPLOAD, SOURCE_SAMPLE]
            pickers.radio(key=f"{key}_source").set_value(SOURCE_SAMPLE).run()
        assert not pickers.exception
        assert pickers.session_state["picked"] == {"unseen": str(SAMPLE_ROOT / "sample-faces"),
                                                   "scenes": str(SAMPLE_ROOT / "sample-photos")}


def _pick_both_kinds() -> None:
    import streamlit as st

    from ui.dataset_picker import BOXED_PHOTOS, IMAGE_FOLDERS, choose_dataset

    st.session_state["picked"] = {key: str(choose_dataset(key, kind)) for key, kind in
                                  (("unseen", IMAGE_FOLDERS), ("scenes", BOXED_PHOTOS))}


def _typed(path: str) -> None:
    import streamlit as st

    from ui.paths import typed_path

    st.session_state["typed"] = typed_path(path)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _other_addresses() -> list[str]:
    """IPv4 addresses of this machine's non-loopback interfaces."""
    return [a.address for addrs in psutil.net_if_addrs().values() for a in addrs
            if a.family == socket.AF_INET and not a.address.startswith("127.")]


def _listening(process: psutil.Process, port: int) -> set[str]:
    return {c.laddr.ip for c in process.net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port}


@pytest.mark.parametrize("shared", [False, True], ids=["repo-config", "shared-on-purpose"])
def test_the_dashboard_listens_on_loopback_only_unless_shared_on_purpose(shared: bool, tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "MASKDET_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("STREAMLIT_SERVER_ADDRESS", None)
    command = [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.port", str(port)]
    if shared:
        command += ["--server.address", "0.0.0.0"]  # what the README says to do to share
    server = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        process = psutil.Process(server.pid)
        deadline = time.monotonic() + STARTUP_S
        while not _listening(process, port) and time.monotonic() < deadline and server.poll() is None:
            time.sleep(0.5)
        assert _listening(process, port), f"the dashboard did not listen on port {port}"
        time.sleep(1)  # Streamlit may bind one socket per address: let every one appear
        listening = _listening(process, port)
        assert all(is_loopback(ip) for ip in listening) != shared, listening
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # always reachable from this machine
        for address in _other_addresses():  # the listening check above covers a machine without any
            if shared:
                with socket.create_connection((address, port), timeout=5):
                    pass
            else:
                with pytest.raises(OSError), socket.create_connection((address, port), timeout=5):
                    pass
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
