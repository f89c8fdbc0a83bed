"""Building small boxed-photo folders (images/ + Pascal VOC annotations/) for scene-evaluation tests."""

from __future__ import annotations

from pathlib import Path

from PIL import Image


def voc(filename: str, objects: list[tuple[str, tuple[int, int, int, int]]]) -> str:
    """A Pascal VOC annotation naming ``filename`` with one <object> per (class name, box)."""
    body = "".join(
        f"<object><name>{name}</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax>"
        "</bndbox></object>"
        for name, (x0, y0, x1, y1) in objects
    )
    return f"<annotation><filename>{filename}</filename>{body}</annotation>"


def grey(size: tuple[int, int] = (320, 240)) -> Image.Image:
    """A plain photo with no face in it."""
    return Image.new("RGB", size, (90, 100, 110))


def build_scene_folder(root: Path, photos: dict[str, tuple[Image.Image | bytes, str | None]]) -> Path:
    """images/NAME + annotations/STEM.xml for each entry (raw bytes are written as they are; annotation None =
    no XML file)."""
    (root / "images").mkdir(parents=True)
    (root / "annotations").mkdir()
    for name, (image, annotation) in photos.items():
        if isinstance(image, bytes):
            (root / "images" / name).write_bytes(image)
        else:
            image.save(root / "images" / name)
        if annotation is not None:
            (root / "annotations" / f"{Path(name).stem}.xml").write_text(annotation)
    return root
