"""Public face-mask data sets in one command: a registry, and a verified, resumable fetch into maskdet's layout.

Each :class:`PublicDataset` says what a set holds, its licence, where it comes from, its size and the
layout maskdet reads, and names a *manifest*: the publisher's files at a pinned commit, one line each
with the git blob SHA-1, the size and the path (``maskdet/data/manifests/``). A git blob SHA-1 is
computed from the file's bytes alone (``sha1(b"blob SIZE\\0" + bytes)``), so the manifest verifies a
download from any source: the repository snapshot (:data:`REPOSITORY`, fetched with pooch from
``Settings.public_data_url``) or the Kaggle API (:data:`KAGGLE`, the user's own token).

:func:`fetch` downloads every file the set keeps into a staging folder in the cache, checks each
against the manifest, and only when all are there and right builds the set beside the destination
and renames it into place: an interrupted or failed fetch leaves verified files in the staging
folder (the next run fetches only the others) and nothing in the data root.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from maskdet.data.datasets import DATASET_MANIFEST
from maskdet.settings import cache_dir, current_settings, data_root, user_data_root
from maskdet.store import write_json

logger = logging.getLogger(__name__)

MANIFESTS = Path(__file__).resolve().parent / "manifests"
REPOSITORY = "repository"
KAGGLE = "kaggle"
DOWNLOAD_WORKERS = 8
TIMEOUT_S = 30
NAMED_PROBLEMS = 3  # files a refusal names in its one line

ProgressFn = Callable[[int, int], None]
"""Called as ``progress(bytes_done, bytes_total)`` as verified files arrive, from the caller's thread."""


class FetchError(RuntimeError):
    """A public data set could not be fetched; the message is one line that names the cause."""


@dataclass(frozen=True)
class ManifestEntry:
    """One file of a manifest: git blob SHA-1, size in bytes (None where the manifest does not give one: the
    SHA-1 covers the length anyway), path in the publisher's tree."""

    blob_sha1: str
    size: int | None
    path: str

    @property
    def known_size(self) -> int:
        return self.size or 0


@dataclass(frozen=True)
class Manifest:
    """A manifest file: the repository (``owner/name``) and commit it pins, and its files."""

    repository: str
    commit: str
    entries: tuple[ManifestEntry, ...]


def git_blob_sha1(data: bytes) -> str:
    """The git blob SHA-1 of ``data`` (what ``git hash-object`` prints)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def read_manifest_file(path: Path) -> Manifest:
    """Parse a manifest: ``# repository: HOST/OWNER/NAME  commit: SHA ...`` then ``SHA1<TAB>SIZE<TAB>PATH`` lines."""
    header: dict[str, str] = {}
    entries = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.startswith("#"):
            words = line.lstrip("# ").split()
            header.update({key.rstrip(":"): value for key, value in zip(words[::2], words[1::2], strict=False)
                           if key.endswith(":")})
            continue
        if not line.strip():
            continue
        try:
            sha, size, relpath = line.split("\t")
            if len(sha) != 40 or not relpath:
                raise ValueError(line)
            entries.append(ManifestEntry(sha.lower(), int(size) if size.isdigit() else None, relpath))
        except ValueError:
            raise FetchError(f"{path}:{number}: not SHA1<TAB>SIZE<TAB>PATH") from None
    if "repository" not in header or "commit" not in header:
        raise FetchError(f"{path}: no '# repository: ... commit: ...' header")
    repository = "/".join(header["repository"].split("/")[-2:])
    return Manifest(repository=repository, commit=header["commit"], entries=tuple(entries))


@dataclass(frozen=True)
class PublicDataset:
    """A public data set maskdet can fetch.

    ``folders`` maps a folder of the publisher's tree to the folder of maskdet's layout it goes to
    (``dataset/with_mask/`` -> ``with_mask/``); files outside these folders are not fetched.
    """

    name: str
    description: str
    licence: str
    source: str
    layout: str
    manifest: Path
    folders: Mapping[str, str]
    method: str = REPOSITORY
    kaggle_ref: str | None = None  # owner/slug for the Kaggle API

    def read_manifest(self) -> Manifest:
        return read_manifest_file(self.manifest)

    def files(self) -> list[tuple[ManifestEntry, str]]:
        """The manifest entries this set keeps, each with its path in maskdet's layout."""
        kept = []
        for entry in self.read_manifest().entries:
            for prefix, target in self.folders.items():
                if entry.path.startswith(prefix):
                    kept.append((entry, target + entry.path[len(prefix):]))
                    break
        return kept

    def size_bytes(self) -> int:
        return sum(entry.known_size for entry, _ in self.files())

    def describe(self) -> dict[str, object]:
        manifest = self.read_manifest()
        return {"name": self.name, "description": self.description, "licence": self.licence, "source": self.source,
                "layout": self.layout, "method": self.method, "repository": manifest.repository,
                "commit": manifest.commit, "files": len(self.files()), "bytes": self.size_bytes()}


