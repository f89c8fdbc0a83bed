"""Compare page: trained models side by side, where each one fails, and how to use it.

Sections, top to bottom (each a function below, so more can be slotted in):

1. all models: one table (quality, errors, calibration, size, training time, CPU latency per
   face; the best value of each column highlighted);
2. plots of the selected models: overlaid ROC and precision-recall curves, confusion
   matrices, reliability diagrams, training curves;
3. unseen data: an evaluation on another data-set folder next to the held-out numbers;
4. operating point: a threshold per model on the test split or the unseen data, with its
   confusion matrix, precision, recall, FP and FN, marked on the ROC and PR curves, and
   saved into the model's card on request (then used by the Photo and Webcam pages and the CLI);
5. error gallery: each model's false positives and negatives at that threshold, hardest
   first, which errors the models share and which are their own, and the Integrated
   Gradients explanation of one of them;
6. export.

All numbers come from :mod:`maskdet.evaluation` (compare, summary, latency, unseen, errors) and :mod:`maskdet.evaluation.metrics`; this page only lays them out.

NOTE: the unseen-data evaluations run as ``evaluate-folder`` jobs (one per model, outside the
server process, on the server's :func:`ui.jobs.job_queue`), followed by a timed fragment; the jobs
cache their results on disk per (weights, data fingerprint), where this page, its reruns and other
sessions read them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st
import torch

from maskdet.zoo.decision import threshold_rule
from maskdet.zoo.folders import CheckpointError, choose_operating_threshold, set_operating_threshold
from maskdet.evaluation.compare import (
    COL_ARCH,
    COL_ECE,
    COL_LATENCY,
    COL_MODEL,
    COL_N,
    COL_SIZE,
    COL_THRESHOLD,
    COL_TRAIN_S,
    metrics_json,
    overlap_summary,
    table_csv,
    unseen_table,
)
from maskdet.evaluation.errors import (
    NOT_COMPARED,
    OWN,
    SHARED,
    TEST_SPLIT,
    WRONG,
    Misclassified,
    ScoredFiles,
    error_overlap,
    error_image,
    error_sharing,
    misclassified,
    missing_note,
)
from maskdet.evaluation.folder import describe_faces_chosen_on
from maskdet.evaluation.latency import LATENCY_RUNS, with_latency
from maskdet.evaluation.summary import ModelSummary
from maskdet.evaluation.unseen import DataEvaluation, cached_evaluation, dataset_fingerprint
from maskdet.data.datasets import DatasetError
from maskdet.evaluation.heldout import COL_SET, best_by_set, evaluation_table, own_split_label
from maskdet.inference.explain import Explanation, explain
from maskdet.data.images import ImageDecodeError
from maskdet.jobs import QueuedJob
from maskdet.evaluation.leakage import TrainingOverlap, trained_on, training_overlap
from maskdet.evaluation.metrics import compute_metrics, operating_point
from ui.dataset_picker import choose_dataset
from ui.explanation import show_explanation
from ui.figures import dashboard_colours, reliability_figure, show_confusions, show_curves, training_figure
from ui.held_out import common_set, held_out, scored_rows, summaries_of
from maskdet.sharing import Action
from ui.access import may
from ui.jobs import job_queue, show_failures, show_queue_progress, submit_jobs
from ui.markup import code, plain
from ui.models import invalidate_models, list_trained_models, show_broken_models
from ui.resources import get_classifier
from ui.scenes_section import show_scenes_section
from ui.shell import setup_page
from ui.tables import styled
from ui.thumbnails import error_thumbnail
from ui.training import TRAIN_PAGE

setup_page("Compare")

logger = logging.getLogger(__name__)

DEFAULT_SELECTED = 4  # newest models plotted by default
UNSEEN_QUEUE = "compare-unseen"  # the server's queue of unseen-data evaluations (ui.jobs.job_queue)
THRESHOLD_RANGE = (0.01, 0.99, 0.01)  # min, max, step of the operating-threshold sliders
GALLERY_COLUMNS = 6
GALLERY_FIRST = 24  # thumbnails shown at first per model; a slider shows more
GALLERY_FILTERS = {"all": "All errors", "FP": "False positives", "FN": "False negatives", OWN: "Its own",
                   SHARED: "Shared with another model"}
EXPLANATION_CACHE_ENTRIES = 64
SAVED_MESSAGE_KEY = "compare_threshold_saved"
OWN_SPLITS = "each model's own test split"
LABEL_SHORT = {"with_mask": "mask", "without_mask": "no mask", "incorrect_mask": "mask worn incorrectly"}


# --- helpers -------------------------------------------------------------------------------------

def _styled(frame: pd.DataFrame) -> pd.io.formats.style.Styler:
    """The table with each column's best value among models scored on the same set highlighted."""
    return styled(frame, {COL_SIZE: "{:.2f}", COL_TRAIN_S: "{:.1f}", COL_LATENCY: "{:.2f}", COL_THRESHOLD: "{:.2f}"},
                  highlight=best_by_set(frame), text_columns=(COL_MODEL, COL_SET, COL_ARCH))


