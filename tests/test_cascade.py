"""The cascade: a three-class model composed of a trained two-class model (bare or masked) and a trained
three-class one (where the mask sits), on real faces, with real tiny models."""

from __future__ import annotations

import json

import numpy as np
import pytest

from maskdet.cli import main
from maskdet.data.datasets import DatasetError
from maskdet.data.images import load_rgb
from maskdet.inference.predictor import load_classifier
from maskdet.training.cascade import compose_cascade
from maskdet.zoo.architectures import CascadeMembers, list_architectures
from maskdet.zoo.decision import choose_threshold
from maskdet.zoo.folders import CheckpointError, card_scores, load_split, read_metadata, read_seen

pytestmark = pytest.mark.slow


def _val_faces(cascade_mobilenet, three_class_dataset) -> list:
    return [load_rgb(three_class_dataset / relpath) for relpath in load_split(cascade_mobilenet)["val"]]


def test_the_cascade_splits_the_two_class_verdict_by_where_the_mask_sits(
        cascade_mobilenet, tiny_mobilenet, three_class_mobilenet, three_class_dataset) -> None:
    faces = _val_faces(cascade_mobilenet, three_class_dataset)
    cascade, bare, position = (load_classifier(str(folder), precision="fp32").predict_proba(faces)
                               for folder in (cascade_mobilenet, tiny_mobilenet, three_class_mobilenet))
    ratio = position[:, 1] / (position[:, 1] + position[:, 2])
    expected = np.column_stack([bare[:, 0], bare[:, 1] * ratio, bare[:, 1] * (1 - ratio)])
    assert cascade.shape == (len(faces), 3)
    np.testing.assert_allclose(cascade, expected, atol=1e-5)
    # The two-class model alone decides bare vs not: the cascade's p(without_mask) is its, not the position model's.
    np.testing.assert_allclose(cascade[:, 0], bare[:, 0], atol=1e-5)
    assert np.abs(cascade[:, 0] - position[:, 0]).max() > 0.05


def test_the_card_records_members_scores_threshold_and_what_both_saw(
        cascade_mobilenet, tiny_mobilenet, three_class_mobilenet) -> None:
    card = read_metadata(cascade_mobilenet)
    assert card["arch"] == "mobilenet_v2_cascade" and card["classes"] == ["without_mask", "with_mask", "incorrect_mask"]
    members = card["build"]["members"]
    for role, folder in (("bare", tiny_mobilenet), ("position", three_class_mobilenet)):
        assert members[role]["weights_sha256"] == read_metadata(folder)["weights"]["sha256"]
    labels, scores = card_scores(card, "val")
    assert scores.shape == (len(labels), 3)
    assert card["operating_threshold"] == choose_threshold(labels, scores)
    assert card["operating_threshold_chosen_on"].startswith("validation split")
    assert load_split(cascade_mobilenet) == load_split(three_class_mobilenet)
    seen = read_seen(cascade_mobilenet).sha256s()
    assert read_seen(tiny_mobilenet).sha256s() | read_seen(three_class_mobilenet).sha256s() == seen


def test_members_of_the_wrong_kind_or_other_data_are_refused(
        tmp_path, tiny_mobilenet, three_class_mobilenet, three_class_dataset, tiny_dataset) -> None:
    with pytest.raises(CheckpointError, match="bare member of a cascade must be a 2-class mobilenet_v2"):
        compose_cascade(three_class_mobilenet, three_class_mobilenet, three_class_dataset, "swapped", directory=tmp_path)
    with pytest.raises(CheckpointError, match="position member of a cascade must be a 3-class"):
        compose_cascade(tiny_mobilenet, tiny_mobilenet, three_class_dataset, "two-twos", directory=tmp_path)
    with pytest.raises(DatasetError, match="is not the data three-class was trained on"):
        compose_cascade(tiny_mobilenet, three_class_mobilenet, tiny_dataset, "other-data", directory=tmp_path)
    assert not list(tmp_path.iterdir())  # nothing written


def test_the_cascade_is_composed_not_trained() -> None:
    assert "mobilenet_v2_cascade" not in list_architectures()  # the Train page and `train --arch` never offer it
    assert "mobilenet_v2_cascade" in list_architectures(include_composed=True)  # its cards are read


def test_the_cli_composes_one(tmp_path, monkeypatch, tiny_mobilenet, three_class_mobilenet, three_class_dataset,
                              capsys) -> None:
    monkeypatch.setenv("MASKDET_MODELS_DIR", str(tmp_path))
    status = main(["compose-cascade", "--bare", str(tiny_mobilenet), "--position", str(three_class_mobilenet),
                   "--data", str(three_class_dataset), "--name", "from-cli"])
    assert status == 0
    out = capsys.readouterr().out
    assert f"saved {tmp_path / 'from-cli'} (operating threshold" in out and "incorrect_mask" in out
    assert json.loads((tmp_path / "from-cli" / "metadata.json").read_text())["arch"] == "mobilenet_v2_cascade"


def test_every_class_of_a_cascade_is_explained_grad_cam_with_each_members_map(cascade_mobilenet, tiny_mobilenet,
                                                                             three_class_dataset) -> None:
    from maskdet.inference.explain import explainer_for

    classifier = load_classifier(str(cascade_mobilenet), precision="fp32")
    explainer = explainer_for(classifier)
    face = _val_faces(cascade_mobilenet, three_class_dataset)[0]
    for target in classifier.classes:  # without_mask flows through the bare member only, the others through both
        result = explainer.explain(face, method="smoothgrad", target=target, steps=4)
        assert result.label == target and np.abs(result.attribution).max() > 0
        cam = explainer.explain(face, method="gradcam", target=target).attribution
        assert np.isfinite(cam).all() and cam.min() >= 0 and cam.max() > 0
    members = next(module for module in explainer.network.modules() if isinstance(module, CascadeMembers))
    layers = explainer.feature_layers()  # one last map per member, not just the last one traced (the position's)
    assert len(layers) == 2
    assert any(layer is m for m in members.bare.modules() for layer in layers[:1])
    assert any(layer is m for m in members.position.modules() for layer in layers[1:])
    # without_mask is the bare member's alone: its map is that model's own Grad-CAM (up to the scale calibration
    # puts on the log-odds), where the last traced map alone would have been empty.
    own = explainer_for(load_classifier(str(tiny_mobilenet), precision="fp32"))
    cascade_map = explainer.explain(face, method="gradcam", target="without_mask").attribution
    own_map = own.explain(face, method="gradcam", target="without_mask").attribution
    assert own_map.max() > 0
    np.testing.assert_allclose(cascade_map / cascade_map.max(), own_map / own_map.max(), atol=1e-4)