_REGISTRY: dict[str, PublicDataset] = {}


def register(dataset: PublicDataset) -> PublicDataset:
    """Add ``dataset`` to the registry (a name already there is replaced)."""
    _REGISTRY[dataset.name] = dataset
    return dataset


def registry() -> list[PublicDataset]:
    """Every registered public data set, in registration order."""
    return list(_REGISTRY.values())


def get(name: str) -> PublicDataset:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise FetchError(f"no public data set named '{name}': choose one of {', '.join(_REGISTRY)}") from None


IMAGE_FOLDER_LAYOUT = "ImageFolder: with_mask/ and without_mask/"
BOXED_LAYOUT = "images/ + annotations/ (Pascal VOC; classes with_mask, without_mask, mask_weared_incorrect)"
KAGGLE_BOXED_DESCRIPTION = ("853 street and crowd photos with 4,072 boxed faces (with_mask, without_mask, "
                            "mask_weared_incorrect): the set kaggle-scenes comes from")

register(PublicDataset(
    name="face-mask-detection",
    description="4,095 photos of masked and bare faces, mostly face crops: the set face-mask-4k comes from",
    licence="MIT", source="github.com/chandrikadeb7/Face-Mask-Detection (folder dataset/)",
    layout=IMAGE_FOLDER_LAYOUT, manifest=MANIFESTS / "face-mask-detection-chandrikadeb7.tsv",
    folders={"dataset/with_mask/": "with_mask/", "dataset/without_mask/": "without_mask/"},
))
_KAGGLE_SNAPSHOT = register(PublicDataset(
    name="kaggle-face-mask-detection",
    description=KAGGLE_BOXED_DESCRIPTION + "; from a public repository snapshot of it",
    licence="CC0-1.0", source="kaggle.com/datasets/andrewmvd/face-mask-detection, via "
                              "github.com/iAmEthanMai/mask-detection-dataset (folder data/)",
    layout=BOXED_LAYOUT, manifest=MANIFESTS / "mask-detection-dataset-iAmEthanMai.tsv",
    folders={"data/images/": "images/", "data/xml/": "annotations/"},
))
register(replace(
    _KAGGLE_SNAPSHOT, name="kaggle-face-mask-detection-api",
    description=KAGGLE_BOXED_DESCRIPTION + "; from Kaggle itself with your own API token (checked against the "
                                           "snapshot's manifest)",
    source="kaggle.com/datasets/andrewmvd/face-mask-detection (needs `pip install kaggle` and ~/.kaggle/kaggle.json)",
    method=KAGGLE, kaggle_ref="andrewmvd/face-mask-detection",
))


def default_destination() -> Path:
    """The data root when it is a writable folder, else the user's data folder (:func:`user_data_root`)."""
    root = data_root()
    return root if root.is_dir() and os.access(root, os.W_OK) else user_data_root()


def staging_dir(dataset: PublicDataset) -> Path:
    """Where the verified files of an unfinished fetch wait (in the cache; kept between runs)."""
    return cache_dir() / "public" / f"{dataset.name}-{dataset.read_manifest().commit[:12]}"


def _verified(path: Path, entry: ManifestEntry) -> bool:
    try:
        return entry.size in (None, path.stat().st_size) and git_blob_sha1(path.read_bytes()) == entry.blob_sha1
    except OSError:
        return False


def _download_repository(dataset: PublicDataset, pending: list[tuple[ManifestEntry, str]], staging: Path,
                         done: Callable[[ManifestEntry], None]) -> list[str]:
    """Fetch ``pending`` files with pooch from the repository snapshot; returns the problems (one per file)."""
    import pooch
    import requests

    pooch.get_logger().setLevel(logging.WARNING)
    manifest = dataset.read_manifest()
    base = current_settings().public_data_url.rstrip("/")
    downloader = pooch.HTTPDownloader(progressbar=False, timeout=TIMEOUT_S)

    def one(item: tuple[ManifestEntry, str]) -> str | None:
        entry, target = item
        url = f"{base}/{manifest.repository}/{manifest.commit}/{entry.path}"
        path = staging / target
        try:
            pooch.retrieve(url, known_hash=None, fname=path.name, path=path.parent, downloader=downloader)
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else "?"
            return f"{entry.path}: missing on the server (HTTP {status})"
        except requests.RequestException as exc:  # unreachable, timed out, connection cut mid-file
            raise FetchError(f"cannot fetch from {base} ({type(exc).__name__}); nothing was written to the data "
                             "root, run the same command again to resume") from None
        if not _verified(path, entry):
            path.unlink(missing_ok=True)
            return f"{entry.path}: does not match the manifest (git blob SHA-1 {entry.blob_sha1})"
        return None

    problems = []
    with ThreadPoolExecutor(DOWNLOAD_WORKERS) as pool:
        futures = {pool.submit(one, item): item[0] for item in pending}
        try:
            for future in as_completed(futures):  # progress is reported from the caller's thread only
                problem = future.result()
                if problem:
                    problems.append(problem)
                else:
                    done(futures[future])
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return problems


