"""``ModelFolder``: a model folder opened once, every member read through the same checks (issue 22; issue 23
defects 7 and 14)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from maskdet.jobs import get_job_kind
from maskdet.settings import REPO_ROOT
from maskdet.zoo import folders
from maskdet.zoo.folders import PROBE_FILE, PROBE_FORMAT, CheckpointError, ModelFolder, read_metadata
from maskdet.zoo.probe import check_precision, load_probe

SHIPPED = REPO_ROOT / "models"


@pytest.fixture
def mlp_copy(tmp_path: Path) -> Path:
    """A copy of the shipped mlp model (no probe of its own) in a models folder of its own."""
    folder = tmp_path / "models" / "mlp"
    shutil.copytree(SHIPPED / "mlp", folder)
    return folder


def write_probe(path: Path, folder: Path, count: int = 4) -> torch.Tensor:
    config = read_metadata(folder)["input"]
    crops = torch.randint(0, 256, (count, config["size"], config["size"], config["channels"]), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    save_file({"crops": crops}, str(path), metadata={"format": PROBE_FORMAT})
    return crops


def test_a_probe_linked_from_outside_the_folder_is_refused(mlp_copy: Path, tmp_path: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    config = ModelFolder.at(mlp_copy).load().input
    write_probe(tmp_path / "elsewhere.safetensors", mlp_copy)
    (mlp_copy / PROBE_FILE).symlink_to(tmp_path / "elsewhere.safetensors")
    with caplog.at_level(logging.WARNING):
        assert load_probe(mlp_copy, config) is None  # never read: a link out of the folder could be any file
    assert "outside the model folder" in caplog.text
    with pytest.raises(CheckpointError, match="outside the model folder"):
        ModelFolder.at(mlp_copy).probe()


def test_a_probe_above_the_size_limit_is_refused_unread(mlp_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    crops = write_probe(mlp_copy / PROBE_FILE, mlp_copy, count=8)
    opened = ModelFolder.at(mlp_copy)
    assert torch.equal(opened.probe(), crops)  # a plausible probe is read
    monkeypatch.setattr(folders, "MAX_PROBE_BYTES", (mlp_copy / PROBE_FILE).stat().st_size - 1)
    with pytest.raises(CheckpointError, match="above the .* limit"):
        opened.probe()
    assert load_probe(opened, opened.load().input) is None


def test_probe_crops_are_scored_a_batch_at_a_time(mlp_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A probe of many crops never goes through the network at once (memory holds one batch)."""
    from maskdet.zoo import probe

    loaded = ModelFolder.at(mlp_copy).load()
    crops = write_probe(mlp_copy / PROBE_FILE, mlp_copy, count=10)
    monkeypatch.setattr(probe, "PROBE_SCORE_BATCH", 4)
    seen: list[int] = []
    real = probe._network_probabilities
    monkeypatch.setattr(probe, "_network_probabilities",
                        lambda network, inputs, dtype: seen.append(len(inputs)) or real(network, inputs, dtype))
    check = check_precision(loaded.model, loaded.input, crops)
    assert check.probe_crops == 10 and max(seen) <= 4 and sum(seen) == 20  # fp32 and bf16, 10 crops each


def test_the_folder_evaluation_job_takes_model_names_as_every_kind(mlp_copy: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MASKDET_MODELS_DIR", str(mlp_copy.parent))
    data = tmp_path / "data"
    data.mkdir()
    for kind in ("evaluate-folder", "analyse-video"):
        params = {"model": "mlp", "data": str(data), "clip": str(REPO_ROOT / "README.md"), "output": str(tmp_path)}
        assert get_job_kind(kind).prepared(params)["model"] == str(mlp_copy)
    assert get_job_kind("evaluate-folder").prepared({"data": str(data)})["model"] == str(mlp_copy)  # the default


def test_a_model_folder_is_opened_once_from_a_name_or_a_path(mlp_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MASKDET_MODELS_DIR", str(mlp_copy.parent))
    by_name, by_path = ModelFolder.open("mlp"), ModelFolder.open(str(mlp_copy / "metadata.json"))
    assert by_name.path == by_path.path == mlp_copy and by_name.metadata == read_metadata(mlp_copy)
    assert by_name.split() == folders.load_split(mlp_copy) and by_name.probe() is None
    assert by_name.load().metadata is by_name.metadata  # the card read once is the one the model carries
