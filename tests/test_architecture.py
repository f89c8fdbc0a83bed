"""The folders are the architecture: import-linter's contracts (pyproject.toml) hold for the library."""

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_the_layer_contracts_hold():
    """A forbidden import (a lower layer importing a higher one, a cycle across layers, Streamlit in the
    library) breaks a contract and fails here with import-linter's report."""
    command = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or "lint-imports"
    result = subprocess.run([command, "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_a_forbidden_import_is_caught(tmp_path):
    """The contracts can fail: a copy of the library where the data layer imports the jobs layer is refused."""
    shutil.copytree(REPO / "maskdet", tmp_path / "maskdet", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    with open(tmp_path / "maskdet" / "data" / "files.py", "a") as handle:
        handle.write("\nimport maskdet.jobs  # noqa\n")
    command = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or "lint-imports"
    result = subprocess.run([command, "--no-cache"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                            env={"PYTHONPATH": str(tmp_path), "PATH": str(Path(sys.executable).parent)})
    assert result.returncode != 0
    assert "Packages by layer BROKEN" in result.stdout
