"""Checkpoints that are not ours are refused without executing anything; saves are atomic."""

from __future__ import annotations

import json
import os
import shutil
import threading

import pytest
from hostile_inputs import (
    HOSTILE_LISTED,
    HOSTILE_UNLISTED,
    ODD_METADATA,
    add_hostile_models,
    malicious_pickle,
    malicious_torch_file,
)

from maskdet.zoo.folders import (
    LOCK_FILE,
    CheckpointError,
    default_model_name,
    list_model_folders,
    load_model,
    recover_interrupted_saves,
    resolve_model,
    save_model,
    set_default_model,
)
from maskdet.zoo.architectures import BuildOptions, get_spec

MARKER_NAME = "pwned"


def _save_tiny(name: str, directory, arch: str = "mlp", size: int = 12):
    spec = get_spec(arch)
    model = spec.build(BuildOptions(pretrained=False, img_size=size))
    return save_model(model, {"arch": arch, "input": spec.input_config(size).to_json()}, name, directory=directory)


def test_pickle_and_malicious_torch_files_execute_nothing(tmp_path):
    marker = tmp_path / MARKER_NAME
    evil_pickle = tmp_path / "model.pkl"
    evil_pickle.write_bytes(malicious_pickle(marker))
    evil_torch = malicious_torch_file(tmp_path / "model.pt", marker)
    for path in (evil_pickle, evil_torch):
        with pytest.raises(CheckpointError, match="not a maskdet model"):
            load_model(path)
    # A model folder whose weights file is secretly a pickle.
    folder = _save_tiny("victim", tmp_path / "models")
    shutil.copy(evil_torch, folder / "model.safetensors")
    with pytest.raises(CheckpointError):
        load_model(folder)
    assert not marker.exists()


def test_truncated_weights_and_tampered_metadata(tmp_path):
    folder = _save_tiny("m", tmp_path)
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="holds 1412832 bytes, its metadata records 2825664"):
        load_model(folder)
    weights.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # same size, one bit flipped
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_model(folder)
    folder = _save_tiny("n", tmp_path)
    meta = json.loads((folder / "metadata.json").read_text())
    meta["arch"] = "simple_cnn"  # an MLP's grayscale input under a colour architecture
    (folder / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="input.channels: simple_cnn takes 3 channel"):
        load_model(folder)
    meta["input"] = {**meta["input"], "channels": 3, "mean": [0.5] * 3, "std": [0.5] * 3}
    (folder / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="do not fit architecture 'simple_cnn'"):
        load_model(folder)
    meta["arch"], meta["classes"] = "mlp", ["cat", "dog"]
    (folder / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="classes"):
        load_model(folder)
    (folder / "metadata.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not readable JSON"):
        load_model(folder)


def test_a_folder_of_hostile_models_lists_safely_and_loads_only_the_real_ones(tmp_path):
    marker = tmp_path / MARKER_NAME
    models = tmp_path / "models"
    add_hostile_models(models, _save_tiny("good", models), marker)

    listed = {m["name"]: m for m in list_model_folders(models)}
    assert set(listed) == {"good", *HOSTILE_LISTED, *ODD_METADATA}  # no crash on odd fields; names are folders
    assert not set(listed) & set(HOSTILE_UNLISTED)
    assert resolve_model("renamed", models) == models / "renamed"  # not ../../outside
    for name in HOSTILE_LISTED:
        with pytest.raises(CheckpointError):
            load_model(models / name)
    for name in ("good", *ODD_METADATA):
        assert load_model(models / name).arch == "mlp"
    assert not marker.exists()


def test_forged_input_size_is_refused_without_allocating(tmp_path):
    folder = _save_tiny("huge", tmp_path)
    meta = json.loads((folder / "metadata.json").read_text())
    meta["input"]["size"] = 100_000  # an MLP for it would need 4e10 weights (160 TB)
    (folder / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="mlp takes inputs of 8 to 512 px, not 100000"):
        load_model(folder)
    meta["input"]["size"] = 13  # supported, but not what these weights were trained for
    (folder / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="do not fit architecture 'mlp'.*shape"):
        load_model(folder)
    meta["build"] = ["not", "a", "dict"]
    (folder / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="build: Input should be a valid dictionary"):
        load_model(folder)


