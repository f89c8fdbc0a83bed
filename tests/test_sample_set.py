"""The sample set built into maskdet: small, licensed, readable by the two-class code, and what a fresh
machine's pages show (no ../shared needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dashboard import page_test
from PIL import Image

from maskdet.data.annotations import load_scene_set
from maskdet.data.datasets import scan_dataset
from maskdet.data.local import SAMPLE_ROOT, example_photos, find_sets
from maskdet.data.annotations import list_scene_sets

FACES, PHOTOS = SAMPLE_ROOT / "sample-faces", SAMPLE_ROOT / "sample-photos"
MAX_BYTES = 3 * 1024**2


@pytest.fixture()
def fresh_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name, folder in (("MASKDET_DATA_ROOT", "data"), ("MASKDET_CACHE_DIR", "cache"), ("XDG_DATA_HOME", "xdg")):
        (tmp_path / folder).mkdir()
        monkeypatch.setenv(name, str(tmp_path / folder))
    return tmp_path


def test_sample_is_small_licensed_and_says_how_it_was_built() -> None:
    files = [p for p in SAMPLE_ROOT.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < MAX_BYTES
    readme = (SAMPLE_ROOT / "README.md").read_text()
    assert "CC0" in readme and "python scripts/build_sample.py" in readme
    for folder in (FACES, PHOTOS):
        provenance = json.loads((folder / "maskdet-dataset.json").read_text())
        assert provenance["licence"] == "CC0-1.0" and provenance["command"] in readme
    crops = list(FACES.rglob("*.jpg"))
    assert all(max(Image.open(p).size) <= 128 for p in crops)


def test_two_class_code_reads_the_faces_and_the_photos() -> None:
    scan = scan_dataset(FACES)
    counts = scan.counts()
    assert counts["with_mask"] == 150 and counts["without_mask"] >= 50  # and incorrect_mask: left out or a class
    assert (FACES / "incorrect_mask").is_dir() and len(list((FACES / "incorrect_mask").iterdir())) >= 10
    scenes = load_scene_set(PHOTOS)
    assert len(scenes.images) == len(example_photos()) == 6 and not scenes.problems


def test_an_empty_data_root_lists_the_sample_and_a_real_one_does_not(fresh_machine: Path, tiny_dataset: Path) -> None:
    assert find_sets() == [FACES] and find_sets(list_scene_sets) == [PHOTOS]
    (fresh_machine / "data" / "tiny").symlink_to(tiny_dataset, target_is_directory=True)
    assert find_sets() == [fresh_machine / "data" / "tiny"]


def test_home_on_a_fresh_machine_lists_the_sample(fresh_machine: Path) -> None:
    at = page_test("streamlit_app.py", 120).run()
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["data set"]) == ["sample-faces"] and table["with_mask"][0] == 150
    assert any("sample built into maskdet" in info.value for info in at.info)


@pytest.mark.slow
def test_photo_page_tries_an_example_photo(fresh_machine: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from maskdet.settings import REPO_ROOT

    monkeypatch.setenv("MASKDET_MODELS_DIR", str(REPO_ROOT / "models"))  # the shipped models, read only
    at = page_test("pages/photo.py", 240).run()
    example = example_photos()[0].name
    at.selectbox(key="photo_example").set_value(example).run()
    assert not at.exception, at.exception
    assert any(Path(example).stem in header.value for header in at.subheader)
    assert any("with mask" in text.value and "JPEG" in text.value for text in at.markdown)
