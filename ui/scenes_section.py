"""Compare page section "Photos with boxes": models x detector settings scored on a folder of boxed photos.

The user picks a folder (the shared picker, boxed-photo kind), models and detector settings; each
(model, detector) pipeline not yet cached is scored by an ``evaluate-scenes`` job (outside the
server process, on the server's :func:`ui.jobs.job_queue`) while a timed fragment shows its
progress. The jobs cache their results on disk per (weights, detector settings, folder
fingerprint, IoU, class map) (:mod:`maskdet.evaluation.scenes.runs`), where this section reads them back under
the same key, and shows them as one table side by side, then as a gallery of what went wrong:
crops of missed faces, false positives and mislabelled faces, with the confidence the product
gave them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from maskdet.zoo.assets import AssetUnavailableError
from maskdet.zoo.folders import CheckpointError, default_model_name
from maskdet.inference.detector import DETECTORS
from maskdet.data.images import ImageDecodeError
from maskdet.inference.pipeline import FacePipeline
from maskdet.data.annotations import load_scene_set, scene_fingerprint, SceneSet, SceneSetError
from maskdet.evaluation.scenes import DEFAULT_IOU
from maskdet.evaluation.scenes.evaluate import FALSE_POSITIVE, MISLABELLED, MISSED
from maskdet.evaluation.scenes.report import COL_PIPELINE, error_caption, error_crop, scene_table
from maskdet.evaluation.scenes.runs import cached_metrics, pipeline_key
from maskdet.settings import KNOWN_CLASSES
from maskdet.jobs import QueuedJob
from ui.dataset_picker import BOXED_PHOTOS, choose_dataset
from ui.jobs import job_queue, show_failures, show_queue_progress, submit_jobs
from ui.markup import code, plain
from ui.models import list_trained_models
from ui.resources import get_classifier, get_detector

logger = logging.getLogger(__name__)

KEY = "compare_scenes"
SCENES_QUEUE = "compare-scenes"  # the server's queue of scene evaluations (ui.jobs.job_queue)
GALLERY_COLUMNS = 6
GALLERY_LIMIT = 36
IGNORE = "ignore (counted, not scored)"
ERROR_KINDS = {MISSED: "missed faces", FALSE_POSITIVE: "false positives", MISLABELLED: "mislabelled faces"}


@st.cache_data(show_spinner="Reading the annotations…", max_entries=16)
def _scene_set(folder: str, fingerprint: str, class_map: tuple[tuple[str, str], ...]) -> SceneSet:
    """The folder's annotations, read once per folder version and class map."""
    return load_scene_set(folder, class_map=dict(class_map))


@st.cache_data(show_spinner=False, max_entries=512)
def _crop(root: str, fingerprint: str, image: str, box: tuple[float, ...]):
    return error_crop(root, {"image": image, "box": list(box)})


def _class_map(scenes: SceneSet) -> dict[str, str]:
    """Ask what to do with each class name that is neither with_mask nor without_mask."""
    mapping = {}
    for name, count in sorted(scenes.unknown_classes.items()):
        choice = st.selectbox(f"{count:,} face(s) of class {code(name)}", [IGNORE, *KNOWN_CLASSES],
                              key=f"{KEY}_map_{name}", help="Count them as a known class, or leave them out: a "
                              "detection on an ignored face is neither a hit nor a false positive.")
        if choice != IGNORE:
            mapping[name] = choice
    return mapping


@dataclass(frozen=True)
class Candidate:
    """One column of the comparison: its display name, its cache key and the job that evaluates it."""

    label: str
    key: str
    job: QueuedJob


def _candidates(models: list[str], detectors: list[str], folder: Path, scenes: SceneSet, iou: float,
                class_map: dict[str, str]) -> list[Candidate]:
    """One candidate per (model, detector setting); models that cannot be loaded are reported and left out."""
    candidates = []
    for model in models:
        try:
            classifier = get_classifier(model)
            for config in detectors:
                pipeline = FacePipeline(classifier, get_detector(config))
                label = f"{model} + {config}"
                params = {"model": model, "data": str(folder), "detector": config, "iou": float(iou),
                          "class_map": class_map}
                candidates.append(Candidate(label=label, key=pipeline_key(pipeline, scenes.fingerprint, iou, class_map),
                                            job=QueuedJob(label=label, kind="evaluate-scenes", params=params,
                                                         holds=(str(folder),))))
        except (CheckpointError, AssetUnavailableError) as exc:
            st.error(f"Cannot load {code(model)}: {plain(exc)}")
    return candidates


