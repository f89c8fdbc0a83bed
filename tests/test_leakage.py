"""Evaluation on data a model has seen warns, by file content and near-duplicate group (issue 18, defect 7)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image
from test_cli import run_cli

from maskdet.zoo.folders import load_split, read_metadata
from maskdet.evaluation.leakage import training_overlap
from maskdet.settings import REPO_ROOT


@pytest.fixture
def real_data_root(datasets_root, monkeypatch) -> Path:
    monkeypatch.setenv("MASKDET_DATA_ROOT", str(datasets_root))
    return datasets_root


@pytest.mark.parametrize("model", ["mobilenet_v2", "simple_cnn", "mlp"])
def test_shipped_models_have_seen_face_mask_4k_and_not_synthetic_masks_2k(model, real_data_root) -> None:
    folder = REPO_ROOT / "models" / model
    split = load_split(folder)
    seen = training_overlap(folder, real_data_root / "face-mask-4k")
    # The default trains on a crop set that links face-mask-4k in as <class>/face-mask-4k/<path>, beside cut crops.
    from_crop_set = "sources" in read_metadata(folder)["dataset"]
    trained = [p for p in split["train"] + split["val"] if not from_crop_set or p.split("/")[1] == "face-mask-4k"]
    assert seen.identical == len(trained) and "not unseen data" in seen.message()
    unseen = training_overlap(folder, real_data_root / "synthetic-masks-2k")
    assert (unseen.checked, unseen.overlapping, unseen.message()) == (2000, 0, "")


def test_renamed_and_reencoded_copies_are_recognised(tiny_models_dir, tiny_dataset, tmp_path) -> None:
    """Paths and times say nothing: a renamed copy is identical, a resized re-encoded one a near-duplicate;
    a held-out test image is neither."""
    model = tiny_models_dir / "tiny-cnn"
    split = load_split(model)
    folder = tmp_path / "mixed"
    for cls in ("with_mask", "without_mask"):
        (folder / cls).mkdir(parents=True)
    train = [p for p in split["train"] if p.endswith(".jpg")][:2]
    shutil.copy(tiny_dataset / train[0], folder / Path(train[0]).parent / "renamed.jpg")
    image = Image.open(tiny_dataset / train[1]).convert("RGB")
    image.resize((image.width * 3 // 4, image.height * 3 // 4)).save(folder / Path(train[1]).parent / "small.jpg",
                                                                      quality=80)
    shutil.copy(tiny_dataset / split["test"][0], folder / split["test"][0])
    overlap = training_overlap(model, folder)
    assert (overlap.checked, overlap.identical, overlap.near_duplicates) == (3, 1, 1)


def test_evaluate_warns_on_the_training_folder_and_scores_only_the_test_split_when_asked(
        tiny_models_dir, tiny_dataset, tmp_path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(tiny_dataset, copy)
    everything = run_cli("evaluate", "--data", str(copy), "--model", "tiny-cnn", "--json",
                         models=tiny_models_dir, cache=tmp_path / "cache")
    assert everything.returncode == 0, everything.stderr
    assert "WARNING" in everything.stderr and "not unseen data" in everything.stderr
    assert "--split test" in everything.stderr
    result = json.loads(everything.stdout)
    assert result["split"] == "all" and result["overlap"]["identical"] > 0

    test_only = run_cli("evaluate", "--data", str(tiny_dataset), "--model", "tiny-cnn", "--split", "test", "--json",
                        models=tiny_models_dir, cache=tmp_path / "cache")
    assert test_only.returncode == 0, test_only.stderr
    assert "WARNING" not in test_only.stderr
    scored = json.loads(test_only.stdout)
    assert scored["n"] == len(load_split(tiny_models_dir / "tiny-cnn")["test"]) < result["n"]
    assert scored["overlap"]["identical"] == scored["overlap"]["near_duplicates"] == 0

    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "with_mask").mkdir(parents=True)
    (elsewhere / "without_mask").mkdir()
    for cls in ("with_mask", "without_mask"):
        shutil.copy(next((tiny_dataset / cls).iterdir()), elsewhere / cls / "one.jpg")
    refused = run_cli("evaluate", "--data", str(elsewhere), "--model", "tiny-cnn", "--split", "test",
                      models=tiny_models_dir, cache=tmp_path / "cache")
    assert refused.returncode == 1 and "test files" in refused.stderr and "Traceback" not in refused.stderr


def test_a_model_folder_carries_what_it_saw_so_no_training_data_is_needed(datasets_root, tmp_path, monkeypatch) -> None:
    """The shipped models carry the hashes of their train / val files (seen.json): on a machine without the
    training folder the check still recognises a copied file and a re-encoded one, and keeps a held-out one."""
    model = tmp_path / "models" / "mlp"
    shutil.copytree(REPO_ROOT / "models" / "mlp", model)
    monkeypatch.setenv("MASKDET_DATA_ROOT", str(tmp_path / "no-data-here"))
    split = load_split(model)
    folder = tmp_path / "downloaded-again"
    train = [p for p in split["train"] if p.startswith("with_mask/")][:2]
    for relpath in (*train, split["test"][0]):
        (folder / Path(relpath).parent).mkdir(parents=True, exist_ok=True)
    shutil.copy(datasets_root / "face-mask-4k" / train[0], folder / train[0])
    image = Image.open(datasets_root / "face-mask-4k" / train[1]).convert("RGB")
    image.resize((image.width * 2, image.height * 2)).save(folder / train[1], quality=95)  # a larger "original"
    shutil.copy(datasets_root / "face-mask-4k" / split["test"][0], folder / split["test"][0])
    overlap = training_overlap(model, folder)
    assert overlap is not None and (overlap.checked, overlap.identical, overlap.near_duplicates) == (3, 1, 1)
    (model / "seen.json").unlink()
    assert training_overlap(model, folder) is None  # an older folder, its training data not here: not checked


def test_a_seen_file_is_checked_like_every_member(tmp_path) -> None:
    from maskdet.zoo.folders import CheckpointError, ModelFolder

    model = tmp_path / "mlp"
    shutil.copytree(REPO_ROOT / "models" / "mlp", model)
    (tmp_path / "elsewhere.json").write_bytes((model / "seen.json").read_bytes())
    (model / "seen.json").unlink()
    (model / "seen.json").symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(CheckpointError, match="outside the model folder"):
        ModelFolder.at(model).seen()
    (model / "seen.json").unlink()
    (model / "seen.json").write_text(json.dumps({"format": "maskdet-seen-files", "version": 1, "files": {"a": [1]}}))
    with pytest.raises(CheckpointError, match="seen.json: entry 'a' is not"):
        ModelFolder.at(model).seen()
