"""Model folders from elsewhere: each kind of hostile folder is refused with its one-line message, from
the library, the CLI (exit status 2 on evaluate / predict / bench) and a page, without running or writing
anything; broken folders beside good ones never break ``models --json`` or the model choosers."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from dashboard import page_test
from hostile_inputs import (
    HOSTILE_UNLISTED,
    REFUSED_AT_LISTING,
    REFUSED_AT_LOADING,
    add_hostile_models,
    add_refused_models,
    tree_state,
)

from maskdet import cli
from maskdet.zoo.folders import CheckpointError, load_model, scan_models
from maskdet.settings import REPO_ROOT

REFUSED = {**REFUSED_AT_LISTING, **REFUSED_AT_LOADING}
DEADLINE_S = 30  # a pipe or device read by mistake blocks forever: the alarm turns that into a failure


@contextlib.contextmanager
def deadline(seconds: int):
    def expire(signum, frame):  # noqa: ANN001 - signal handler signature
        raise TimeoutError(f"still running after {seconds} s: something blocked on a pipe or a device")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def hostile_models(tmp_path_factory, tiny_models_dir: Path) -> tuple[Path, Path]:
    """(models folder: tiny-mlp, tiny-cnn and every hostile kind; the marker any executed code would create)."""
    root = tmp_path_factory.mktemp("hostile")
    models = root / "models"
    shutil.copytree(tiny_models_dir, models)
    marker = root / "pwned"
    add_hostile_models(models, models / "tiny-mlp", marker)
    add_refused_models(models, models / "tiny-mlp", root / "outside")
    return models, marker


def test_shipped_models_pass_the_schema() -> None:
    models, broken = scan_models(REPO_ROOT / "models")
    assert {m["name"] for m in models} == {"mlp", "simple_cnn", "mobilenet_v2", "mobilenet_v2_3class_pairs_robust",
                                           "mobilenet_v2_cascade"}
    assert broken == []


def test_each_hostile_folder_is_refused_with_its_reason_and_good_ones_still_list(hostile_models) -> None:
    models, marker = hostile_models
    with deadline(DEADLINE_S):
        listed, broken = scan_models(models)
    reasons = {b.name: b.reason for b in broken}
    assert set(reasons) == set(REFUSED_AT_LISTING) | set(HOSTILE_UNLISTED)
    for name, expected in REFUSED_AT_LISTING.items():
        assert expected in reasons[name], (name, reasons[name])
        assert str(models / name) in reasons[name]  # the message names the file
        assert "\n" not in reasons[name]
    assert {"tiny-mlp", "tiny-cnn", *REFUSED_AT_LOADING} <= {m["name"] for m in listed}
    for name, expected in REFUSED.items():
        with deadline(DEADLINE_S), pytest.raises(CheckpointError) as refused:
            load_model(models / name)
        assert expected in str(refused.value), (name, refused.value)
    assert not marker.exists()


@pytest.mark.parametrize("command", ["evaluate", "predict", "bench"])
def test_cli_refuses_every_hostile_model_with_exit_status_2(command: str, hostile_models, tiny_dataset: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    models, marker = hostile_models
    before = tree_state(models.parent)
    image = next((tiny_dataset / "with_mask").iterdir())
    for name, expected in REFUSED.items():
        args = {"evaluate": ["evaluate", "--data", str(tiny_dataset)], "predict": ["predict", str(image)],
                "bench": ["bench", "--quick"]}[command]
        with deadline(DEADLINE_S):
            status = cli.main([*args, "--model", str(models / name)])
        out, err = capsys.readouterr()
        assert status == 2, (name, err)
        assert out == ""
        assert err.startswith("error: ") and err.count("\n") == 1, err  # one line
        assert expected in err and str(models / name) in err, (name, err)
    assert tree_state(models.parent) == before  # nothing written
    assert not marker.exists()  # nothing executed


def test_cli_exit_status_and_message_from_a_real_process(hostile_models, tiny_dataset: Path) -> None:
    models, marker = hostile_models
    for name in ("billion-pixels", "evil-weights", "fifo-metadata"):
        done = subprocess.run([sys.executable, "-m", "maskdet", "evaluate", "--data", str(tiny_dataset),
                               "--model", str(models / name)], capture_output=True, text=True, cwd=REPO_ROOT,
                              env={**os.environ, "MASKDET_MODELS_DIR": str(models)}, timeout=120)
        assert done.returncode == 2, done.stderr
        assert REFUSED[name] in done.stderr and "Traceback" not in done.stderr
    assert not marker.exists()


def test_models_json_lists_broken_folders_with_their_reason(hostile_models, monkeypatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    models, marker = hostile_models
    monkeypatch.setenv("MASKDET_MODELS_DIR", str(models))
    with deadline(DEADLINE_S):
        assert cli.main(["models", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["tiny-mlp"]["broken"] is None and rows["tiny-mlp"]["arch"] == "mlp"
    for name, expected in REFUSED_AT_LISTING.items():
        assert expected in rows[name]["broken"], name
    assert cli.main(["models"]) == 0  # the table too
    table = capsys.readouterr().out
    assert "tiny-cnn" in table and "deep-nesting" in table and "BROKEN:" in table
    assert not marker.exists()


def test_photo_page_names_broken_folders_and_refuses_the_listed_ones(hostile_models, monkeypatch) -> None:
    models, marker = hostile_models
    monkeypatch.setenv("MASKDET_MODELS_DIR", str(models))
    monkeypatch.setenv("MASKDET_DEFAULT_MODEL", "tiny-mlp")
    at = page_test("pages/photo.py", 120)
    with deadline(120):
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    chooser = at.selectbox(key="photo_model")
    assert not set(REFUSED_AT_LISTING) & set(chooser.options)  # never offered...
    captions = [c.value for c in at.caption]
    for name in REFUSED_AT_LISTING:  # ...but named, one line each, with the reason
        line = next((c for c in captions if f"`{name}` is not a usable model" in c), None)
        assert line is not None, name
    for name, expected in REFUSED_AT_LOADING.items():
        with deadline(120):
            at.selectbox(key="photo_model").set_value(name).run()
        assert not at.exception, [e.value for e in at.exception]
        errors = [e.value for e in at.error]
        assert len(errors) == 1 and expected in errors[0], (name, errors)
        assert not at.file_uploader  # the page stops: nothing runs on a refused model
    assert not marker.exists()
