"""The command line as scripts use it: ``evaluate --json`` and ``models --json`` contracts, clear failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from maskdet.evaluation.folder import evaluate_folder
from maskdet.evaluation.metrics import compute_metrics
from maskdet.inference.predictor import load_classifier

REPO = Path(__file__).resolve().parent.parent
TIMEOUT = 300
CLASS_KEYS = {"precision", "recall", "f1", "support", "roc_auc", "average_precision"}  # the last two one-vs-rest
EVALUATE_KEYS = {"model", "split", "overlap", "n", "classes", "accuracy", "roc_auc", "average_precision", "per_class",
                 "macro", "confusion", "false_positives", "false_negatives", "outside_classes", "operating_threshold",
                 "at_operating_threshold"}


def run_cli(*args: str, models: Path, cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "MASKDET_MODELS_DIR": str(models), "MASKDET_CACHE_DIR": str(cache)}
    env.pop("MASKDET_DEFAULT_MODEL", None)
    return subprocess.run([sys.executable, "-m", "maskdet", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=TIMEOUT, check=False)


def test_evaluate_json_contract(tiny_models_dir: Path, tiny_dataset: Path, tmp_path: Path) -> None:
    model = tiny_models_dir / "tiny-cnn"
    done = run_cli("evaluate", "--data", str(tiny_dataset), "--model", str(model), "--json",
                   models=tmp_path / "empty-models", cache=tmp_path / "cache")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1, done.stdout  # exactly one JSON object, nothing else on stdout
    result = json.loads(lines[0])
    assert isinstance(result, dict) and set(result) == EVALUATE_KEYS

    assert result["model"] == "tiny-cnn"
    n = result["n"]
    assert isinstance(n, int) and n == 24
    for key in ("accuracy", "roc_auc", "average_precision"):
        assert isinstance(result[key], float) and 0.0 <= result[key] <= 1.0, key
    assert set(result["per_class"]) == {"with_mask", "without_mask"}
    for name, values in result["per_class"].items():
        assert set(values) == CLASS_KEYS, name
        assert isinstance(values["support"], int) and values["support"] == 12
        assert all(0.0 <= values[k] <= 1.0 for k in ("precision", "recall", "f1", "roc_auc"))
    (tn, fp), (fn, tp) = result["confusion"]
    assert all(isinstance(v, int) and v >= 0 for v in (tn, fp, fn, tp))
    assert tn + fp + fn + tp == n
    assert (tn + fp, fn + tp) == (12, 12)  # rows are actual classes: without_mask, then with_mask (positive)
    assert (result["false_positives"], result["false_negatives"]) == (fp, fn)
    assert result["accuracy"] == pytest.approx((tn + tp) / n)

    assert result["operating_threshold"] == 0.5  # none saved: at the default, the same numbers twice
    assert result["at_operating_threshold"]["confusion"] == result["confusion"]

    # The CLI and the library agree: one metrics implementation.
    local = evaluate_folder(load_classifier(str(model)), tiny_dataset)
    assert result["confusion"] == local.metrics["confusion"]
    assert result["roc_auc"] == pytest.approx(compute_metrics(local.labels, local.scores)["roc_auc"], abs=1e-6)


def test_evaluate_by_name_and_default_model(tiny_models_dir: Path, tiny_dataset: Path, tmp_path: Path) -> None:
    by_name = run_cli("evaluate", "--data", str(tiny_dataset), "--model", "tiny-mlp", "--json",
                      models=tiny_models_dir, cache=tmp_path)
    assert by_name.returncode == 0, by_name.stderr
    assert json.loads(by_name.stdout)["model"] == "tiny-mlp"
    default = run_cli("evaluate", "--data", str(tiny_dataset), "--json", models=tiny_models_dir, cache=tmp_path)
    assert default.returncode == 0, default.stderr
    assert json.loads(default.stdout)["model"] == "tiny-cnn"  # the newest model when none is set as default


def test_evaluate_without_any_model_fails_clearly(tiny_dataset: Path, tmp_path: Path) -> None:
    done = run_cli("evaluate", "--data", str(tiny_dataset), "--json", models=tmp_path / "no-models", cache=tmp_path)
    assert done.returncode != 0
    assert done.stdout == ""
    assert "no trained model found" in done.stderr and "train" in done.stderr
    assert "Traceback" not in done.stderr


def test_evaluate_bad_inputs_fail_clearly(tiny_models_dir: Path, tmp_path: Path) -> None:
    missing_data = run_cli("evaluate", "--data", str(tmp_path / "nope"), "--model", "tiny-mlp", "--json",
                           models=tiny_models_dir, cache=tmp_path)
    assert missing_data.returncode != 0 and "does not exist" in missing_data.stderr
    unknown_model = run_cli("evaluate", "--data", str(tmp_path), "--model", "no-such-model",
                            models=tiny_models_dir, cache=tmp_path)
    assert unknown_model.returncode != 0 and "no-such-model" in unknown_model.stderr
    assert "Traceback" not in missing_data.stderr + unknown_model.stderr


def test_models_json(tiny_models_dir: Path, tmp_path: Path) -> None:
    done = run_cli("models", "--json", models=tiny_models_dir, cache=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [r["name"] for r in rows] == ["tiny-cnn", "tiny-mlp"]  # newest first
    assert [r["default"] for r in rows] == [True, False]
    for row in rows:
        assert {"arch", "input_size", "test_accuracy", "test_roc_auc", "params", "path"} <= set(row)
        assert 0.0 <= row["test_accuracy"] <= 1.0 and row["params"] > 0
        assert Path(row["path"]).parent == tiny_models_dir
    empty = run_cli("models", "--json", models=tmp_path / "no-models", cache=tmp_path)
    assert empty.returncode == 0 and json.loads(empty.stdout) == []


BENCH_KEYS = {"classify_ms", "reference_ms", "detect_ms", "pipeline_fps", "ig_seconds", "extract_img_per_s"}


def test_bench_json_measures_every_promised_figure(tiny_mobilenet: Path, tmp_path: Path) -> None:
    done = run_cli("bench", "--json", "--quick", "--model", str(tiny_mobilenet),
                   models=tmp_path / "empty-models", cache=tmp_path / "cache")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert BENCH_KEYS <= set(result)
    assert all(result[key] > 0 for key in BENCH_KEYS)
    assert result["model"] == "tiny-mobilenet" and result["input_size"] == 112
    assert result["classify_vs_reference"] == pytest.approx(result["classify_ms"] / result["reference_ms"], abs=0.01)
    from maskdet.inference.live import LIVE_DETECTOR_OPTIONS

    assert result["detector"] == LIVE_DETECTOR_OPTIONS  # the pipeline is timed as the webcam runs it
