"""The crop cutter on a hand-made boxed folder: real face photos pasted into canvases, with
annotations written by hand. Crops must be exactly what the pipeline classifies at inference,
crops of one photo stay in one split, and the training split honours it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from maskdet.training import crops as crops_module
from maskdet.data.annotations import load_scene_set
from maskdet.evaluation.scenes.evaluate import describe_detector
from maskdet.evaluation.scenes.matching import match_detections
from maskdet.training.crops import CropSettings, build_crop_set
from maskdet.data.datasets import DATASET_MANIFEST, DatasetError, load_catalog
from maskdet.inference.detector import Face, crop_faces, get_detector
from maskdet.data.images import load_rgb
from maskdet.data.split import make_split

FACE = 200  # pasted face size; faces sit at x = 60 and x = 360, y = 120
BACKGROUNDS = [(90, 110, 100), (200, 60, 40), (30, 40, 160), (220, 220, 60), (20, 20, 20), (240, 240, 240)]


def _voc(objects: list[tuple[str, tuple[int, int, int, int]]]) -> str:
    body = "".join(
        f"<object><name>{name}</name><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
        f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for name, b in objects
    )
    return f"<annotation><size><width>640</width><height>480</height></size>{body}</annotation>"


def _face_box(x: int) -> tuple[int, int, int, int]:
    """The pasted photo less a 5% border: roughly where its face is."""
    return (x + 10, 130, x + FACE - 10, 120 + FACE - 10)


@pytest.fixture(scope="module")
def boxed(tmp_path_factory, datasets_root) -> Path:
    root = tmp_path_factory.mktemp("boxed")
    (root / "images").mkdir()
    (root / "annotations").mkdir()
    masked = sorted((datasets_root / "face-mask-4k" / "with_mask").glob("1_0_*.jpg"))
    bare = sorted((datasets_root / "face-mask-4k" / "without_mask").glob("0_0_*.jpg"))
    for index, background in enumerate(BACKGROUNDS):
        canvas = Image.new("RGB", (640, 480), background)
        canvas.paste(load_rgb(masked[index * 7]).resize((FACE, FACE)), (60, 120))
        canvas.paste(load_rgb(bare[index * 7]).resize((FACE, FACE)), (360, 120))
        canvas.save(root / "images" / f"photo{index}.jpg", quality=95)
        objects = [("with_mask", _face_box(60)), ("WithoutMask", _face_box(360))]
        if index == 0:
            objects += [("face_shield", (10, 10, 50, 50)),  # an unknown class, in an empty corner
                        ("without_mask", (560, 380, 620, 440))]  # no face there: the detector cannot find it
        (root / "annotations" / f"photo{index}.xml").write_text(_voc(objects))
    (root / "annotations" / "broken.xml").write_text("<annotation><object>")
    return root


@pytest.fixture
def built(boxed, tiny_dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(crops_module, "crop_sets_dir", lambda: tmp_path / "crops")
    settings = CropSettings(occlude=1.0, fractions=(0.5, 0.25, 0.25))
    return build_crop_set([boxed], "test-set", include=[tiny_dataset], settings=settings, command="cut it")


def test_faces_are_cut_as_the_pipeline_cuts_them(built, boxed):
    detector = get_detector("centerface")
    folder = load_scene_set(boxed)
    source = built.manifest["sources"][0]
    from_detector = 0
    for photo in folder.images:
        image = load_rgb(boxed / photo.relpath)
        faces = detector.detect(np.asarray(image))
        known = [i for i, f in enumerate(photo.faces) if f.label is not None]
        matching = match_detections([f.box for f in faces], [f.score for f in faces], [photo.faces[i].box for i in known])
        matches = {known[f]: d for d, f in enumerate(matching.face_of) if f is not None}
        for index, face in enumerate(photo.faces):
            path = built.path / str(face.label) / "boxed0" / f"{Path(photo.relpath).stem}__{index:03d}.png"
            if face.label is None:
                assert not list(built.path.rglob(path.name))
                continue
            box = faces[matches[index]].box if index in matches else face.box
            from_detector += index in matches
            expected = crop_faces(image, [Face(box=box, score=1.0)], margin=0.2)[0]
            assert np.array_equal(np.asarray(Image.open(path).convert("RGB")), np.asarray(expected)), path
    assert from_detector >= 8  # most pasted faces are found; the crop is then the detector's
    assert source["crops"]["skipped face_shield"] == 1
    assert source["crops"]["without_mask from annotation"] >= 1  # the empty-corner "face"
    assert [name for name, _ in source["errors"]] == ["annotations/broken.xml"]
    assert source["faces"] == {"with_mask": 6, "without_mask": 7, "face_shield": 1}


def test_crops_of_one_photo_share_a_split_and_training_keeps_it(built, tiny_dataset):
    manifest = json.loads((built.path / DATASET_MANIFEST).read_text())
    assert manifest["command"] == "cut it"
    assert manifest["settings"]["detector"] == describe_detector(get_detector("centerface"))  # the pipeline's default
    split_of_photo: dict[str, set[str]] = {}
    for relpath, split in manifest["split"].items():
        if "/boxed0" in relpath:
            split_of_photo.setdefault(Path(relpath).name.split("__")[0], set()).add(split)
    assert len(split_of_photo) == 6 and all(len(s) == 1 for s in split_of_photo.values())
    assert {next(iter(s)) for s in split_of_photo.values()} == {"train", "val", "test"}
    # Every bare crop has an occluded copy (occlude=1.0), labelled without_mask, in its photo's split.
    for relpath, split in manifest["split"].items():
        if relpath.startswith("without_mask/boxed0/"):
            assert manifest["split"][relpath.replace("boxed0/", "boxed0-occluded/")] == split
    # The training engine's split of the crop folder is the declared one ...
    training = make_split(load_catalog(built.path), seed=0)
    for name in ("train", "val", "test"):
        assert sorted(getattr(training, name)) == sorted(r for r, s in manifest["split"].items() if s == name)
    # ... and the linked ImageFolder keeps the split it gets on its own.
    alone = make_split(load_catalog(tiny_dataset), seed=0)
    linked_test = {r.split("/", 2)[2] for r in training.test if r.split("/")[1] == tiny_dataset.name}
    assert linked_test == set(alone.test)
    assert all((built.path / r).is_symlink() for r in training.train if r.split("/")[1] == tiny_dataset.name)


def test_bad_folders_and_names_are_refused(boxed, tmp_path, monkeypatch):
    monkeypatch.setattr(crops_module, "crop_sets_dir", lambda: tmp_path / "crops")
    with pytest.raises(DatasetError, match="images/"):
        build_crop_set([tmp_path], "x")
    with pytest.raises(DatasetError, match="plain folder name"):
        build_crop_set([boxed], "../escape")
    assert not (tmp_path / "crops").exists() or not any((tmp_path / "crops").iterdir())


def test_a_model_trained_on_a_crop_set_records_its_sources(built, isolated_models_dir, boxed, tiny_dataset,
                                                           monkeypatch):
    from maskdet.training.loop import TrainConfig, fit

    result = fit(TrainConfig(arch="mlp", data=built.path, epochs=1, name="on-crops", command="train it"))
    dataset = result.metadata["dataset"]
    assert [Path(s["path"]).name for s in dataset["sources"]] == [boxed.name, tiny_dataset.name]
    assert all(s["fingerprint"] for s in dataset["sources"]) and dataset["command"] == "cut it"
    for name, counts in built.manifest["counts"].items():
        assert result.metadata["split_counts"][name] == {c: counts.get(c, 0) for c in ("without_mask", "with_mask")}
    assert all("crop_origins" not in s for s in dataset["sources"])  # per-crop records go to crops.json, not the card
    # Its folder says what each held-out cut crop is: cut again from its photo, it is the crop, pixel for pixel.
    from maskdet.evaluation.errors import Recut
    from maskdet.zoo.folders import ModelFolder

    monkeypatch.setenv("MASKDET_DATA_ROOT", str(boxed.parent))
    provenance = ModelFolder.at(result.path).crops()
    held_out = {r for r, s in built.manifest["split"].items() if s in ("val", "test") and f"/{boxed.name}" in r}
    assert provenance is not None and set(provenance.crops) == held_out and provenance.margin == 0.2
    for relpath, origin in provenance.crops.items():
        assert origin.source == boxed.name and (boxed / origin.photo).is_file() and origin.occluded == ("-occluded/" in relpath)
        if not origin.occluded:
            expected = np.asarray(Image.open(built.path / relpath).convert("RGB"))
            assert np.array_equal(np.asarray(Recut.of(origin, provenance.margin).cut()), expected), relpath


def test_an_older_crop_set_gets_its_crop_origins_by_detecting_its_held_out_photos_again(built) -> None:
    """A set cut before crop origins were kept (the shipped default's): the photos are detected again with the
    recorded setting, and the origins agree with the ones a new set records."""
    from maskdet.training.crops import crop_provenance

    manifest = json.loads((built.path / DATASET_MANIFEST).read_text())
    recorded = manifest["sources"][0].pop("crop_origins")
    (built.path / DATASET_MANIFEST).write_text(json.dumps(manifest))
    held_out = [r for r, s in manifest["split"].items() if s == "test"]
    again = crop_provenance(built.path, held_out)
    assert again.crops and {r: o.to_json() for r, o in again.crops.items()} == {
        r: recorded[r] for r in held_out if r in recorded}
    Image.new("RGB", (8, 8)).save(built.path / next(r for r in again.crops if "-occluded/" not in r))
    with pytest.raises(DatasetError, match="differs from the crop"):
        crop_provenance(built.path, held_out)


def test_split_files_of_a_crop_set_are_found_without_the_cached_crop_set(datasets_root, monkeypatch, tmp_path) -> None:
    """A fresh machine has no cached crop set: the linked-in face-mask-4k part is found under the data root."""
    from maskdet.training.crops import locate_split_file

    monkeypatch.setenv("MASKDET_DATA_ROOT", str(datasets_root))
    real = sorted((datasets_root / "face-mask-4k" / "with_mask").iterdir())[0]
    dataset = {"path": str(tmp_path / "gone" / "kaggle-scenes-face-mask-4k"),
               "sources": [{"path": "../shared/datasets/kaggle-scenes"}, {"path": "../shared/datasets/face-mask-4k"}]}
    assert locate_split_file(dataset, f"with_mask/face-mask-4k/with_mask/{real.name}") == real
    assert locate_split_file(dataset, "with_mask/kaggle-scenes/maksssksksss1__000.png") is None  # cut crops: gone
    assert locate_split_file(dataset, "with_mask/elsewhere/with_mask/x.jpg") is None


def test_the_default_cards_crops_can_be_cut_again_with_its_recorded_detector_setting() -> None:
    """The shipped default's card names its data portably (no path into one machine's cache) and the command
    it records selects the detector settings it records (480 px, peaks above 0.35)."""
    import shlex

    from maskdet.cli import build_parser
    from maskdet.settings import REPO_ROOT
    from maskdet.zoo.folders import read_metadata

    card = read_metadata(REPO_ROOT / "models" / "mobilenet_v2")
    assert "/.cache/" not in json.dumps(card) and card["dataset"]["path"].startswith("$MASKDET_CACHE_DIR/crops/")
    args = build_parser().parse_args(shlex.split(card["dataset"]["command"])[3:])
    recorded = card["dataset"]["settings"]["detector"]
    assert get_detector(args.detector).settings().items() >= {k: v for k, v in recorded.items() if k != "name"}.items()
