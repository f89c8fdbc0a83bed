"""``maskdet.settings.Settings``: one typed object for every ``MASKDET_*`` variable; ``python -m maskdet config``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from maskdet.settings import Settings, SettingsError, current_settings, describe_settings, env_variable
from maskdet.runtime import compile_enabled

REPO = Path(__file__).resolve().parent.parent


def test_config_prints_every_setting_and_where_it_came_from(tmp_path: Path) -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith("MASKDET_")}
    env.update(MASKDET_THREADS="3", MASKDET_CACHE_DIR=str(tmp_path / "cache"), MASKDET_RAY_ADDRESS="")
    done = subprocess.run([sys.executable, "-m", "maskdet", "config", "--json"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    rows = {row["name"]: row for row in json.loads(done.stdout)}
    assert set(rows) == set(Settings.model_fields)  # every setting, documented
    assert all(row["description"] and row["variable"] == env_variable(name) for name, row in rows.items())
    assert (rows["threads"]["value"], rows["threads"]["source"]) == ("3", "environment")
    assert (rows["cache_dir"]["value"], rows["cache_dir"]["source"]) == (str(tmp_path / "cache"), "environment")
    assert (rows["ray_address"]["value"], rows["ray_address"]["source"]) == (None, "default")  # empty is unset
    assert (rows["job_niceness"]["value"], rows["job_niceness"]["source"]) == ("10", "default")
    text = subprocess.run([sys.executable, "-m", "maskdet", "config"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120, check=True).stdout
    assert "MASKDET_THREADS" in text and "[environment]" in text and "[default]" in text


def test_a_malformed_setting_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MASKDET_THREADS", "many")
    with pytest.raises(SettingsError, match=r"^bad setting: MASKDET_THREADS='many'") as caught:
        current_settings()
    assert "\n" not in str(caught.value)


def test_modules_read_the_typed_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for value, expected in (("0", False), ("off", False), ("1", True), ("", True)):
        monkeypatch.setenv("MASKDET_COMPILE", value)
        assert compile_enabled() is expected
    monkeypatch.setenv("MASKDET_JOB_NICENESS", "5")
    assert {row["name"]: row["value"] for row in describe_settings()}["job_niceness"] == 5
