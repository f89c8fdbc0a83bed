"""ONNX export: the classifier, the CenterFace detector and a model card, checked before they are written.

The classifier is exported from the trained fp32 network as saved (not the folded bf16 copy the
product runs), with a softmax on top, so ``classifier.onnx`` maps a float32 NCHW batch normalised as
the card's ``input`` says to class probabilities in the card's ``classes`` order; the batch axis
is dynamic. ``detector.onnx`` is the CenterFace graph the product runs (the verified file with free
input height and width, :func:`maskdet.inference.detector.load_centerface_graph`), and the card records the
settings the product runs it with.

Before the folder appears, onnxruntime and PyTorch classify real face crops (validation images of the
model's own split) and must give identical labels and probabilities within :data:`MAX_PROB_DIFF`.
Everything is written into a staging folder next to the output and renamed into place, so an
interrupted or refused export leaves nothing half-written (and a replaced export intact until then).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
import os
import shutil
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from maskdet.zoo.folders import CheckpointError, LoadedModel, ModelFolder, operating_threshold
from maskdet.data.datasets import DatasetError, normalize_class_name
from maskdet.data.images import ImageDecodeError, load_rgb

logger = logging.getLogger(__name__)

FORMAT = "maskdet-onnx-export"
FORMAT_VERSION = 1
CLASSIFIER_FILE = "classifier.onnx"
DETECTOR_FILE = "detector.onnx"
METADATA_FILE = "metadata.json"
INPUT_NAME, OUTPUT_NAME = "input", "probabilities"
OPSET = 17
MAX_PROB_DIFF = 1e-3  # onnxruntime vs PyTorch fp32: the same arithmetic, so more than this is an exporter bug
CHECK_CROPS_PER_CLASS = 16


class ExportError(ValueError):
    """The export was refused or failed its check; nothing was written."""


@dataclass(frozen=True)
class ExportReport:
    """What an export wrote and how closely onnxruntime matched PyTorch."""

    output: Path
    model: str
    crops: int  # real face crops both runtimes classified
    max_prob_diff: float
    labels_agree: bool
    file_bytes: dict[str, int]


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def validation_crops(loaded: LoadedModel, per_class: int = CHECK_CROPS_PER_CLASS) -> list[Image.Image]:
    """Real face crops to check the export on: up to ``per_class`` validation images per class of the
    model's own split (spread over the split), read from its data set (:func:`maskdet.training.crops.locate_split_file`).

    Raises :class:`ExportError` when the split or its images are not available.
    """
    from maskdet.training.crops import locate_split_file

    split = loaded.folder.split()
    dataset = loaded.metadata.get("dataset") or {}
    crops = []
    for cls in loaded.metadata["classes"]:
        found = [path for rel in (split or {}).get("val", []) if _class_of(rel) == cls
                 and (path := locate_split_file(dataset, rel)) is not None]
        for path in found[:: max(1, len(found) // per_class)][:per_class]:
            try:
                crops.append(load_rgb(path))
            except ImageDecodeError as exc:
                logger.warning("check crop %s skipped: %s", path, exc.reason)
    if len(crops) < 2:
        raise ExportError(
            f"cannot check the export of {loaded.name} on real face crops: its split or its data set "
            f"({dataset.get('path')}) is not available here (set MASKDET_DATA_ROOT)"
        )
    return crops


def _class_of(relpath: str) -> str | None:
    """The canonical class of a split entry's class folder (``mask_weared_incorrect/x.png``: incorrect_mask)."""
    try:
        return normalize_class_name(relpath.split("/", 1)[0])
    except DatasetError:
        return None


def classifier_onnx(loaded: LoadedModel, example: torch.Tensor) -> bytes:
    """The fp32 network plus a softmax as ONNX bytes (dynamic batch); :class:`ExportError` if the arch cannot be."""
    network = torch.nn.Sequential(loaded.model.eval(), torch.nn.Softmax(dim=1)).eval()
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
            torch.onnx.export(
                network, (example,), buffer, dynamo=False, opset_version=OPSET, input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME], dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            )
        import onnx

        onnx.checker.check_model(onnx.load_from_string(buffer.getvalue()), full_check=True)
    except Exception as exc:  # noqa: BLE001 - the exporter raises many types; all mean "this arch does not export"
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ExportError(f"architecture {loaded.arch!r} cannot be exported to ONNX: {first}") from exc
    return buffer.getvalue()


