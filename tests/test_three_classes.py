"""The third class, ``incorrect_mask``, end to end: names, data sets, the model card, training, the pipeline's
face record, choosing the operating threshold on validation scores, and a two-class model meeting the class."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from maskdet.data.audit import audit_dataset
from maskdet.data.datasets import normalize_class_name, scan_dataset
from maskdet.settings import KNOWN_CLASSES
from maskdet.zoo.card import CardError, parse_model_card
from maskdet.zoo.decision import choose_threshold


@pytest.mark.parametrize("name", ["mask_weared_incorrect", "with_incorrect_mask", "incorrect_mask", "IncorrectMask",
                                  "mask_worn_incorrectly", "Mask Worn Incorrect", "incorrect-mask"])
def test_incorrect_mask_aliases(name: str) -> None:
    assert normalize_class_name(name) == "incorrect_mask"


def test_the_two_class_names_stay_as_they_were() -> None:
    assert normalize_class_name("WithMask") == "with_mask" and normalize_class_name("no_mask") == "without_mask"


def _image_folder(root, classes: dict[str, int]):
    for folder, count in classes.items():
        (root / folder).mkdir(parents=True)
        for i in range(count):
            Image.new("RGB", (32, 32), (40 * i % 255, 90, 30 * len(folder))).save(root / folder / f"{i}.png")
    return root


def test_three_class_and_two_class_folders(tmp_path) -> None:
    three = scan_dataset(_image_folder(tmp_path / "three", {"WithMask": 2, "no_mask": 3, "mask_weared_incorrect": 4}))
    assert three.classes == ("without_mask", "with_mask", "incorrect_mask")
    assert three.counts() == {"without_mask": 3, "with_mask": 2, "incorrect_mask": 4}
    assert three.class_folders["incorrect_mask"] == ["mask_weared_incorrect"]
    two = scan_dataset(_image_folder(tmp_path / "two", {"with_mask": 2, "without_mask": 2}))
    assert two.classes == ("without_mask", "with_mask") and set(two.class_folders) == set(two.classes)


@pytest.mark.parametrize("folder", ["incorrect_mask", "with_incorrect_mask", "mask_worn_incorrectly", "IncorrectMask"])
def test_every_alias_of_the_third_class_is_scanned_as_it(tmp_path, folder: str) -> None:
    """A merge once brought back a two-class-era rule that skipped these folder names (not mask_weared_incorrect):
    the crop sets cut-crops writes (folder incorrect_mask) then trained two-class models without a word."""
    scan = scan_dataset(_image_folder(tmp_path, {"with_mask": 2, "without_mask": 2, folder: 3}))
    assert scan.classes == ("without_mask", "with_mask", "incorrect_mask") and scan.counts()["incorrect_mask"] == 3
    assert scan.skipped == []


def test_a_three_class_data_set_is_audited_and_split_per_class(three_class_dataset) -> None:
    audit = audit_dataset(three_class_dataset)
    assert audit.classes == ("without_mask", "with_mask", "incorrect_mask")
    assert audit.counts == {"without_mask": 30, "with_mask": 30, "incorrect_mask": 30} and not audit.missing_classes
    for name, counts in audit.split_counts.items():
        assert counts["incorrect_mask"] > 0, name


def test_the_card_lists_two_or_three_classes_in_order(tiny_models_dir) -> None:
    card = json.loads((tiny_models_dir / "tiny-cnn" / "metadata.json").read_text())
    assert card["classes"] == ["without_mask", "with_mask"]
    with pytest.raises(CardError, match="not maskdet's classes"):
        parse_model_card(json.dumps({**card, "classes": ["without_mask", "incorrect_mask"]}).encode())
    with pytest.raises(CardError, match="not maskdet's classes"):
        parse_model_card(json.dumps({**card, "classes": ["with_mask", "without_mask", "incorrect_mask"]}).encode())


def test_the_threshold_holds_back_exactly_the_faces_whose_likeliest_class_is_masked() -> None:
    """The face record's ``held_back`` (what the Photo page explains and every drawn box says) agrees with the one
    rule: it names p(with_mask) for the faces the rule does not call masked although masked is their likeliest
    class, and only those; their boxes read 'No mask (mask 70%)', never the verdict's own small probability."""
    from types import SimpleNamespace

    from maskdet.inference.drawing import label_text
    from maskdet.inference.pipeline import face_predictions
    from maskdet.zoo.decision import held_back_by_threshold, predicted_labels

    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet((1.0, 1.0, 1.0), size=500)
    detected = [SimpleNamespace(box=(0, 0, 10, 10), score=0.9)] * len(probabilities)
    for threshold in (0.5, 0.8, 0.95):
        labels = predicted_labels(probabilities, threshold)
        faces = face_predictions(detected, probabilities, threshold, KNOWN_CLASSES)
        expected = (probabilities.argmax(axis=1) == 1) & (labels != 1)
        assert expected.any()
        assert [face.held_back is not None for face in faces] == expected.tolist()
        assert all(face.held_back == p[1] for face, p in zip(faces, probabilities) if face.held_back is not None)
        assert all(f"(mask {face.held_back:.0%})" in label_text(face) for face in faces if face.held_back)
    # a two-class model: p(with_mask) 0.7 under 0.91 is called bare at 30%, and that is why
    bare, masked = face_predictions(detected[:2], np.array([[0.3, 0.7], [0.03, 0.97]]), 0.91, KNOWN_CLASSES[:2])
    assert (bare.label, bare.held_back, label_text(bare)) == ("without_mask", 0.7, "No mask (mask 70%)")
    assert (masked.held_back, label_text(masked)) == (None, "Mask 97%")
    assert held_back_by_threshold({"without_mask": 0.3, "with_mask": 0.7}, "with_mask") is None


