"""Boxed photos on disk: ``images/`` plus Pascal VOC ``annotations/*.xml`` or YOLO ``labels/*.txt``.

A *scene set* is read once, without decoding any pixels but YOLO headers (their boxes are
relative to the image size). Every file that cannot be used is listed, not raised:
annotation files that do not parse or hold impossible boxes, annotations without an image and
images without an annotation (VOC), class names that mean none of ``with_mask``, ``without_mask``
and ``incorrect_mask`` (``mask_weared_incorrect``, ``with_incorrect_mask``, ... are accepted as it). Faces of such an unknown class are either mapped to a known class by the
caller (``class_map``) or kept as *ignored* regions: the evaluator counts them, and a detection
on one is neither a hit nor a false positive. A set of which not one photo can be used is refused
with the reasons. Annotations may come from strangers: XML is read with defusedxml (no entities,
no DTD), YAML with a safe loader that refuses aliases, both size-bounded.

Class names are normalised as everywhere else (:func:`maskdet.data.datasets.normalize_class_name`):
``with_mask``, ``WithMask``, ``mask``, ``no_mask``, ... all work.
"""

from __future__ import annotations

import logging
import math
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import defusedxml.ElementTree as SafeElementTree
import yaml
from defusedxml import DefusedXmlException
from PIL import Image, UnidentifiedImageError

from maskdet.data.datasets import DatasetError, normalize_class_name
from maskdet.data.images import is_candidate_file
from maskdet.settings import KNOWN_CLASSES
from maskdet.store import fingerprint_files

logger = logging.getLogger(__name__)

IMAGES_DIR = "images"
VOC_DIR = "annotations"
YOLO_DIR = "labels"
YOLO_CLASS_FILES = ("classes.txt", "labels/classes.txt", "obj.names")
MAX_ANNOTATION_BYTES = 4 * 1024 * 1024  # a VOC file of a crowd photo is a few kB
MAX_DATA_YAML_BYTES = 64 * 1024  # a YOLO data.yaml names a few classes and paths: well under 1 kB
MAX_PROBLEMS_SHOWN = 3  # problems quoted when a whole set is refused

Box = tuple[float, float, float, float]


class SceneSetError(DatasetError):
    """The folder is not a boxed-photo set at all (no ``images/``, no annotations)."""


@dataclass(frozen=True)
class BoxedFace:
    """One annotated face: ``box`` = (x0, y0, x1, y1) in image pixels, ``label`` a canonical class or None.

    ``label`` is None for a face of a class that is neither known nor mapped (``raw_label`` keeps
    the name as written): the evaluator ignores it.
    """

    box: Box
    label: str | None
    raw_label: str


@dataclass(frozen=True)
class SceneImage:
    """One photo and its faces (an empty list is a photo with no face in it)."""

    relpath: str  # relative to the set's root, e.g. images/1-photo.jpg
    faces: tuple[BoxedFace, ...]


@dataclass
class SceneSet:
    """The usable photos of a folder, what could not be used, and the unknown class names met."""

    root: Path
    format: str  # "voc" or "yolo"
    images: list[SceneImage]
    problems: list[tuple[str, str]] = field(default_factory=list)  # (relpath, reason)
    unknown_classes: Counter[str] = field(default_factory=Counter)  # raw name -> faces left out (ignored)
    mapped_classes: Counter[str] = field(default_factory=Counter)  # raw name -> faces mapped by class_map
    fingerprint: str = ""

    @property
    def faces(self) -> int:
        """Faces of a known (or mapped) class."""
        return sum(1 for image in self.images for face in image.faces if face.label is not None)


class _Malformed(ValueError):
    """One annotation file cannot be used; the message says why."""


def _resolve_class(raw: str, class_map: Mapping[str, str]) -> tuple[str | None, bool]:
    """(canonical class or None, whether ``class_map`` decided it)."""
    if raw in class_map:
        return normalize_class_name(class_map[raw]), True
    try:
        return normalize_class_name(raw), False
    except DatasetError:
        return None, False


