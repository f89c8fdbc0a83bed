"""Build the sample set shipped in ``maskdet/sample/`` from the kaggle-scenes photos the default model held out.

    python scripts/build_sample.py --data ../shared/datasets/kaggle-scenes

Which photos: the *test* photos of the boxed-photo source recorded in the shipped default's metadata
(``dataset.sources[].photo_split.test``): the default never trained on them nor chose anything with
them, so on a fresh machine the sample is honest unseen data for every shipped model (the other
shipped models were trained on face-mask-4k alone). Never scenes-dev or ilc-dev.

What: each annotated face the product's detector finds (IoU >= 0.5, as the scene evaluator matches)
is cut from the detector's box with the pipeline's margin (:func:`maskdet.inference.detector.crop_faces`),
scaled to at most ``--size`` px and saved as JPEG under ``sample-faces/<class>/``; faces smaller than
``--min-face`` px are left out. ``mask_weared_incorrect`` faces go to ``incorrect_mask/``. Then a
few photos with their Pascal VOC files go to ``sample-photos/`` (the Photo page's example photos).
The Kaggle "Face Mask Detection" set (andrewmvd) is CC0; so is the sample.
"""

from __future__ import annotations

import argparse
import json
import random
import shlex
import shutil
import sys
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from maskdet.data.annotations import load_scene_set  # noqa: E402
from maskdet.data.datasets import DATASET_MANIFEST  # noqa: E402
from maskdet.data.images import load_rgb  # noqa: E402
from maskdet.data.local import SAMPLE_ROOT  # noqa: E402
from maskdet.evaluation.scenes.matching import match_detections  # noqa: E402
from maskdet.inference.detector import Face, crop_faces, get_detector  # noqa: E402
from maskdet.store import write_json  # noqa: E402

INCORRECT = "incorrect_mask"
MARGIN = 0.2  # as maskdet.inference.pipeline.FacePipeline


def held_out_photos(model: Path, data: Path) -> list[str]:
    """The photos of ``data`` (by name) that ``model``'s training recorded in its test split."""
    metadata = json.loads((model / "metadata.json").read_text())
    for source in metadata["dataset"]["sources"]:
        if source.get("kind") == "boxed-photos" and Path(source["path"]).name == data.name:
            return sorted(source["photo_split"]["test"])
    raise SystemExit(f"{model} records no test photos of {data.name}")


def cut_faces(data: Path, photos: list[str], size: int, min_face: int) -> dict[str, list[tuple[str, object]]]:
    """Class folder -> [(file name, crop)] of every held-out face the detector finds."""
    scenes = {image.relpath: image for image in load_scene_set(data).images}
    detector = get_detector("centerface")
    crops: dict[str, list] = {"with_mask": [], "without_mask": [], INCORRECT: []}
    for relpath in photos:
        photo = scenes[relpath]
        image = load_rgb(data / relpath)
        detections = detector.detect(np.asarray(image))
        matching = match_detections([d.box for d in detections], [d.score for d in detections],
                                    [face.box for face in photo.faces])
        for detection, index in enumerate(matching.face_of):
            if index is None:
                continue
            face = photo.faces[index]
            x0, y0, x1, y1 = detections[detection].box
            if min(x1 - x0, y1 - y0) < min_face:
                continue
            crop = crop_faces(image, [Face(box=(x0, y0, x1, y1), score=1.0)], margin=MARGIN)[0]
            crop.thumbnail((size, size))
            crops[face.label or INCORRECT].append((f"{Path(relpath).stem}__{index:03d}.jpg", crop))
    return crops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "datasets" / "kaggle-scenes")
    parser.add_argument("--model", type=Path, default=REPO / "models" / "mobilenet_v2")
    parser.add_argument("--per-class", type=int, default=150)
    parser.add_argument("--incorrect", type=int, default=40)
    parser.add_argument("--photos", type=int, default=6)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--min-face", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    photos = held_out_photos(args.model, args.data)
    crops = cut_faces(args.data, photos, args.size, args.min_face)
    faces_dir, photos_dir = SAMPLE_ROOT / "sample-faces", SAMPLE_ROOT / "sample-photos"
    for folder in (faces_dir, photos_dir):
        shutil.rmtree(folder, ignore_errors=True)
    rng = random.Random(args.seed)
    counts = Counter()
    for cls, items in crops.items():
        keep = args.incorrect if cls == INCORRECT else args.per_class
        chosen = sorted(rng.sample(items, min(keep, len(items))), key=lambda item: item[0])
        (faces_dir / cls).mkdir(parents=True)
        for name, crop in chosen:
            crop.save(faces_dir / cls / name, quality=88)
        counts[cls] = len(chosen)

    # example photos: the held-out photos with the most faces of both classes, up to 640 px
    scenes = {image.relpath: image for image in load_scene_set(args.data).images}
    def mix(relpath: str) -> tuple[int, int]:
        labels = Counter(face.label for face in scenes[relpath].faces)
        return (min(labels["with_mask"], labels["without_mask"]) > 0, len(scenes[relpath].faces))
    chosen_photos = sorted(sorted(photos, key=mix, reverse=True)[: args.photos])
    for sub in ("images", "annotations"):
        (photos_dir / sub).mkdir(parents=True)
    for relpath in chosen_photos:
        shutil.copyfile(args.data / relpath, photos_dir / relpath)
        stem = Path(relpath).stem
        shutil.copyfile(args.data / "annotations" / f"{stem}.xml", photos_dir / "annotations" / f"{stem}.xml")

    command = "python scripts/build_sample.py " + shlex.join(sys.argv[1:])
    provenance = {"sources": ["Kaggle 'Face Mask Detection' (andrewmvd), CC0-1.0: the test photos of "
                              f"{args.data.name} held out by models/{args.model.name}"],
                  "licence": "CC0-1.0", "command": command}
    write_json(faces_dir / DATASET_MANIFEST, {**provenance, "counts": dict(counts)}, indent=1)
    write_json(photos_dir / DATASET_MANIFEST, {**provenance, "photos": chosen_photos}, indent=1)
    print(f"{dict(counts)} face crops from {len(photos)} held-out photos; {len(chosen_photos)} boxed photos")


if __name__ == "__main__":
    main()