def onnx_session(model: bytes | str | Path, threads: int = 0):
    """An onnxruntime CPU session (``threads`` 0 = onnxruntime's choice), quiet and without busy-waiting."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, sess_options=options, providers=["CPUExecutionProvider"])


def compare_runtimes(loaded: LoadedModel, model: bytes, crops: list[Image.Image]) -> tuple[float, bool]:
    """(max abs probability difference, labels identical) of onnxruntime vs PyTorch fp32 on ``crops``,
    run as one batch and one crop at a time (the batch axis must really be dynamic)."""
    batch = loaded.input.to_tensor(crops)
    with torch.inference_mode():
        reference = torch.softmax(loaded.model(batch), dim=1).numpy()
    session = onnx_session(model)
    whole = session.run([OUTPUT_NAME], {INPUT_NAME: batch.numpy()})[0]
    singles = np.concatenate([session.run([OUTPUT_NAME], {INPUT_NAME: row[None]})[0] for row in batch.numpy()])
    diff = float(max(np.abs(whole - reference).max(), np.abs(singles - reference).max()))
    agree = bool((whole.argmax(1) == reference.argmax(1)).all() and (singles.argmax(1) == reference.argmax(1)).all())
    return diff, agree


def product_detector() -> tuple[bytes, dict]:
    """(the CenterFace graph the product runs, its settings): the verified file with a free input size
    (:func:`maskdet.inference.detector.load_centerface_graph`) and the settings of the product's photo setting
    (``centerface``)."""
    from maskdet.inference.detector import get_detector, load_centerface_graph

    detector = get_detector("centerface")
    return load_centerface_graph(detector.model_path), detector.settings()


def detector_card(detector_bytes: bytes, settings: dict) -> dict:
    """How the product runs ``detector.onnx``: pre-processing, decoding and the settings of its default detector."""
    from maskdet.inference.detector import CENTERFACE_ASSET, ZOOM_FACTOR, CenterFaceDetector
    from maskdet.inference.pipeline import DEFAULT_MARGIN

    return {
        "file": DETECTOR_FILE,
        "name": CenterFaceDetector.name,
        "description": CENTERFACE_ASSET.description,
        "source_sha256": CENTERFACE_ASSET.sha256,
        "sha256": sha256_bytes(detector_bytes),
        "input": {"layout": "NCHW", "dtype": "float32", "colour": "RGB", "range": [0, 255], "normalised": False,
                  "resize_long_side_to": settings["input_long_side"], "pad_to_multiple_of": 32,
                  # a black border of this fraction of the long side first; never upscale when false; then the
                  # same again at each extra long side and, for a photo whose long side is at most zoom_below,
                  # at zoom_factor times its own size; an extra pass that would enlarge the image more than
                  # extra_max_zoom times is skipped, one larger than the main pass keeps only boxes of at most
                  # extra_max_face px at its scale (null: no limit); all peaks merged by one NMS
                  # (maskdet.inference.detector)
                  "border_fraction": settings["pad"], "upscale": settings["upscale"],
                  "extra_long_sides": list(settings["extra_long_sides"]), "zoom_below": settings["zoom_below"],
                  "zoom_factor": ZOOM_FACTOR, "extra_max_zoom": settings.get("extra_max_zoom"),
                  "extra_max_face": settings.get("extra_max_face")},
        "outputs": ["heatmap", "scale", "offset", "landmarks"],
        "stride": 4,
        "decode": "peaks of heatmap > threshold; box size = exp(scale) * stride (h, w); "
                  "centre = (index + offset + 0.5) * stride; then NMS at nms_iou",
        **{key: settings[key] for key in ("threshold", "nms_iou")},
        "crop_margin": DEFAULT_MARGIN,
        "crop": "square of side max(w, h) * (1 + 2 * crop_margin) centred on the face, shifted inside the image",
    }


def export_card(loaded: LoadedModel, classifier_bytes: bytes, detector: tuple[bytes, dict], crops: int,
                diff: float) -> dict:
    """The exported folder's metadata.json: the model card plus what a runtime needs to feed both graphs."""
    import onnx
    import onnxruntime

    meta = loaded.metadata
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": loaded.name,
        "arch": loaded.arch,
        "classes": list(meta["classes"]),
        "positive_class": meta.get("positive_class"),
        "input": {**loaded.input.to_json(), "layout": "NCHW", "dtype": "float32",
                  "preprocess": "RGB (L for 1 channel), bilinear resize to size x size, /255, (x - mean) / std"},
        "operating_threshold": operating_threshold(meta),
        "metrics": meta.get("metrics", {}),
        "classifier": {"file": CLASSIFIER_FILE, "input_name": INPUT_NAME, "output_name": OUTPUT_NAME,
                       "opset": OPSET, "sha256": sha256_bytes(classifier_bytes)},
        "detector": detector_card(*detector),
        "source": {"model": str(loaded.path), "weights_sha256": meta["weights"]["sha256"],
                   "created": meta.get("created"), "command": meta.get("command")},
        "export": {"created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                   "check_crops": crops, "max_abs_prob_diff": diff,
                   "versions": {"torch": torch.__version__, "onnx": onnx.__version__,
                                "onnxruntime": onnxruntime.__version__}},
    }