def _measure_latencies(summaries: list[ModelSummary]) -> list[ModelSummary]:
    """Each summary with its CPU latency (measured once per weights per process); unloadable models warn."""
    measured = []
    with st.spinner(f"Measuring CPU latency per face (batch 1, median of {LATENCY_RUNS} runs)…"):
        for summary in summaries:
            try:
                measured.append(with_latency(summary, classifier=get_classifier(str(summary.path))))  # as served
            except CheckpointError as exc:
                st.warning(f"Cannot load `{summary.name}` to time it: {exc}")
                measured.append(summary)
    return measured


@st.cache_data(show_spinner="Checking the folder against the models' training data…", max_entries=64)
def _overlap(model_key: str, model_path: str, data: str, fingerprint: str) -> TrainingOverlap | None:
    """What of ``data`` the model has seen (content hashes and near-duplicates); keyed by weights and folder version."""
    return training_overlap(model_path, data)


def _warn_about_overlap(models: list[ModelSummary], data: Path, fingerprint: str) -> None:
    """A warning per model that has seen images of ``data``; a caption for models whose training data is not here."""
    unknown = []
    for summary in models:
        overlap = _overlap(summary.cache_key, str(summary.path), str(data), fingerprint)
        if overlap is None:
            unknown.append(summary.name)
        elif overlap.overlapping:
            st.warning(plain(overlap.message()), icon="⚠️")
    if unknown:
        st.caption(f"Not checked for overlap (training data not found here): {plain(', '.join(unknown))}.")


def _unseen_by_all(models: list[ModelSummary]) -> Callable[[list[Path]], Path | None]:
    """Picks, among listed folders, the first that none of ``models`` trained or chose settings on (by name,
    then by content: :func:`maskdet.evaluation.leakage.training_overlap`); says so when there is none."""
    metadata = {m["name"]: m for m in list_trained_models()}
    seen_names = set().union(*(trained_on(metadata.get(s.name, {})) for s in models))

    def prefer(folders: list[Path]) -> Path | None:
        for folder in folders:
            if folder.name in seen_names:
                continue
            try:
                fingerprint = dataset_fingerprint(folder)
            except DatasetError:
                continue
            overlaps = [_overlap(s.cache_key, str(s.path), str(folder), fingerprint) for s in models]
            if not any(o is not None and o.overlapping for o in overlaps):
                return folder
        st.warning("Every data set listed here overlaps the training data of a selected model (or was used to "
                   "choose its settings): type the path of another folder or upload one for honest unseen numbers.",
                   icon="⚠️")
        return None

    return prefer


def _evaluation_jobs(models: list[ModelSummary], data: Path) -> list[QueuedJob]:
    """One ``evaluate-folder`` job per model (labelled with the model's name)."""
    return [QueuedJob(label=s.name, kind="evaluate-folder", params={"model": str(s.path), "data": str(data)},
                      holds=(str(data),))
            for s in models]


def _file_version(path: Path) -> str:
    """A file's modification time as a cache key ("" when it is gone)."""
    try:
        return str(path.stat().st_mtime_ns)
    except OSError:
        return ""


def _error_version(error: Misclassified) -> str:
    """The version of the file an error's picture comes from (its crop, else its source photo); "" when neither
    is here."""
    for path in (error.path, None if error.recut is None else error.recut.photo):
        if path is not None and (version := _file_version(path)):
            return f"{path}:{version}"
    return ""


def _cut_again(error: Misclassified) -> bool:
    """Whether the error's picture is its crop cut again from the source photo (the crop itself is not here)."""
    return error.recut is not None and (error.path is None or not error.path.is_file())