def test_choose_threshold_bounds_bare_and_incorrect_faces_called_masked() -> None:
    labels = np.array([1] * 10 + [0] * 100 + [2] * 100)
    p_masked = np.r_[np.full(10, 0.99), np.linspace(0.0, 0.7, 100), np.linspace(0.0, 0.8, 100)]
    rows = np.column_stack([1 - p_masked, p_masked, np.zeros_like(p_masked)])
    threshold = choose_threshold(labels, rows, max_bare_called_masked=0.01)
    called_masked = p_masked[labels != 1] >= threshold
    assert called_masked.mean() <= 0.01 and (p_masked[labels != 1] >= threshold - 0.01).mean() > 0.01
    assert choose_threshold(np.array([0, 1]), np.array([0.1, 0.9])) == 0.5  # already safe: not moved


@pytest.mark.slow
def test_a_three_class_model_end_to_end(three_class_mobilenet, three_class_dataset, tmp_path) -> None:
    from maskdet.inference.detector import get_detector
    from maskdet.inference.pipeline import FacePipeline
    from maskdet.inference.predictor import load_classifier
    from maskdet.zoo.folders import card_scores, choose_operating_threshold, read_metadata

    card = read_metadata(three_class_mobilenet)
    assert card["classes"] == ["without_mask", "with_mask", "incorrect_mask"]
    assert card["metrics"]["test"]["classes"] == card["classes"]
    assert len(card["metrics"]["test"]["confusion"]) == 3 and "macro" in card["metrics"]["test"]
    labels, probabilities = card_scores(card, "val")
    assert probabilities.shape == (len(labels), 3) and set(labels.tolist()) == {0, 1, 2}

    model = tmp_path / "three-class"
    shutil.copytree(three_class_mobilenet, model)
    chosen = choose_operating_threshold(model)
    assert chosen["operating_threshold"] == choose_threshold(labels, probabilities)
    assert chosen["operating_threshold_chosen_on"].startswith("validation split")

    classifier = load_classifier(str(model))
    assert classifier.classes == ("without_mask", "with_mask", "incorrect_mask")
    pipeline = FacePipeline(classifier, get_detector("whole-image"))
    incorrect = sorted((three_class_dataset / "mask_weared_incorrect").iterdir())[:8]
    faces = [pipeline.predict(Image.open(path).convert("RGB"))[0] for path in incorrect]
    for face in faces:
        assert set(face.probabilities) == set(classifier.classes)
        assert sum(face.probabilities.values()) == pytest.approx(1.0, abs=1e-4)
        assert face.confidence == pytest.approx(face.probabilities[face.label])
        assert set(face.to_json()) == {"box", "label", "confidence", "face_score"}
    assert sum(face.label == "incorrect_mask" for face in faces) >= 5  # seen in training: mostly right


@pytest.mark.slow
def test_a_two_class_model_on_three_class_data(tiny_mobilenet, three_class_dataset) -> None:
    from maskdet.evaluation.folder import evaluate_folder
    from maskdet.inference.predictor import load_classifier

    result = evaluate_folder(load_classifier(str(tiny_mobilenet)), three_class_dataset)
    metrics = result.to_json()
    assert metrics["n"] == 60 and metrics["classes"] == ["without_mask", "with_mask"]
    outside = metrics["outside_classes"]["incorrect_mask"]
    assert outside["faces"] == 30 and sum(outside["called"].values()) == 30
    assert sum(sum(row) for row in metrics["confusion"]) == 60  # the third class is neither right nor wrong


