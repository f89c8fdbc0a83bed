"""The Photo page under AppTest: real uploads, real models, broken files next to good ones.

Photos are composed from real held-out face crops pasted at known places; the models are the
session's real tiny MobileNetV2 and MLP, copied into this test's models folder.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
import streamlit as st
from dashboard import page_test
from hostile_inputs import (
    HOSTILE_LISTED,
    ODD_METADATA,
    ZOO_INVALID,
    ZOO_VALID,
    add_hostile_models,
    zoo_face,
    zoo_files,
)
from markdown_text import as_shown, texts
from PIL import Image
from streamlit.testing.v1 import AppTest

from maskdet.zoo.folders import set_default_model

PAGE = "pages/photo.py"
TIMEOUT = 300  # first model and detector load plus a few IG runs on a busy 2-core machine
FACE = 180
LEFT, RIGHT = (60, 150, FACE), (400, 150, FACE)


@pytest.fixture(autouse=True)
def fresh_caches() -> None:
    st.cache_data.clear()


@pytest.fixture
def models(isolated_models_dir: Path, tiny_mobilenet: Path, tiny_models_dir: Path) -> Path:
    """This test's models folder holding tiny-mobilenet (the default) and tiny-mlp."""
    shutil.copytree(tiny_mobilenet, isolated_models_dir / "tiny-mobilenet")
    shutil.copytree(tiny_models_dir / "tiny-mlp", isolated_models_dir / "tiny-mlp")
    set_default_model("tiny-mobilenet")
    return isolated_models_dir


@pytest.fixture(scope="module")
def scene_jpeg(held_out_faces, frame_composer) -> bytes:
    frame = frame_composer([held_out_faces["with_mask"][0], held_out_faces["without_mask"][0]], [LEFT, RIGHT])
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def start() -> AppTest:
    return page_test(PAGE, TIMEOUT).run()


def upload(at: AppTest, *files: tuple[str, bytes, str]) -> AppTest:
    return at.file_uploader(key="photo_uploads").set_value(list(files)).run()


def image_captions(at: AppTest) -> list[str]:
    return [caption for image in at.image for caption in image.captions]


def method_key(at: AppTest, face: int) -> str:
    """The key of the explanation-method selector of face ``face`` (of the only photo that has faces)."""
    return next(s.key for s in at.selectbox if s.key and s.key.endswith(f"_{face}_method"))


def assert_clean(at: AppTest) -> None:
    assert not at.exception, texts(at.exception)


def test_without_models_the_page_says_what_to_do() -> None:
    at = start()
    assert_clean(at)
    assert "No trained model yet" in texts(at.info)
    assert not at.file_uploader


def test_empty_state_preselects_the_default_model(models: Path) -> None:
    at = start()
    assert_clean(at)
    assert at.selectbox(key="photo_model").value == "tiny-mobilenet"
    assert sorted(at.selectbox(key="photo_model").options) == ["tiny-mlp", "tiny-mobilenet"]
    uploader = at.file_uploader(key="photo_uploads")
    assert uploader.accept_multiple_files
    assert {"jpg", "png", "webp"} <= {t.lstrip(".") for t in uploader.allowed_type}
    assert "Upload one or more photos" in texts(at.info)


def convergence_notes(at: AppTest) -> int:
    """Integrated Gradients explanations shown with their convergence error (a caption, or a warning when above
    the bound)."""
    return (texts(at.caption) + texts(at.warning)).count("convergence error")


def test_upload_labels_and_explains_every_face_and_reports_bad_files(models: Path, scene_jpeg: bytes) -> None:
    at = upload(start(), ("scene.jpg", scene_jpeg, "image/jpeg"), ("notes.jpg", b"not a photo", "image/jpeg"),
                ("cut.jpg", scene_jpeg[:3000], "image/jpeg"))
    assert_clean(at)
    assert [as_shown(h.value) for h in at.subheader] == ["scene.jpg", "notes.jpg", "cut.jpg"]
    errors = texts(at.error)
    assert "`notes.jpg`: not an image" in errors and "`cut.jpg`: truncated" in errors
    assert "1 🙂 without mask, 1 😷 with mask" in texts(at.markdown)  # in the model's class order
    assert [d.label for d in at.download_button] == ["Download the annotated image"]
    captions = image_captions(at)
    assert captions.count("Original (as the model sees it)") == 2 and captions.count("Overlay") == 2
    assert captions.count("Integrated Gradients heatmap") == 2
    assert convergence_notes(at) == 2

    face = method_key(at, 0)
    at.selectbox(key=face).set_value("gradcam").run()
    assert_clean(at)
    assert convergence_notes(at) == 1
    assert "Grad-CAM heatmap" in image_captions(at)

    steps_key = face.replace("_method", "_integrated_gradients_steps")
    at.selectbox(key=face).set_value("integrated_gradients").run()
    at.select_slider(key=steps_key).set_value(8).run()
    assert_clean(at)
    assert convergence_notes(at) == 2