@st.cache_data(show_spinner=False, max_entries=EXPLANATION_CACHE_ENTRIES)
def _explain_error(key: str, version: str, model_key: str, label: str, _model: str,
                   _error: Misclassified) -> Explanation:
    """Integrated Gradients of ``label`` (what the model said) for one error's picture; keyed by file and weights."""
    return explain(get_classifier(_model), error_image(_error), target=label)


def _save_threshold(summary: ModelSummary, slider_key: str, source: str) -> None:
    """Button callback: write the slider's threshold into the model's card (before the page reruns)."""
    threshold = float(st.session_state[slider_key])
    if not may(Action.SAVE_THRESHOLD):  # the button is disabled for visitors; a stale page is refused here too
        st.session_state[SAVED_MESSAGE_KEY] = ("error", f"Only the owner may {Action.SAVE_THRESHOLD.value}.")
        return
    try:
        set_operating_threshold(summary.path, threshold, chosen_on=source)
    except CheckpointError as exc:
        st.session_state[SAVED_MESSAGE_KEY] = ("error", f"Cannot save the threshold of `{summary.name}`: {exc}")
        return
    invalidate_models()
    st.session_state[SAVED_MESSAGE_KEY] = ("success", (
        f"Saved {threshold:.2f} as the operating threshold of `{summary.name}` (chosen on {source}): "
        "the Photo and Webcam pages and `predict` now label with it."))


def _choose_threshold(summary: ModelSummary, slider_key: str, files: ScoredFiles | None = None) -> None:
    """Button callback: choose and save the threshold by the one rule, on the validation scores the model's card
    stores or on ``files`` (the unseen data's: faces from the camera the model will watch)."""
    if not may(Action.SAVE_THRESHOLD):  # the button is disabled for visitors; a stale page is refused here too
        st.session_state[SAVED_MESSAGE_KEY] = ("error", f"Only the owner may {Action.SAVE_THRESHOLD.value}.")
        return
    try:
        if files is None:
            metadata = choose_operating_threshold(summary.path)
        else:
            overlap = (_overlap(summary.cache_key, str(summary.path), str(files.root), files.fingerprint)
                       if files.root is not None and files.fingerprint else None)
            chosen_on = describe_faces_chosen_on(files.root or files.source, files.labels, files.fingerprint,
                                                 seen=overlap.overlapping if overlap is not None else 0)
            metadata = choose_operating_threshold(summary.path, scored=(np.asarray(files.labels),
                                                                        np.asarray(files.scores)), chosen_on=chosen_on)
    except (CheckpointError, ValueError) as exc:
        st.session_state[SAVED_MESSAGE_KEY] = ("error", f"Cannot choose the threshold of `{summary.name}`: {exc}")
        return
    invalidate_models()
    st.session_state[slider_key] = metadata["operating_threshold"]
    st.session_state[SAVED_MESSAGE_KEY] = ("success", (
        f"Saved {metadata['operating_threshold']:.2f} as the operating threshold of `{summary.name}` "
        f"({metadata['operating_threshold_chosen_on']})."))


# --- sections ------------------------------------------------------------------------------------

def scored_sets(summaries: list[ModelSummary]) -> list[tuple[ModelSummary, str]]:
    """Each model with the held-out set it is scored on (the chosen one): by default the files every model
    held out, so that the table and plots compare like with like; each model's own test split on request."""
    held = common_set(summaries)
    options = ([held.label] if held is not None else []) + [OWN_SPLITS]
    choice = st.radio("Score the models on", options, horizontal=True, key="compare_scored_on",
                      format_func=lambda o: o if o == OWN_SPLITS else f"{o} ({held.size:,} images)",
                      help="The files every model held out (never trained or selected on) make the numbers "
                           "comparable; each model's own test split can be other data, of another size.")
    if held is None:
        st.caption("No test file is held out by every model here (or they kept no test files): each model is "
                   "scored on its own test split, and only models scored on the same split are ranked together.")
    return scored_rows(summaries, None if choice == OWN_SPLITS else held)