def test_a_three_class_model_can_start_from_a_two_class_one(tiny_models_dir, three_class_dataset) -> None:
    import torch

    from maskdet.training.loop import TrainConfig, prepare_model
    from maskdet.zoo.architectures import get_spec
    from maskdet.zoo.folders import load_model

    config = TrainConfig(arch="mlp", data=three_class_dataset, init_from=tiny_models_dir / "tiny-mlp").resolved()
    grown = prepare_model(get_spec("mlp"), config, num_classes=3).state_dict()
    trained = load_model(tiny_models_dir / "tiny-mlp").model.state_dict()
    last = [key for key in trained if key.endswith("weight")][-1]
    assert grown[last].shape[0] == 3 and torch.equal(grown[last][:2], trained[last])
    assert not grown[last][2].any()  # the new class starts improbable: the old decisions start as they were
    assert all(torch.equal(grown[k], v) for k, v in trained.items() if grown[k].shape == v.shape)
    with pytest.raises(ValueError, match="is a mlp, not a simple_cnn"):
        prepare_model(get_spec("simple_cnn"), TrainConfig(arch="simple_cnn", data=three_class_dataset,
                                                          init_from=tiny_models_dir / "tiny-mlp").resolved(), 3)


@pytest.mark.slow
def test_the_webcam_counts_and_colours_the_third_class(three_class_mobilenet, three_class_dataset) -> None:
    from maskdet.inference.detector import get_detector
    from maskdet.inference.drawing import LABEL_COLOURS_RGB
    from maskdet.inference.live import LiveProcessor
    from maskdet.inference.pipeline import FacePipeline
    from maskdet.inference.predictor import load_classifier

    processor = LiveProcessor(FacePipeline(load_classifier(str(three_class_mobilenet)), get_detector("whole-image")),
                              threshold=0.0)
    incorrect = sorted((three_class_dataset / "mask_weared_incorrect").iterdir())[:6]
    frames = [processor.process_frame(np.asarray(Image.open(path).convert("RGB").resize((160, 160))))
              for path in incorrect]
    snapshot = processor.snapshot()
    assert snapshot.faces_total["incorrect_mask"] >= 4 and snapshot.average_confidence["incorrect_mask"] > 0.5
    colour = np.array(LABEL_COLOURS_RGB["incorrect_mask"])
    assert any((np.abs(frame.astype(int) - colour).max(axis=2) <= 8).sum() > 100 for frame in frames)


def test_the_detector_keeps_centerface_landmarks(datasets_root) -> None:
    from maskdet.data.images import load_rgb
    from maskdet.inference.detector import get_detector

    face = get_detector("centerface").detect(load_rgb(datasets_root / "face-mask-4k" / "with_mask" / "with_mask026.jpg"))[0]
    (left_eye, right_eye, nose, mouth_left, mouth_right) = face.landmarks
    x0, y0, x1, y1 = face.box
    assert all(x0 <= x <= x1 and y0 <= y <= y1 for x, y in face.landmarks)
    assert left_eye[0] < right_eye[0] and mouth_left[0] < mouth_right[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])  # eyes, nose, mouth


def test_class_weights_make_a_rare_class_count_as_much_as_a_common_one() -> None:
    """train --class-weighted: 87 incorrect faces beside 1,000 of each other class weigh as much in the loss."""
    from maskdet.data.split import Split
    from maskdet.training.loop import class_weights

    counts = {0: 1000, 1: 1000, 2: 87}
    paths = [f"{label}/{i}.png" for label, n in counts.items() for i in range(n)]
    split = Split(train=paths, val=[], test=[], seed=0, fractions=(0.7, 0.15, 0.15),
                  labels={p: int(p.split("/")[0]) for p in paths})
    weights = class_weights(split, 3)
    assert weights.mean().item() == pytest.approx(1.0)
    totals = [weights[label].item() * n for label, n in counts.items()]
    assert totals == pytest.approx([totals[0]] * 3)  # each class's total weight is the same
    two_class = class_weights(split, 4)  # a class the train split lacks weighs nothing
    assert two_class[3].item() == 0.0 and two_class[:3].mean().item() == pytest.approx(1.0)
