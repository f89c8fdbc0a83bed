"""`datasets get` / `datasets list` against a real HTTP server on loopback serving files of ../shared.

The pinned manifests describe the publishers' files, which are not here: each test serves a small
snapshot built from ../shared data under ``OWNER/REPO/COMMIT/PATH`` and writes a manifest for it (git
blob SHA-1 and size per file), then fetches it through the same registry, pooch download, manifest
check and layout as the real sets.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from maskdet import cli
from maskdet.data import public
from maskdet.data.annotations import load_scene_set
from maskdet.data.datasets import scan_dataset
from maskdet.data.public import PublicDataset, git_blob_sha1

REPO = Path(__file__).resolve().parent.parent
COMMIT = "0123456789abcdef0123456789abcdef01234567"
PER_CLASS = 5


class _Handler(SimpleHTTPRequestHandler):
    """Serves the snapshot; counts GETs; past ``cut_after`` GETs, sends half a file and drops the connection."""

    served: list[str]
    cut_after: int | None = None

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.server.requests.append(self.path)
        cut = self.server.cut_after
        if cut is not None and len(self.server.requests) > cut:
            path = Path(self.translate_path(self.path))
            data = path.read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def server(tmp_path):
    """A loopback HTTP server over ``tmp_path / "www"``; yields (server, base URL)."""
    www = tmp_path / "www"
    www.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler, directory=str(www)))
    httpd.requests = []
    httpd.cut_after = None
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _snapshot(www: Path, manifest: Path, repository: str, files: dict[str, Path]) -> None:
    """Serve ``files`` (publisher path -> source file) under REPOSITORY/COMMIT and write their manifest."""
    lines = [f"# repository: github.com/{repository}  commit: {COMMIT}  folder: x",
             "# one line per file: git blob SHA-1 <TAB> size in bytes <TAB> path"]
    for relpath, source in sorted(files.items()):
        target = www / repository / COMMIT / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        data = source.read_bytes()
        lines.append(f"{git_blob_sha1(data)}\t{len(data)}\t{relpath}")
    manifest.write_text("\n".join(lines) + "\n")


@pytest.fixture()
def env(tmp_path, monkeypatch, server):
    """Data root (empty, writable), cache, user data folder and the server's URL, all in tmp_path."""
    httpd, url = server
    for name, folder in (("MASKDET_DATA_ROOT", "root"), ("MASKDET_CACHE_DIR", "cache"), ("XDG_DATA_HOME", "xdg")):
        (tmp_path / folder).mkdir()
        monkeypatch.setenv(name, str(tmp_path / folder))
    monkeypatch.setenv("MASKDET_PUBLIC_DATA_URL", url)
    return tmp_path


@pytest.fixture()
def faces_set(datasets_root, env, monkeypatch) -> PublicDataset:
    """A served ImageFolder snapshot (PER_CLASS images per class of face-mask-4k) registered as 'test-faces'."""
    files = {}
    for cls in ("with_mask", "without_mask"):
        for path in sorted((datasets_root / "face-mask-4k" / cls).iterdir())[:PER_CLASS]:
            files[f"dataset/{cls}/{path.name}"] = path
    manifest = env / "faces.tsv"
    _snapshot(env / "www", manifest, "someone/faces", files)
    dataset = PublicDataset(name="test-faces", description="faces", licence="MIT", source="test", layout="ImageFolder",
                            manifest=manifest, folders={"dataset/with_mask/": "with_mask/",
                                                        "dataset/without_mask/": "without_mask/"})
    monkeypatch.setitem(public._REGISTRY, dataset.name, dataset)
    return dataset


