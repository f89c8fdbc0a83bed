"""The whole app starts (the entry script is the Home page) and lists data sets and models."""

from __future__ import annotations

from dashboard import ENTRY, page_test


def test_app_starts_and_lists_datasets_and_empty_models(datasets_root, isolated_models_dir, monkeypatch):
    monkeypatch.setenv("MASKDET_DATA_ROOT", str(datasets_root))
    at = page_test(ENTRY, 120).run()
    assert not at.exception
    assert at.title[0].value.endswith("maskdet")
    datasets = at.dataframe[0].value
    assert set(datasets["data set"]) >= {"face-mask-4k", "synthetic-masks-2k"}
    assert int(datasets.loc[datasets["data set"] == "face-mask-4k", "total"].iloc[0]) == 4094
    assert any("No trained model" in info.value for info in at.info)


def test_home_lists_trained_models(tiny_models_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("MASKDET_MODELS_DIR", str(tiny_models_dir))
    monkeypatch.setenv("MASKDET_DATA_ROOT", str(tmp_path))  # no data sets: the built-in sample, said plainly
    at = page_test(ENTRY, 120).run()
    assert not at.exception
    assert any("sample built into maskdet" in info.value for info in at.info)
    models = next(frame.value for frame in at.dataframe if "name" in frame.value.columns)  # after the data sets
    assert set(models["name"]) >= {"tiny-mlp", "tiny-cnn"}