def validate_class_map(class_map: Mapping[str, str]) -> dict[str, str]:
    """``class_map`` with every target checked to be a known class name; raises DatasetError otherwise."""
    checked = {}
    for source, target in class_map.items():
        try:
            checked[source] = normalize_class_name(target)
        except DatasetError:
            raise DatasetError(
                f"cannot map class {source!r} to {target!r}: the target must be one of {', '.join(KNOWN_CLASSES)}"
            ) from None
    return checked


def _check_box(box: Box) -> Box:
    x0, y0, x1, y1 = box
    if not all(math.isfinite(v) for v in box):
        raise _Malformed(f"box {list(box)} is not finite")
    if x1 <= x0 or y1 <= y0:
        raise _Malformed(f"box {list(box)} has no area (xmax <= xmin or ymax <= ymin)")
    return x0, y0, x1, y1


def _number(element, tag: str) -> float:
    text = element.findtext(tag)
    if text is None:
        raise _Malformed(f"<{tag}> missing")
    try:
        return float(text.strip())
    except ValueError:
        raise _Malformed(f"<{tag}> is not a number ({text.strip()[:20]!r})") from None


def parse_voc(data: bytes) -> tuple[str, list[tuple[str, Box]]]:
    """(``<filename>`` or "", [(class name as written, box)]) of one Pascal VOC annotation.

    Raises ``ValueError`` with a readable message for XML that does not parse, declares entities
    or a DTD (read with defusedxml: no entity expansion, no external resources), or an object
    without a usable name or box.
    """
    try:
        root = SafeElementTree.fromstring(data)
    except SafeElementTree.ParseError as exc:
        raise _Malformed(f"not well-formed XML ({exc})") from None
    except DefusedXmlException as exc:
        raise _Malformed(f"refused XML: {exc}") from None
    if root.tag != "annotation":
        raise _Malformed(f"root element is <{root.tag}>, expected <annotation>")
    objects = []
    for index, element in enumerate(root.iter("object"), start=1):
        name = (element.findtext("name") or "").strip()
        if not name:
            raise _Malformed(f"object {index} has no <name>")
        bndbox = element.find("bndbox")
        if bndbox is None:
            raise _Malformed(f"object {index} ({name}) has no <bndbox>")
        try:
            box = _check_box(tuple(_number(bndbox, tag) for tag in ("xmin", "ymin", "xmax", "ymax")))
        except _Malformed as exc:
            raise _Malformed(f"object {index} ({name}): {exc}") from None
        objects.append((name, box))
    return (root.findtext("filename") or "").strip(), objects


def parse_yolo(text: str, classes: list[str], width: int, height: int) -> list[tuple[str, Box]]:
    """[(class name, box in pixels)] of one YOLO label file (``class cx cy w h``, relative to the image)."""
    objects = []
    for number, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 5:
            raise _Malformed(f"line {number}: expected 'class cx cy w h', got {len(parts)} fields")
        try:
            index = int(parts[0])
            cx, cy, w, h = (float(v) for v in parts[1:])
        except ValueError:
            raise _Malformed(f"line {number}: not numbers ({line.strip()[:40]!r})") from None
        if not 0 <= index < len(classes):
            raise _Malformed(f"line {number}: class {index} is not in the classes list ({len(classes)} names)")
        box = ((cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height)
        objects.append((classes[index], _check_box(box)))
    return objects


def _images_by_stem(images_dir: Path) -> dict[str, Path]:
    files = sorted(p for p in images_dir.iterdir() if is_candidate_file(p))
    return {p.stem: p for p in files}


class _NoAliasLoader(yaml.SafeLoader):
    """PyYAML's safe loader refusing aliases (``*name``): their expansion grows exponentially with
    nesting ("billion laughs": a few hundred bytes become gigabytes of lists)."""

    def compose_node(self, parent, index):  # noqa: ANN001 (PyYAML's signature)
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, f"alias *{event.anchor} refused (write the values out)",
                                              event.start_mark)
        return super().compose_node(parent, index)


