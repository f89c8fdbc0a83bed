"""The Compare page's "Photos with boxes" section under AppTest: a real tiny model, the real detector, real faces."""

from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
from markdown_text import texts
from PIL import Image
from scene_helpers import build_scene_folder, voc
from streamlit.testing.v1 import AppTest

from ui.scenes_section import KEY, SCENES_QUEUE

TIMEOUT = 180
SCRIPT = "from ui.scenes_section import show_scenes_section\nshow_scenes_section()\n"
FACES = [(60, 120, 180), (380, 140, 170)]
EMPTY_CORNER = (560, 10, 630, 80)  # annotated as a face, but nothing is there: a missed face


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_mobilenet: Path, held_out_faces, frame_composer) -> Path:
    """A data-set root holding one boxed-photo set, the tiny model as the only model, fresh caches."""
    monkeypatch.setenv("MASKDET_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MASKDET_MODELS_DIR", str(tiny_mobilenet.parent))
    monkeypatch.setenv("MASKDET_DATA_ROOT", str(tmp_path / "root"))
    st.cache_data.clear()
    st.cache_resource.clear()  # a fresh job service (the sessions' queues run on it)
    frame = Image.fromarray(frame_composer([held_out_faces["with_mask"][0], held_out_faces["without_mask"][0]], FACES))
    boxes = [(x, y, x + s, y + s) for x, y, s in FACES]
    build_scene_folder(tmp_path / "root" / "street", {
        "two.jpg": (frame, voc("two.jpg", [("with_mask", boxes[0]), ("no_mask", boxes[1]),
                                           ("without_mask", EMPTY_CORNER)])),
        "odd.jpg": (frame, voc("odd.jpg", [("face_shield", boxes[0]), ("WithoutMask", boxes[1])])),
        "broken.jpg": (frame, "<annotation><object>"),
    })
    (tmp_path / "root" / "face-crops" / "with_mask").mkdir(parents=True)  # an ImageFolder set: not offered here
    script = tmp_path / "app.py"
    script.write_text(SCRIPT)
    return script


def assert_clean(at: AppTest) -> None:
    assert not at.exception, texts(at.exception)
    assert not at.error, texts(at.error)


def evaluate(at: AppTest) -> AppTest:
    """Click Evaluate, see the jobs' progress and Cancel, wait for the jobs, and rerun as the timed fragment would."""
    at.button(key=f"{KEY}_evaluate").click().run()
    assert_clean(at)
    assert at.button(key=f"{KEY}_cancel").label == "Cancel" and at.get("progress")
    status = at.session_state["jobs_queues"][SCENES_QUEUE].wait(TIMEOUT)
    assert not status.active and not status.failures(), status.failures()
    assert [s.kind for s in status.statuses] == ["evaluate-scenes"] * len(status.jobs)
    return at.run()  # the fragment sees the jobs ended and reruns the page once


def test_folder_models_detectors_table_gallery_and_cache(app: Path) -> None:
    at = AppTest.from_file(str(app), default_timeout=TIMEOUT).run()
    assert_clean(at)
    assert at.selectbox(key=f"{KEY}_listed").options == ["street"]  # the ImageFolder set is not listed
    assert "2 photos, 4 boxed faces (VOC)" in texts(at.caption)
    assert "1 file(s) cannot be used" in at.expander[0].label
    unknown = at.selectbox(key=f"{KEY}_map_face_shield")
    assert unknown.value.startswith("ignore")
    assert at.multiselect(key=f"{KEY}_models").value == ["tiny-mobilenet"]
    at.multiselect(key=f"{KEY}_detectors").set_value(["centerface", "centerface-480"]).run()
    assert at.button(key=f"{KEY}_evaluate").label == "Evaluate 2 pipeline(s) on 2 photos"

    at = evaluate(at)
    table = at.dataframe[0].value
    assert list(table["pipeline"]) == ["tiny-mobilenet + centerface", "tiny-mobilenet + centerface-480"]
    # 4 known faces: the three real ones are found, the empty corner is missed; the ignored face scores nothing.
    assert (table["recall"] == 0.75).all() and (table["false positives"] == 0).all()
    assert (table["faces"] == 4).all()
    assert not [b for b in at.button if b.key == f"{KEY}_evaluate"]
    captions = [caption for element in at.get("image") for caption in element.captions]
    assert len(captions) == 1 and captions[0].startswith("two.jpg: missed without_mask"), captions

    # Mapping the unknown class makes another evaluation (another cache key); the old one stays cached.
    unknown = at.selectbox(key=f"{KEY}_map_face_shield").set_value("with_mask").run()
    assert at.button(key=f"{KEY}_evaluate").label == "Evaluate 2 pipeline(s) on 2 photos"
    assert "5 boxed faces" in texts(at.caption)

    # Another session on the same folder and settings reads the disk cache: no button, same table.
    again = AppTest.from_file(str(app), default_timeout=TIMEOUT).run()
    again.multiselect(key=f"{KEY}_detectors").set_value(["centerface", "centerface-480"]).run()
    assert_clean(again)
    assert not [b for b in again.button if b.key == f"{KEY}_evaluate"]
    assert again.dataframe[0].value.equals(table)


def test_a_folder_that_is_not_boxed_photos_is_explained(app: Path, tmp_path: Path) -> None:
    at = AppTest.from_file(str(app), default_timeout=TIMEOUT).run()
    at.radio(key=f"{KEY}_source").set_value("Folder path").run()
    at.text_input(key=f"{KEY}_path").input(str(tmp_path / "root" / "face-crops")).run()
    assert "not a folder of boxed photos" in texts(at.error)
    assert not at.dataframe


def test_a_list_shaped_data_yaml_is_one_clear_error_not_an_exception(app: Path, tmp_path: Path) -> None:
    root = tmp_path / "root" / "yolo"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    Image.new("RGB", (64, 64)).save(root / "images" / "a.png")
    (root / "labels" / "a.txt").write_text("0 0.5 0.5 0.1 0.2\n")
    (root / "data.yaml").write_text("- with_mask\n- without_mask\n")
    at = AppTest.from_file(str(app), default_timeout=TIMEOUT).run()
    at.radio(key=f"{KEY}_source").set_value("Folder path").run()
    at.text_input(key=f"{KEY}_path").input(str(root)).run()
    assert not at.exception, texts(at.exception)
    assert "expected a mapping" in texts(at.error)
    assert not at.dataframe