def all_models_section(rows: list[tuple[ModelSummary, str]]) -> pd.DataFrame:
    """The comparison table of every model on its set; returns it for the export."""
    table = evaluation_table(rows)
    st.caption(f"Click a header to sort. Column `{COL_SET}` names the data each row was scored on and "
               f"`{COL_N}` its size; the best value of each column is highlighted only among models scored on "
               "the same set (cost columns across all), higher being better for quality, "
               f"lower for errors, calibration error, size, training time and latency. {COL_ECE}: expected "
               "calibration error of p(with_mask) over 10 bins; Brier score: mean squared error of p(with_mask). "
               f"{COL_LATENCY}: one face crop through the app's classifier (batch 1, median of {LATENCY_RUNS} runs, "
               f"{torch.get_num_threads()} CPU threads), measured once per model while the server runs; other work "
               "on the machine inflates it. Accuracy, precision, recall, FP and FN are at threshold 0.5.")
    st.dataframe(_styled(table), hide_index=True, key="compare_table")
    return table


def plots_section(selected: list[ModelSummary], scored_on: str) -> None:
    """Curves, confusion matrices at 0.5, reliability diagrams and training curves of the selected models, each
    scored on ``scored_on`` (the set's name)."""
    st.caption(f"Scored on: {scored_on}.")
    tested = [s for s in selected if s.test]
    curves_tab, confusion_tab, calibration_tab, history_tab = st.tabs(
        ["ROC and PR curves", "Confusion matrices", "Calibration", "Training curves"])
    with curves_tab:
        show_curves({s.name: (s.test, s.labels, s.scores) for s in tested}, dashboard_colours(), key="test")
    with confusion_tab:
        show_confusions({s.name: s.test["confusion"] for s in tested}, key="confusion")
    with calibration_tab:
        st.caption("Of the faces a model gives about 80% with_mask, about 80% should wear a mask: points on the "
                   "diagonal mean its confidences can be read as probabilities. 10 equal-width bins; only bins holding "
                   "images are drawn, each marker's area following its image count (hover for the number); ECE, the "
                   "count-weighted gap to the diagonal, is in the legend.")
        st.plotly_chart(reliability_figure({s.name: (s.labels, s.scores) for s in selected if s.scores},
                                           dashboard_colours(), f"Reliability on {scored_on}"),
                        key="test_reliability")
    with history_tab:
        for summary in selected:
            if summary.history:
                st.plotly_chart(training_figure(summary), key=f"history_{summary.name}")
            else:
                st.caption(f"`{summary.name}` recorded no training history.")


def unseen_section(selected: list[ModelSummary]) -> tuple[Path | None, dict[str, DataEvaluation]]:
    """Evaluate the selected models on a chosen folder; returns (folder, evaluations by model name)."""
    st.subheader("Unseen data")
    st.caption("Evaluate the selected models on every image of another data-set folder. Preselected: the first "
               "folder none of them trained or chose settings on. Results are cached per model weights and folder "
               "version.")
    data = choose_dataset("compare_unseen", prefer=_unseen_by_all(selected))
    fingerprint = None
    if data is not None:
        try:
            fingerprint = dataset_fingerprint(data)
        except DatasetError as exc:
            st.error(f"Cannot use {code(data)}: {plain(exc)}")
    if fingerprint is None:
        return None, {}
    _warn_about_overlap(selected, data, fingerprint)
    unseen = {s.name: e for s in selected if (e := cached_evaluation(s, data, fingerprint)) is not None}
    missing = [s for s in selected if s.name not in unseen]
    queue = job_queue(UNSEEN_QUEUE)
    if missing and not queue.snapshot().active and st.button(
            f"Evaluate {len(missing)} model(s) on {data.name}", key="compare_evaluate", type="primary"):
        submit_jobs(queue, _evaluation_jobs(missing, data))
    status = show_queue_progress(queue, "compare_evaluate")
    show_failures(status, _evaluation_jobs(missing, data), lambda job: f"Evaluating `{job.label}` on {data.name}")
    if unseen:
        side_by_side = unseen_table(selected, unseen)
        st.dataframe(styled(side_by_side.assign(**{COL_SET: data.name}), text_columns=(COL_MODEL, COL_SET)),
                     hide_index=True, key="compare_unseen_table")
        skipped = max(e.unreadable for e in unseen.values())  # the same folder for every model
        if skipped:
            st.caption(f"{skipped:,} unreadable file(s) in {data.name} were skipped.")
        show_curves({name: (e.metrics, e.labels, e.scores) for name, e in unseen.items()}, dashboard_colours(),
                    key="unseen", suffix=f" on {data.name}")
        st.plotly_chart(reliability_figure({name: (e.labels, e.scores) for name, e in unseen.items()},
                                           dashboard_colours(), f"Reliability on {data.name}"),
                        key="unseen_reliability")
    return data, unseen