def _data_yaml_classes(path: Path) -> list[str] | None:
    """The ``names`` of a YOLO ``data.yaml`` (a list, or a mapping index -> name), or None when it has none.

    The file is read size-bounded with a safe loader that refuses aliases; anything else than a
    mapping is refused with :class:`SceneSetError`.
    """
    if path.stat().st_size > MAX_DATA_YAML_BYTES:
        raise SceneSetError(f"{path} is larger than {MAX_DATA_YAML_BYTES // 1024} kB: not a YOLO data.yaml")
    try:
        document = yaml.load(path.read_text(errors="replace"), Loader=_NoAliasLoader)  # noqa: S506 (safe subclass)
    except yaml.YAMLError as exc:
        raise SceneSetError(f"{path} is not valid YAML: {' '.join(str(exc).split())}") from None
    if document is None:
        return None
    if not isinstance(document, dict):
        raise SceneSetError(f"{path} holds a {type(document).__name__}, expected a mapping with names: [...]")
    names = document.get("names")
    if isinstance(names, dict):
        return [str(names[k]) for k in sorted(names, key=str)]
    if isinstance(names, list):
        return [str(n) for n in names]
    if names is not None:
        raise SceneSetError(f"{path}: names must be a list or a mapping index -> name, got {type(names).__name__}")
    return None


def _yolo_classes(root: Path) -> list[str]:
    for name in YOLO_CLASS_FILES:
        path = root / name
        if path.is_file():
            return [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    yaml_path = root / "data.yaml"
    names = _data_yaml_classes(yaml_path) if yaml_path.is_file() else None
    if names is not None:
        return names
    raise SceneSetError(
        f"{root / YOLO_DIR} holds YOLO labels but no class list: add classes.txt (one name a line, in index order)"
    )


def _fingerprint(root: Path, folders: list[Path]) -> str:
    """Content fingerprint (:func:`maskdet.store.fingerprint_files`) of every file of the set: the same
    photos and boxes give the same key wherever they lie; it changes when any file does."""
    relpaths = []
    for folder in folders:
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames.sort()
            relpaths.extend((Path(dirpath) / name).relative_to(root).as_posix() for name in sorted(filenames))
    return fingerprint_files(root, relpaths)


def _read_annotation(path: Path) -> bytes:
    if path.stat().st_size > MAX_ANNOTATION_BYTES:
        raise _Malformed(f"file is larger than {MAX_ANNOTATION_BYTES // 1024**2} MB")
    return path.read_bytes()


def scene_fingerprint(root: str | Path) -> str:
    """The fingerprint of a boxed-photo folder (each file hashed once per process); raises SceneSetError for a bad folder."""
    root = Path(root).expanduser()
    folders = [root / d for d in (IMAGES_DIR, VOC_DIR, YOLO_DIR) if (root / d).is_dir()]
    if not (root / IMAGES_DIR).is_dir():
        raise SceneSetError(_layout_message(root))
    return _fingerprint(root, folders)


def is_scene_set(folder: Path) -> bool:
    """Whether ``folder`` has the boxed-photo layout (``images/`` plus ``annotations/`` or ``labels/``)."""
    return (folder / IMAGES_DIR).is_dir() and any((folder / d).is_dir() for d in (VOC_DIR, YOLO_DIR))


def list_scene_sets(root: Path) -> list[Path]:
    """Sub-folders of ``root`` with the boxed-photo layout, sorted by name."""
    if not root.is_dir():
        return []
    return [p for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".") and is_scene_set(p)]


def _layout_message(root: Path) -> str:
    return (f"{root} is not a folder of boxed photos: expected images/ with annotations/ (Pascal VOC XML) "
            "or labels/ (YOLO .txt with a classes.txt)")


class _Collector:
    """Accumulates images, problems and class counts while files are read."""

    def __init__(self, root: Path, class_map: Mapping[str, str]) -> None:
        self.root = root
        self.class_map = class_map
        self.images: list[SceneImage] = []
        self.problems: list[tuple[str, str]] = []
        self.unknown: Counter[str] = Counter()
        self.mapped: Counter[str] = Counter()

    def add(self, image: Path, objects: list[tuple[str, Box]]) -> None:
        faces = []
        for raw, box in objects:
            label, mapped = _resolve_class(raw, self.class_map)
            if label is None:
                self.unknown[raw] += 1
            elif mapped:
                self.mapped[raw] += 1
            faces.append(BoxedFace(box=box, label=label, raw_label=raw))
        self.images.append(SceneImage(relpath=image.relative_to(self.root).as_posix(), faces=tuple(faces)))

    def problem(self, path: Path, reason: str) -> None:
        self.problems.append((path.relative_to(self.root).as_posix(), reason))


