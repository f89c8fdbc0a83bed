"""A model's operating threshold: saved atomically into its card, then used by the pipeline, `predict`,
`models`, `evaluate` and the Photo page.

The model is a copy of the shipped ``mlp`` in this test's own MASKDET_MODELS_DIR (the repository's
models/ is never written); the faces are real masked photos from face-mask-4k, classified whole.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from dashboard import page_test
from datasets_helpers import build, real_jpegs
from markdown_text import texts

from maskdet.zoo.folders import (
    METADATA_FILE,
    WEIGHTS_FILE,
    CheckpointError,
    list_model_folders,
    load_model,
    read_metadata,
    set_operating_threshold,
)
from maskdet.inference.predictor import load_classifier
from maskdet.cli import main
from maskdet.evaluation.folder import evaluate_folder
from maskdet.data.images import load_rgb
from maskdet.evaluation.metrics import compute_metrics
from maskdet.inference.pipeline import build_pipeline, label_probabilities

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "models" / "mlp"
PHOTO_PAGE = "pages/photo.py"
TIMEOUT = 300


@pytest.fixture
def model(isolated_models_dir: Path) -> Path:
    """A copy of the shipped mlp model in this test's models folder (the only model there)."""
    return Path(shutil.copytree(SHIPPED, isolated_models_dir / "mlp"))


@pytest.fixture(scope="module")
def masked_face(datasets_root: Path) -> tuple[Path, float]:
    """A real masked photo the shipped mlp calls with_mask with p(with_mask) in (0.55, 0.9), and that p."""
    pipeline = build_pipeline(str(SHIPPED), whole_image=True)
    for path in real_jpegs(datasets_root, "with_mask", 40):
        p = pipeline.predict(load_rgb(path))[0].p_with_mask
        if 0.55 < p < 0.9:
            return path, p
    pytest.fail("no masked photo with a middling score for the shipped mlp")


def above(p: float) -> float:
    """A threshold between ``p`` and 1 (two decimals, as the Compare page's slider saves)."""
    return round((p + 1) / 2, 2)


def test_label_probabilities_follow_the_threshold_inclusively() -> None:
    rows = np.array([[0.3, 0.7], [0.4, 0.6], [0.9, 0.1]])
    assert label_probabilities(rows) == [("with_mask", 0.7), ("with_mask", 0.6), ("without_mask", 0.9)]
    assert label_probabilities(rows, threshold=0.6) == [("with_mask", 0.7), ("with_mask", 0.6), ("without_mask", 0.9)]
    # Above the face's p(with_mask) it is without_mask, with the probability of that label as confidence.
    assert label_probabilities(rows, threshold=0.65) == [("with_mask", 0.7), ("without_mask", 0.4),
                                                          ("without_mask", 0.9)]
    assert label_probabilities(np.zeros((0, 2))) == []


def test_saving_rewrites_only_the_card_and_keeps_the_weights_valid(model: Path) -> None:
    weights_before = (model / WEIGHTS_FILE).read_bytes()
    card_before = json.loads((model / METADATA_FILE).read_text())
    assert load_classifier(str(model)).threshold == 0.5  # no operating_threshold in the card: the default

    returned = set_operating_threshold(model, 0.73, chosen_on="synthetic-masks-2k")
    card = json.loads((model / METADATA_FILE).read_text())
    assert card == returned
    assert card["operating_threshold"] == 0.73 and card["operating_threshold_chosen_on"] == "synthetic-masks-2k"
    assert {k: v for k, v in card.items() if not k.startswith("operating_threshold")} == card_before
    assert (model / WEIGHTS_FILE).read_bytes() == weights_before
    assert card["weights"]["sha256"] == hashlib.sha256(weights_before).hexdigest()
    assert load_model(model).metadata["operating_threshold"] == 0.73  # the hash check passes
    assert load_classifier(str(model)).threshold == 0.73
    assert [p.name for p in model.iterdir() if p.name.startswith(".")] == []  # no staging file left behind
    assert [m["operating_threshold"] for m in list_model_folders()] == [0.73]


@pytest.mark.parametrize("bad", [0, 1, 1.5, -0.2, float("nan"), "0.7", True, None])
def test_bad_thresholds_are_refused_when_saved_and_when_read(model: Path, bad: object) -> None:
    card = (model / METADATA_FILE).read_text()
    with pytest.raises(CheckpointError, match="threshold"):
        set_operating_threshold(model, bad)  # type: ignore[arg-type]
    assert (model / METADATA_FILE).read_text() == card  # nothing written
    forged = {**json.loads(card), "operating_threshold": bad}
    (model / METADATA_FILE).write_text(json.dumps(forged))
    if bad is not None:  # null is the schema's "none saved"
        with pytest.raises(CheckpointError, match="operating_threshold|NaN"):
            read_metadata(model)
        assert list_model_folders() == []  # a card with a broken threshold is not listed
    else:
        assert load_classifier(str(model)).threshold == 0.5


