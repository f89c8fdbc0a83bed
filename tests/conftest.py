"""Shared fixtures: where the real data sets used by tests live."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# Dashboard classifiers compile themselves in the background (~20 s of CPU each); the many short-lived
# test apps would only pay for it. tests/test_classifier.py switches it back on.
os.environ.setdefault("MASKDET_COMPILE", "0")


@pytest.fixture(scope="session", autouse=True)
def fresh_cache_dir(tmp_path_factory):
    """The suite sees what a fresh machine sees: an empty cache folder each run (no crop sets, catalogues,
    features, evaluations or exports of an earlier run). Only verified downloads (the detector graph) come
    from a persistent folder: ``MASKDET_DOWNLOAD_CACHE_DIR``, else the cache folder this machine would use."""
    from maskdet.settings import current_settings

    settings = current_settings()
    downloads = settings.download_cache_dir or settings.cache_dir
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MASKDET_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        patch.setenv("MASKDET_DOWNLOAD_CACHE_DIR", str(downloads))
        yield


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
    from maskdet.training.loop import TrainConfig, fit

    folder = tmp_path_factory.mktemp("tiny-models")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MASKDET_MODELS_DIR", str(folder))
        fit(TrainConfig(arch="mlp", data=tiny_dataset, epochs=2, name="tiny-mlp"))
        fit(TrainConfig(arch="simple_cnn", data=tiny_dataset, epochs=2, img_size=48, name="tiny-cnn"))
    return folder


@pytest.fixture(scope="session")
def tiny_efficientnet_lite0(tmp_path_factory, tiny_dataset) -> Path:
    """Folder of a real EfficientNet-Lite0 classifier (96 px, last block fine-tuned, 1 epoch) trained on
    :func:`tiny_dataset` once per session (~15 s). Read-only for tests: load it by path."""
    from maskdet.training.loop import TrainConfig, fit

    folder = tmp_path_factory.mktemp("tiny-lite0")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MASKDET_MODELS_DIR", str(folder))
        result = fit(TrainConfig(arch="efficientnet_lite0", data=tiny_dataset, epochs=1, img_size=96,
                                 finetune_blocks=1, feature_views=1, name="tiny-lite0"))
    return result.path


@pytest.fixture(scope="session")
def tiny_mobilenet(tmp_path_factory, datasets_root) -> Path:
    """Folder of a real MobileNetV2 classifier (112 px, 3 epochs, 150 images per class of synthetic-masks-2k).

    Trained once per session (~15 s) in its own models folder; good enough to label pasted faces
    correctly almost always. Read-only for tests: load it by path.
    """
    from maskdet.training.loop import TrainConfig, fit

    folder = tmp_path_factory.mktemp("tiny-mobilenet")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MASKDET_MODELS_DIR", str(folder))
        result = fit(TrainConfig(arch="mobilenet_v2", data=datasets_root / "synthetic-masks-2k", name="tiny-mobilenet",
                                 epochs=3, img_size=112, feature_views=1, limit_per_class=150))
    return result.path


@pytest.fixture(scope="session")
def held_out_faces(tiny_mobilenet, datasets_root) -> dict[str, list[Path]]:
    """Real face crops per class from the held-out test split of ``tiny_mobilenet`` (never trained on)."""
    import json

    split = json.loads((tiny_mobilenet / "split.json").read_text())
    root = datasets_root / "synthetic-masks-2k"
    return {cls: [root / rel for rel in split["test"] if rel.startswith(f"{cls}/")] for cls in ("with_mask", "without_mask")}


def compose_frame(faces: list[Path], boxes: list[tuple[int, int, int]], size: tuple[int, int] = (640, 480),
                  background: tuple[int, int, int] = (96, 120, 140)):
    """An RGB uint8 frame of ``size`` with each face image resized to ``side`` px and pasted at (x, y)."""
    import numpy as np
    from PIL import Image

    from maskdet.data.images import load_rgb

    canvas = Image.new("RGB", size, background)
    for path, (x, y, side) in zip(faces, boxes, strict=True):
        canvas.paste(load_rgb(path).resize((side, side), Image.Resampling.LANCZOS), (x, y))
    return np.asarray(canvas)


@pytest.fixture(scope="session")
def frame_composer():
    """:func:`compose_frame`: paste real faces at known places on a plain 640x480 background."""
    return compose_frame


@pytest.fixture(scope="session")
def three_class_dataset(tmp_path_factory, datasets_root) -> Path:
    """Real face crops of three classes (``mask_weared_incorrect`` folder: the Kaggle name, an alias of
    ``incorrect_mask``): up to 30 per class cut from kaggle-scenes' annotated boxes (faces >= 40 px)."""
    from maskdet.data.annotations import load_scene_set
    from maskdet.data.images import load_rgb
    from maskdet.inference.detector import crop_box

    root = tmp_path_factory.mktemp("three-class") / "set"
    folders = {"with_mask": "with_mask", "without_mask": "without_mask", "incorrect_mask": "mask_weared_incorrect"}
    counts = dict.fromkeys(folders, 0)
    for image in load_scene_set(datasets_root / "kaggle-scenes").images:
        wanted = [f for f in image.faces if f.label in counts and counts[f.label] < 30
                  and min(f.box[2] - f.box[0], f.box[3] - f.box[1]) >= 40]
        if not wanted:
            continue
        photo = load_rgb(datasets_root / "kaggle-scenes" / image.relpath)
        for index, face in enumerate(wanted):
            target = root / folders[face.label] / f"{image.relpath.rsplit('/', 1)[-1]}-{index}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            photo.crop(crop_box(tuple(round(v) for v in face.box), photo.size, margin=0.2)).save(target)
            counts[face.label] += 1
        if min(counts.values()) >= 30:
            break
    return root


@pytest.fixture(scope="session")
def three_class_mobilenet(tmp_path_factory, three_class_dataset) -> Path:
    """Folder of a real three-class MobileNetV2 (112 px, frozen features, 6 epochs) trained on
    :func:`three_class_dataset`. Read-only for tests: load it by path."""
    from maskdet.training.loop import TrainConfig, fit

    folder = tmp_path_factory.mktemp("three-class-mobilenet")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MASKDET_MODELS_DIR", str(folder))
        result = fit(TrainConfig(arch="mobilenet_v2", data=three_class_dataset, name="three-class", epochs=6,
                                 img_size=112, feature_views=1, lr=3e-3))
    return result.path


@pytest.fixture(scope="session")
def cascade_mobilenet(tmp_path_factory, tiny_mobilenet, three_class_mobilenet, three_class_dataset) -> Path:
    """Folder of a cascade (:mod:`maskdet.training.cascade`) of the two real tiny MobileNetV2 models above (both
    112 px): ``tiny_mobilenet`` says bare or masked, ``three_class_mobilenet`` where the mask sits. Read-only."""
    from maskdet.training.cascade import compose_cascade

    return compose_cascade(tiny_mobilenet, three_class_mobilenet, three_class_dataset, "cascade",
                           directory=tmp_path_factory.mktemp("cascade"))