def _collect_voc(collector: _Collector, images: dict[str, Path]) -> None:
    annotated = set()
    for path in sorted((collector.root / VOC_DIR).glob("*.xml")):
        try:
            filename, objects = parse_voc(_read_annotation(path))
        except (_Malformed, OSError) as exc:
            collector.problem(path, f"malformed annotation: {exc}")
            annotated.add(path.stem)  # the image is accounted for by this problem
            continue
        image = images.get(path.stem) or images.get(Path(filename).stem)
        if image is None:
            collector.problem(path, f"no image for this annotation in {IMAGES_DIR}/")
            continue
        annotated.add(image.stem)
        collector.add(image, objects)
    for stem, image in images.items():
        if stem not in annotated:
            collector.problem(image, f"no annotation file {VOC_DIR}/{stem}.xml")


def _collect_yolo(collector: _Collector, images: dict[str, Path]) -> None:
    classes = _yolo_classes(collector.root)
    labels = collector.root / YOLO_DIR
    for stem, image in images.items():
        label_file = labels / f"{stem}.txt"
        try:
            with Image.open(image) as header:  # the size only: YOLO boxes are relative to it
                width, height = header.size
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            collector.problem(image, f"unreadable image ({exc})")
            continue
        try:  # YOLO convention: an image without a label file shows no object
            text = _read_annotation(label_file).decode(errors="replace") if label_file.is_file() else ""
            objects = parse_yolo(text, classes, width, height)
        except (_Malformed, OSError) as exc:
            collector.problem(label_file, f"malformed labels: {exc}")
            continue
        collector.add(image, objects)


def load_scene_set(root: str | Path, class_map: Mapping[str, str] | None = None) -> SceneSet:
    """Read the boxed-photo folder ``root`` (VOC ``annotations/`` preferred over YOLO ``labels/``).

    ``class_map`` maps class names as written (e.g. ``mask_weared_incorrect``) to a known class;
    other unknown names are counted in :attr:`SceneSet.unknown_classes` and their faces ignored.
    Raises :class:`SceneSetError` when the folder has no images/ or no annotations at all, when not
    one photo can be used (the message quotes the first reasons), or for a YOLO class list that cannot
    be read (a ``data.yaml`` that is too large, invalid, not a mapping or uses aliases).
    """
    root = Path(root).expanduser()
    class_map = validate_class_map(class_map or {})
    if not root.is_dir():
        raise SceneSetError(f"{root} is not an existing folder")
    images_dir = root / IMAGES_DIR
    if not images_dir.is_dir():
        raise SceneSetError(_layout_message(root))
    images = _images_by_stem(images_dir)
    collector = _Collector(root, class_map)
    if (root / VOC_DIR).is_dir():
        fmt = "voc"
        _collect_voc(collector, images)
    elif (root / YOLO_DIR).is_dir():
        fmt = "yolo"
        _collect_yolo(collector, images)
    else:
        raise SceneSetError(_layout_message(root))
    if not collector.images and not collector.problems:
        raise SceneSetError(f"{images_dir} holds no images")
    if not collector.images:  # nothing to evaluate: refuse with the reasons rather than score 0 photos
        shown = "; ".join(f"{relpath}: {reason}" for relpath, reason in collector.problems[:MAX_PROBLEMS_SHOWN])
        more = len(collector.problems) - MAX_PROBLEMS_SHOWN
        raise SceneSetError(f"{root} holds no usable annotated photo ({len(collector.problems)} problem(s)): {shown}"
                            + (f"; and {more} more" if more > 0 else ""))
    for relpath, reason in collector.problems:
        logger.info("scene set %s: %s: %s", root, relpath, reason)
    return SceneSet(root=root, format=fmt, images=collector.images, problems=collector.problems,
                    unknown_classes=collector.unknown, mapped_classes=collector.mapped,
                    fingerprint=scene_fingerprint(root))
