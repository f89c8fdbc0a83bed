"""Every architecture trains one tiny epoch, saves, and loads back identically."""

from __future__ import annotations

import json

import pytest
import torch

from maskdet.zoo.folders import load_model
from maskdet.training.loop import CancelToken, TrainConfig, TrainingCancelled, fit, prepare_model
from maskdet.inference.predictor import Predictor
from maskdet.zoo.architectures import PretrainedWeightsMissing, get_spec, pretrained_weights_path

TINY = {"mlp": {}, "simple_cnn": {"img_size": 48}, "mobilenet_v2": {"img_size": 96}, "densenet121": {"img_size": 64},
        "efficientnet_lite0": {"img_size": 64, "finetune_blocks": 1}}


@pytest.mark.parametrize("arch", list(TINY))
def test_each_arch_trains_and_round_trips(arch, tiny_dataset, isolated_models_dir):
    spec = get_spec(arch)
    pretrained = arch != "densenet121"  # DenseNet121 ImageNet weights are not obtainable offline
    events = []
    result = fit(
        TrainConfig(arch=arch, data=tiny_dataset, epochs=1, name=f"tiny-{arch}", pretrained=pretrained,
                    feature_views=1, **TINY[arch]),
        progress=events.append,
    )
    assert result.path == isolated_models_dir / f"tiny-{arch}"
    meta = json.loads((result.path / "metadata.json").read_text())
    assert meta["arch"] == arch and meta["classes"] == ["without_mask", "with_mask"]
    assert meta["mode"] == ("cached-features" if spec.pretrained else "end-to-end")  # frozen backbone
    assert meta["build"]["pretrained"] == (pretrained and spec.pretrained is not None)
    assert 0.0 <= meta["metrics"]["test"]["accuracy"] <= 1.0
    assert (result.path / "split.json").is_file()
    # Progress reached the end, monotonically.
    fractions = [e.fraction for e in events]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    assert any(e.phase == "train" and e.batches > 0 for e in events)

    loaded = load_model(result.path)
    trained = result.model.state_dict()
    for key, value in loaded.model.state_dict().items():
        assert torch.equal(value, trained[key]), key
    images = torch.rand(3, loaded.input.channels, loaded.input.size, loaded.input.size)
    with torch.inference_mode():
        assert torch.allclose(loaded.model(images), result.model(images), atol=1e-6)
    probabilities = Predictor(loaded, precision="fp32").run(images)
    assert probabilities.shape == (3, 2)


def test_densenet_without_weights_says_how_to_provide_them(tiny_dataset, monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    assert not pretrained_weights_path(get_spec("densenet121").pretrained).exists()
    with pytest.raises(PretrainedWeightsMissing, match="--weights PATH"):
        fit(TrainConfig(arch="densenet121", data=tiny_dataset, epochs=1, name="no-weights"))


def test_cancel_leaves_nothing_behind(tiny_dataset, isolated_models_dir):
    token = CancelToken()

    def cancel_during_training(progress):
        if progress.phase == "train":
            token.cancel()

    with pytest.raises(TrainingCancelled):
        fit(TrainConfig(arch="mlp", data=tiny_dataset, epochs=3, name="cancelled"),
            progress=cancel_during_training, cancel=token)
    assert list(isolated_models_dir.iterdir()) == []


def test_one_class_dataset_is_refused(tmp_path, tiny_dataset):
    import shutil

    shutil.copytree(tiny_dataset / "with_mask", tmp_path / "with_mask")
    with pytest.raises(ValueError, match="both classes"):
        fit(TrainConfig(arch="mlp", data=tmp_path, epochs=1, name="one-class"))


def test_finetuned_blocks_train_on_cached_prefix_outputs(tiny_dataset, isolated_models_dir):
    """--finetune-blocks keeps the fast cached mode: the frozen prefix runs once, the last blocks train."""
    config = TrainConfig(arch="mobilenet_v2", data=tiny_dataset, epochs=2, name="tiny-ft", img_size=96,
                         finetune_blocks=2, feature_views=2, lr=1e-3)
    pristine = prepare_model(get_spec("mobilenet_v2"), config.resolved()).state_dict()
    result = fit(config)
    meta = json.loads((result.path / "metadata.json").read_text())
    assert meta["mode"] == "cached-features" and meta["build"]["finetune_blocks"] == 2

    trained = load_model(result.path).model.state_dict()
    changed = {key.split(".")[2] for key in pristine
               if key.startswith("backbone.0.") and not torch.equal(pristine[key], trained[key])}
    assert changed == {"17", "18"}  # the two last blocks moved; blocks 0-16 are the ImageNet weights
    prefix, rest = result.model.eval().split_frozen_prefix()
    images = torch.rand(2, 3, 96, 96)
    with torch.inference_mode():
        assert torch.allclose(rest(prefix(images)), result.model(images), atol=1e-6)


def test_a_warm_feature_cache_gives_the_same_model_as_a_cold_one(tiny_dataset, isolated_models_dir, tmp_path, monkeypatch):
    """Reproducible training: the documented command gives the same weights whether or not features were cached."""
    monkeypatch.setenv("MASKDET_CACHE_DIR", str(tmp_path / "cache"))
    config = dict(arch="mobilenet_v2", data=tiny_dataset, epochs=2, img_size=96, finetune_blocks=2, feature_views=3)
    cold = fit(TrainConfig(name="cold", **config))
    warm = fit(TrainConfig(name="warm", **config))
    assert list((tmp_path / "cache" / "features").iterdir())  # the second run did read the cache
    assert cold.metadata["history"] == warm.metadata["history"]
    for key, value in cold.model.state_dict().items():
        assert torch.equal(value, warm.model.state_dict()[key]), key


def test_robust_training_sees_other_views_and_calibrates(tiny_dataset, isolated_models_dir, tmp_path, monkeypatch):
    """--robust changes the augmented training views (never served from a plain run's feature cache);
    the saved model is temperature-scaled on validation and its card says so."""
    monkeypatch.setenv("MASKDET_CACHE_DIR", str(tmp_path / "cache"))
    config = dict(arch="mobilenet_v2", data=tiny_dataset, epochs=2, img_size=96, feature_views=3, lr=1e-3)
    plain = fit(TrainConfig(name="plain", calibrate=False, **config))
    robust = fit(TrainConfig(name="robust", robust=True, **config))
    assert len(list((tmp_path / "cache" / "features").iterdir())) == 2
    assert robust.metadata["history"][0]["train_loss"] != plain.metadata["history"][0]["train_loss"]
    assert robust.metadata["hyperparameters"]["robust"] is True
    calibration = robust.metadata["calibration"]
    assert calibration["temperature"] > 0 and calibration["val_ece_after"] is not None
    assert plain.metadata["calibration"] is None
    assert robust.metadata["metrics"]["test"]["ece"] is not None