EXPORT_FILES = frozenset({CLASSIFIER_FILE, DETECTOR_FILE, METADATA_FILE})


def is_earlier_export(folder: Path) -> bool:
    """Whether ``folder`` is a real folder holding an export of ours and nothing else: our files only, and a
    ``metadata.json`` whose ``format`` is :data:`FORMAT`. Only such a folder may be replaced by ``force``."""
    if folder.is_symlink() or not folder.is_dir():
        return False
    try:
        if not {child.name for child in folder.iterdir()} <= EXPORT_FILES:
            return False
        card = json.loads((folder / METADATA_FILE).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(card, dict) and card.get("format") == FORMAT


def check_replaceable(output: Path) -> None:
    """Raise :class:`ExportError` unless ``output`` may be replaced: ``--force`` never deletes a folder we
    did not write (a user's documents, a model folder, a data set)."""
    if not is_earlier_export(output):
        raise ExportError(f"{output} is not an earlier export (only {', '.join(sorted(EXPORT_FILES))} with format "
                          f"{FORMAT!r}): --force replaces only such a folder; choose a new folder")


@contextmanager
def staged_folder(output: Path, replace: bool) -> Iterator[Path]:
    """A fresh folder next to ``output`` that becomes ``output`` when the block succeeds (replacing the old
    one only then, when ``replace`` and it is an earlier export) and is deleted when it fails."""
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = output.parent / f".{output.name}.export-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        yield staging
        for child in staging.iterdir():
            with open(child, "rb") as handle:
                os.fsync(handle.fileno())
        retired = None
        if output.exists():
            if not replace:
                raise ExportError(f"{output} appeared while exporting; nothing was replaced")
            check_replaceable(output)
            retired = output.parent / f".{output.name}.retired-{uuid.uuid4().hex[:8]}"
            os.rename(output, retired)
        os.rename(staging, output)
        if retired is not None:
            shutil.rmtree(retired, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def export_onnx(loaded: LoadedModel, output: Path, force: bool = False) -> ExportReport:
    """Write ``output/{classifier.onnx, detector.onnx, metadata.json}`` for ``loaded``, checked first."""
    crops = validation_crops(loaded)
    classifier_bytes = classifier_onnx(loaded, loaded.input.to_tensor(crops[:2]))
    diff, agree = compare_runtimes(loaded, classifier_bytes, crops)
    logger.info("onnxruntime vs PyTorch on %d real crops: max prob diff %.2e, labels agree %s", len(crops), diff, agree)
    if not agree or diff > MAX_PROB_DIFF:
        raise ExportError(f"the ONNX classifier disagrees with PyTorch on {len(crops)} real face crops "
                          f"(max probability difference {diff:.2e}, labels identical: {agree}); nothing written")
    detector = product_detector()
    card = export_card(loaded, classifier_bytes, detector, len(crops), diff)
    with staged_folder(output, replace=force) as staging:
        (staging / CLASSIFIER_FILE).write_bytes(classifier_bytes)
        (staging / DETECTOR_FILE).write_bytes(detector[0])
        (staging / METADATA_FILE).write_text(json.dumps(card, indent=2))
    return ExportReport(output=output, model=loaded.name, crops=len(crops), max_prob_diff=diff, labels_agree=agree,
                        file_bytes={f.name: f.stat().st_size for f in sorted(output.iterdir())})


EXPORT_FORMATS: dict[str, Callable[[LoadedModel, Path, bool], ExportReport]] = {"onnx": export_onnx}
"""Export format name -> exporter(loaded model, output folder, force)."""


def export_model(model: str | Path | ModelFolder | None, output: str | Path, fmt: str = "onnx",
                 force: bool = False) -> ExportReport:
    """Export the model ``model`` (a name in ``models/``, a path, None = the default, or a folder opened already)
    to the folder ``output``.

    Raises :class:`ExportError` (an unknown format, an existing ``output`` without ``force`` or, with
    ``force``, one that is not an earlier export, an unknown or damaged model, an arch that does not
    export, a failed check); nothing is written then.
    """
    output = Path(output).expanduser()
    if fmt not in EXPORT_FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; known: {', '.join(sorted(EXPORT_FORMATS))}")
    if output.exists() and not output.is_dir():
        raise ExportError(f"{output} exists and is not a folder")
    if output.exists() and not force:
        raise ExportError(f"{output} already exists: choose a new folder or pass --force to replace it")
    if output.exists():
        check_replaceable(output)
    try:
        loaded = (model if isinstance(model, ModelFolder) else ModelFolder.open(model)).load()
    except CheckpointError as exc:
        raise ExportError(str(exc)) from exc
    return EXPORT_FORMATS[fmt](loaded, output, force)
