"""maskdet.data.archive.extract_zip: good archives land in a fresh folder; hostile ones are refused, leaving nothing."""

from __future__ import annotations

import io
import os
import stat
import struct
import time
import zipfile
from pathlib import Path

import pytest

from maskdet.data.archive import (
    KEPT_EXTRACTIONS,
    MAX_TOTAL_BYTES,
    ArchiveError,
    extract_zip,
    mark_used,
    prune_extractions,
)
from maskdet.workspace import LEASES

JPEG = b"\xff\xd8\xff\xe0 fake image bytes"


def make_zip(entries: list[tuple[str | zipfile.ZipInfo, bytes]], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in entries:
            archive.writestr(name, data)
    return buffer.getvalue()


def all_files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    return tmp_path / "uploads"


def assert_refused(data: bytes, dest: Path, match: str, **limits: int) -> None:
    """Refused with a message matching ``match``, and nothing left anywhere under the sandbox's parent."""
    before = all_files(dest.parent)
    with pytest.raises(ArchiveError, match=match):
        extract_zip(data, dest, **limits)
    after = all_files(dest.parent) - {dest.name}
    assert after == before - {dest.name}, f"left behind: {after - before}"


def test_extracts_class_folders_into_a_fresh_folder(dest: Path) -> None:
    data = make_zip([("with_mask/a.jpg", JPEG), ("without_mask/b.jpg", JPEG), ("without_mask/", b"")])

    first = extract_zip(data, dest)
    second = extract_zip(data, dest)

    assert first != second
    for folder in (first, second):
        assert folder.parent == dest.resolve()
        assert all_files(folder) == {"with_mask", "with_mask/a.jpg", "without_mask", "without_mask/b.jpg"}
        assert (folder / "with_mask" / "a.jpg").read_bytes() == JPEG


def test_single_top_level_folder_is_returned(dest: Path, tmp_path: Path) -> None:
    data = make_zip([("masks/WithMask/a.jpg", JPEG), ("masks/WithoutMask/b.jpg", JPEG), ("__MACOSX/._masks", b"x")])
    archive_path = tmp_path / "masks.zip"
    archive_path.write_bytes(data)

    folder = extract_zip(archive_path, dest)

    assert folder.name == "masks" and folder.parent.parent == dest.resolve()
    assert all_files(folder) == {"WithMask", "WithMask/a.jpg", "WithoutMask", "WithoutMask/b.jpg"}
    assert not (folder.parent / "__MACOSX").exists()


def test_single_top_level_folder_of_boxed_photos_is_returned(dest: Path) -> None:
    folder = extract_zip(make_zip([("street/images/a.jpg", JPEG), ("street/annotations/a.xml", b"<annotation/>")]), dest)
    assert folder.name == "street"
    assert all_files(folder) == {"images", "images/a.jpg", "annotations", "annotations/a.xml"}


def test_top_level_folder_without_class_folders_is_not_descended(dest: Path) -> None:
    folder = extract_zip(make_zip([("photos/a.jpg", JPEG)]), dest)
    assert all_files(folder) == {"photos", "photos/a.jpg"}


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("/etc/cron.d/evil", "absolute path"),
        ("../evil.jpg", r"'\.\.'"),
        ("with_mask/../../evil.jpg", r"'\.\.'"),
        ("..\\evil.jpg", r"'\.\.'"),
        ("C:/Windows/evil.jpg", "drive letter"),
        ("c:evil.jpg", "drive letter"),
        ("\\\\server\\share\\evil.jpg", "absolute path"),
    ],
)
def test_refuses_paths_escaping_the_folder(dest: Path, name: str, match: str) -> None:
    # A harmless first entry proves nothing is written before the bad one is found.
    data = make_zip([("with_mask/ok.jpg", JPEG), (zipfile.ZipInfo(name), JPEG)])
    assert_refused(data, dest, match)


def test_refuses_symlinks(dest: Path) -> None:
    link = zipfile.ZipInfo("with_mask/passwd.jpg")
    link.create_system = 3  # Unix
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    assert_refused(make_zip([("with_mask/ok.jpg", JPEG), (link, b"/etc/passwd")]), dest, "symbolic link")


def test_refuses_device_files(dest: Path) -> None:
    fifo = zipfile.ZipInfo("with_mask/pipe.jpg")
    fifo.create_system = 3
    fifo.external_attr = (stat.S_IFIFO | 0o644) << 16
    assert_refused(make_zip([(fifo, b"")]), dest, "special file")


def test_refuses_encrypted_entries(dest: Path) -> None:
    data = bytearray(make_zip([("with_mask/a.jpg", JPEG)], compression=zipfile.ZIP_STORED))
    # Set bit 0 (encrypted) of the general purpose flags in the local and central headers.
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.index(signature) + offset
        data[at] |= 0x1
    assert_refused(bytes(data), dest, "encrypted")


def test_refuses_too_many_entries(dest: Path) -> None:
    data = make_zip([(f"with_mask/{i}.jpg", JPEG) for i in range(11)])
    assert_refused(data, dest, "11 entries", max_entries=10)
    assert extract_zip(data, dest, max_entries=11).is_dir()