def test_mlp_model_explains_without_gradcam_and_whole_image_mode(models: Path, held_out_faces) -> None:
    crop = held_out_faces["without_mask"][1].read_bytes()
    at = start()
    at.selectbox(key="photo_model").set_value("tiny-mlp")
    at.radio(key="photo_detector").set_value("whole-image")
    at = upload(at.run(), ("face.jpg", crop, "image/jpeg"))
    assert_clean(at)
    width, height = Image.open(io.BytesIO(crop)).size
    assert f"box [0, 0, {width}, {height}]" in texts(at.markdown)
    method = method_key(at, 0)
    at.selectbox(key=method).set_value("gradcam").run()
    assert_clean(at)
    assert "Grad-CAM needs a convolutional feature map" in texts(at.warning)


def sections(at: AppTest) -> dict[str, list]:
    """The elements shown under each file's subheader, by file name (dividers left out)."""
    found: dict[str, list] = {}
    current: list | None = None
    for node in at.main.children.values():
        if node.type == "subheader":
            current = found.setdefault(as_shown(node.value), [])
        elif current is not None and node.type != "divider":
            current.append(node)
    return found


def test_the_whole_bad_input_zoo_at_once(models: Path, datasets_root: Path) -> None:
    face = zoo_face(datasets_root)
    files = zoo_files(face)
    at = start()
    at.selectbox(key="photo_model").set_value("tiny-mlp")  # fast explanations: this test is about decoding
    at = upload(at.run(), *[(name, data, "application/octet-stream") for name, data in files.items()])
    assert_clean(at)

    shown = sections(at)
    assert list(shown) == list(files)  # every file has its own section, in upload order
    summaries = {}
    for name in ZOO_VALID:
        kinds = [node.type for node in shown[name]]
        assert kinds[:3] == ["markdown", "image", "download_button"], (name, kinds)
        assert "error" not in kinds, name
        summaries[name] = shown[name][0].value
    assert f"{face.width}x{face.height} JPEG" in summaries["rotated.jpg"]  # turned upright by its EXIF tag
    assert "JPEG (CMYK)" in summaries["cmyk.jpg"] and "PNG (I;16)" in summaries["16bit.png"]
    assert "PNG (L)" in summaries["gray.png"] and "8x8 PNG" in summaries["tiny.png"]
    assert "2 frames, first shown" in summaries["animated.gif"] and "2 frames" in summaries["animated.webp"]
    assert "4000x4000 JPEG" in summaries["large.jpg"]
    assert summaries["large.jpg"].startswith("1 ")  # the face found and classified in a 16 MP photo

    reasons = {}
    for name in ZOO_INVALID:  # an error and nothing else: no image, no download, no half result
        assert [node.type for node in shown[name]] == ["error"], name
        message = as_shown(shown[name][0].value)
        assert message.startswith(f"Cannot read `{name}`: "), message
        reasons[name] = message
    assert reasons["empty.jpg"].endswith("empty file")
    assert "not an image" in reasons["text.jpg"]
    assert "truncated" in reasons["truncated.jpg"] and "truncated" in reasons["truncated.png"]
    assert "30000x30000" in reasons["bomb.png"] and "megapixel limit" in reasons["bomb.png"]
    assert len(at.download_button) == len(ZOO_VALID)


def test_models_that_are_not_ours_are_refused_and_the_others_still_work(models: Path, tmp_path: Path,
                                                                        held_out_faces) -> None:
    marker = tmp_path / "pwned"
    add_hostile_models(models, models / "tiny-mlp", marker)
    at = start()
    assert_clean(at)
    chooser = at.selectbox(key="photo_model")
    assert chooser.value == "tiny-mobilenet"  # the default survives a folder full of hostile models
    assert set(chooser.options) == {"tiny-mobilenet", "tiny-mlp", *HOSTILE_LISTED, *ODD_METADATA}

    for name in HOSTILE_LISTED:
        at.selectbox(key="photo_model").set_value(name).run()
        assert not at.exception, texts(at.exception)
        assert f"Cannot load the models: {models / name}" in texts(at.error), texts(at.error)
        assert not at.file_uploader  # the page stops: nothing runs on a refused model

    for name in ("tiny-mlp", "renamed"):  # the real one, and a real one whose metadata names a path
        at.selectbox(key="photo_model").set_value(name)
        at.radio(key="photo_detector").set_value("whole-image")
        at = upload(at.run(), ("face.jpg", held_out_faces["without_mask"][0].read_bytes(), "image/jpeg"))
        assert_clean(at)
        assert not at.error
        assert "**Face 1**" in texts(at.markdown)
    assert not marker.exists()


def _whole_crops_with_default(model: Path, models_dir: Path, crops: list[Path]) -> AppTest:
    """The page after uploading ``crops`` (PNG face crops, each one face) with ``model`` as the default."""
    shutil.copytree(model, models_dir / model.name)
    set_default_model(model.name)
    at = start()
    at.radio(key="photo_detector").set_value("whole-image")
    at = upload(at.run(), *[(path.name, path.read_bytes(), "image/png") for path in crops])
    assert_clean(at)
    return at


