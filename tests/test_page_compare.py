"""The Compare page under AppTest, in the real app: two tiny models, and none; copies of shipped models for the
error gallery and the operating point."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import streamlit as st
from dashboard import page_test
from datasets_helpers import link_files
from hostile_inputs import HOSTILE_LISTED, HOSTILE_UNLISTED, add_hostile_models
from markdown_text import texts
from streamlit.testing.v1 import AppTest

from maskdet.inference.predictor import load_classifier
from maskdet.evaluation.compare import COL_MODEL, COL_N, TABLE_COLUMNS
from maskdet.evaluation.folder import evaluate_folder
from maskdet.evaluation.heldout import COL_SET
from maskdet.evaluation.metrics import compute_metrics
from maskdet.settings import CLASSES, REPO_ROOT
from ui.dataset_picker import SOURCE_PATH

PAGE = "pages/compare.py"
TIMEOUT = 180
UNSEEN_QUEUE = "compare-unseen"  # pages/compare.py's queue of evaluate-folder jobs


@pytest.fixture(autouse=True)
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The Compare page's file; fresh caches; an empty data-set root."""
    monkeypatch.setenv("MASKDET_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "root").mkdir()
    monkeypatch.setenv("MASKDET_DATA_ROOT", str(tmp_path / "root"))
    st.cache_data.clear()
    st.cache_resource.clear()  # a fresh job service (the sessions' queues run on it)
    return PAGE


def open_compare(app: str) -> AppTest:
    return page_test(app, TIMEOUT).run()


def assert_clean(at: AppTest) -> None:
    assert not at.exception, texts(at.exception)
    assert not at.error, texts(at.error)


def evaluate_unseen(at: AppTest) -> AppTest:
    """Click Evaluate: the jobs start (progress and Cancel shown); once they ended, a rerun (as the timed fragment
    makes one) reads their results."""
    at.button(key="compare_evaluate").click().run()
    assert not at.exception, texts(at.exception)
    assert at.button(key="compare_evaluate_cancel").label == "Cancel" and at.get("progress")
    status = at.session_state["jobs_queues"][UNSEEN_QUEUE].wait(TIMEOUT)
    assert not status.active and {s.kind for s in status.statuses} == {"evaluate-folder"}
    return at.run()


def choose_folder(at: AppTest, folder: Path) -> AppTest:
    at.radio(key="compare_unseen_source").set_value(SOURCE_PATH).run()
    return at.text_input(key="compare_unseen_path").input(str(folder)).run()


def test_no_models_points_to_the_train_page(app: str) -> None:
    at = open_compare(app)
    assert_clean(at)
    assert "No trained model yet" in texts(at.info)
    assert [link.label for link in at.main.get("page_link")] == ["Go to the Train page"]
    assert not at.dataframe and not at.get("plotly_chart") and not at.download_button


def test_two_models_side_by_side_and_on_unseen_data(app: str, tiny_models_dir: Path, tiny_dataset: Path,
                                                    tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MASKDET_MODELS_DIR", str(tiny_models_dir))
    at = open_compare(app)
    assert_clean(at)

    table = at.dataframe[0].value  # the comparison table (st.dataframe exposes no key)
    assert list(table.columns[1:3]) == [COL_SET, COL_N]  # the set and its size beside each model's name
    assert sorted(table.columns) == sorted([*TABLE_COLUMNS, COL_SET])
    assert set(table[COL_SET]) == {f"{tiny_dataset.name} test files held out by all 2"}
    assert sorted(table[COL_MODEL]) == ["tiny-cnn", "tiny-mlp"]
    assert (table["CPU ms / face"] > 0).all()  # measured on this machine
    assert at.multiselect(key="compare_models").value == ["tiny-cnn", "tiny-mlp"]
    # ROC + PR overlays, one confusion matrix per model, one reliability diagram, one training-curve chart per
    # model; then the operating point: a confusion matrix per model and ROC + PR with the thresholds marked.
    assert len(at.get("plotly_chart")) == 2 + 2 + 1 + 2 + 2 + 2
    assert [t.label for t in at.tabs][:4] == ["ROC and PR curves", "Confusion matrices", "Calibration",
                                              "Training curves"]
    assert [b.label for b in at.download_button] == ["Table as CSV", "Full metrics as JSON"]

    # "Unseen" data: a copy of the training folder (new file times, so a different data version). Its files are
    # the models' own training images by content: flagged, whatever the path or modification times say.
    unseen = tmp_path / "unseen"
    shutil.copytree(tiny_dataset, unseen, copy_function=shutil.copy)  # new modification times
    choose_folder(at, unseen)
    assert_clean(at)
    assert len(at.warning) == 2 and texts(at.warning).count("not unseen data") == 2, texts(at.warning)
    button = at.button(key="compare_evaluate")
    assert button.label == "Evaluate 2 model(s) on unseen"
    evaluate_unseen(at)
    assert_clean(at)
    side_by_side = at.dataframe[1].value
    assert sorted(side_by_side[COL_MODEL]) == ["tiny-cnn", "tiny-mlp"]
    assert (side_by_side["unseen images"] == 24).all()
    assert {"test accuracy", "unseen accuracy", "Δ accuracy"} <= set(side_by_side.columns)
    assert len(at.get("plotly_chart")) == 11 + 3  # plus the unseen-data ROC and PR overlays and reliability
    assert at.radio(key="compare_source").options == ["test split", "unseen (unseen data)"]
    assert len(list((tmp_path / "cache" / "evaluations").glob("*.json"))) == 2

    # A rerun reads the cache: no button, same numbers.
    at.run()
    assert_clean(at)
    assert not [b for b in at.button if b.key == "compare_evaluate"]
    assert at.dataframe[1].value.equals(side_by_side)

    # The training folder itself is flagged too.
    at.text_input(key="compare_unseen_path").input(str(tiny_dataset)).run()
    assert "overlap tiny" in texts(at.warning)


@pytest.mark.parametrize(("folder", "warned"), [("face-mask-4k", True), ("synthetic-masks-2k", False)])
def test_unseen_data_warns_when_the_shipped_models_trained_on_it(app: Path, folder: str, warned: bool,
                                                                 datasets_root: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 15 "honest unseen": every shipped model trained on face-mask-4k (the old default choice), none on
    synthetic-masks-2k; the check compares file contents and near-duplicate groups with each model's split."""
    monkeypatch.setenv("MASKDET_MODELS_DIR", str(REPO_ROOT / "models"))
    monkeypatch.setenv("MASKDET_DATA_ROOT", str(datasets_root))
    at = open_compare(app)
    at.multiselect(key="compare_models").set_value(["mobilenet_v2", "mlp"]).run()
    choose_folder(at, datasets_root / folder)
    assert_clean(at)
    warnings = texts(at.warning)
    if warned:
        assert len(at.warning) == 2 and "not unseen data" in warnings
        assert "3481 identical files" in warnings
    else:
        assert not at.warning and "Not checked" not in texts(at.caption)


def test_selection_drives_the_plots_and_bad_folders_are_explained(app: str, tiny_models_dir: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MASKDET_MODELS_DIR", str(tiny_models_dir))
    at = open_compare(app)
    at.multiselect(key="compare_models").set_value(["tiny-mlp"]).run()
    assert_clean(at)
    assert len(at.get("plotly_chart")) == 2 + 1 + 1 + 1 + 1 + 2
    legend = [trace["name"] for trace in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]]
    assert any(name.startswith("tiny-mlp (AUC ") for name in legend)

    (tmp_path / "not-a-dataset" / "cats").mkdir(parents=True)
    choose_folder(at, tmp_path / "not-a-dataset")
    assert "unknown class folder 'cats'" in texts(at.error)

    at.multiselect(key="compare_models").set_value([]).run()
    assert not at.exception
    assert "Select at least one model" in texts(at.info)
    assert not at.get("plotly_chart")
    assert len(at.download_button) == 2  # export still offered


def test_models_that_are_not_ours_are_refused_and_the_others_still_compare(app: str, tiny_models_dir: Path,
                                                                           tiny_dataset: Path, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    models = tmp_path / "models"
    shutil.copytree(tiny_models_dir, models)
    marker = tmp_path / "pwned"
    add_hostile_models(models, models / "tiny-mlp", marker)
    monkeypatch.setenv("MASKDET_MODELS_DIR", str(models))
    at = open_compare(app)
    assert not at.exception, texts(at.exception)

    assert set(at.dataframe[0].value[COL_MODEL]) == {"tiny-cnn", "tiny-mlp", "renamed", *HOSTILE_LISTED}
    warnings = texts(at.warning)
    assert "Leaving out `odd-fields`: its metadata.json is malformed" in warnings
    for name in ("evil-weights", "truncated-weights"):  # listed from their metadata, refused when loaded to be timed
        assert f"Cannot load `{name}` to time it" in warnings
    assert not set(HOSTILE_UNLISTED) & set(at.multiselect(key="compare_models").options)

    at.multiselect(key="compare_models").set_value(["tiny-mlp", "evil-weights"]).run()
    choose_folder(at, tiny_dataset)
    evaluate_unseen(at)
    assert not at.exception, texts(at.exception)
    assert "Evaluating `evil-weights` on " in texts(at.error)
    assert "is not a safetensors file" in texts(at.error)  # the job's own message
    assert at.dataframe[1].value[COL_MODEL].tolist() == ["tiny-mlp"]  # the real model is still evaluated
    assert not marker.exists()


def frame_with(at_or_block, *columns: str) -> pd.DataFrame:
    """The one dataframe under ``at_or_block`` holding all of ``columns`` (AppTest exposes no dataframe keys)."""
    found = [d.value for d in at_or_block.dataframe if set(columns) <= set(d.value.columns)]
    assert len(found) == 1, [list(d.value.columns) for d in at_or_block.dataframe]
    return found[0]


def gallery_tab(at: AppTest, model: str):
    return next(tab for tab in at.tabs if tab.label.startswith(f"{model} ("))


def test_error_gallery_and_operating_point_on_shipped_models(app: Path, tmp_path: Path, datasets_root: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    models = tmp_path / "models"  # copies: saving a threshold must never touch the repository's models/
    for name in ("mlp", "simple_cnn"):
        shutil.copytree(REPO_ROOT / "models" / name, models / name)
    monkeypatch.setenv("MASKDET_MODELS_DIR", str(models))
    at = open_compare(app)
    assert_clean(at)
    assert at.radio(key="compare_source").value == "test split"

    # The gallery lists exactly the test files that evaluate gets wrong, hardest first.
    test_files = json.loads((models / "mlp" / "split.json").read_text())["test"]
    linked = link_files(tmp_path / "mlp-test", datasets_root / "face-mask-4k", test_files)
    evaluated = evaluate_folder(load_classifier(str(models / "mlp")), linked)
    wrong = {p: CLASSES[int(s >= 0.5)] for p, y, s in zip(evaluated.relpaths, evaluated.labels, evaluated.scores,
                                                          strict=True) if int(s >= 0.5) != y}
    gallery = frame_with(gallery_tab(at, "mlp"), "file", "predicted label")
    assert dict(zip(gallery["file"], gallery["predicted label"], strict=True)) == wrong
    assert gallery["confidence"].is_monotonic_decreasing
    summary = frame_with(at, "shared", "own").set_index(COL_MODEL)
    assert summary.loc["mlp", "errors"] == len(wrong) == evaluated.metrics["false_positives"] + \
        evaluated.metrics["false_negatives"]
    assert summary.loc["mlp", "shared"] + summary.loc["mlp", "own"] == len(wrong)  # every file was scored by both
    assert len(gallery_tab(at, "mlp").image) == 24  # the first thumbnails, the rest behind a slider
    assert "true no mask · said mask" in "\n".join(c for i in gallery_tab(at, "mlp").image for c in i.captions)

    # Moving a threshold updates the numbers, the gallery and the marks on the curves at once.
    at.slider(key="compare_threshold_mlp").set_value(0.8).run()
    assert_clean(at)
    expected = compute_metrics(evaluated.labels, evaluated.scores, 0.8)
    operating = frame_with(at, "threshold", "FP", "FN").set_index(COL_MODEL)
    assert operating.loc["mlp", ["FP", "FN"]].tolist() == [expected["false_positives"], expected["false_negatives"]]
    assert operating.loc["mlp", "recall (with_mask)"] == pytest.approx(expected["per_class"]["with_mask"]["recall"])
    assert operating.loc["simple_cnn", "threshold"] == 0.5
    assert len(frame_with(gallery_tab(at, "mlp"), "file", "predicted label")) == \
        expected["false_positives"] + expected["false_negatives"]
    roc = next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if "operating_roc" in c.proto.id)
    mark = next(trace for trace in roc["data"] if trace["name"] == "mlp at 0.80")
    (tn, fp), (fn, tp) = expected["confusion"]
    assert mark["x"][0] == pytest.approx(fp / (fp + tn)) and mark["y"][0] == pytest.approx(tp / (tp + fn))

    # Saving writes the threshold into the copy's card; the table shows it and the button has nothing left to do.
    at.button(key="compare_save_mlp").click().run()
    assert_clean(at)
    card = json.loads((models / "mlp" / "metadata.json").read_text())
    assert (card["operating_threshold"], card["operating_threshold_chosen_on"]) == (0.8, "test split")
    assert "Saved 0.80 as the operating threshold of `mlp`" in texts(at.success)
    assert frame_with(at, "operating threshold", "ECE").set_index(COL_MODEL).loc["mlp", "operating threshold"] == 0.8
    assert at.button(key="compare_save_mlp").disabled
    assert load_classifier(str(models / "mlp")).threshold == 0.8

    # One error explained with Integrated Gradients, as on the Photo page.
    hardest = frame_with(gallery_tab(at, "mlp"), "file", "predicted label").iloc[0]
    at.selectbox(key="compare_gallery_mlp_explain").select_index(0).run()
    assert_clean(at)
    tab = gallery_tab(at, "mlp")
    assert {"Original (as the model sees it)", "Integrated Gradients heatmap", "Overlay"} <= {
        c for image in tab.image for c in image.captions}
    assert f"Why `mlp` said **{hardest['predicted label']}**" in texts(tab.markdown)
    assert "convergence error" in texts(tab.caption) + texts(tab.warning)


def test_the_owner_chooses_a_threshold_on_the_unseen_data_by_the_rule_and_a_visitor_cannot(
        app: str, tiny_models_dir: Path, datasets_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Faces from the camera a model will watch choose its threshold better than our validation faces; choosing
    writes the model's card, which on a shared dashboard is the owner's (the validation button was offered to all)."""
    from test_sharing import server_address

    from maskdet.evaluation.unseen import dataset_fingerprint
    from maskdet.zoo.decision import choose_threshold

    models = Path(shutil.copytree(tiny_models_dir, tmp_path / "models"))
    monkeypatch.setenv("MASKDET_MODELS_DIR", str(models))
    source = datasets_root / "synthetic-masks-2k"
    camera = tmp_path / "camera"
    for cls in ("with_mask", "without_mask"):
        link_files(camera, source, [f"{cls}/{p.name}" for p in sorted((source / cls).glob("*.jpg"))[:30]])
    at = open_compare(app)
    choose_folder(at, camera)
    evaluate_unseen(at)
    at.radio(key="compare_source").set_value("camera (unseen data)").run()
    assert_clean(at)
    button = at.button(key="compare_choose_unseen_tiny-mlp")
    assert button.label == "Choose on camera by the same rule" and not button.disabled
    button.click().run()
    assert_clean(at)
    scored = evaluate_folder(load_classifier(str(models / "tiny-mlp")), camera)
    expected = choose_threshold(scored.labels, scored.scores)
    card = json.loads((models / "tiny-mlp" / "metadata.json").read_text())
    assert card["operating_threshold"] == expected != 0.5  # the rule had work to do on these faces
    # named as `threshold --on` names a folder: its faces and which version of it (its content fingerprint)
    assert card["operating_threshold_chosen_on"].startswith(
        f"{camera}: 30 without_mask, 30 with_mask; content fingerprint {dataset_fingerprint(camera)} "
        "(lowest threshold >= 0.5")
    assert f"Saved {expected:.2f} as the operating threshold of `tiny-mlp`" in texts(at.success)

    monkeypatch.setenv("MASKDET_OWNER_SECRET", "correct horse battery staple")
    with server_address("0.0.0.0"):
        visitor = open_compare(app)
        assert_clean(visitor)
        choose = visitor.button(key="compare_choose_tiny-cnn")
        assert choose.disabled and "Only the owner may save a threshold." in choose.help
        assert visitor.button(key="compare_save_tiny-cnn").disabled
