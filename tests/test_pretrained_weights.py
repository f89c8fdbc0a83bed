"""ImageNet weights files are loaded as plain tensors: a forged file that passes the hash check runs no code."""

from __future__ import annotations

import dataclasses
import hashlib
import re

import pytest
import torch
from hostile_inputs import malicious_torch_file
from torchvision.models import densenet121

from maskdet.zoo import architectures as zoo
from maskdet.zoo.architectures import BuildOptions, PretrainedWeightsMissing, get_spec


def forge_hash_prefix(monkeypatch: pytest.MonkeyPatch, arch: str, path) -> None:
    """Make ``arch``'s published hash the prefix of ``path``'s, as a forger with 2^32 tries would."""
    spec = get_spec(arch)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    forged = dataclasses.replace(spec, pretrained=dataclasses.replace(spec.pretrained, sha256=digest[:8]))
    monkeypatch.setitem(zoo._REGISTRY, arch, forged)


def test_a_pickle_passing_the_hash_prefix_runs_no_code(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    marker = tmp_path / "pwned"
    evil = malicious_torch_file(tmp_path / "densenet121-a639ec97.pth", marker)
    forge_hash_prefix(monkeypatch, "densenet121", evil)
    with pytest.raises(PretrainedWeightsMissing, match="not a plain weights file"):
        get_spec("densenet121").build(BuildOptions(weights_path=evil))
    assert not marker.exists()


def test_densenet_files_with_torchvision_legacy_layer_names_load(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    reference = densenet121(weights=None).state_dict()
    legacy = {  # as in the published file: norm.1 / conv.1 layer names, no BatchNorm batch counters
        re.sub(r"(denselayer\d+\.(?:norm|conv))([12])\.", r"\1.\2.", key): value
        for key, value in reference.items() if not key.endswith("num_batches_tracked")
    }
    assert "features.denseblock1.denselayer1.norm.1.weight" in legacy
    path = tmp_path / "densenet121-a639ec97.pth"
    torch.save(legacy, path)
    forge_hash_prefix(monkeypatch, "densenet121", path)
    model = get_spec("densenet121").build(BuildOptions(weights_path=path))
    features = model.backbone[0].state_dict()
    assert torch.equal(features["denseblock1.denselayer1.norm1.weight"],
                       reference["features.denseblock1.denselayer1.norm1.weight"])