def test_saving_into_a_folder_that_is_not_a_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError):
        set_operating_threshold(tmp_path, 0.6)
    assert list(tmp_path.iterdir()) == []


def test_predict_labels_at_the_saved_threshold(model: Path, masked_face: tuple[Path, float],
                                               capsys: pytest.CaptureFixture) -> None:
    face, p = masked_face

    def predicted() -> dict:
        assert main(["predict", str(face), "--model", "mlp", "--whole-image", "--json"]) == 0
        return json.loads(capsys.readouterr().out)["faces"][0]

    assert predicted()["label"] == "with_mask"
    set_operating_threshold(model, above(p))
    relabelled = predicted()
    assert relabelled["label"] == "without_mask"
    assert relabelled["confidence"] == pytest.approx(1 - p, abs=1e-4)
    set_operating_threshold(model, round(p - 0.05, 2))
    assert predicted()["label"] == "with_mask"


def test_models_shows_and_evaluate_reports_at_the_threshold_and_at_one_half(
        model: Path, datasets_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = build(tmp_path / "data", {cls: real_jpegs(datasets_root, cls, 15) for cls in ("with_mask", "without_mask")})
    reference = evaluate_folder(load_classifier(str(model)), data)
    threshold = 0.8
    expected = compute_metrics(reference.labels, reference.scores, threshold)
    assert expected["confusion"] != reference.metrics["confusion"]  # the data tell the thresholds apart
    set_operating_threshold(model, threshold)

    assert main(["models", "--json"]) == 0
    assert [row["operating_threshold"] for row in json.loads(capsys.readouterr().out)] == [threshold]
    assert main(["models"]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert "threshold" in header and "0.8" in row.split()

    assert main(["evaluate", "--data", str(data), "--model", "mlp", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["confusion"] == reference.metrics["confusion"]  # the headline numbers stay at 0.5
    assert result["operating_threshold"] == threshold
    at = result["at_operating_threshold"]
    assert at["confusion"] == expected["confusion"]
    assert (at["false_positives"], at["false_negatives"]) == (expected["false_positives"], expected["false_negatives"])
    assert at["accuracy"] == pytest.approx(expected["accuracy"])

    assert main(["evaluate", "--data", str(data), "--model", "mlp", "-q"]) == 0
    text = capsys.readouterr().out
    assert "at threshold 0.5" in text and "at its operating threshold 0.8" in text
    (tn, fp), (fn, tp) = expected["confusion"]
    assert f"[[{tn} {fp}] [{fn} {tp}]]" in text


def test_photo_page_labels_at_the_saved_threshold(model: Path, masked_face: tuple[Path, float]) -> None:
    st.cache_data.clear()
    face, p = masked_face
    at = page_test(PHOTO_PAGE, TIMEOUT)
    at.run()
    at.radio(key="photo_detector").set_value("whole-image").run()
    at.file_uploader(key="photo_uploads").set_value([(face.name, face.read_bytes(), "image/jpeg")]).run()
    assert not at.exception, texts(at.exception)
    assert "Face 1**: 😷 with mask" in "\n".join(m.value for m in at.markdown)
    assert "from p(with mask) ≥ 0.5," in texts(at.caption)

    threshold = above(p)
    set_operating_threshold(model, threshold)  # as the Compare page does, while this session stays open
    at.run()
    assert not at.exception, texts(at.exception)
    verdicts = "\n".join(m.value for m in at.markdown)
    assert "Face 1**: 🙂 without mask, by the operating threshold (" in verdicts  # not "{1 - p:.1%} confident"
    assert f"😷 with mask {p:.1%}" in verdicts
    assert f"from p(with mask) ≥ {threshold:g}," in texts(at.caption)
    assert "as in 'No mask (mask 93%)'" in texts(at.caption)  # how its box reads
    (table,) = at.dataframe
    row = table.value.iloc[0]  # the verdict, and the probability the threshold found too small
    assert (row["verdict"], row["p(😷 with mask)"]) == ("🙂 without mask", pytest.approx(p, abs=1e-6))
    assert row["p(🙂 without mask)"] == pytest.approx(1 - p, abs=1e-6)


@pytest.mark.parametrize("page", ["pages/webcam.py", "pages/video.py"])
def test_live_pages_say_the_saved_threshold_and_how_a_held_back_face_reads(model: Path, page: str,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Webcam and Video label faces by the same rule as Photo, and say so in the same words."""
    from maskdet.inference.live import ICE_SERVERS_ENV

    # AppTest cannot run the camera's component: a refused ICE setting stops the Webcam page just after the caption
    monkeypatch.setenv(ICE_SERVERS_ENV, "not json")
    at = page_test(page, TIMEOUT).run()
    assert not at.exception, texts(at.exception)
    assert "from p(with mask) ≥ 0.5," in texts(at.caption) and "No mask (mask" not in texts(at.caption)
    set_operating_threshold(model, 0.93)
    at.run()
    assert "from p(with mask) ≥ 0.93," in texts(at.caption) and "as in 'No mask (mask 93%)'" in texts(at.caption)


def _unseen_faces(datasets_root: Path, root: Path, per_class: int) -> Path:
    """``per_class`` real faces per class from synthetic-masks-2k (no shipped model trained on it) under ``root``."""
    source = datasets_root / "synthetic-masks-2k"
    return build(root, {cls: sorted((source / cls).glob("*.jpg"))[:per_class] for cls in ("with_mask", "without_mask")})


def test_the_threshold_is_chosen_on_a_folder_of_faces_from_the_camera(model: Path, datasets_root: Path,
                                                                       tmp_path: Path, capsys) -> None:
    """`threshold --on FOLDER`: the one rule on the deployer's own labelled faces, recorded with the folder."""
    from maskdet.zoo.decision import choose_threshold

    data = _unseen_faces(datasets_root, tmp_path / "camera", 40)
    scored = evaluate_folder(load_classifier(str(model)), data)
    expected = choose_threshold(scored.labels, scored.scores)
    assert expected > 0.5  # the mlp calls some of these bare faces masked at 0.5: the choice has work to do
    weights = (model / WEIGHTS_FILE).read_bytes()

    assert main(["threshold", "--model", "mlp", "--on", str(data)]) == 0
    out = capsys.readouterr().out
    card = read_metadata(model)
    assert card["operating_threshold"] == expected
    assert str(data) in card["operating_threshold_chosen_on"] and "40 without_mask, 40 with_mask" in \
        card["operating_threshold_chosen_on"] and "seen in training" not in card["operating_threshold_chosen_on"]
    p_masked = scored.scores
    bare, masked = scored.labels == 0, scored.labels == 1
    before = int((bare & (p_masked >= 0.5)).sum())
    after = int((bare & (p_masked >= expected)).sum())
    assert after < before
    assert f"operating threshold 0.5 -> {expected:g}" in out
    assert f"not-masked called masked {before} -> {after} of 40" in out
    assert f"masked called masked {int((masked & (p_masked >= 0.5)).sum())} -> " \
           f"{int((masked & (p_masked >= expected)).sum())} of 40" in out
    assert (model / WEIGHTS_FILE).read_bytes() == weights and load_classifier(str(model)).threshold == expected


def test_choosing_on_training_faces_is_said_and_on_masked_faces_alone_is_refused(model: Path, datasets_root: Path,
                                                                                 tmp_path: Path, capsys) -> None:
    trained_on = build(tmp_path / "seen", {cls: real_jpegs(datasets_root, cls, 6) for cls in ("with_mask", "without_mask")})
    assert main(["threshold", "--model", "mlp", "--on", str(trained_on)]) == 0
    chosen_on = read_metadata(model)["operating_threshold_chosen_on"]
    assert "seen in training" in chosen_on  # face-mask-4k is the mlp's training data: allowed, never silent
    capsys.readouterr()

    card = (model / METADATA_FILE).read_text()
    masked_only = build(tmp_path / "masked", {"with_mask": real_jpegs(datasets_root, "with_mask", 5)})
    assert main(["threshold", "--model", "mlp", "--on", str(masked_only)]) != 0
    assert "holds no bare or incorrectly masked face" in capsys.readouterr().err
    assert main(["threshold", "--model", "mlp", "--on", str(trained_on), "--value", "0.7"]) != 0
    assert "give one of them" in capsys.readouterr().err
    assert (model / METADATA_FILE).read_text() == card  # nothing written


def test_the_rule_refuses_faces_without_a_single_not_masked_one(model: Path) -> None:
    """The page's unseen data and `--on` share this refusal: with only masked faces any threshold meets the bound."""
    from maskdet.zoo.folders import choose_operating_threshold

    card = (model / METADATA_FILE).read_text()
    with pytest.raises(ValueError, match="camera holds no bare or incorrectly masked face among its 3"):
        choose_operating_threshold(model, scored=(np.ones(3, int), np.array([0.6, 0.9, 0.99])), chosen_on="camera")
    assert (model / METADATA_FILE).read_text() == card
    chosen = choose_operating_threshold(model, scored=(np.array([0, 1, 1]), np.array([0.7, 0.9, 0.99])),
                                        chosen_on="camera")
    assert chosen["operating_threshold"] == 0.71  # the one bare face at 0.7 stays below it
    assert chosen["operating_threshold_chosen_on"].startswith("camera (lowest threshold >= 0.5")
