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

All numbers come from :mod:`maskdet.evaluation.compare` and :mod:`maskdet.evaluation.metrics`; this page only lays them out.

NOTE: the unseen-data evaluations run as ``evaluate-folder`` jobs (one per model, outside the
server process, on the server's :func:`ui.jobs.job_queue`), followed by a timed fragment; the jobs
cache their results on disk per (weights, data fingerprint), where this page, its reruns and other
sessions read them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st
import torch

from maskdet.zoo.folders import METADATA_FILE, CheckpointError, choose_operating_threshold, set_operating_threshold
from maskdet.evaluation.compare import (
    COL_ACCURACY,
    COL_AP,
    COL_ARCH,
    COL_AUC,
    COL_BRIER,
    COL_ECE,
    COL_LATENCY,
    COL_MODEL,
    COL_SIZE,
    COL_THRESHOLD,
    COL_TRAIN_S,
    LATENCY_RUNS,
    NOT_COMPARED,
    OWN,
    PER_CLASS_METRICS,
    SHARED,
    TEST_SPLIT,
    WRONG,
    DataEvaluation,
    Misclassified,
    ModelSummary,
    ScoredFiles,
    best_mask,
    cached_evaluation,
    class_column,
    comparison_table,
    dataset_fingerprint,
    error_overlap,
    error_sharing,
    held_out_files,
    metrics_json,
    misclassified,
    overlap_summary,
    summarize,
    table_csv,
    unseen_table,
    with_latency,
)
from maskdet.data.datasets import DatasetError
from maskdet.inference.explain import Explanation, explain
from maskdet.data.images import ImageDecodeError, load_rgb
from maskdet.jobs import QueuedJob
from maskdet.evaluation.leakage import TrainingOverlap, training_overlap
from maskdet.evaluation.metrics import calibration, compute_metrics, curves, operating_point
from maskdet.settings import KNOWN_CLASSES
from ui.dataset_picker import choose_dataset
from ui.explanation import show_explanation
from ui.jobs import job_queue, show_failures, show_queue_progress, submit_jobs
from ui.markup import code, plain
from ui.models import invalidate_models, list_trained_models, show_broken_models
from ui.resources import get_classifier
from ui.scenes_section import show_scenes_section
from ui.shell import setup_page
from ui.thumbnails import thumbnail
from ui.training import TRAIN_PAGE

setup_page("Compare")

logger = logging.getLogger(__name__)

DEFAULT_SELECTED = 4  # newest models plotted by default
CONFUSION_COLUMNS = 3
BEST_CSS = "background-color: rgba(46, 158, 91, 0.25); font-weight: 600"
UNSEEN_QUEUE = "compare-unseen"  # the server's queue of unseen-data evaluations (ui.jobs.job_queue)
PERCENT_COLUMNS = [COL_ACCURACY, *(class_column(m, c) for c in KNOWN_CLASSES for m in PER_CLASS_METRICS)]
THRESHOLD_RANGE = (0.01, 0.99, 0.01)  # min, max, step of the operating-threshold sliders
GALLERY_COLUMNS = 6
GALLERY_FIRST = 24  # thumbnails shown at first per model; a slider shows more
GALLERY_FILTERS = {"all": "All errors", "FP": "False positives", "FN": "False negatives", OWN: "Its own",
                   SHARED: "Shared with another model"}
EXPLANATION_CACHE_ENTRIES = 64
SAVED_MESSAGE_KEY = "compare_threshold_saved"
LABEL_SHORT = {"with_mask": "mask", "without_mask": "no mask"}


# --- helpers -------------------------------------------------------------------------------------

def _styled(frame: pd.DataFrame) -> pd.io.formats.style.Styler:
    """The table with each column's best value highlighted and numbers formatted for reading."""
    mask = best_mask(frame)
    formats = {column: "{:.2%}" for column in PERCENT_COLUMNS if column in frame.columns}
    formats |= {COL_AUC: "{:.4f}", COL_AP: "{:.4f}", COL_SIZE: "{:.2f}", COL_TRAIN_S: "{:.1f}", COL_LATENCY: "{:.2f}",
                COL_ECE: "{:.4f}", COL_BRIER: "{:.4f}", COL_THRESHOLD: "{:.2f}"}
    formats |= {c: "{:,.0f}" for c in frame.columns if c not in formats and c not in (COL_MODEL, COL_ARCH)}
    return frame.style.apply(lambda _: np.where(mask, BEST_CSS, ""), axis=None).format(formats, na_rep="—")


def _number_format(column: str) -> st.column_config.NumberColumn:
    """Percent for accuracies, whole numbers for counts, 4 decimals for AUC / AP / calibration and deltas."""
    if any(word in column for word in ("accuracy", "precision", "recall", "rate")):
        return st.column_config.NumberColumn(format="percent")
    if "images" in column or "false" in column or column in ("FP", "FN"):
        return st.column_config.NumberColumn(format="%d")
    return st.column_config.NumberColumn(format="%.4f")


def _marker(x: float | None, y: float | None, name: str) -> go.Scatter:
    return go.Scatter(x=[x], y=[y], mode="markers", name=name, marker={"symbol": "x", "size": 13, "line": {"width": 2}})


def _curve_figures(series: Mapping[str, tuple[dict, Sequence[int], Sequence[float]]],
                   marks: Mapping[str, tuple[float, dict]] | None = None) -> tuple[go.Figure, go.Figure]:
    """Overlaid ROC and precision-recall curves; ``series`` maps a legend name to (metrics, labels, scores),
    ``marks`` a legend name to (threshold, :func:`~maskdet.evaluation.metrics.operating_point`) drawn as a cross."""
    roc = go.Figure()
    roc.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "grey"},
                             name="chance", showlegend=False))
    pr = go.Figure()
    for name, (metrics, labels, scores) in series.items():
        points = curves(labels, scores)
        if points is None:  # a single class: no curve exists
            continue
        roc.add_trace(go.Scatter(x=points["roc"]["fpr"], y=points["roc"]["tpr"], mode="lines",
                                 name=f"{name} (AUC {metrics['roc_auc']:.3f})"))
        pr.add_trace(go.Scatter(x=points["pr"]["recall"], y=points["pr"]["precision"], mode="lines",
                                name=f"{name} (AP {metrics['average_precision']:.3f})"))
        if marks and name in marks:
            threshold, point = marks[name]
            roc.add_trace(_marker(point["fpr"], point["tpr"], f"{name} at {threshold:.2f}"))
            pr.add_trace(_marker(point["recall"], point["precision"], f"{name} at {threshold:.2f}"))
    roc.update_layout(title="ROC (with_mask positive)", xaxis_title="false positive rate",
                      yaxis_title="true positive rate", legend={"orientation": "h", "y": -0.25})
    pr.update_layout(title="Precision-recall (with_mask positive)", xaxis_title="recall", yaxis_title="precision",
                     legend={"orientation": "h", "y": -0.25})
    return roc, pr