def kaggle_credentials() -> bool:
    """Whether the user has a Kaggle API token (environment or ``kaggle.json`` / ``access_token``)."""
    if os.environ.get("KAGGLE_API_TOKEN") or (os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY")):
        return True
    folder = Path(os.environ.get("KAGGLE_CONFIG_DIR") or Path.home() / ".kaggle")
    return any((folder / name).is_file() for name in ("kaggle.json", "access_token"))


def _download_kaggle(dataset: PublicDataset, pending: list[tuple[ManifestEntry, str]], staging: Path,
                     done: Callable[[ManifestEntry], None]) -> list[str]:
    """Download the whole set with the user's own Kaggle token into ``staging`` (Kaggle's tree is maskdet's)."""
    if not kaggle_credentials():
        raise FetchError("the Kaggle API needs your own token: create one at kaggle.com (Settings > API) and save "
                         "it as ~/.kaggle/kaggle.json, or set KAGGLE_USERNAME and KAGGLE_KEY; or fetch "
                         "'kaggle-face-mask-detection' from its public snapshot instead")
    try:
        from kaggle.api.kaggle_api_extended import KaggleApi
    except ImportError:
        raise FetchError("the Kaggle API path needs the kaggle package: pip install kaggle") from None
    api = KaggleApi()
    try:
        api.authenticate()
        api.dataset_download_files(dataset.kaggle_ref, path=str(staging), unzip=True, quiet=True)
    except Exception as exc:  # the kaggle client raises many kinds; one line names it
        raise FetchError(f"Kaggle download of {dataset.kaggle_ref} failed: {exc}") from None
    problems = []
    for entry, target in pending:
        if _verified(staging / target, entry):
            done(entry)
        else:
            (staging / target).unlink(missing_ok=True)
            problems.append(f"{target}: missing or does not match the manifest (git blob SHA-1 {entry.blob_sha1})")
    return problems


DOWNLOADERS = {REPOSITORY: _download_repository, KAGGLE: _download_kaggle}


@dataclass
class FetchResult:
    """Where the set now is and how many of its files this run downloaded (the rest were already verified)."""

    path: Path
    files: int
    downloaded: int
    already_there: bool = False
    problems: list[str] = field(default_factory=list)


def _publish(dataset: PublicDataset, staging: Path, files: list[tuple[ManifestEntry, str]], target: Path,
             command: str) -> None:
    """Build the set beside ``target`` (hard links, else copies) and rename it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.partial-"))
    try:
        for _, relpath in files:
            source, copy = staging / relpath, building / relpath
            copy.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source, copy)
            except OSError:
                shutil.copyfile(source, copy)
        manifest = dataset.read_manifest()
        write_json(building / DATASET_MANIFEST, {
            "sources": [dataset.source], "licence": dataset.licence, "repository": manifest.repository,
            "commit": manifest.commit, "command": command, "fetched": datetime.now(UTC).isoformat(timespec="seconds"),
        }, indent=1)
        os.replace(building, target)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise


def fetch(name: str, destination: Path | None = None, progress: ProgressFn | None = None,
          command: str = "") -> FetchResult:
    """Fetch public data set ``name`` into ``destination / name`` (default :func:`default_destination`).

    Files already verified in the staging folder are not downloaded again. Raises :class:`FetchError`
    (one line) when the source cannot be reached or any file is missing or differs from the manifest:
    the data root is then left as it was.
    """
    dataset = get(name)
    target = (destination or default_destination()) / dataset.name
    files = dataset.files()
    if target.is_dir():
        return FetchResult(path=target, files=len(files), downloaded=0, already_there=True)
    staging = staging_dir(dataset)
    staging.mkdir(parents=True, exist_ok=True)
    total = sum(entry.known_size for entry, _ in files)
    pending = [(entry, relpath) for entry, relpath in files if not _verified(staging / relpath, entry)]
    done_bytes = total - sum(entry.known_size for entry, _ in pending)
    if progress:
        progress(done_bytes, total)

    def done(entry: ManifestEntry) -> None:
        nonlocal done_bytes
        done_bytes += entry.known_size
        if progress:
            progress(done_bytes, total)

    problems = DOWNLOADERS[dataset.method](dataset, pending, staging, done) if pending else []
    if problems:
        more = f"; and {len(problems) - NAMED_PROBLEMS} more" if len(problems) > NAMED_PROBLEMS else ""
        raise FetchError(f"{len(problems)} of {len(files)} files refused: {'; '.join(sorted(problems)[:NAMED_PROBLEMS])}"
                         f"{more}; nothing was written to the data root")
    _publish(dataset, staging, files, target, command)
    shutil.rmtree(staging, ignore_errors=True)
    logger.info("fetched %s into %s (%d files, %d downloaded now)", name, target, len(files), len(pending))
    return FetchResult(path=target, files=len(files), downloaded=len(pending))
