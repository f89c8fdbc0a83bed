"""maskdet.evaluation (summary, compare, latency, unseen, errors) on two tiny real models (and the shipped mlp): summaries, best values, calibration columns,
latency, the unseen-data cache, the error gallery's lists and overlaps, export."""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from datasets_helpers import link_files

from maskdet.evaluation import latency
from maskdet.zoo.folders import list_model_folders
from maskdet.inference.predictor import load_classifier
from maskdet.evaluation.compare import (
    COL_ACCURACY,
    COL_AUC,
    COL_BRIER,
    COL_ECE,
    COL_FN,
    COL_LATENCY,
    COL_MODEL,
    COL_N,
    COL_PARAMS,
    COL_THRESHOLD,
    TABLE_COLUMNS,
    best_mask,
    comparison_table,
    metrics_json,
    overlap_summary,
    table_csv,
    unseen_table,
)
from maskdet.evaluation.errors import (
    TEST_SPLIT,
    ScoredFiles,
    error_overlap,
    error_sharing,
    held_out_files,
    locate_folder,
    misclassified,
)
from maskdet.evaluation.latency import cpu_latency_ms, with_latency
from maskdet.evaluation.summary import summarize
from maskdet.evaluation.unseen import cached_evaluation, dataset_fingerprint, evaluate_dataset, evaluation_cache_path
from maskdet.evaluation.folder import evaluate_folder
from maskdet.evaluation.metrics import calibration, compute_metrics

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def summaries(tiny_models_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict:
    monkeypatch.setenv("MASKDET_MODELS_DIR", str(tiny_models_dir))
    monkeypatch.setenv("MASKDET_CACHE_DIR", str(tmp_path / "cache"))
    return {m["name"]: summarize(m) for m in list_model_folders()}


def test_summary_reads_metadata(summaries: dict, tiny_models_dir: Path) -> None:
    assert set(summaries) == {"tiny-mlp", "tiny-cnn"}
    s = summaries["tiny-cnn"]
    meta = json.loads((tiny_models_dir / "tiny-cnn" / "metadata.json").read_text())
    assert (s.arch, s.input_size, s.path) == ("simple_cnn", 48, tiny_models_dir / "tiny-cnn")
    assert s.weights_sha256 == meta["weights"]["sha256"]
    assert s.weights_bytes == (tiny_models_dir / "tiny-cnn" / "model.safetensors").stat().st_size
    assert s.params == meta["params"]["total"] > 0
    assert s.training_seconds == meta["training_seconds"] and s.training_fingerprint == meta["dataset"]["fingerprint"]
    assert [h["epoch"] for h in s.history] == [1, 2]
    assert s.latency_ms is None
    # The stored test metrics are exactly what the shared implementation says about the stored scores.
    assert len(s.labels) == len(s.scores) == s.test["n"] > 0
    recomputed = compute_metrics(s.labels, s.scores)
    assert recomputed["confusion"] == s.test["confusion"]
    assert recomputed["accuracy"] == pytest.approx(s.test["accuracy"])


def test_same_weights_read_differently_are_another_model_for_the_caches(tiny_models_dir: Path) -> None:
    meta = json.loads((tiny_models_dir / "tiny-cnn" / "metadata.json").read_text())
    meta.update(name="copy", path=str(tiny_models_dir / "tiny-cnn"))
    keys = {summarize(meta).cache_key, summarize({**meta, "name": "renamed"}).cache_key}
    assert len(keys) == 1  # a rename keeps the cached numbers
    for forged in ({"classes": ["with_mask", "without_mask"]}, {"arch": "mlp"}, {"input": {**meta["input"], "size": 64}}):
        assert summarize({**meta, **forged}).cache_key not in keys, forged


def test_summary_of_a_model_without_metrics() -> None:
    s = summarize({"name": "bare", "arch": "mlp", "path": "/nowhere", "weights": {"sha256": "ab"}})
    assert s.test is None and s.labels == [] and s.params is None and s.weights_bytes is None
    row = comparison_table([s]).iloc[0]
    assert row[COL_MODEL] == "bare" and np.isnan(row[COL_ACCURACY]) and np.isnan(row[COL_PARAMS])


def test_table_rows_and_best_values(summaries: dict) -> None:
    table = comparison_table(list(summaries.values()))
    assert list(table.columns) == TABLE_COLUMNS
    assert set(table[COL_MODEL]) == set(summaries)
    cnn = table.set_index(COL_MODEL).loc["tiny-cnn"]
    assert cnn[COL_N] == summaries["tiny-cnn"].test["n"]
    assert cnn["F1 with_mask"] == pytest.approx(summaries["tiny-cnn"].test["per_class"]["with_mask"]["f1"])
    mask = best_mask(table)
    # simple_cnn (48 px) has far fewer parameters than the MLP (50x50 grey pixels into 1024 units): fewer wins.
    assert mask.set_index(table[COL_MODEL])[COL_PARAMS].to_dict() == {"tiny-cnn": True, "tiny-mlp": False}
    assert not mask[COL_MODEL].any() and not mask[COL_N].any()
    assert not mask[COL_LATENCY].any()  # not measured yet: nothing to compare
    for name, row in table.set_index(COL_MODEL).iterrows():  # calibration from the stored test scores
        expected = calibration(summaries[name].labels, summaries[name].scores)
        assert row[COL_ECE] == pytest.approx(expected["expected_calibration_error"])
        assert row[COL_BRIER] == pytest.approx(expected["brier_score"])
        assert row[COL_THRESHOLD] == 0.5  # no operating threshold saved: the default


def test_best_mask_directions_ties_and_gaps() -> None:
    frame = pd.DataFrame(
        {
            COL_MODEL: ["a", "b", "c"],
            COL_ACCURACY: [0.9, 0.95, 0.95],  # higher is better; the tie is highlighted twice
            COL_FN: [3, 1, 2],  # lower is better
            COL_AUC: [np.nan, 0.8, np.nan],  # a single value is no comparison
            COL_LATENCY: [np.nan, 2.0, 1.5],  # missing values are ignored
        }
    )
    mask = best_mask(frame)
    assert mask[COL_ACCURACY].tolist() == [False, True, True]
    assert mask[COL_FN].tolist() == [False, True, False]
    assert not mask[COL_AUC].any()
    assert mask[COL_LATENCY].tolist() == [False, False, True]
    assert not mask[COL_MODEL].any()


def test_latency_is_measured_once_per_weights(summaries: dict) -> None:
    s = summaries["tiny-mlp"]
    first = cpu_latency_ms(s, runs=5)
    assert 0 < first < 1000
    started = time.perf_counter()
    again = with_latency(s, runs=5)
    assert again.latency_ms == first  # the in-memory cache: a new measurement would not be bit-identical
    assert time.perf_counter() - started < 0.05
    row = comparison_table([again]).iloc[0]
    assert row[COL_LATENCY] == first


def test_measure_latency_refuses_zero_runs(summaries: dict) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        latency.measure_latency_ms(load_classifier(str(summaries["tiny-mlp"].path)), runs=0)


def test_unseen_evaluation_matches_the_cli_path_and_is_cached(summaries: dict, tiny_dataset: Path) -> None:
    s = summaries["tiny-cnn"]
    fingerprint = dataset_fingerprint(tiny_dataset)
    assert cached_evaluation(s, tiny_dataset, fingerprint) is None
    stages = []
    evaluation = evaluate_dataset(s, tiny_dataset, progress=lambda stage, done, total: stages.append((stage, done, total)))
    assert ("classifying", 24, 24) in stages
    assert evaluation.metrics["n"] == 24 and evaluation.unreadable == 0
    recomputed = compute_metrics(evaluation.labels, evaluation.scores)
    assert evaluation.metrics["ece"] == pytest.approx(recomputed.pop("ece"), abs=1e-6)  # float32 scores round-trip
    assert {k: v for k, v in evaluation.metrics.items() if k != "ece"} == recomputed
    direct = evaluate_folder(load_classifier(str(s.path)), tiny_dataset)
    assert evaluation.metrics["confusion"] == direct.metrics["confusion"]
    np.testing.assert_allclose(evaluation.scores, direct.scores, atol=1e-5)

    path = evaluation_cache_path(s.cache_key, fingerprint)
    assert path.is_file() and path.parent.name == "evaluations"
    stages.clear()
    again = evaluate_dataset(s, tiny_dataset, progress=lambda *args: stages.append(args))
    assert stages == [] and again == evaluation  # served from disk, no model run
    assert cached_evaluation(summaries["tiny-mlp"], tiny_dataset, fingerprint) is None  # other weights, other entry


def test_changed_folder_or_damaged_cache_means_a_new_evaluation(summaries: dict, tiny_dataset: Path,
                                                                  tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    s = summaries["tiny-mlp"]
    first = evaluate_dataset(s, data)
    (data / "without_mask" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    fingerprint = dataset_fingerprint(data)
    assert fingerprint != first.fingerprint and cached_evaluation(s, data, fingerprint) is None
    second = evaluate_dataset(s, data)
    assert second.unreadable == 1 and second.metrics["n"] == first.metrics["n"]
    evaluation_cache_path(s.cache_key, fingerprint).write_text("{not json")
    assert cached_evaluation(s, data, fingerprint) is None
    assert evaluate_dataset(s, data).metrics == second.metrics


def test_unseen_table_puts_test_and_unseen_side_by_side(summaries: dict, tiny_dataset: Path) -> None:
    s = summaries["tiny-cnn"]
    evaluation = evaluate_dataset(s, tiny_dataset)
    frame = unseen_table(list(summaries.values()), {s.name: evaluation})
    assert frame[COL_MODEL].tolist() == ["tiny-cnn"]  # only evaluated models
    row = frame.iloc[0]
    assert row["test accuracy"] == s.test["accuracy"] and row["unseen accuracy"] == evaluation.metrics["accuracy"]
    assert row["Δ accuracy"] == pytest.approx(evaluation.metrics["accuracy"] - s.test["accuracy"])
    assert row["unseen images"] == 24


def test_exports(summaries: dict, tiny_dataset: Path) -> None:
    models = list(summaries.values())
    table = comparison_table(models)
    parsed = pd.read_csv(io.StringIO(table_csv(table)))
    assert list(parsed.columns) == TABLE_COLUMNS and len(parsed) == 2
    assert parsed[COL_ACCURACY].tolist() == pytest.approx(table[COL_ACCURACY].tolist())

    evaluation = evaluate_dataset(summaries["tiny-mlp"], tiny_dataset)
    document = json.loads(metrics_json(models, [evaluation]))
    assert document["positive_class"] == "with_mask"
    exported = {m["name"]: m for m in document["models"]}
    assert exported["tiny-cnn"]["test"] == summaries["tiny-cnn"].test and exported["tiny-cnn"]["unseen"] == []
    assert exported["tiny-mlp"]["unseen"][0]["metrics"] == evaluation.metrics
    assert exported["tiny-mlp"]["checkpoint_bytes"] == summaries["tiny-mlp"].weights_bytes


# --- the error gallery ----------------------------------------------------------------------------

def test_held_out_files_are_the_split_files_with_their_stored_scores(summaries: dict, tiny_models_dir: Path,
                                                                    tiny_dataset: Path) -> None:
    s = summaries["tiny-cnn"]
    split = json.loads((tiny_models_dir / "tiny-cnn" / "split.json").read_text())
    files = held_out_files(s)
    assert files.source == TEST_SPLIT and files.root == tiny_dataset.resolve()
    assert files.relpaths == split["test"] and files.labels == s.labels and files.scores == s.scores
    assert all((files.root / relpath).is_file() for relpath in files.relpaths)


def test_held_out_files_refuse_a_split_that_does_not_match_the_scores(summaries: dict, tiny_models_dir: Path,
                                                                     tmp_path: Path) -> None:
    model = tmp_path / "tiny-cnn"
    shutil.copytree(tiny_models_dir / "tiny-cnn", model)
    s = dataclasses.replace(summaries["tiny-cnn"], path=model)
    split = json.loads((model / "split.json").read_text())
    (model / "split.json").write_text(json.dumps({**split, "test": split["test"][1:]}))  # one file short
    assert held_out_files(s) is None
    first = split["test"][0]
    flipped = {**split["labels"], first: 1 - split["labels"][first]}
    (model / "split.json").write_text(json.dumps({**split, "labels": flipped}))  # another label
    assert held_out_files(s) is None
    (model / "split.json").write_text("{not json")
    assert held_out_files(s) is None
    (model / "split.json").unlink()
    assert held_out_files(s) is None


def test_recorded_training_folders_are_found_from_the_repository(datasets_root: Path) -> None:
    shipped = summarize(json.loads((REPO / "models" / "mlp" / "metadata.json").read_text()) | {"path": "x"})
    assert shipped.training_data == "../shared/datasets/face-mask-4k"  # as recorded, relative to the repository
    assert locate_folder(shipped.training_data) == (datasets_root / "face-mask-4k").resolve()
    assert locate_folder("/nowhere/at/all") is None and locate_folder(None) is None


@pytest.fixture(scope="module")
def shipped_mlp_test_split(tmp_path_factory, datasets_root: Path) -> tuple:
    """(summary of the shipped mlp, a folder of links to exactly its held-out test files)."""
    metadata = json.loads((REPO / "models" / "mlp" / "metadata.json").read_text())
    summary = summarize({**metadata, "path": str(REPO / "models" / "mlp")})
    test_files = json.loads((REPO / "models" / "mlp" / "split.json").read_text())["test"]
    return summary, link_files(tmp_path_factory.mktemp("mlp-test-split"), datasets_root / "face-mask-4k", test_files)


@pytest.mark.parametrize("threshold", [0.5, 0.8])
def test_gallery_lists_exactly_the_files_evaluate_gets_wrong(shipped_mlp_test_split: tuple, threshold: float,
                                                             tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MASKDET_CACHE_DIR", str(tmp_path / "cache"))
    summary, folder = shipped_mlp_test_split
    errors = misclassified(held_out_files(summary), threshold)
    evaluated = evaluate_folder(load_classifier(str(summary.path)), folder)  # what `maskdet evaluate` runs
    predicted = evaluated.scores >= threshold
    wrong = {relpath: bool(p) for relpath, label, p in zip(evaluated.relpaths, evaluated.labels, predicted,
                                                          strict=True) if p != label}
    assert len(evaluated.relpaths) == summary.test["n"] == 613
    assert {e.relpath: e.kind == "FP" for e in errors} == wrong
    assert len(errors) == sum(compute_metrics(evaluated.labels, evaluated.scores, threshold)[k]
                              for k in ("false_positives", "false_negatives"))
    margins = [e.margin for e in errors]
    assert margins == sorted(margins, reverse=True)  # hardest (most confident mistake) first
    for error in errors:
        assert error.path.is_file() and error.true_label != error.predicted_label
        assert error.confidence == pytest.approx(error.p_with_mask if error.kind == "FP" else 1 - error.p_with_mask)
        assert error.confidence >= min(threshold, 1 - threshold)


def test_an_unseen_evaluation_keeps_its_files_for_the_gallery(summaries: dict, tiny_dataset: Path) -> None:
    evaluation = evaluate_dataset(summaries["tiny-mlp"], tiny_dataset)
    files = evaluation.scored_files()
    assert files.root == Path(evaluation.data) and len(files.relpaths) == len(files.labels) == 24
    assert sorted(files.relpaths) == sorted(f"{p.parent.name}/{p.name}" for p in tiny_dataset.glob("*/*"))
    again = cached_evaluation(summaries["tiny-mlp"], tiny_dataset, evaluation.fingerprint)
    assert again.relpaths == evaluation.relpaths  # kept in the on-disk cache
    errors = misclassified(files, 0.5)
    assert {e.relpath for e in errors} == {p for p, y, s in zip(files.relpaths, files.labels, files.scores,
                                                                strict=True) if (s >= 0.5) != y}


def test_a_cached_evaluation_of_a_moved_folder_points_at_the_folder_in_use(summaries: dict, tiny_dataset: Path,
                                                                          tmp_path: Path) -> None:
    first_copy, second_copy = tmp_path / "extracted-once", tmp_path / "extracted-again"
    shutil.copytree(tiny_dataset, first_copy)
    evaluation = evaluate_dataset(summaries["tiny-mlp"], first_copy)
    shutil.rmtree(first_copy)
    shutil.copytree(tiny_dataset, second_copy)  # the same content elsewhere: the same cache entry
    again = evaluate_dataset(summaries["tiny-mlp"], second_copy, progress=lambda *args: pytest.fail("re-evaluated"))
    assert again.scores == evaluation.scores and Path(again.data) == second_copy
    errors = misclassified(again.scored_files(), 0.5)
    assert errors and all(e.path.is_file() and e.path.is_relative_to(second_copy) for e in errors)


def test_an_old_evaluation_cache_without_files_is_not_used(summaries: dict, tiny_dataset: Path) -> None:
    s = summaries["tiny-mlp"]
    evaluation = evaluate_dataset(s, tiny_dataset)
    path = evaluation_cache_path(s.cache_key, evaluation.fingerprint)
    old = evaluation.to_json() | {"version": 1}
    del old["relpaths"]
    path.write_text(json.dumps(old))
    assert cached_evaluation(s, tiny_dataset, evaluation.fingerprint) is None


def scored(root: str, labelled: dict[str, tuple[int, float]]) -> ScoredFiles:
    return ScoredFiles(source="demo", root=Path(root), relpaths=list(labelled),
                       labels=[y for y, _ in labelled.values()], scores=[p for _, p in labelled.values()])


def test_shared_and_own_errors_by_hand() -> None:
    # a.jpg: masked, both say no mask (shared FN). b.jpg: unmasked, only "first" says masked (its own FP).
    # c.jpg: masked, only "second" misses it (its own FN). d.jpg: only "first" scored it, and is wrong.
    first = scored("/data", {"a.jpg": (1, 0.2), "b.jpg": (0, 0.9), "c.jpg": (1, 0.8), "d.jpg": (0, 0.7)})
    second = scored("/data", {"a.jpg": (1, 0.1), "b.jpg": (0, 0.3), "c.jpg": (1, 0.45)})
    files = {"first": first, "second": second}
    errors = {name: misclassified(f, 0.5) for name, f in files.items()}
    assert [e.relpath for e in errors["first"]] == ["b.jpg", "a.jpg", "d.jpg"]  # margins 0.4, 0.3, 0.2
    overlap = error_overlap(errors, files)
    assert overlap[["file", "first", "second", "wrong in"]].values.tolist() == [
        ["a.jpg", "FN", "FN", 2], ["b.jpg", "FP", "right", 1], ["c.jpg", "right", "FN", 1], ["d.jpg", "FP", "—", 1]]
    assert error_sharing(overlap, "first").to_dict() == {"/data/a.jpg": "shared", "/data/b.jpg": "own",
                                                         "/data/d.jpg": "not compared"}
    assert error_sharing(overlap, "second").to_dict() == {"/data/a.jpg": "shared", "/data/c.jpg": "own"}
    summary = overlap_summary(overlap, ["first", "second"]).set_index(COL_MODEL)
    assert summary.loc["first"].to_dict() == {"errors": 3, "FP": 2, "FN": 1, "shared": 1, "own": 1}
    assert summary.loc["second"].to_dict() == {"errors": 2, "FP": 0, "FN": 2, "shared": 1, "own": 1}
    # The same relative path in another folder is another file.
    elsewhere = {"first": first, "other": scored("/other", {"a.jpg": (1, 0.2)})}
    apart = error_overlap({n: misclassified(f, 0.5) for n, f in elsewhere.items()}, elsewhere)
    assert (apart["wrong in"] == 1).all() and len(apart) == 4


def test_one_model_alone_has_no_shared_errors() -> None:
    files = {"only": scored("/data", {"a.jpg": (1, 0.2), "b.jpg": (0, 0.1)})}
    overlap = error_overlap({"only": misclassified(files["only"], 0.5)}, files)
    assert error_sharing(overlap, "only").tolist() == ["not compared"]
    assert overlap_summary(overlap, ["only"]).iloc[0].to_dict() == {COL_MODEL: "only", "errors": 1, "FP": 0,
                                                                     "FN": 1, "shared": 0, "own": 0}


def test_a_fresh_machine_shows_the_defaults_test_errors_cut_again_from_kaggle_scenes(datasets_root: Path,
                                                                                      monkeypatch: pytest.MonkeyPatch,
                                                                                      tmp_path: Path) -> None:
    """With an empty cache folder (no crop set) the shipped default's test-split errors are still pictures: each
    crop cut again from its kaggle-scenes photo (crops.json), the very crop the model scored at training time."""
    from maskdet.data.images import ImageDecodeError
    from maskdet.evaluation.errors import error_image, missing_note
    from maskdet.settings import cache_dir

    monkeypatch.setenv("MASKDET_DATA_ROOT", str(datasets_root))
    assert not (cache_dir() / "crops").exists()
    folder = REPO / "models" / "mobilenet_v2"
    summary = summarize({**json.loads((folder / "metadata.json").read_text()), "path": str(folder)})
    errors = misclassified(held_out_files(summary), summary.operating_threshold)
    cut = [e for e in errors if "/kaggle-scenes/" in e.relpath]
    assert len(cut) >= 10 and all(e.path is None or not e.path.is_file() for e in errors)
    assert all(e.recut is not None and e.recut.photo.parent == datasets_root / "kaggle-scenes" / "images" for e in cut)
    images = [error_image(e) for e in cut[:8]]
    scores = load_classifier(str(folder), precision="fp32").predict_proba(images)[:, 1]
    # The crops it scored when it trained (the stored scores came from its training-time evaluation: within 0.05),
    # so the same mistakes.
    assert scores == pytest.approx([e.p_with_mask for e in cut[:8]], abs=0.05)
    assert all((score >= summary.operating_threshold) == (e.kind == "FP") for score, e in zip(scores, cut, strict=False))

    monkeypatch.setenv("MASKDET_DATA_ROOT", str(tmp_path))  # neither the crop nor its photo is here
    gone = next(e for e in misclassified(held_out_files(summary), summary.operating_threshold) if e.recut is not None)
    with pytest.raises(ImageDecodeError, match="neither the crop nor its photo .*kaggle-scenes/images/"):
        error_image(gone)
    assert missing_note(gone) == f"neither the crop nor its photo {gone.recut.photo} is here"


def test_the_common_held_out_set_is_named_after_the_data_set_whoever_links_it(summaries: dict, datasets_root: Path,
                                                                           tmp_path: Path, monkeypatch) -> None:
    """Issue 24: a three-class model trained on a crop set that links face-mask-4k in is listed first (newest);
    with its crop set in this cache its files' paths are the crop set's links, yet the set all models held out
    is face-mask-4k's, and a three-class model's "incorrect" verdicts on it are errors, not right."""
    from maskdet.evaluation.heldout import common_held_out

    monkeypatch.setenv("MASKDET_DATA_ROOT", str(datasets_root))
    files = sorted(p.relative_to(datasets_root / "face-mask-4k").as_posix()
                   for p in (datasets_root / "face-mask-4k" / "with_mask").glob("*.jpg"))[:3]
    linked = tmp_path / "crops" / "three-class-set"  # the crop set's layout: <class>/<source>/<path in source>
    crop_relpaths = [f"with_mask/face-mask-4k/{p}" for p in files]
    for relpath, inner in zip(crop_relpaths, files, strict=True):
        (linked / relpath).parent.mkdir(parents=True, exist_ok=True)
        (linked / relpath).symlink_to(datasets_root / "face-mask-4k" / inner)
    three, two = (dataclasses.replace(s, name=n) for s, n in zip(list(summaries.values())[:2], ("three", "two")))
    scored = {
        "three": ScoredFiles("test split", linked, crop_relpaths, [1, 1, 1],
                             [[0.0, 1.0, 0.0], [0.0, 0.2, 0.8], [0.0, 0.9, 0.1]]),
        "two": ScoredFiles("test split", datasets_root / "face-mask-4k", files, [1, 1, 1], [0.9, 0.8, 0.7]),
    }
    held = common_held_out([three, two], scored)
    assert held is not None and held.size == 3
    assert held.label == "face-mask-4k test files held out by all 2"
    assert held.summaries["three"].test["accuracy"] == pytest.approx(2 / 3)  # called incorrect: an error
    assert held.summaries["two"].test["accuracy"] == 1.0