def _show_gallery(root: Path, fingerprint: str, results: dict[str, dict]) -> None:
    st.markdown("**What goes wrong**")
    left, right = st.columns(2)
    label = left.selectbox("Pipeline", list(results), key=f"{KEY}_gallery_pipeline")
    kinds = right.multiselect("Show", list(ERROR_KINDS), default=list(ERROR_KINDS), format_func=ERROR_KINDS.get,
                              key=f"{KEY}_gallery_kinds")
    errors = [e for e in results[label]["errors"] if e["kind"] in kinds]
    errors.sort(key=lambda e: -(e["confidence"] or 0))  # the most confident mistakes first
    if not errors:
        st.success("No error of these kinds.")
        return
    st.caption(f"{len(errors):,} error(s)" + (f", the first {GALLERY_LIMIT} shown" if len(errors) > GALLERY_LIMIT else ""))
    columns = st.columns(GALLERY_COLUMNS)
    for index, error in enumerate(errors[:GALLERY_LIMIT]):
        column = columns[index % GALLERY_COLUMNS]
        caption = f"{Path(error['image']).name}: {error_caption(error)}"  # image captions are plain text
        try:
            column.image(_crop(str(root), fingerprint, error["image"], tuple(error["box"])), caption=caption)
        except ImageDecodeError as exc:
            column.caption(plain(f"{caption} (cannot show the photo: {exc.reason})"))


def show_scenes_section() -> None:
    """The whole section: folder, models and detectors, progress, table and error gallery."""
    st.subheader("Photos with boxes")
    st.caption("Detector and classifier together on photos whose faces are boxed: how many faces are found "
               "(IoU >= the threshold), how many false detections, how many labelled right. Results are cached "
               "per model weights, detector setting and folder version.")
    folder = choose_dataset(KEY, kind=BOXED_PHOTOS)
    if folder is None:
        return
    try:
        fingerprint = scene_fingerprint(folder)
        scenes = _scene_set(str(folder), fingerprint, ())
        class_map = _class_map(scenes)
        if class_map:
            scenes = _scene_set(str(folder), fingerprint, tuple(sorted(class_map.items())))
    except SceneSetError as exc:
        st.error(f"Cannot use {code(folder)}: {plain(exc)}")
        return
    st.caption(f"{len(scenes.images):,} photos, {scenes.faces:,} boxed faces ({scenes.format.upper()}).")
    if scenes.problems:
        with st.expander(f"{len(scenes.problems):,} file(s) cannot be used and are left out"):
            st.markdown("\n".join(f"- {code(path)}: {plain(reason)}" for path, reason in scenes.problems))

    names = [m["name"] for m in list_trained_models()]
    default = default_model_name()
    columns = st.columns([2, 2, 1])
    models = columns[0].multiselect("Models", names, default=[default] if default in names else names[:1],
                                    key=f"{KEY}_models")
    detectors = columns[1].multiselect("Detector settings", list(DETECTORS), default=[next(iter(DETECTORS))],
                                       key=f"{KEY}_detectors")
    iou = columns[2].number_input("IoU", min_value=0.1, max_value=0.95, value=DEFAULT_IOU, step=0.05, key=f"{KEY}_iou")
    candidates = _candidates(models, detectors, folder, scenes, iou, class_map)
    results = {c.label: metrics for c in candidates if (metrics := cached_metrics(c.key)) is not None}
    missing = [c for c in candidates if c.label not in results]
    queue = job_queue(SCENES_QUEUE)
    if missing and not queue.snapshot().active and st.button(
            f"Evaluate {len(missing)} pipeline(s) on {len(scenes.images):,} photos", key=f"{KEY}_evaluate",
            type="primary"):
        submit_jobs(queue, [c.job for c in missing])
    status = show_queue_progress(queue, KEY)
    show_failures(status, [c.job for c in missing], lambda job: f"Evaluating {plain(job.label)}")
    if not results:
        return
    table = scene_table(results)
    st.dataframe(table, hide_index=True, key=f"{KEY}_table", column_config={
        c: st.column_config.NumberColumn(format="%d" if c in ("false positives", "faces", "photos") else
                                         "%.1f" if c == "seconds" else "percent")
        for c in table.columns if c != COL_PIPELINE})
    _show_gallery(folder, fingerprint, results)