def scored_files_by_source(selected: list[ModelSummary], data: Path | None,
                           unseen: Mapping[str, DataEvaluation]) -> dict[str, dict[str, ScoredFiles]]:
    """Source label (the test split, the unseen folder) -> model name -> its scored files."""
    own_splits = {s.name: files for s in selected
                  if (files := held_out(str(s.path), s.cache_key, s.created, s)) is not None}
    sources = {TEST_SPLIT: own_splits}
    if data is not None and unseen:
        sources[f"{data.name} (unseen data)"] = {name: e.scored_files() for name, e in unseen.items()}
    return sources


def operating_point_section(files: Mapping[str, ScoredFiles], by_name: Mapping[str, ModelSummary],
                            source: str) -> dict[str, float]:
    """A threshold per model with its numbers, marked on the curves, saved on request; returns the thresholds."""
    st.subheader("Operating point")
    st.caption("A face is labelled with_mask when p(with_mask) ≥ the threshold. Move a model's threshold to trade "
               "false positives (no mask, called masked) for false negatives (masked, called unmasked); save it "
               "to make the Photo and Webcam pages and `predict` label with it.")
    if source == TEST_SPLIT:
        st.caption("⚠️ A threshold tuned on the test split makes that split's numbers optimistic: for an honest "
                   "choice, evaluate on other data above and pick it there.")
    message = st.session_state.pop(SAVED_MESSAGE_KEY, None)
    if message:
        getattr(st, message[0])(message[1])
    thresholds: dict[str, float] = {}
    low, high, step = THRESHOLD_RANGE
    columns = st.columns(min(len(files), DEFAULT_SELECTED))
    for index, name in enumerate(files):
        summary, column = by_name[name], columns[index % len(columns)]
        key = f"compare_threshold_{name}"
        saved = float(np.clip(summary.operating_threshold, low, high))
        thresholds[name] = column.slider(name, low, high, saved, step, key=key,
                                         help=f"Saved operating threshold: {summary.operating_threshold:g}"
                                              + (f" (chosen on {summary.threshold_chosen_on})"
                                                 if summary.threshold_chosen_on else ""))
        column.button(f"Save {thresholds[name]:.2f} as its threshold", key=f"compare_save_{name}",
                      disabled=bool(np.isclose(thresholds[name], summary.operating_threshold))
                      or not may(Action.SAVE_THRESHOLD),
                      help=None if may(Action.SAVE_THRESHOLD) else "Only the owner may save a threshold.",
                      on_click=_save_threshold, args=(summary, key, source))
        column.button("Choose on its validation scores", key=f"compare_choose_{name}", on_click=_choose_threshold,
                      args=(summary, key), disabled=not summary.has_validation_scores or not may(Action.SAVE_THRESHOLD),
                      help=f"The {threshold_rule()}, on its validation faces (a bare or incorrectly masked face "
                           "called masked is the costly error)."
                           + ("" if may(Action.SAVE_THRESHOLD) else " Only the owner may save a threshold."))
        if source != TEST_SPLIT:  # the unseen data: faces from another camera, the rule on them
            column.button(f"Choose on {files[name].source} by the same rule", key=f"compare_choose_unseen_{name}",
                          on_click=_choose_threshold, args=(summary, key, files[name]),
                          disabled=not may(Action.SAVE_THRESHOLD),
                          help=f"The {threshold_rule()}, on this folder's faces: the probabilities shift "
                               "with the camera, so faces from the camera the model will watch choose better than "
                               "our validation faces (`python -m maskdet threshold --on FOLDER` does the same)."
                               + ("" if may(Action.SAVE_THRESHOLD) else " Only the owner may save a threshold."))
    at_threshold = {name: compute_metrics(f.labels, f.scores, thresholds[name]) for name, f in files.items()}
    rows = []
    for name, metrics in at_threshold.items():
        point = operating_point(metrics)
        rows.append({COL_MODEL: name, COL_SET: own_split_label(by_name[name]) if source == TEST_SPLIT else source,
                     "threshold": thresholds[name], "accuracy": metrics["accuracy"],
                     "precision (with_mask)": point["precision"], "recall (with_mask)": point["recall"],
                     "false positive rate": point["fpr"], "FP": metrics["false_positives"],
                     "FN": metrics["false_negatives"], "images": metrics["n"]})
    frame = pd.DataFrame(rows)
    st.dataframe(styled(frame, {"threshold": "{:.2f}"}, text_columns=(COL_MODEL, COL_SET)),
                 hide_index=True, key="compare_operating_table")
    show_confusions({f"{name} at {thresholds[name]:.2f}": m["confusion"] for name, m in at_threshold.items()},
                    key="operating_confusion")
    show_curves({name: (compute_metrics(f.labels, f.scores), f.labels, f.scores) for name, f in files.items()},
                dashboard_colours(), key="operating",
                marks={name: (thresholds[name], operating_point(m)) for name, m in at_threshold.items()})
    return thresholds


