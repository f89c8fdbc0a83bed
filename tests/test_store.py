"""The artifact store: content fingerprints (the same upload twice hits every cache), atomic writes."""

from __future__ import annotations

import hashlib
import io
import threading
import zipfile
from pathlib import Path

import pytest

from maskdet.data.archive import extract_zip
from maskdet.evaluation.summary import summarize
from maskdet.evaluation.unseen import evaluate_dataset
from maskdet.zoo.folders import list_model_folders
from maskdet.data.datasets import build_catalog, scan_dataset
from maskdet.training.loop import TrainConfig, _feature_cache_path
from maskdet.data.split import make_split
from maskdet.store import atomic_write, sha256_file
from maskdet.zoo.architectures import get_spec


def zip_of(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder).as_posix())
    return buffer.getvalue()


def test_the_same_zip_uploaded_twice_hits_every_cache(tiny_dataset, tiny_models_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("MASKDET_CACHE_DIR", str(tmp_path / "cache"))
    upload = zip_of(tiny_dataset)
    first, second = (extract_zip(upload, tmp_path / "uploads") for _ in range(2))
    assert first != second  # two extraction folders, new modification times
    scans = [scan_dataset(first), scan_dataset(second)]
    assert scans[0].fingerprint == scans[1].fingerprint

    calls: list[tuple[int, int]] = []
    catalogs = [build_catalog(scan, progress=lambda done, total: calls.append((done, total))) for scan in scans]
    catalog_files = list((tmp_path / "cache" / "catalogs").iterdir())
    assert len(catalog_files) == 1 and catalogs[0].records == catalogs[1].records
    assert catalogs[1].root == second  # the cached records serve the second folder

    monkeypatch.setenv("MASKDET_MODELS_DIR", str(tiny_models_dir))
    summary = summarize(next(m for m in list_model_folders() if m["name"] == "tiny-mlp"))
    evaluate_dataset(summary, first)
    stages: list = []
    again = evaluate_dataset(summary, second, progress=lambda *args: stages.append(args))
    assert stages == []  # served from the cache: no image read, no model run

    spec = get_spec("mobilenet_v2")
    config = TrainConfig(arch="mobilenet_v2", data=first).resolved()
    keys = {_feature_cache_path(config, spec, spec.input_config(None), make_split(catalog, seed=0), scan.fingerprint)
            for catalog, scan in zip(catalogs, scans, strict=True)}
    assert len(keys) == 1  # one set of backbone features for both copies
    assert again.metrics["n"] == 24

    (second / "with_mask" / "extra.jpg").write_bytes((tiny_dataset / "with_mask").iterdir().__next__().read_bytes())
    assert scan_dataset(second).fingerprint != scans[0].fingerprint  # other content, other fingerprint


def test_sha256_file_matches_hashlib(tmp_path):
    path = tmp_path / "blob"
    data = bytes(range(256)) * 9000  # over one read block
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()


def test_atomic_write_never_shows_a_part_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "artifact.bin"
    atomic_write(target, b"old")

    def fail(handle) -> None:  # noqa: ANN001
        handle.write(b"half of the new")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, fail)
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["artifact.bin"]

    # Two writers of one artifact (a CLI run and a dashboard run) never share a temporary file.
    payloads = [bytes([i]) * 200_000 for i in range(8)]
    threads = [threading.Thread(target=atomic_write, args=(target, payload)) for payload in payloads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert target.read_bytes() in payloads and [p.name for p in tmp_path.iterdir()] == ["artifact.bin"]