def _show_curves(series: Mapping[str, tuple[dict, Sequence[int], Sequence[float]]], key: str,
                 marks: Mapping[str, tuple[float, dict]] | None = None) -> None:
    single_class = [name for name, (_, labels, _) in series.items() if len(set(labels)) < 2]
    if single_class:
        st.caption(f"No curve for {', '.join(single_class)}: the data hold a single class, so ROC and PR are undefined.")
    roc, pr = _curve_figures(series, marks)
    left, right = st.columns(2)
    left.plotly_chart(roc, key=f"{key}_roc")
    right.plotly_chart(pr, key=f"{key}_pr")


def _reliability_figure(series: Mapping[str, tuple[Sequence[int], Sequence[float]]], title: str) -> go.Figure:
    """Reliability diagram: per bin of p(with_mask), the mean score against the fraction truly with_mask."""
    figure = go.Figure()
    figure.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "grey"},
                                name="perfectly calibrated"))
    for name, (labels, scores) in series.items():
        reliability = calibration(labels, scores)
        if reliability is None:
            continue
        figure.add_trace(go.Scatter(
            x=reliability["mean_predicted"], y=reliability["fraction_positive"], mode="lines+markers",
            name=f"{name} (ECE {reliability['expected_calibration_error']:.3f})",
            customdata=reliability["count"], hovertemplate="mean p %{x:.3f}<br>with_mask %{y:.3f}<br>%{customdata} images",
        ))
    figure.update_layout(title=title, xaxis_title="mean predicted p(with_mask) in the bin",
                         yaxis_title="fraction with_mask in the bin", xaxis_range=[0, 1], yaxis_range=[0, 1],
                         legend={"orientation": "h", "y": -0.25})
    return figure


