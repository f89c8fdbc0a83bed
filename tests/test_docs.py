"""The documentation: the mkdocs site builds with --strict (a broken link or an unlisted page fails), the
README stays short, shows every page, and its commands are the ones the tests and CI run."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from maskdet import cli
from maskdet.data.local import SAMPLE_ROOT
from ui.navigation import PAGES

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()
MAX_README_LINES = 130


def _build(root: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(root / "mkdocs.yml"),
                           "-d", str(site)], capture_output=True, text=True, timeout=300,
                          env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"})


def _bash_blocks(text: str) -> list[list[str]]:
    """The commands of each ```bash block (comments and blank lines dropped)."""
    return [[line.split("  #")[0].strip() for line in block.splitlines() if line.strip() and not line.startswith("#")]
            for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]


def test_the_docs_site_builds_strictly(tmp_path: Path) -> None:
    done = _build(REPO, tmp_path / "site")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "site" / "data" / "index.html").is_file()


def test_a_broken_link_fails_the_build(tmp_path: Path) -> None:
    copy = tmp_path / "repo"
    (copy / "docs").mkdir(parents=True)
    shutil.copy(REPO / "mkdocs.yml", copy)
    shutil.copytree(REPO / "docs", copy / "docs", dirs_exist_ok=True)
    with open(copy / "docs" / "data.md", "a") as page:
        page.write("\nSee [the missing page](nowhere.md).\n")
    done = _build(copy, tmp_path / "site")
    assert done.returncode != 0 and "nowhere.md" in done.stderr


def test_readme_is_short_and_shows_every_page() -> None:
    assert len(README.splitlines()) <= MAX_README_LINES
    for page in PAGES:
        image = REPO / "docs" / "images" / f"{Path(page.file).stem if page != PAGES[0] else 'home'}.png"
        assert image.is_file() and image.stat().st_size < 300_000, image
        assert f"](docs/images/{image.name})" in README
    for link in re.findall(r"\]\(((?:docs|maskdet)/[^)#]+)", README):
        assert (REPO / link).is_file(), link


def test_readme_setup_and_test_commands_are_the_ones_run() -> None:
    from browser.harness import STREAMLIT_RUN

    blocks = _bash_blocks(README)
    assert blocks[0] == ["pip install -r requirements.txt", " ".join(STREAMLIT_RUN)]
    assert blocks[1] == ["python -m pytest"]
    assert "\npython -m pytest\n" in (REPO / ".ci" / "run").read_text()  # what CI runs
    assert "pip install --quiet -r requirements.txt" in (REPO / ".ci" / "run").read_text()


@pytest.mark.slow
def test_the_tour_commands_run_on_a_fresh_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """Every `python -m maskdet` line of the tour but the download, in order, on the built-in sample."""
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("MASKDET_DATA_ROOT", str(tmp_path / "empty"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    tour = next(block for block in _bash_blocks(README) if any("datasets list" in line for line in block))
    for line in tour:
        argv = shlex.split(line)
        assert argv[:3] == ["python", "-m", "maskdet"], line
        if argv[3:5] == ["datasets", "get"]:
            continue  # tests/test_public_datasets.py fetches from a loopback server instead
        assert cli.main(argv[3:]) == 0, line
    out = capsys.readouterr().out
    assert str(SAMPLE_ROOT / "sample-faces") in out and "my-first-model" in out