@pytest.fixture()
def boxed_set(datasets_root, env, monkeypatch) -> PublicDataset:
    """A served YOLO-style snapshot (data/images, data/xml, data/labels, data.yaml) of 3 kaggle-scenes photos."""
    scenes = datasets_root / "kaggle-scenes"
    files = {"data/data.yaml": scenes / "annotations" / "maksssksksss1.xml"}
    for path in sorted((scenes / "images").iterdir())[:3]:
        files[f"data/images/{path.name}"] = path
        files[f"data/xml/{path.stem}.xml"] = scenes / "annotations" / f"{path.stem}.xml"
        files[f"data/labels/{path.stem}.txt"] = scenes / "annotations" / f"{path.stem}.xml"
    manifest = env / "boxed.tsv"
    _snapshot(env / "www", manifest, "someone/boxed", files)
    dataset = PublicDataset(name="test-boxed", description="boxed", licence="CC0-1.0", source="test",
                            layout="images/ + annotations/", manifest=manifest,
                            folders={"data/images/": "images/", "data/xml/": "annotations/"})
    monkeypatch.setitem(public._REGISTRY, dataset.name, dataset)
    return dataset


def _leftovers(root: Path) -> list[str]:
    return [p.name for p in root.iterdir()] if root.is_dir() else []


def test_get_downloads_verifies_and_lays_out_an_image_folder(faces_set, env, server, capsys):
    assert cli.main(["datasets", "get", "test-faces"]) == 0
    out, err = capsys.readouterr()
    target = env / "root" / "test-faces"
    assert f"saved {target}" in out and "100%" in err  # the progress bar ran to the end
    scan = scan_dataset(target)
    assert scan.counts() == {"without_mask": PER_CLASS, "with_mask": PER_CLASS}
    provenance = json.loads((target / "maskdet-dataset.json").read_text())
    assert provenance["commit"] == COMMIT and provenance["licence"] == "MIT"
    assert not public.staging_dir(faces_set).exists()  # the staging folder is gone once the set is in place
    assert sorted(_leftovers(env / "root")) == ["test-faces"]
    # a second get changes nothing and downloads nothing
    requests = len(server[0].requests)
    assert cli.main(["datasets", "get", "test-faces"]) == 0
    assert "already exists" in capsys.readouterr().out and len(server[0].requests) == requests


def test_boxed_snapshot_becomes_images_and_annotations(boxed_set, env):
    result = public.fetch("test-boxed")
    assert sorted(p.name for p in result.path.iterdir()) == ["annotations", "images", "maskdet-dataset.json"]
    scenes = load_scene_set(result.path)
    assert len(scenes.images) == 3 and not scenes.problems
    assert result.files == 6  # labels/ and data.yaml are not fetched: the VOC files hold the same boxes


def test_corrupted_and_missing_files_are_refused_and_named(faces_set, env, capsys):
    served = env / "www" / "someone/faces" / COMMIT / "dataset"
    corrupted = sorted((served / "with_mask").iterdir())[0]
    corrupted.write_bytes(corrupted.read_bytes()[:-10] + b"0123456789")
    missing = sorted((served / "without_mask").iterdir())[-1]
    missing.unlink()
    assert cli.main(["datasets", "get", "test-faces"]) == 2
    err = capsys.readouterr().err
    assert "2 of 10 files refused" in err
    assert f"dataset/with_mask/{corrupted.name}: does not match the manifest" in err
    assert f"dataset/without_mask/{missing.name}: missing on the server (HTTP 404)" in err
    assert _leftovers(env / "root") == []


