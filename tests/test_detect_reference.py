"""CenterFace finds the same boxes and scores as before its graph edit and NMS moved to libraries.

``tests/fixtures/centerface_scenes_dev.json`` holds the faces the detector found on every
scenes-dev photo with the hand-written protobuf rewrite and the hand-written NMS (commit c3602a0),
for two settings: the default and a low threshold at the photos' own size (many overlapping peaks,
so NMS has real work). It was written with that code, not with the code under test::

    git show c3602a0:maskdet/inference/detector.py > /tmp/detect_c3602a0.py
    python tests/test_detect_reference.py /tmp/detect_c3602a0.py

Running the same command with ``maskdet/inference/detector.py`` regenerates it from the current code.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "centerface_scenes_dev.json"
SETTINGS = {
    "default": {"threshold": 0.35, "nms_iou": 0.3, "input_long_side": 480},
    "native-low-threshold": {"threshold": 0.2, "nms_iou": 0.3, "input_long_side": None},
}
SCORE_TOLERANCE = 1e-5
# The hand-written code ran one pass; later code adds passes by default: compare single passes.
SINGLE_PASS = {"extra_long_sides": (), "zoom_below": None}


def scenes_dev_photos(root: Path) -> list[Path]:
    return sorted(p for p in (root / "scenes-dev" / "images").iterdir() if p.suffix.lower() in {".jpg", ".png"})


def detect_all(detect_module: ModuleType, photos: list[Path]) -> dict[str, dict[str, list]]:
    """Setting name -> photo name -> [[x0, y0, x1, y1, score], ...] in the detector's order."""
    from maskdet.data.images import load_rgb

    images = {path.name: np.asarray(load_rgb(path)) for path in photos}
    found: dict[str, dict[str, list]] = {}
    for setting, kwargs in SETTINGS.items():
        accepted = inspect.signature(detect_module.CenterFaceDetector).parameters
        detector = detect_module.CenterFaceDetector(**kwargs, **{k: v for k, v in SINGLE_PASS.items() if k in accepted})
        found[setting] = {name: [[*face.box, face.score] for face in detector.detect(image)]
                          for name, image in images.items()}
    return found


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads(FIXTURE.read_text())


@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_boxes_and_scores_match_the_hand_written_implementation(datasets_root: Path, reference: dict,
                                                                setting: str) -> None:
    from maskdet.inference import detector as detect
    from maskdet.zoo.assets import AssetUnavailableError

    try:
        found = detect_all(detect, scenes_dev_photos(datasets_root))
    except AssetUnavailableError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CenterFace model unavailable: {exc}")
        pytest.skip(f"CenterFace model unavailable: {exc}")
    expected = reference["faces"][setting]
    assert sorted(found[setting]) == sorted(expected), "the scenes-dev photos changed"
    assert sum(map(len, expected.values())) > 50, "the reference should hold many faces"
    for name, faces in expected.items():
        got = found[setting][name]
        assert [f[:4] for f in got] == [f[:4] for f in faces], f"{setting} {name}: boxes differ"
        np.testing.assert_allclose([f[4] for f in got], [f[4] for f in faces], atol=SCORE_TOLERANCE,
                                   err_msg=f"{setting} {name}: scores differ")


def load_detect_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("maskdet_detect_under_test", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    from maskdet.settings import data_root

    source = Path(sys.argv[1])
    faces = detect_all(load_detect_module(source), scenes_dev_photos(data_root()))
    FIXTURE.parent.mkdir(exist_ok=True)
    FIXTURE.write_text(json.dumps({"settings": SETTINGS, "faces": faces}, indent=None) + "\n")
    print(f"wrote {FIXTURE}: " + ", ".join(f"{s} {sum(map(len, f.values()))} faces" for s, f in faces.items()))
