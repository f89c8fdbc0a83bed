"""Shared fixtures: where the real data sets used by tests live."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def datasets_root() -> Path:
    """Folder holding face-mask-4k and synthetic-masks-2k; missing data fails on CI and skips elsewhere."""
    root = Path(os.environ.get("MASKDET_DATA_ROOT", REPO.parent / "shared" / "datasets"))
    if not root.is_dir():
        message = f"shared data sets not found at {root} (set MASKDET_DATA_ROOT)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return root


@pytest.fixture(autouse=True)
def isolated_models_dir(tmp_path_factory, monkeypatch):
    """Every test writes models to its own folder, never to the repository's models/."""
    folder = tmp_path_factory.mktemp("models")
    monkeypatch.setenv("MASKDET_MODELS_DIR", str(folder))
    monkeypatch.delenv("MASKDET_DEFAULT_MODEL", raising=False)
    return folder


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory, datasets_root) -> Path:
    """12 real images per class from face-mask-4k, in the class-folder layout (copied to a temp dir)."""
    import shutil

    root = tmp_path_factory.mktemp("tiny-dataset")
    for cls in ("with_mask", "without_mask"):
        (root / cls).mkdir()
        files = sorted(p for p in (datasets_root / "face-mask-4k" / cls).iterdir() if p.suffix.lower() == ".jpg")
        for path in files[:: max(1, len(files) // 12)][:12]:
            shutil.copy(path, root / cls / path.name)
    return root


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory, tiny_dataset) -> Path:
    """A models folder with two tiny real models trained once per session: ``tiny-mlp`` and ``tiny-cnn``.

    Read-only for tests: point ``MASKDET_MODELS_DIR`` at it with monkeypatch.
    """
    from maskdet.engine import TrainConfig, fit

    folder = tmp_path_factory.mktemp("tiny-models")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MASKDET_MODELS_DIR", str(folder))
        fit(TrainConfig(arch="mlp", data=tiny_dataset, epochs=2, name="tiny-mlp"))
        fit(TrainConfig(arch="simple_cnn", data=tiny_dataset, epochs=2, img_size=48, name="tiny-cnn"))
    return folder