def _caption(error: Misclassified, overlap_note: str) -> str:
    return (f"{error.name}\ntrue {LABEL_SHORT[error.true_label]} · said {LABEL_SHORT[error.predicted_label]} "
            f"{error.confidence:.0%}{overlap_note}")


def _show_error_grid(errors: list[Misclassified], notes: Mapping[str, str], key: str) -> None:
    """Thumbnails of ``errors`` (first GALLERY_FIRST, a slider for more), GALLERY_COLUMNS to a row."""
    shown = errors
    if len(errors) > GALLERY_FIRST:
        count = st.slider("Thumbnails shown", GALLERY_FIRST, len(errors), GALLERY_FIRST, key=f"{key}_count")
        shown = errors[:count]
    for start in range(0, len(shown), GALLERY_COLUMNS):
        for column, error in zip(st.columns(GALLERY_COLUMNS), shown[start : start + GALLERY_COLUMNS], strict=False):
            version = _error_version(error)
            data = error_thumbnail(error.key, version, error) if version else None
            if data is None:
                column.caption(f"{_caption(error, notes.get(error.key, ''))} ({missing_note(error)})")
            else:
                recut = (" · cut again from its photo" + (", without its occlusion" if error.recut.occluded else "")
                         if _cut_again(error) else "")
                column.image(data, caption=_caption(error, notes.get(error.key, "")) + recut)


def _show_error_explanation(summary: ModelSummary, errors: list[Misclassified], key: str) -> None:
    """A selector of the model's errors and the Integrated Gradients explanation of the chosen one."""
    by_key = {e.key: e for e in errors if _error_version(e)}
    chosen = st.selectbox(
        "Explain an error", list(by_key), index=None, key=f"{key}_explain",
        format_func=lambda k: f"{by_key[k].relpath} ({by_key[k].kind}, said {by_key[k].predicted_label} "
                              f"{by_key[k].confidence:.0%})",
        placeholder="Choose a file to see which pixels drove the mistake", help="Integrated Gradients, as on the "
        "Photo page: attribution of the label the model gave.")
    if chosen is None:
        return
    error = by_key[chosen]
    try:
        with st.spinner(f"Integrated Gradients for {plain(error.name)}…"):
            result = _explain_error(error.key, _error_version(error), summary.cache_key, error.predicted_label,
                                    summary.name, error)
    except ImageDecodeError as exc:
        st.error(f"Cannot read {code(error.relpath)}: {plain(exc.reason)}")
        return
    except CheckpointError as exc:
        st.error(f"Cannot load `{summary.name}`: {exc}")
        return
    st.markdown(f"Why `{summary.name}` said **{error.predicted_label}** ({error.confidence:.1%}) for "
                f"{code(error.relpath)}, truly {error.true_label}:")
    show_explanation(result)


def _filtered(errors: list[Misclassified], kinds: pd.Series, choice: str) -> list[Misclassified]:
    """The errors the gallery filter ``choice`` keeps; ``kinds`` is :func:`maskdet.evaluation.errors.error_sharing`."""
    if choice in WRONG:
        return [e for e in errors if e.kind == choice]
    return errors if choice == "all" else [e for e in errors if kinds.get(e.key) == choice]


