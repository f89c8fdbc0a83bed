"""Folder scans never hang or loop: named pipes, device files, sockets, symbolic-link cycles and folders named
like images are skipped and reported by data-set scans, audits, evaluation, ``predict`` and the Dataset page."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import streamlit as st
from dashboard import page_test
from markdown_text import texts
from test_refused_models import deadline

from maskdet.data.audit import audit_catalog
from maskdet.batch.sources import iter_image_paths
from maskdet.data.datasets import list_datasets, load_catalog, scan_dataset
from maskdet.data.files import Skipped, walk_files
from maskdet.data.images import ImageDecodeError, load_rgb
from maskdet.settings import REPO_ROOT
from ui.dataset_picker import SOURCE_PATH

SECONDS = 20  # "finish in seconds": each scan below takes well under one on a real folder
ODD = {
    "pipe.jpg": "a named pipe",
    "zero.jpg": "a device file",
    "socket.jpg": "a socket",
    "loop": "a symbolic link loop",
    "self-loop": "a symbolic link loop",
    "x.jpg": "a folder named like an image",
    "dangling.jpg": "a broken symbolic link",
}


@pytest.fixture()
def odd_dataset(tmp_path: Path, tiny_dataset: Path):
    """tiny_dataset plus every odd entry in with_mask/ (a socket stays bound while the test runs)."""
    root = shutil.copytree(tiny_dataset, tmp_path / "odd")
    folder = root / "with_mask"
    os.mkfifo(folder / "pipe.jpg")
    os.mknod(folder / "zero.jpg", 0o600 | stat.S_IFCHR, os.makedev(1, 5))  # /dev/zero: reading never ends
    (folder / "loop").symlink_to(root, target_is_directory=True)  # leads back to an ancestor
    (folder / "self-loop").symlink_to(folder / "self-loop")
    (folder / "x.jpg").mkdir()
    shutil.copy(next((tiny_dataset / "with_mask").iterdir()), folder / "x.jpg" / "inside.jpg")
    (folder / "dangling.jpg").symlink_to(tmp_path / "nowhere.jpg")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(folder / "socket.jpg"))
    yield root
    server.close()


def test_walk_scan_catalog_and_audit_skip_and_report_every_odd_entry(odd_dataset: Path) -> None:
    started = time.monotonic()
    with deadline(SECONDS):
        files, skipped = walk_files(odd_dataset / "with_mask")
        scan = scan_dataset(odd_dataset)
        audit = audit_catalog(load_catalog(odd_dataset), scan)
        assert list_datasets(odd_dataset.parent) == [odd_dataset]
    assert time.monotonic() - started < SECONDS
    assert len(files) == 12 and all(path.is_file() for path in files)
    assert {item.path.name: item.reason.split(" (")[0] for item in skipped} == ODD
    assert dict(scan.skipped).keys() == {f"with_mask/{name}" for name in ODD}
    assert scan.counts() == {"without_mask": 12, "with_mask": 12}  # the real images, nothing else
    assert audit.total_files == 24 and not audit.unreadable and audit.catalog.skipped == scan.skipped


def test_decoding_a_pipe_or_a_device_by_name_fails_at_once(odd_dataset: Path) -> None:
    for name, kind in (("pipe.jpg", "a named pipe"), ("zero.jpg", "a device file")):
        with deadline(SECONDS), pytest.raises(ImageDecodeError, match=f"not a regular file \\({kind}\\)"):
            load_rgb(odd_dataset / "with_mask" / name)


def test_predict_paths_report_odd_entries_given_or_found(odd_dataset: Path) -> None:
    pipe = odd_dataset / "with_mask" / "pipe.jpg"
    with deadline(SECONDS):
        items = list(iter_image_paths([str(odd_dataset), str(pipe)]))
    skipped = [item for item in items if isinstance(item, Skipped)]
    assert sorted(item.path.name for item in skipped) == sorted([*ODD, "pipe.jpg"])
    assert sum(isinstance(item, Path) for item in items) == 24


def test_predict_over_a_folder_of_odd_entries_finishes_and_reports_them(odd_dataset: Path, tiny_models_dir) -> None:
    done = subprocess.run([sys.executable, "-m", "maskdet", "predict", str(odd_dataset / "with_mask"), "--model",
                           "tiny-mlp", "--whole-image"], capture_output=True, text=True, cwd=REPO_ROOT, timeout=120,
                          env={**os.environ, "MASKDET_MODELS_DIR": str(tiny_models_dir)})
    assert done.returncode == 2, done.stderr  # some inputs could not be processed
    assert "Traceback" not in done.stderr
    for name, reason in ODD.items():
        assert f"{odd_dataset / 'with_mask' / name}: ERROR skipped: {reason}" in done.stdout, name
    assert done.stdout.count("with_mask") >= 12


def test_the_dataset_page_names_the_skipped_entries(odd_dataset: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MASKDET_CACHE_DIR", str(tmp_path / "cache"))
    st.cache_data.clear()
    at = page_test("pages/dataset.py", 120).run()
    at.radio(key="dataset_source").set_value(SOURCE_PATH).run()
    with deadline(120):
        at.text_input(key="dataset_path").input(str(odd_dataset)).run()
    assert not at.exception, texts(at.exception)
    warning = texts(at.warning)
    assert f"{len(ODD)} entries skipped, never opened" in warning
    assert "`with_mask/dangling.jpg` (a broken symbolic link)" in warning
    assert {m.label: m.value for m in at.metric}["Readable images"] == "24"
