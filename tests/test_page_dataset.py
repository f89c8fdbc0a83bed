"""The Dataset page under AppTest: real data, empty and one-class folders, corrupt images, zip uploads."""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path

import pytest
import streamlit as st
from dashboard import page_test
from datasets_helpers import build, real_jpegs
from hostile_inputs import ZOO_INVALID, ZOO_VALID, write_zoo, zoo_face
from markdown_text import texts
from streamlit.testing.v1 import AppTest

from maskdet.data.archive import KEPT_EXTRACTIONS
from maskdet.workspace import tree_bytes
from ui.dataset_picker import SOURCE_PATH, SOURCE_UPLOAD
from ui.paths import PATH_ROOTS_ENV

PAGE = "pages/dataset.py"
TIMEOUT = 180  # the first scan of face-mask-4k on a slow CI machine


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fresh analysis cache on disk and in Streamlit, and an empty data-set root unless a test sets one."""
    monkeypatch.setenv("MASKDET_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "root").mkdir()
    monkeypatch.setenv("MASKDET_DATA_ROOT", str(tmp_path / "root"))
    st.cache_data.clear()


def open_path(path: Path) -> AppTest:
    """Run the page with ``path`` typed into the picker."""
    at = page_test(PAGE, TIMEOUT).run()
    at.radio(key="dataset_source").set_value(SOURCE_PATH).run()
    return at.text_input(key="dataset_path").input(str(path)).run()


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def assert_clean(at: AppTest) -> None:
    assert not at.exception, texts(at.exception)


def test_face_mask_4k(datasets_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MASKDET_DATA_ROOT", str(datasets_root))
    at = page_test(PAGE, TIMEOUT).run()

    assert_clean(at)
    assert at.selectbox(key="dataset_listed").value == "face-mask-4k"
    assert metrics(at)["Files"] == "4,094"
    assert int(metrics(at)["Near-duplicate groups"].replace(",", "")) > 50
    assert not at.error
    assert "balanced" in texts(at.success)
    assert "No near-duplicate group crosses splits" in texts(at.success)
    assert at.tabs[4].label.startswith("Duplicates (")
    samples = [caption for image in at.tabs[1].image for caption in image.captions]  # the sample grid
    assert samples

    at.button(key="dataset_resample").click().run()
    assert_clean(at)
    assert [caption for image in at.tabs[1].image for caption in image.captions] != samples


def test_listed_data_set_and_empty_root(datasets_root: Path, tmp_path: Path) -> None:
    at = page_test(PAGE, TIMEOUT).run()
    assert_clean(at)
    # An empty data root lists the sample set built into maskdet (issue 26), and says what it is.
    assert at.selectbox(key="dataset_listed").options == ["sample-faces"]
    assert any("sample built into maskdet" in caption.value for caption in at.caption)

    build(tmp_path / "root" / "tiny", {"with_mask": real_jpegs(datasets_root, "with_mask", 3)})
    build(tmp_path / "root" / "tiny", {"without_mask": real_jpegs(datasets_root, "without_mask", 3)})
    at.run()
    assert_clean(at)
    assert at.selectbox(key="dataset_listed").options == ["tiny"]
    assert metrics(at)["Readable images"] == "6"


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    at = open_path(tmp_path / "empty")
    assert_clean(at)
    assert "no class folders" in texts(at.error)


def test_class_folders_without_files(tmp_path: Path) -> None:
    (tmp_path / "hollow" / "with_mask").mkdir(parents=True)
    (tmp_path / "hollow" / "without_mask").mkdir()
    at = open_path(tmp_path / "hollow")
    assert_clean(at)
    assert "contains no files" in texts(at.error)


def test_missing_path_and_unknown_class_folder(tmp_path: Path) -> None:
    at = open_path(tmp_path / "nowhere")
    assert_clean(at)
    assert "is not an existing folder" in texts(at.error)

    (tmp_path / "odd" / "cats").mkdir(parents=True)
    at.text_input(key="dataset_path").input(str(tmp_path / "odd")).run()
    assert_clean(at)
    assert "unknown class folder 'cats'" in texts(at.error)


def test_one_class_folder(datasets_root: Path, tmp_path: Path) -> None:
    root = build(tmp_path / "one", {"WithMask": real_jpegs(datasets_root, "with_mask", 5)})
    at = open_path(root)
    assert_clean(at)
    assert metrics(at)["Readable images"] == "5"
    warnings = texts(at.warning)
    assert "No readable images for without_mask" in warnings
    assert "Some split has no image of some class" in warnings
    assert "No readable images in this class." in texts(at.caption)


def test_corrupt_image_and_label_conflict(datasets_root: Path, tmp_path: Path) -> None:
    masked = real_jpegs(datasets_root, "with_mask", 4)
    unmasked = real_jpegs(datasets_root, "without_mask", 4)
    root = build(tmp_path / "ds", {"with_mask": masked, "without_mask": unmasked})
    data = masked[0].read_bytes()
    (root / "with_mask" / "broken.jpg").write_bytes(data[: len(data) // 3])
    shutil.copy(unmasked[0], root / "with_mask" / "also_unmasked.jpg")  # and a label conflict

    at = open_path(root)

    assert_clean(at)
    assert metrics(at)["Unreadable"] == "1"
    assert metrics(at)["Label conflicts"] == "1"
    assert "1 groups are filed under both classes" in texts(at.error)
    assert "label conflict" in texts(at.tabs[4].markdown)
    assert "2 images of label-conflict groups are in no split" in texts(at.tabs[5].caption)
    assert "1 files cannot be decoded" in texts(at.warning)
    table = at.tabs[3].dataframe[0].value
    assert table["file"].tolist() == ["with_mask/broken.jpg"]
    assert "truncated" in table["reason"][0]


def test_only_corrupt_images(datasets_root: Path, tmp_path: Path) -> None:
    (tmp_path / "bad" / "with_mask").mkdir(parents=True)
    data = real_jpegs(datasets_root, "with_mask", 1)[0].read_bytes()
    (tmp_path / "bad" / "with_mask" / "half.jpg").write_bytes(data[: len(data) // 2])
    at = open_path(tmp_path / "bad")
    assert_clean(at)
    assert "None of the 1 files could be decoded" in texts(at.error)
    unreadable = [frame.value for frame in at.dataframe if "file" in frame.value.columns]
    assert unreadable[0]["file"].tolist() == ["with_mask/half.jpg"]


def zip_of(root: Path, prefix: str = "") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                archive.write(path, prefix + path.relative_to(root).as_posix())
    return buffer.getvalue()


def test_zip_upload(datasets_root: Path, tmp_path: Path) -> None:
    source = build(
        tmp_path / "src",
        {
            "with_mask": real_jpegs(datasets_root, "with_mask", 3),
            "no_mask": real_jpegs(datasets_root, "without_mask", 2),
        },
    )
    at = page_test(PAGE, TIMEOUT).run()
    at.radio(key="dataset_source").set_value(SOURCE_UPLOAD).run()
    assert "Choose a data set to audit." in texts(at.info)

    at.file_uploader(key="dataset_zip").set_value(("masks.zip", zip_of(source, "masks/"), "application/zip")).run()

    assert_clean(at)
    assert metrics(at)["Readable images"] == "5"
    uploads = tmp_path / "cache" / "sessions" / "owner" / "uploads"
    assert [p.name for p in uploads.iterdir()][0].startswith("upload-")
    at.run()  # a rerun reuses the extracted folder
    assert len(list(uploads.iterdir())) == 1


def test_hostile_zip_upload(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("with_mask/ok.jpg", b"x")
        archive.writestr(zipfile.ZipInfo("../../escape.jpg"), b"x")
    at = page_test(PAGE, TIMEOUT).run()
    at.radio(key="dataset_source").set_value(SOURCE_UPLOAD).run()
    at.file_uploader(key="dataset_zip").set_value(("evil.zip", buffer.getvalue(), "application/zip")).run()

    assert_clean(at)
    assert "Cannot use `evil.zip`" in texts(at.error) and "'..'" in texts(at.error)
    uploads = tmp_path / "cache" / "sessions" / "owner" / "uploads"
    assert not uploads.exists() or not any(uploads.iterdir())
    assert not list(tmp_path.rglob("escape.jpg"))


@pytest.fixture(scope="module")
def zoo_source(tmp_path_factory: pytest.TempPathFactory, datasets_root: Path) -> Path:
    """3 real photos per class plus the whole bad-input zoo filed under with_mask."""
    root = build(tmp_path_factory.mktemp("zoo") / "zoo-set", {
        "with_mask": real_jpegs(datasets_root, "with_mask", 3),
        "without_mask": real_jpegs(datasets_root, "without_mask", 3),
    })
    write_zoo(root / "with_mask", zoo_face(datasets_root))
    return root


def upload_zip(name: str, data: bytes, at: AppTest | None = None) -> AppTest:
    if at is None:
        at = page_test(PAGE, TIMEOUT).run()
        at.radio(key="dataset_source").set_value(SOURCE_UPLOAD).run()
    return at.file_uploader(key="dataset_zip").set_value((name, data, "application/zip")).run()


def assert_zoo_audited(at: AppTest) -> None:
    """Every zoo file is accounted for: the valid ones read, each invalid one listed with its reason."""
    assert_clean(at)
    assert metrics(at)["Files"] == str(6 + len(ZOO_VALID) + len(ZOO_INVALID))
    assert metrics(at)["Readable images"] == str(6 + len(ZOO_VALID))
    assert metrics(at)["Unreadable"] == str(len(ZOO_INVALID))
    table = at.tabs[3].dataframe[0].value
    reasons = dict(zip(table["file"], table["reason"], strict=True))
    assert set(reasons) == {f"with_mask/{name}" for name in ZOO_INVALID}
    assert reasons["with_mask/empty.jpg"] == "empty file"
    assert "megapixel limit" in reasons["with_mask/bomb.png"]
    modes = at.tabs[2].dataframe[2].value
    assert {"CMYK", "I;16", "L"} <= set(modes["mode"])
    assert "2 animated images: only the first frame is used." in texts(at.tabs[2].caption)


def test_the_bad_input_zoo_in_a_folder_and_in_a_zip(zoo_source: Path, tmp_path: Path) -> None:
    assert_zoo_audited(open_path(zoo_source))
    at = upload_zip("zoo.zip", zip_of(zoo_source, "zoo-set/"))
    assert_zoo_audited(at)  # the same files, read from the extracted copy
    assert len(list((tmp_path / "cache" / "sessions" / "owner" / "uploads").iterdir())) == 1


def test_broken_zips_are_refused_one_by_one_and_leave_nothing(zoo_source: Path, tmp_path: Path) -> None:
    good = zip_of(zoo_source)
    only_junk = io.BytesIO()
    with zipfile.ZipFile(only_junk, "w") as archive:
        archive.writestr("__MACOSX/._with_mask", b"resource fork")
    broken = {
        "empty.zip": (b"", "not a readable zip archive"),
        "text.zip": (b"this is not a zip\n" * 10, "not a readable zip archive"),
        "truncated.zip": (good[: len(good) // 2], "not a readable zip archive"),
        "junk-only.zip": (only_junk.getvalue(), "archive contains no files"),
    }
    at = None
    for name, (data, reason) in broken.items():
        at = upload_zip(name, data, at)
        assert_clean(at)
        assert f"Cannot use `{name}`: {reason}" in texts(at.error), texts(at.error)
        assert not at.metric  # no audit of anything
    uploads = tmp_path / "cache" / "sessions" / "owner" / "uploads"
    assert not uploads.exists() or not any(uploads.iterdir())


def test_typed_paths_are_checked(tmp_path: Path, zoo_source: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_path(Path("~no-such-user-here/data"))
    assert_clean(at)
    assert "no such user's home folder" in texts(at.error)
    for text, reason in (("relative/data", "not an absolute path"), ("/tmp/a\0b", "NUL character"),
                         (str(zoo_source / "with_mask" / "gray.png"), "is not an existing folder")):
        at.text_input(key="dataset_path").input(text).run()
        assert_clean(at)
        assert reason in texts(at.error), (text, texts(at.error))
        assert not at.metric

    allowed = tmp_path / "allowed"
    shutil.copytree(zoo_source, allowed / "zoo-set")
    (allowed / "sneaky").symlink_to(tmp_path, target_is_directory=True)
    monkeypatch.setenv(PATH_ROOTS_ENV, str(allowed))
    for outside in (zoo_source, Path("/etc"), allowed / "sneaky" / "root", allowed / ".." / "root"):
        at.text_input(key="dataset_path").input(str(outside)).run()
        assert_clean(at)
        assert "is outside the folders this server allows" in texts(at.error), outside
        assert not at.metric
    at.text_input(key="dataset_path").input(str(allowed / "zoo-set")).run()
    assert_clean(at)
    assert metrics(at)["Readable images"] == str(6 + len(ZOO_VALID))


def test_old_upload_extractions_are_pruned_with_the_shipped_settings(datasets_root: Path, tmp_path: Path) -> None:
    """Rewritten (issue 23): the old test set the kept count to 1 and the grace to 0 s, settings the product
    never ships (it kept everything used in the last hour). With the shipped settings a session keeps its
    KEPT_EXTRACTIONS most recent extractions, the one on the page among them."""
    uploads = tmp_path / "cache" / "sessions" / "owner" / "uploads"
    source = build(tmp_path / "src", {"with_mask": real_jpegs(datasets_root, "with_mask", 2),
                                       "without_mask": real_jpegs(datasets_root, "without_mask", 2)})
    photo = real_jpegs(datasets_root, "with_mask", 3)[2].read_bytes()
    at = None
    for number in range(KEPT_EXTRACTIONS + 2):
        (source / "with_mask" / f"extra{number}.jpg").write_bytes(photo)  # a new archive each time
        at = upload_zip(f"set{number}.zip", zip_of(source), at)
        assert_clean(at)
        assert metrics(at)["Files"] == str(5 + number)
        assert len(list(uploads.iterdir())) == min(number + 1, KEPT_EXTRACTIONS)


def test_a_visitors_zip_stops_at_the_disk_budget_while_it_is_written(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Defect 5: a 1.8 MB upload expanded to 1.86 GiB (the per-archive limit), whatever the budget said. Here a
    ~100 KB zip of 100 MB, with a 32 MB visitor budget: refused while writing, nothing of it left."""
    from test_sharing import server_address

    monkeypatch.setenv("MASKDET_SESSION_STORAGE_MB", "32")
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("with_mask/a.jpg", b"\xff\xd8" + bytes(100 * 2**20))
    assert len(bomb.getvalue()) < 2**20
    with server_address("0.0.0.0"):
        at = page_test(PAGE, TIMEOUT).run()
        at.file_uploader(key="dataset_zip").set_value(("bomb.zip", bomb.getvalue(), "application/zip")).run()
    assert_clean(at)
    assert "Cannot use `bomb.zip`" in texts(at.error)
    assert tree_bytes(tmp_path / "cache") < 32 * 2**20
