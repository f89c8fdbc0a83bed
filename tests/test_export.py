"""ONNX export: round trips on the shipped model and tiny trained ones, the README snippet, bad input.

Exports are compared with PyTorch (fp32, the network as saved) on real face-mask-4k crops of each
model's held-out test split -- not the validation crops the export checks itself on.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from maskdet.zoo import architectures as zoo
from maskdet.zoo.folders import load_model, load_split, save_model
from maskdet.inference.predictor import Predictor
from maskdet.cli import main
from maskdet.training.crops import locate_split_file
from maskdet.inference.detector import centerface_model_path, get_detector, load_centerface_graph
from maskdet.export import ExportError, OnnxClassifier, export_model, load_exported_pipeline
from maskdet.data.datasets import normalize_class_name
from maskdet.data.images import load_rgb
from maskdet.inference.pipeline import FacePipeline
from maskdet.settings import CLASSES

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "models" / "mobilenet_v2"
TOLERANCE = 1e-3
FILES = {"classifier.onnx", "detector.onnx", "metadata.json"}


def held_out_crops(model_folder: Path, datasets_root: Path, per_class: int = 6) -> list[Image.Image]:
    """Real face crops of the model's held-out test split (its data set, or face-mask-4k under the data root)."""
    dataset = json.loads((model_folder / "metadata.json").read_text())["dataset"]
    test = load_split(model_folder)["test"]
    crops = []
    for cls in json.loads((model_folder / "metadata.json").read_text())["classes"]:
        folders = {rel.split("/", 1)[0] for rel in test if normalize_class_name(rel.split("/", 1)[0]) == cls}
        paths = [p for rel in test if rel.split("/", 1)[0] in folders and (p := locate_split_file(dataset, rel))]
        crops += [load_rgb(path) for path in paths[:: max(1, len(paths) // per_class)][:per_class]]
    return crops


def assert_round_trip(model_folder: Path, exported: Path, crops: list[Image.Image]) -> float:
    """ONNX and PyTorch fp32 agree on ``crops`` (as one batch) to TOLERANCE with identical labels; the diff."""
    reference = Predictor(load_model(model_folder), precision="fp32").predict_proba(crops)
    onnx = OnnxClassifier(exported).predict_proba(crops)
    classes = json.loads((exported / "metadata.json").read_text())["classes"]
    assert classes == json.loads((model_folder / "metadata.json").read_text())["classes"]
    assert onnx.shape == reference.shape == (len(crops), len(classes))
    diff = float(np.abs(onnx - reference).max())
    assert diff <= TOLERANCE, diff
    assert (onnx.argmax(1) == reference.argmax(1)).all()
    return diff


@pytest.fixture(scope="module")
def shipped_export(tmp_path_factory, datasets_root) -> Path:
    return export_model(str(SHIPPED), tmp_path_factory.mktemp("export") / "mobilenet_v2-onnx").output


def test_shipped_model_round_trip_and_card(shipped_export, datasets_root) -> None:
    assert {p.name for p in shipped_export.iterdir()} == FILES
    crops = held_out_crops(SHIPPED, datasets_root)
    assert_round_trip(SHIPPED, shipped_export, crops)
    source = json.loads((SHIPPED / "metadata.json").read_text())
    card = json.loads((shipped_export / "metadata.json").read_text())
    assert card["arch"] == "mobilenet_v2" and card["classes"] == ["without_mask", "with_mask"]
    assert {k: card["input"][k] for k in ("size", "channels", "mean", "std")} == source["input"]
    assert card["operating_threshold"] == 0.5  # the shipped card has none: the default
    assert card["metrics"] == source["metrics"]
    assert card["source"]["weights_sha256"] == source["weights"]["sha256"]
    assert card["export"]["max_abs_prob_diff"] <= TOLERANCE and card["export"]["check_crops"] >= 16
    graph = (shipped_export / "classifier.onnx").read_bytes()
    assert card["classifier"]["sha256"] == hashlib.sha256(graph).hexdigest()
    detector = card["detector"]
    dynamic = load_centerface_graph(centerface_model_path())
    assert (shipped_export / "detector.onnx").read_bytes() == dynamic  # the graph the product runs
    assert detector["sha256"] == hashlib.sha256(dynamic).hexdigest()
    settings = get_detector("centerface").settings()
    assert (detector["threshold"], detector["nms_iou"], detector["input"]["resize_long_side_to"]) == (
        settings["threshold"], settings["nms_iou"], settings["input_long_side"])
    assert (detector["input"]["border_fraction"], detector["input"]["upscale"], detector["input"]["extra_long_sides"],
            detector["input"]["zoom_below"]) == (settings["pad"], settings["upscale"], settings["extra_long_sides"],
                                                 settings["zoom_below"])
    assert (detector["input"]["extra_max_zoom"], detector["input"]["extra_max_face"]) == (
        settings["extra_max_zoom"], settings["extra_max_face"]) == (2.0, 96)


def test_batch_axis_is_dynamic(shipped_export, datasets_root) -> None:
    backend = OnnxClassifier(shipped_export)
    crops = held_out_crops(SHIPPED, datasets_root, per_class=4)
    batched = backend.predict_proba(crops)
    singles = np.concatenate([backend.predict_proba([crop]) for crop in crops])
    assert np.abs(batched - singles).max() < 1e-5
    assert backend.predict_proba([]).shape == (0, 2)


def test_exported_pipeline_finds_and_labels_faces_like_the_product(shipped_export, datasets_root) -> None:
    split = load_split(SHIPPED)["test"]
    dataset = json.loads((SHIPPED / "metadata.json").read_text())["dataset"]
    canvas = Image.new("RGB", (640, 480), (96, 120, 140))
    for cls, x in (("with_mask", 40), ("without_mask", 380)):
        path = next(p for r in split if r.startswith(f"{cls}/") and (p := locate_split_file(dataset, r)))
        canvas.paste(load_rgb(path).resize((200, 200)), (x, 140))
    frame = np.asarray(canvas)
    product = FacePipeline(Predictor(load_model(SHIPPED), precision="fp32"), get_detector("centerface"))
    exported = load_exported_pipeline(shipped_export)
    expected, found = product.predict(frame), exported.predict(frame)
    assert sorted(f.label for f in found) == ["with_mask", "without_mask"]
    assert [(f.box, f.label) for f in found] == [(f.box, f.label) for f in expected]
    assert max(abs(a.p_with_mask - b.p_with_mask) for a, b in zip(found, expected, strict=True)) <= TOLERANCE


@pytest.mark.parametrize("name", ["tiny-cnn", "tiny-mlp"])
def test_tiny_trained_models_round_trip(name, tiny_models_dir, tmp_path, datasets_root) -> None:
    report = export_model(str(tiny_models_dir / name), tmp_path / "out")
    assert report.labels_agree and report.max_prob_diff <= TOLERANCE
    assert_round_trip(tiny_models_dir / name, report.output, held_out_crops(tiny_models_dir / name, datasets_root))


def test_an_efficientnet_lite0_round_trips(tiny_efficientnet_lite0, tmp_path, datasets_root) -> None:
    """timm's network (TensorFlow's asymmetric 'same' padding, normalisation with its activation) exports and
    answers as PyTorch does, fine-tuned block included."""
    report = export_model(str(tiny_efficientnet_lite0), tmp_path / "out")
    assert report.labels_agree and report.max_prob_diff <= TOLERANCE
    assert_round_trip(tiny_efficientnet_lite0, report.output, held_out_crops(tiny_efficientnet_lite0, datasets_root))


@pytest.mark.slow
def test_a_three_class_model_round_trips(three_class_mobilenet, tmp_path, datasets_root) -> None:
    report = export_model(str(three_class_mobilenet), tmp_path / "out")
    assert report.labels_agree and report.max_prob_diff <= TOLERANCE
    crops = held_out_crops(three_class_mobilenet, datasets_root, per_class=4)
    assert len(crops) == 12  # four of each class, incorrect_mask included
    assert_round_trip(three_class_mobilenet, report.output, crops)
    exported = json.loads((report.output / "metadata.json").read_text())
    assert exported["classes"] == ["without_mask", "with_mask", "incorrect_mask"]


def readme_snippet() -> str:
    """The onnxruntime snippet of docs/export.md: the python block that reads exported/metadata.json."""
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "docs" / "export.md").read_text(), flags=re.S)
    return next(block for block in blocks if "exported/metadata.json" in block)


def test_readme_snippet_classifies_a_face_crop_with_the_exported_folder_only(shipped_export, tmp_path,
                                                                             datasets_root) -> None:
    snippet = readme_snippet()
    assert len(snippet.strip().splitlines()) <= 10
    assert "maskdet" not in snippet and "torch" not in snippet
    shutil.copytree(shipped_export, tmp_path / "exported")
    pytorch = Predictor(load_model(SHIPPED), precision="fp32")
    for crop in held_out_crops(SHIPPED, datasets_root, per_class=1):
        crop.save(tmp_path / "face.jpg", quality=95)
        row = pytorch.predict_proba([load_rgb(tmp_path / "face.jpg")])[0]  # what the snippet reads
        done = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        label, probability = done.stdout.split()
        assert label == CLASSES[int(row.argmax())]
        assert abs(float(probability) - row.max()) <= TOLERANCE


# --- bad input -----------------------------------------------------------------------------------

def test_unknown_model_and_existing_folder_are_refused_with_exit_2(tmp_path, capsys, shipped_export) -> None:
    assert main(["export", "--model", "no-such-model", "--output", str(tmp_path / "a")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    assert main(["export", "--model", str(SHIPPED), "--output", str(existing)]) == 2
    assert "--force" in capsys.readouterr().err
    assert [p.name for p in existing.iterdir()] == ["keep.txt"]
    assert main(["export", "--model", str(SHIPPED), "--format", "tflite", "--output", str(tmp_path / "b")]) == 2
    assert "unknown export format" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing"]  # no staging folder left behind


@pytest.mark.parametrize("folder", ["documents", "symlink", "export_plus_a_file", "forged_card"])
def test_force_replaces_only_an_earlier_export(folder, tmp_path, capsys, shipped_export) -> None:
    earlier = tmp_path / "earlier"
    shutil.copytree(shipped_export, earlier)
    target = tmp_path / folder
    if folder == "documents":  # a user's folder: --force must never delete it
        target.mkdir()
        (target / "thesis.txt").write_text("mine")
    elif folder == "symlink":
        target.symlink_to(earlier, target_is_directory=True)
    elif folder == "export_plus_a_file":
        shutil.copytree(shipped_export, target)
        (target / "notes.txt").write_text("mine")
    else:
        target.mkdir()
        (target / "metadata.json").write_text(json.dumps({"format": "something-else"}))
    before = sorted((p.relative_to(tmp_path), p.read_bytes()) for p in tmp_path.rglob("*") if p.is_file())
    assert main(["export", "--model", str(SHIPPED), "--output", str(target), "--force"]) == 2
    err = capsys.readouterr().err
    assert "is not an earlier export" in err and err.count("\n") == 1
    assert sorted((p.relative_to(tmp_path), p.read_bytes()) for p in tmp_path.rglob("*") if p.is_file()) == before
    assert main(["export", "--model", str(SHIPPED), "--output", str(earlier), "--force"]) == 0  # ours: replaced
    assert {p.name for p in earlier.iterdir()} == FILES
    assert json.loads((earlier / "metadata.json").read_text())["export"]["created"]


class CumulativeMaxHead(nn.Module):
    """A head using ``cummax``, which has no ONNX operator."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.cummax(x.flatten(1), dim=1)[0][:, -4:])


def build_unexportable(spec: zoo.ModelSpec, options: zoo.BuildOptions) -> zoo.MaskClassifier:
    return zoo.MaskClassifier(nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1)), CumulativeMaxHead())


def test_an_arch_that_cannot_be_exported_is_refused_and_nothing_is_written(monkeypatch, tmp_path, tiny_dataset,
                                                                           capsys) -> None:
    spec = zoo.ModelSpec(name="cummax_net", title="cummax", description="not exportable",
                         input=zoo.InputConfig(size=32, channels=3, mean=(0.5,) * 3, std=(0.5,) * 3),
                         builder=build_unexportable)
    monkeypatch.setitem(zoo._REGISTRY, spec.name, spec)
    val = sorted(f"{p.parent.name}/{p.name}" for p in tiny_dataset.rglob("*.jpg"))
    folder = save_model(spec.build(), {"arch": spec.name, "input": spec.input.to_json(),
                                       "dataset": {"path": str(tiny_dataset)}},
                        "unexportable", split={"train": [], "val": val, "test": []}, directory=tmp_path / "models")
    out = tmp_path / "out"
    with pytest.raises(ExportError, match="'cummax_net' cannot be exported to ONNX"):
        export_model(str(folder), out)
    assert main(["export", "--model", str(folder), "--output", str(out)]) == 2
    assert "cannot be exported" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models"]


@pytest.mark.slow
def test_a_cascade_round_trips(cascade_mobilenet, tmp_path, datasets_root) -> None:
    report = export_model(str(cascade_mobilenet), tmp_path / "out")
    assert report.labels_agree and report.max_prob_diff <= TOLERANCE
    assert_round_trip(cascade_mobilenet, report.output, held_out_crops(cascade_mobilenet, datasets_root, per_class=4))