def error_gallery_section(files: Mapping[str, ScoredFiles], thresholds: Mapping[str, float],
                          by_name: Mapping[str, ModelSummary], source: str) -> None:
    """Each model's misclassified files at its threshold, what the models share, and one error explained."""
    st.subheader("Error gallery")
    st.caption(f"Misclassified files ({source}) at each model's threshold above, hardest (most confident "
               "mistake) first. FP: no mask, called masked; FN: masked, called unmasked. An error is shared when "
               "another selected model gets the same file wrong, its own when every other model that scored the "
               "file gets it right.")
    errors = {name: misclassified(f, thresholds[name]) for name, f in files.items()}
    overlap = error_overlap(errors, files)
    st.dataframe(overlap_summary(overlap, list(errors)), hide_index=True, key="compare_error_summary")
    if len(errors) > 1 and len(overlap):
        with st.expander(f"Every misclassified file, model by model ({len(overlap)})"):
            st.dataframe(overlap, hide_index=True, key="compare_error_overlap")
    tabs = st.tabs([f"{name} ({len(model_errors)} errors)" for name, model_errors in errors.items()])
    for tab, (name, model_errors) in zip(tabs, errors.items(), strict=True):
        with tab:
            key = f"compare_gallery_{name}"
            if not model_errors:
                st.success(f"`{name}` gets every file right at {thresholds[name]:.2f}.")
                continue
            kinds = error_sharing(overlap, name)
            notes = {key: f" · {kind}" for key, kind in kinds.items() if kind != NOT_COMPARED}
            choice = st.radio("Show", list(GALLERY_FILTERS), format_func=GALLERY_FILTERS.get, horizontal=True,
                              key=f"{key}_filter")
            shown = _filtered(model_errors, kinds, choice)
            st.caption(f"{len(shown)} of {len(model_errors)} errors.")
            _show_error_grid(shown, notes, key)
            with st.expander("As a table"):
                st.dataframe(pd.DataFrame([{"file": e.relpath, "kind": e.kind, "true label": e.true_label,
                                            "predicted label": e.predicted_label, "p(with_mask)": e.p_with_mask,
                                            "confidence": e.confidence} for e in shown]),
                             hide_index=True, key=f"{key}_table")
            _show_error_explanation(by_name[name], model_errors, key)


def errors_and_operating_point_section(selected: list[ModelSummary], data: Path | None,
                                       unseen: Mapping[str, DataEvaluation]) -> None:
    """The operating point and the error gallery, on the test split or the unseen data (one choice for both)."""
    sources = {label: files for label, files in scored_files_by_source(selected, data, unseen).items() if files}
    if not sources:
        st.info("None of the selected models kept its test split's files and scores; evaluate them on a folder "
                "above to see their errors.")
        return
    source = st.radio("Errors and operating point of", list(sources), horizontal=True, key="compare_source")
    files = sources[source]
    by_name = {s.name: s for s in selected}
    thresholds = operating_point_section(files, by_name, source)
    error_gallery_section(files, thresholds, by_name, source)


def export_section(table: pd.DataFrame, summaries: list[ModelSummary], unseen: Mapping[str, DataEvaluation]) -> None:
    st.subheader("Export")
    left, right = st.columns(2)
    left.download_button("Table as CSV", table_csv(table), file_name="maskdet-comparison.csv", mime="text/csv",
                         key="compare_csv")
    right.download_button("Full metrics as JSON", metrics_json(summaries, list(unseen.values())),
                          file_name="maskdet-metrics.json", mime="application/json", key="compare_json")


# --- the page ------------------------------------------------------------------------------------

st.title("📊 Compare models")
st.caption(
    "Every trained model on the test files they all held out (never seen in training or model selection), "
    "each model's own test split a click away, then the selected ones on another data set, their errors and their operating thresholds. `with_mask` is the "
    "positive class."
)

models = list_trained_models()
show_broken_models()
if not models:
    st.info("No trained model yet. Train one or more on the Train page, then come back to compare them.")
    st.page_link(TRAIN_PAGE, label="Go to the Train page", icon="🏋️")
    st.stop()

summaries = _measure_latencies(summaries_of(models))
if not summaries:
    st.stop()
by_name = {s.name: s for s in summaries}
st.subheader("All models")
rows = scored_sets(summaries)
table = all_models_section(rows)

selected_names = st.multiselect(
    "Models to plot and evaluate", list(by_name), default=list(by_name)[:DEFAULT_SELECTED], key="compare_models"
)
selected = [by_name[name] for name in selected_names]
unseen: dict[str, DataEvaluation] = {}
if not selected:
    st.info("Select at least one model to see its curves, confusion matrix, errors and training history.")
else:
    on_set = {s.name: (scored, label) for s, (scored, label) in zip(summaries, rows, strict=True)}
    plots_section([on_set[s.name][0] for s in selected],
                  " / ".join(dict.fromkeys(on_set[s.name][1] for s in selected)))
    data, unseen = unseen_section(selected)
    errors_and_operating_point_section(selected, data, unseen)

show_scenes_section()
export_section(table, summaries, unseen)