def _confusion_figure(name: str, confusion: list[list[int]]) -> go.Figure:
    figure = px.imshow(
        confusion, text_auto=True, color_continuous_scale="Blues",
        x=[f"predicted {c}" for c in KNOWN_CLASSES[: len(confusion)]],
        y=[f"actual {c}" for c in KNOWN_CLASSES[: len(confusion)]], title=name,
    )
    figure.update_layout(coloraxis_showscale=False, height=320, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return figure


def _show_confusions(confusions: Mapping[str, list[list[int]]], key: str) -> None:
    """Confusion matrices, CONFUSION_COLUMNS to a row; ``confusions`` maps a title to ``[[tn, fp], [fn, tp]]``."""
    items = list(confusions.items())
    for start in range(0, len(items), CONFUSION_COLUMNS):
        for index, (column, (title, confusion)) in enumerate(
                zip(st.columns(CONFUSION_COLUMNS), items[start : start + CONFUSION_COLUMNS], strict=False)):
            column.plotly_chart(_confusion_figure(title, confusion), key=f"{key}_{start + index}")


def _training_figure(summary: ModelSummary) -> go.Figure:
    history = pd.DataFrame(summary.history)
    long = pd.concat(
        [
            history[["epoch", f"{split}_{metric}"]].set_axis(["epoch", "value"], axis=1).assign(split=split, metric=title)
            for split in ("train", "val")
            for metric, title in (("loss", "loss"), ("acc", "accuracy"))
        ]
    )
    figure = px.line(long, x="epoch", y="value", color="split", facet_col="metric", markers=True, title=summary.name)
    figure.update_yaxes(matches=None, showticklabels=True)
    figure.for_each_annotation(lambda a: a.update(text=a.text.split("=")[-1]))
    figure.update_layout(height=300)
    return figure


def _summaries(models: list[dict]) -> list[ModelSummary]:
    """A summary per listed model; one whose metadata has fields of the wrong type is left out with a warning."""
    summaries = []
    for metadata in models:
        try:
            summaries.append(summarize(metadata))
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            st.warning(f"Leaving out `{metadata['name']}`: its {METADATA_FILE} is malformed ({exc}).")
    return summaries


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


def _evaluation_jobs(models: list[ModelSummary], data: Path) -> list[QueuedJob]:
    """One ``evaluate-folder`` job per model (labelled with the model's name)."""
    return [QueuedJob(label=s.name, kind="evaluate-folder", params={"model": str(s.path), "data": str(data)})
            for s in models]


@st.cache_data(show_spinner=False, max_entries=64)
def _held_out(path: str, cache_key: str, created: str, _summary: ModelSummary) -> ScoredFiles | None:
    """:func:`maskdet.evaluation.compare.held_out_files`, read once per model version (split.json can be large)."""
    return held_out_files(_summary)


def _file_version(path: Path) -> str:
    """A file's modification time as a cache key ("" when it is gone)."""
    try:
        return str(path.stat().st_mtime_ns)
    except OSError:
        return ""


@st.cache_data(show_spinner=False, max_entries=EXPLANATION_CACHE_ENTRIES)
def _explain_file(path: str, version: str, model_key: str, label: str, _model: str) -> Explanation:
    """Integrated Gradients of ``label`` (what the model said) for one image file; keyed by file and weights."""
    return explain(get_classifier(_model), load_rgb(path), target=label)


def _save_threshold(summary: ModelSummary, slider_key: str, source: str) -> None:
    """Button callback: write the slider's threshold into the model's card (before the page reruns)."""
    threshold = float(st.session_state[slider_key])
    try:
        set_operating_threshold(summary.path, threshold, chosen_on=source)
    except CheckpointError as exc:
        st.session_state[SAVED_MESSAGE_KEY] = ("error", f"Cannot save the threshold of `{summary.name}`: {exc}")
        return
    invalidate_models()
    st.session_state[SAVED_MESSAGE_KEY] = ("success", (
        f"Saved {threshold:.2f} as the operating threshold of `{summary.name}` (chosen on {source}): "
        "the Photo and Webcam pages and `predict` now label with it."))


def _choose_threshold(summary: ModelSummary, slider_key: str) -> None:
    """Button callback: choose and save the threshold on the validation scores the model's card stores."""
    try:
        metadata = choose_operating_threshold(summary.path)
    except CheckpointError as exc:
        st.session_state[SAVED_MESSAGE_KEY] = ("error", f"Cannot choose the threshold of `{summary.name}`: {exc}")
        return
    invalidate_models()
    st.session_state[slider_key] = metadata["operating_threshold"]
    st.session_state[SAVED_MESSAGE_KEY] = ("success", (
        f"Saved {metadata['operating_threshold']:.2f} as the operating threshold of `{summary.name}` "
        f"({metadata['operating_threshold_chosen_on']})."))


# --- sections ------------------------------------------------------------------------------------

def all_models_section(summaries: list[ModelSummary]) -> pd.DataFrame:
    """The comparison table of every model; returns it for the export."""
    table = comparison_table(summaries)
    st.subheader("All models")
    st.caption("Click a header to sort. The best value of each column is highlighted (higher is better for quality, "
               f"lower for errors, calibration error, size, training time and latency). {COL_ECE}: expected "
               "calibration error of p(with_mask) over 10 bins; Brier score: mean squared error of p(with_mask). "
               f"{COL_LATENCY}: one face crop through the app's classifier (batch 1, median of {LATENCY_RUNS} runs, "
               f"{torch.get_num_threads()} CPU threads), measured once per model while the server runs; other work "
               "on the machine inflates it. Accuracy, precision, recall, FP and FN are at threshold 0.5.")
    st.dataframe(_styled(table), hide_index=True, key="compare_table")
    return table


def plots_section(selected: list[ModelSummary]) -> None:
    """Curves, confusion matrices at 0.5, reliability diagrams and training curves of the selected models."""
    tested = [s for s in selected if s.test]
    curves_tab, confusion_tab, calibration_tab, history_tab = st.tabs(
        ["ROC and PR curves", "Confusion matrices", "Calibration", "Training curves"])
    with curves_tab:
        _show_curves({s.name: (s.test, s.labels, s.scores) for s in tested}, key="test")
    with confusion_tab:
        _show_confusions({s.name: s.test["confusion"] for s in tested}, key="confusion")
    with calibration_tab:
        st.caption("Of the faces a model gives about 80% with_mask, about 80% should wear a mask: points on the "
                   "diagonal mean its confidences can be read as probabilities (10 equal-width bins).")
        st.plotly_chart(_reliability_figure({s.name: (s.labels, s.scores) for s in selected if s.scores},
                                            "Reliability on the held-out test split"), key="test_reliability")
    with history_tab:
        for summary in selected:
            if summary.history:
                st.plotly_chart(_training_figure(summary), key=f"history_{summary.name}")
            else:
                st.caption(f"`{summary.name}` recorded no training history.")


def unseen_section(selected: list[ModelSummary]) -> tuple[Path | None, dict[str, DataEvaluation]]:
    """Evaluate the selected models on a chosen folder; returns (folder, evaluations by model name)."""
    st.subheader("Unseen data")
    st.caption("Evaluate the selected models on every image of another data-set folder. Results are cached per "
               "model weights and folder version.")
    data = choose_dataset("compare_unseen")
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
        st.dataframe(side_by_side, hide_index=True, key="compare_unseen_table",
                     column_config={c: _number_format(c) for c in side_by_side.columns if c != COL_MODEL})
        skipped = max(e.unreadable for e in unseen.values())  # the same folder for every model
        if skipped:
            st.caption(f"{skipped:,} unreadable file(s) in {data.name} were skipped.")
        _show_curves({f"{name} on {data.name}": (e.metrics, e.labels, e.scores) for name, e in unseen.items()},
                     key="unseen")
        st.plotly_chart(_reliability_figure({name: (e.labels, e.scores) for name, e in unseen.items()},
                                            f"Reliability on {data.name}"), key="unseen_reliability")
    return data, unseen


def scored_files_by_source(selected: list[ModelSummary], data: Path | None,
                           unseen: Mapping[str, DataEvaluation]) -> dict[str, dict[str, ScoredFiles]]:
    """Source label (the test split, the unseen folder) -> model name -> its scored files."""
    held_out = {s.name: files for s in selected
                if (files := _held_out(str(s.path), s.cache_key, s.created, s)) is not None}
    sources = {TEST_SPLIT: held_out}
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
                      disabled=bool(np.isclose(thresholds[name], summary.operating_threshold)),
                      on_click=_save_threshold, args=(summary, key, source))
        column.button("Choose on its validation scores", key=f"compare_choose_{name}", on_click=_choose_threshold,
                      args=(summary, key), disabled=not summary.has_validation_scores,
                      help="The lowest threshold calling at most 0.5% of the not-masked validation faces masked "
                           "(a bare or incorrectly masked face called masked is the costly error).")
    at_threshold = {name: compute_metrics(f.labels, f.scores, thresholds[name]) for name, f in files.items()}
    rows = []
    for name, metrics in at_threshold.items():
        point = operating_point(metrics)
        rows.append({COL_MODEL: name, "threshold": thresholds[name], "accuracy": metrics["accuracy"],
                     "precision (with_mask)": point["precision"], "recall (with_mask)": point["recall"],
                     "false positive rate": point["fpr"], "FP": metrics["false_positives"],
                     "FN": metrics["false_negatives"], "images": metrics["n"]})
    frame = pd.DataFrame(rows)
    st.dataframe(frame, hide_index=True, key="compare_operating_table",
                 column_config={c: _number_format(c) for c in frame.columns if c not in (COL_MODEL, "threshold")})
    _show_confusions({f"{name} at {thresholds[name]:.2f}": m["confusion"] for name, m in at_threshold.items()},
                     key="operating_confusion")
    _show_curves({name: (compute_metrics(f.labels, f.scores), f.labels, f.scores) for name, f in files.items()},
                 key="operating", marks={name: (thresholds[name], operating_point(m)) for name, m in at_threshold.items()})
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
            data = None if error.path is None else thumbnail(str(error.path), _file_version(error.path))
            if data is None:
                column.caption(f"{_caption(error, notes.get(error.key, ''))} (file not found here)")
            else:
                column.image(data, caption=_caption(error, notes.get(error.key, "")))