def test_a_three_class_model_shows_and_explains_the_third_class(isolated_models_dir: Path, three_class_mobilenet: Path,
                                                                three_class_dataset: Path) -> None:
    crops = sorted((three_class_dataset / "mask_weared_incorrect").iterdir())[:4]
    at = _whole_crops_with_default(three_class_mobilenet, isolated_models_dir, crops)
    shown = texts(at.markdown)
    assert "😶 mask worn incorrectly" in shown  # a face called incorrect_mask (seen in training: most are)
    assert shown.count("😶 mask worn incorrectly ") >= len(crops)  # every face lists its probability of the class
    target = next(s for s in at.selectbox if s.key and s.key.endswith("_0_target"))
    assert set(target.options) == {"🙂 without mask", "😷 with mask", "😶 mask worn incorrectly"}
    target.set_value("with_mask").run()
    assert_clean(at)
    assert any(caption.endswith("heatmap") for caption in image_captions(at))


def test_a_face_the_threshold_keeps_from_masked_says_why(isolated_models_dir: Path, three_class_mobilenet: Path,
                                                          three_class_dataset: Path, tmp_path: Path) -> None:
    """Below the operating threshold a face whose likeliest class is masked gets the likelier of the other two, at
    a probability that can be small: the page says the threshold decided, not the model ("by the operating
    threshold", never "18% confident")."""
    from maskdet.inference.predictor import load_classifier
    from maskdet.zoo.decision import predicted_labels
    from maskdet.zoo.folders import set_operating_threshold

    model = Path(shutil.copytree(three_class_mobilenet, tmp_path / "strict"))
    set_operating_threshold(model, 0.99, chosen_on="a test")
    crops = sorted((three_class_dataset / "with_mask").iterdir())[:6]
    probabilities = load_classifier(str(model)).predict_proba([Image.open(p).convert("RGB") for p in crops])
    held_back = int(((probabilities.argmax(axis=1) == 1) & (predicted_labels(probabilities, 0.99) != 1)).sum())
    assert held_back  # the tiny model is not that sure of these masked faces

    at = _whole_crops_with_default(model, isolated_models_dir, crops)
    notes = [c for c in texts(at.caption).split("\n") if "under this model's operating threshold 0.99" in c]
    assert len(notes) == held_back
    assert all(note.startswith("😷 with mask is the likeliest at ") for note in notes)
    assert texts(at.markdown).count(", by the operating threshold (") == held_back


def test_many_photos_are_analysed_once_and_capped_per_session(models, held_out_faces, monkeypatch) -> None:
    """Defect 12: with 33 or more photos every rerun analysed every photo again (a cache of 32 read in upload
    order), and nothing capped the photos of a session."""
    import maskdet.inference.photo as photo

    from maskdet.settings import current_settings

    calls: list[str] = []
    real = photo.analyse_photo

    def counted(data, pipeline, name=None):  # noqa: ANN001, ANN202 - the real analysis, counted
        calls.append(name)
        return real(data, pipeline, name=name)

    monkeypatch.setattr(photo, "analyse_photo", counted)
    face = held_out_faces["with_mask"][0]
    files = []
    for number in range(33):
        buffer = io.BytesIO()
        Image.open(face).convert("RGB").resize((64 + number, 64 + number)).save(buffer, format="JPEG")
        files.append((f"face{number:02d}.jpg", buffer.getvalue(), "image/jpeg"))
    at = start()
    at.radio(key="photo_detector").set_value("whole-image").run()
    at = upload(at, *files)
    assert not at.exception, texts(at.exception)
    cap = current_settings().session_photos
    assert len(calls) == min(33, cap)
    assert f"the first {cap} are analysed" in texts(at.warning)
    calls.clear()
    at.run()  # any rerun (a slider, a tab): nothing is analysed again
    assert calls == []


def test_a_cascade_labels_and_explains_every_class_grad_cam_too(isolated_models_dir: Path,
                                                                          cascade_mobilenet: Path,
                                                                          three_class_dataset: Path) -> None:
    crops = sorted((three_class_dataset / "with_mask").iterdir())[:2]
    at = _whole_crops_with_default(cascade_mobilenet, isolated_models_dir, crops)
    assert texts(at.markdown).count("😶 mask worn incorrectly ") >= len(crops)  # the third class's probability
    target = next(s for s in at.selectbox if s.key and s.key.endswith("_0_target"))
    target.set_value("without_mask").run()  # decided by the two-class member alone
    assert_clean(at)
    assert any(caption.endswith("heatmap") for caption in image_captions(at))
    at.selectbox(key=method_key(at, 0)).set_value("gradcam").run()
    assert_clean(at)
    assert "Grad-CAM heatmap" in image_captions(at) and "Grad-CAM needs" not in texts(at.warning)