def test_interrupted_save_keeps_the_previous_model(tmp_path, monkeypatch):
    folder = _save_tiny("keep", tmp_path)
    before = (folder / "model.safetensors").read_bytes()
    import maskdet.zoo.folders as checkpoint

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(checkpoint, "save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        _save_tiny("keep", tmp_path)
    monkeypatch.undo()
    assert (folder / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK_FILE, "keep"]
    load_model(folder)


def _between_the_renames(monkeypatch, action) -> list:
    """Run ``action()`` when save_model has retired the old folder and not yet renamed the new one in."""
    import maskdet.zoo.folders as checkpoint

    outcomes: list = []
    real_rename = os.rename

    def rename(source, target):
        real_rename(source, target)
        if os.path.basename(target).startswith(".retired-"):
            outcomes.append(action())

    monkeypatch.setattr(checkpoint.os, "rename", rename)
    return outcomes


def test_listing_between_a_saves_two_renames_loses_nothing(tmp_path, monkeypatch):
    """Pages list models on every rerun; a listing that fell between a save's renames used to move the retired
    folder back, make the second rename fail (ENOTEMPTY) and delete the model just trained."""
    _save_tiny("busy", tmp_path, size=12)
    listings = _between_the_renames(monkeypatch, lambda: [m["name"] for m in list_model_folders(tmp_path)])
    folder = _save_tiny("busy", tmp_path, size=16)
    monkeypatch.undo()
    assert listings == [[]]  # mid-save the model is briefly absent, and listing changed nothing
    assert load_model(folder).input.size == 16  # the new model, whole
    assert [m["name"] for m in list_model_folders(tmp_path)] == ["busy"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK_FILE, "busy"]  # nothing retired or staged left


def test_recovery_waits_for_a_save_in_progress(tmp_path, monkeypatch):
    """Recovery (at start of another process, say) holds the same lock as save_model: it waits, then finds
    nothing to undo."""
    _save_tiny("busy", tmp_path, size=12)
    recovery = threading.Thread(target=recover_interrupted_saves, args=(tmp_path,))

    def start_recovery() -> bool:
        recovery.start()
        recovery.join(0.5)
        return recovery.is_alive()  # blocked on the lock while the save is between its renames

    blocked = _between_the_renames(monkeypatch, start_recovery)
    folder = _save_tiny("busy", tmp_path, size=16)
    recovery.join(10)
    monkeypatch.undo()
    assert blocked == [True] and not recovery.is_alive()
    assert load_model(folder).input.size == 16
    assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK_FILE, "busy"]


def test_recovery_undoes_a_crash_between_the_renames(tmp_path):
    folder = _save_tiny("crashed", tmp_path)
    os.rename(folder, tmp_path / ".retired-crashed-0123abcd")  # what a crash after the first rename leaves
    assert list_model_folders(tmp_path) == []  # listing only reads
    recover_interrupted_saves(tmp_path)
    assert [m["name"] for m in list_model_folders(tmp_path)] == ["crashed"]
    load_model(folder)


def test_default_model_resolution(tmp_path):
    with pytest.raises(CheckpointError, match="no trained model"):
        resolve_model(None, tmp_path)
    _save_tiny("first", tmp_path)
    _save_tiny("second", tmp_path)
    assert {m["name"] for m in list_model_folders(tmp_path)} == {"first", "second"}
    set_default_model("first", tmp_path)
    assert default_model_name(tmp_path) == "first"
    assert resolve_model(None, tmp_path) == tmp_path / "first"
    assert resolve_model("second", tmp_path) == tmp_path / "second"
    with pytest.raises(CheckpointError, match="does not exist"):
        resolve_model("third", tmp_path)


@pytest.mark.parametrize("name", ["", "../escape", "a/b", ".hidden", "x" * 101])
def test_model_names_cannot_escape_the_models_folder(tmp_path, name):
    with pytest.raises(CheckpointError, match="invalid model name"):
        _save_tiny(name, tmp_path)