def _show_error_explanation(summary: ModelSummary, errors: list[Misclassified], key: str) -> None:
    """A selector of the model's errors and the Integrated Gradients explanation of the chosen one."""
    by_key = {e.key: e for e in errors if e.path is not None}
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
            result = _explain_file(str(error.path), _file_version(error.path), summary.cache_key,
                                   error.predicted_label, summary.name)
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
    """The errors the gallery filter ``choice`` keeps; ``kinds`` is :func:`maskdet.evaluation.compare.error_sharing`."""
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
    "Every trained model on its own held-out test split (never seen in training or model selection), "
    "then the selected ones on another data set, their errors and their operating thresholds. `with_mask` is the "
    "positive class."
)

models = list_trained_models()
show_broken_models()
if not models:
    st.info("No trained model yet. Train one or more on the Train page, then come back to compare them.")
    st.page_link(TRAIN_PAGE, label="Go to the Train page", icon="🏋️")
    st.stop()

summaries = _measure_latencies(_summaries(models))
if not summaries:
    st.stop()
by_name = {s.name: s for s in summaries}
table = all_models_section(summaries)

selected_names = st.multiselect(
    "Models to plot and evaluate", list(by_name), default=list(by_name)[:DEFAULT_SELECTED], key="compare_models"
)
selected = [by_name[name] for name in selected_names]
unseen: dict[str, DataEvaluation] = {}
if not selected:
    st.info("Select at least one model to see its curves, confusion matrix, errors and training history.")
else:
    plots_section(selected)
    data, unseen = unseen_section(selected)
    errors_and_operating_point_section(selected, data, unseen)

show_scenes_section()
export_section(table, summaries, unseen)