def test_an_interrupted_download_resumes_with_the_files_not_yet_verified(faces_set, env, server, capsys):
    httpd, _ = server
    httpd.cut_after = 4  # the fifth file and later are cut off mid-body
    assert cli.main(["datasets", "get", "test-faces"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "cannot fetch from" in err[-1] and "run the same command again to resume" in err[-1]
    assert _leftovers(env / "root") == []
    verified = [p for p in public.staging_dir(faces_set).rglob("*") if p.is_file()]
    assert 4 <= len(verified) < 2 * PER_CLASS and all(not p.name.startswith(".") for p in verified)

    httpd.cut_after, before = None, len(httpd.requests)
    assert cli.main(["datasets", "get", "test-faces"]) == 0
    assert len(httpd.requests) - before == 2 * PER_CLASS - len(verified)  # only the files not yet verified
    assert len(scan_dataset(env / "root" / "test-faces").samples) == 2 * PER_CLASS


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_server_one_line_exit_2_nothing_written(faces_set, env):
    """The real command line, in its own process: one line on stderr, status 2, an untouched data root."""
    environment = {**os.environ, "MASKDET_PUBLIC_DATA_URL": f"http://127.0.0.1:{_free_port()}"}
    code = "\n".join([
        "import sys", "from pathlib import Path", "from maskdet import cli", "from maskdet.data import public",
        f"public.register(public.PublicDataset(name='test-faces', description='', licence='MIT', source='', "
        f"layout='', manifest=Path({str(faces_set.manifest)!r}), folders={dict(faces_set.folders)!r}))",
        "sys.exit(cli.main(['datasets', 'get', '-q', 'test-faces']))"])
    done = subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True, text=True, cwd=REPO,
                          timeout=120)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "cannot fetch from http://127.0.0.1" in done.stderr
    assert _leftovers(env / "root") == []


def test_unwritable_data_root_goes_to_the_users_data_folder(faces_set, env, monkeypatch):
    monkeypatch.setenv("MASKDET_DATA_ROOT", str(env / "does-not-exist"))
    result = public.fetch("test-faces")
    assert result.path == env / "xdg" / "maskdet" / "datasets" / "test-faces"
    from maskdet.data.local import find_sets

    assert find_sets() == [result.path]  # the pages list the user's folder too


def test_kaggle_api_is_refused_without_a_token(env, monkeypatch, capsys):
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(env / "no-kaggle"))
    monkeypatch.setenv("HOME", str(env))
    assert cli.main(["datasets", "get", "kaggle-face-mask-detection-api"]) == 2
    err = capsys.readouterr().err
    assert "Kaggle API needs your own token" in err and "kaggle.json" in err
    assert _leftovers(env / "root") == []


def test_pinned_registry_entries_read_their_manifests():
    rows = {row["name"]: row for row in (d.describe() for d in public.registry())}
    assert rows["face-mask-detection"]["licence"] == "MIT" and rows["face-mask-detection"]["files"] == 4095
    assert rows["kaggle-face-mask-detection"]["commit"] == "c5d6b886a9409a93d3b52387d562fdb38546eecf"
    assert rows["kaggle-face-mask-detection"]["files"] == 2 * 853


def test_list_json_names_the_sample_and_the_sets_in_the_data_root(faces_set, env, capsys):
    public.fetch("test-faces")
    assert cli.main(["datasets", "list", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert {"face-mask-detection", "kaggle-face-mask-detection", "test-faces"} <= {r["name"] for r in listing["public"]}
    local = {row["name"]: row for row in listing["local"]}
    assert local["test-faces"]["path"] == str(env / "root" / "test-faces") and local["test-faces"]["images"] == 10
    assert local["sample-faces"]["where"] == "built-in sample" and local["sample-faces"]["images"] >= 200
    assert local["sample-photos"]["kind"] == "boxed photos" and local["sample-photos"]["images"] == 6


def _dataset_page():
    from dashboard import page_test

    import streamlit as st

    st.cache_data.clear()  # the registry table is cached per process; this test registered its own set
    return page_test("pages/dataset.py", 120)


def test_dataset_page_gets_a_public_set_and_chooses_it(faces_set, env) -> None:
    at = _dataset_page().run()
    assert not at.exception
    assert at.selectbox(key="dataset_listed").value == "sample-faces"  # an empty data root: the sample
    at.selectbox(key="public_name").set_value("test-faces")
    at.button(key="public_get").click().run()
    assert not at.exception, at.exception
    assert any("Saved" in success.value and "test-faces" in success.value for success in at.success), (
        [e.value for e in at.error], [s.value for s in at.success], [i.value for i in at.info])
    assert at.selectbox(key="dataset_listed").value == "test-faces"  # listed and chosen at once
    assert (env / "root" / "test-faces" / "with_mask").is_dir()


def test_dataset_page_refuses_visitors_of_a_shared_dashboard(env) -> None:
    from test_sharing import server_address

    with server_address("0.0.0.0"):
        at = _dataset_page().run()
    assert not at.exception
    assert not [button for button in at.button if button.key == "public_get"]
    assert any("only the owner may download a public data set" in info.value for info in at.info)
