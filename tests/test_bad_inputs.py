"""Every CLI entry point against the same zoo of bad and unusual files: valid ones are processed,
invalid ones get a clear per-file message, nothing crashes and nothing half-written is left."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hostile_inputs import ZOO_INVALID as INVALID
from hostile_inputs import ZOO_VALID as VALID
from hostile_inputs import write_zoo, zoo_face
from PIL import Image

from maskdet.zoo.folders import LOCK_FILE
from maskdet.settings import REPO_ROOT


@pytest.fixture(scope="module")
def face(datasets_root) -> Image.Image:
    return zoo_face(datasets_root)


def run_cli(*args: str, models_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "MASKDET_MODELS_DIR": str(models_dir)}
    return subprocess.run([sys.executable, "-m", "maskdet", *args], capture_output=True, text=True, env=env,
                          cwd=REPO_ROOT, timeout=600)


@pytest.fixture(scope="module")
def zoo_dataset(tmp_path_factory, face, tiny_dataset) -> Path:
    """tiny_dataset plus the whole zoo of files filed under with_mask."""
    import shutil

    root = tmp_path_factory.mktemp("zoo-dataset")
    shutil.copytree(tiny_dataset, root, dirs_exist_ok=True)
    write_zoo(root / "with_mask", face)
    return root


def test_predict_processes_valid_files_and_reports_invalid_ones(tmp_path, face, tiny_models_dir):
    write_zoo(tmp_path / "zoo", face)
    result = run_cli("predict", str(tmp_path / "zoo"), "--model", "tiny-cnn", "--json", models_dir=tiny_models_dir)
    assert result.returncode == 2, result.stderr
    records = {Path(r["path"]).name: r for r in map(json.loads, result.stdout.splitlines())}
    assert set(records) == set(VALID) | set(INVALID)
    for name in VALID:
        assert "error" not in records[name], records[name]
        assert records[name]["width"] > 0 and isinstance(records[name]["faces"], list)
    for name in INVALID:
        assert records[name]["error"], name
    assert "megapixel" in records["bomb.png"]["error"]
    assert records["empty.jpg"]["error"] == "empty file"


def test_evaluate_skips_and_lists_unreadable_files(zoo_dataset, tiny_models_dir):
    result = run_cli("evaluate", "--data", str(zoo_dataset), "--model", "tiny-cnn", models_dir=tiny_models_dir)
    assert result.returncode == 0, result.stderr
    for name in INVALID:
        assert f"skipped unreadable with_mask/{name}" in result.stdout
    payload = json.loads(run_cli("evaluate", "--data", str(zoo_dataset), "--model", "tiny-cnn", "--json",
                                 models_dir=tiny_models_dir).stdout)
    assert payload["n"] == 24 + len(VALID)


def test_train_uses_valid_files_and_saves_once(zoo_dataset, tmp_path):
    result = run_cli("train", "--arch", "mlp", "--data", str(zoo_dataset), "--epochs", "1", "--name", "zoo", "-q",
                     models_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    meta = json.loads((tmp_path / "zoo" / "metadata.json").read_text())
    assert meta["dataset"]["unreadable"] == len(INVALID)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != LOCK_FILE) == ["zoo"]  # no staging left over


def test_train_on_an_empty_folder_fails_clearly(tmp_path):
    (tmp_path / "data" / "with_mask").mkdir(parents=True)
    result = run_cli("train", "--arch", "mlp", "--data", str(tmp_path / "data"), "-q", models_dir=tmp_path / "m")
    assert result.returncode == 1
    assert "error:" in result.stderr and "no files" in result.stderr
    assert "Traceback" not in result.stderr
