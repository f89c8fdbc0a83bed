"""The Compare page under AppTest, in the real app: two tiny models, and none."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import streamlit as st
from dashboard import page_test
from hostile_inputs import HOSTILE_LISTED, HOSTILE_UNLISTED, add_hostile_models
from markdown_text import texts
from streamlit.testing.v1 import AppTest

from maskdet.compare import COL_MODEL, TABLE_COLUMNS
from ui.dataset_picker import SOURCE_PATH

PAGE = "pages/compare.py"
TIMEOUT = 180


@pytest.fixture(autouse=True)
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The Compare page's file; fresh caches; an empty data-set root."""
    monkeypatch.setenv("MASKDET_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "root").mkdir()
    monkeypatch.setenv("MASKDET_DATA_ROOT", str(tmp_path / "root"))
    st.cache_data.clear()
    return PAGE


def open_compare(app: str) -> AppTest:
    return page_test(app, TIMEOUT).run()


def assert_clean(at: AppTest) -> None:
    assert not at.exception, texts(at.exception)
    assert not at.error, texts(at.error)


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
    assert list(table.columns) == TABLE_COLUMNS
    assert sorted(table[COL_MODEL]) == ["tiny-cnn", "tiny-mlp"]
    assert (table["CPU ms / face"] > 0).all()  # measured on this machine
    assert at.multiselect(key="compare_models").value == ["tiny-cnn", "tiny-mlp"]
    # ROC + PR overlays, one confusion matrix and one training-curve chart per model.
    assert len(at.get("plotly_chart")) == 2 + 2 + 2
    assert [t.label for t in at.tabs] == ["ROC and PR curves", "Confusion matrices", "Training curves"]
    assert [b.label for b in at.download_button] == ["Table as CSV", "Full metrics as JSON"]

    # Unseen data: a copy of the folder (new file times, so a different data version than the training one).
    unseen = tmp_path / "unseen"
    shutil.copytree(tiny_dataset, unseen, copy_function=shutil.copy)  # new modification times
    choose_folder(at, unseen)
    assert_clean(at)
    assert not at.warning
    button = at.button(key="compare_evaluate")
    assert button.label == "Evaluate 2 model(s) on unseen"
    button.click().run()
    assert_clean(at)
    side_by_side = at.dataframe[1].value
    assert sorted(side_by_side[COL_MODEL]) == ["tiny-cnn", "tiny-mlp"]
    assert (side_by_side["unseen images"] == 24).all()
    assert {"test accuracy", "unseen accuracy", "Δ accuracy"} <= set(side_by_side.columns)
    assert len(at.get("plotly_chart")) == 6 + 2  # plus the unseen-data ROC and PR overlays
    assert len(list((tmp_path / "cache" / "evaluations").glob("*.json"))) == 2

    # A rerun reads the cache: no button, same numbers.
    at.run()
    assert_clean(at)
    assert not [b for b in at.button if b.key == "compare_evaluate"]
    assert at.dataframe[1].value.equals(side_by_side)

    # The training folder itself is flagged: it is not unseen data for these models.
    at.text_input(key="compare_unseen_path").input(str(tiny_dataset)).run()
    assert "trained on this very folder" in texts(at.warning)


def test_selection_drives_the_plots_and_bad_folders_are_explained(app: str, tiny_models_dir: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MASKDET_MODELS_DIR", str(tiny_models_dir))
    at = open_compare(app)
    at.multiselect(key="compare_models").set_value(["tiny-mlp"]).run()
    assert_clean(at)
    assert len(at.get("plotly_chart")) == 2 + 1 + 1
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
    at.button(key="compare_evaluate").click().run()
    assert not at.exception, texts(at.exception)
    assert "Evaluating `evil-weights` on " in texts(at.error)
    assert at.dataframe[1].value[COL_MODEL].tolist() == ["tiny-mlp"]  # the real model is still evaluated
    assert not marker.exists()