def test_refuses_zip_bomb_by_declared_size(dest: Path) -> None:
    data = make_zip([("with_mask/bomb.jpg", bytes(20 * 1024 * 1024))])
    assert len(data) < 100_000  # 20 MB of zeros compress to a few kB
    assert_refused(data, dest, "expand to 21.0 MB", max_total_bytes=10 * 1024 * 1024)


def test_refuses_zip_bomb_whose_headers_lie(dest: Path) -> None:
    """Declared sizes say 10 bytes; the data inflates to 5 MB: extraction must stop, not trust the header."""
    data = bytearray(make_zip([("with_mask/ok.jpg", JPEG), ("with_mask/bomb.jpg", bytes(5 * 1024 * 1024))]))
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = data.index(signature, data.index(signature) + 1) + offset  # the second entry's headers
        data[at : at + 4] = struct.pack("<I", 10)
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        assert sum(i.file_size for i in archive.infolist()) < 100
    assert_refused(bytes(data), dest, "corrupt|size limit", max_total_bytes=1024 * 1024)


def test_refuses_duplicate_entries(dest: Path) -> None:
    with pytest.warns(UserWarning, match="Duplicate name"):
        data = make_zip([("with_mask/a.jpg", JPEG), ("with_mask/a.jpg", b"other")])
    assert_refused(data, dest, "twice")


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"this is not a zip file", "not a readable zip"),
        (b"", "not a readable zip"),
        (make_zip([]), "no files"),
        (make_zip([("with_mask/", b""), ("__MACOSX/._x", b"x")]), "no files"),
    ],
)
def test_refuses_unusable_archives(dest: Path, data: bytes, match: str) -> None:
    assert_refused(data, dest, match)


def test_corrupt_member_data_leaves_nothing(dest: Path) -> None:
    data = bytearray(make_zip([("with_mask/a.jpg", bytes(range(256)) * 64)]))
    start = data.index(b"PK\x03\x04") + 30 + len("with_mask/a.jpg")
    data[start : start + 16] = b"\xff" * 16  # garble the deflate stream
    assert_refused(bytes(data), dest, "corrupt")


def extraction(dest: Path, payload: int, used_s_ago: float) -> Path:
    """A real extraction of a one-file archive of ``payload`` bytes, last used ``used_s_ago`` seconds ago."""
    folder = extract_zip(make_zip([(f"with_mask/{payload}.jpg", b"x" * payload)]), dest)
    stamp = time.time() - used_s_ago
    os.utime(folder, (stamp, stamp))
    return folder


def test_pruning_keeps_the_most_recently_used_within_count_and_bytes(dest: Path) -> None:
    old, older, oldest = (extraction(dest, 1000, hours * 3600) for hours in (1, 2, 3))
    marked = extraction(dest, 1000, 4 * 3600)
    mark_used(marked / "with_mask", dest)  # used again just now: the newest
    fresh = extraction(dest, 1000, 0)

    assert prune_extractions(dest, keep=3, max_bytes=10**6) == [older, oldest]
    assert sorted(dest.iterdir()) == sorted([old, marked, fresh])

    assert prune_extractions(dest, keep=3, max_bytes=2500) == [old]  # 2 x 1000 B kept, 3 000 is over
    assert prune_extractions(dest, keep=1, max_bytes=0, protect=[marked / "with_mask"]) == [fresh]
    assert list(dest.iterdir()) == [marked]


def test_with_the_shipped_settings_an_extraction_in_use_is_never_pruned_and_the_rest_are(dest: Path) -> None:
    """Rewritten (issue 23): the old test pruned with a 60 s grace and budgets the product never ships, while the
    product kept everything used in the last hour whatever its budget. Now the shipped count is kept, the data
    set a page or a job is using stays however old it is, and the others go oldest first."""
    in_use = extraction(dest, 1000, 48 * 3600)  # the oldest of all, but a job is evaluating it
    others = [extraction(dest, 1000, minutes * 60) for minutes in range(KEPT_EXTRACTIONS + 2)]  # all recent
    with LEASES.hold(in_use / "with_mask"):
        removed = prune_extractions(dest, keep=KEPT_EXTRACTIONS, max_bytes=MAX_TOTAL_BYTES * KEPT_EXTRACTIONS)
        assert in_use.is_dir()
        assert removed == others[KEPT_EXTRACTIONS - 1:]  # the oldest others, though used minutes ago
        assert len(list(dest.iterdir())) == KEPT_EXTRACTIONS
    assert prune_extractions(dest, keep=KEPT_EXTRACTIONS - 1, max_bytes=MAX_TOTAL_BYTES) == [in_use]  # released


def test_pruning_touches_nothing_but_extraction_folders(dest: Path, tmp_path: Path) -> None:
    outside = tmp_path / "precious"
    (outside / "upload-lookalike").mkdir(parents=True)
    extraction(dest, 10, 3600)
    (dest / "upload-link").symlink_to(outside / "upload-lookalike", target_is_directory=True)
    (dest / "notes").mkdir()
    (dest / "upload-file").write_bytes(b"x")

    assert len(prune_extractions(dest, keep=0, max_bytes=0, protect=[outside])) == 1
    assert sorted(p.name for p in dest.iterdir()) == ["notes", "upload-file", "upload-link"]
    assert (outside / "upload-lookalike").is_dir()
