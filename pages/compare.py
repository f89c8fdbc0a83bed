"""Compare page: trained models side by side, on their held-out test splits and on unseen data.

One table (every model: quality, errors, size, training time, CPU latency per face; the
best value of each column highlighted), then for the selected models: overlaid ROC and
precision-recall curves, confusion matrices, training curves, and an evaluation on
another data-set folder shown next to the held-out numbers. All numbers come from
:mod:`maskdet.compare`; this page only lays them out.

NOTE: the unseen-data evaluation runs in the script thread (the user waits for it with a
progress bar), so its progress callback may draw with ``st.*`` directly; results are cached
on disk per (weights, data fingerprint), so reruns and other sessions reuse them.
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

from maskdet.checkpoint import METADATA_FILE, CheckpointError
from maskdet.compare import (
    COL_ACCURACY,
    COL_AP,
    COL_ARCH,
    COL_AUC,
    COL_LATENCY,
    COL_MODEL,
    COL_SIZE,
    COL_TRAIN_S,
    LATENCY_RUNS,
    PER_CLASS_METRICS,
    DataEvaluation,
    ModelSummary,
    best_mask,
    cached_evaluation,
    class_column,
    comparison_table,
    dataset_fingerprint,
    evaluate_dataset,
    metrics_json,
    summarize,
    table_csv,
    unseen_table,
    with_latency,
)
from maskdet.data import DatasetError
from maskdet.images import ImageDecodeError
from maskdet.metrics import curves
from maskdet.settings import CLASSES
from ui.dataset_picker import choose_dataset
from ui.markup import code, plain
from ui.models import list_trained_models, show_broken_models
from ui.shell import setup_page
from ui.training import TRAIN_PAGE

setup_page("Compare")

logger = logging.getLogger(__name__)

DEFAULT_SELECTED = 4  # newest models plotted by default
CONFUSION_COLUMNS = 3
BEST_CSS = "background-color: rgba(46, 158, 91, 0.25); font-weight: 600"
STAGE_LABELS = {"reading": "reading files", "classifying": "classifying"}
PERCENT_COLUMNS = [COL_ACCURACY, *(class_column(m, c) for c in CLASSES for m in PER_CLASS_METRICS)]


def _styled(frame: pd.DataFrame) -> pd.io.formats.style.Styler:
    """The table with each column's best value highlighted and numbers formatted for reading."""
    mask = best_mask(frame)
    formats = {column: "{:.2%}" for column in PERCENT_COLUMNS}
    formats |= {COL_AUC: "{:.4f}", COL_AP: "{:.4f}", COL_SIZE: "{:.2f}", COL_TRAIN_S: "{:.1f}", COL_LATENCY: "{:.2f}"}
    formats |= {c: "{:,.0f}" for c in frame.columns if c not in formats and c not in (COL_MODEL, COL_ARCH)}
    return frame.style.apply(lambda _: np.where(mask, BEST_CSS, ""), axis=None).format(formats, na_rep="—")


def _number_format(column: str) -> st.column_config.NumberColumn:
    """Percent for accuracies, whole numbers for counts, 4 decimals for AUC / AP and their deltas."""
    if "accuracy" in column:
        return st.column_config.NumberColumn(format="percent")
    if "images" in column or "false" in column:
        return st.column_config.NumberColumn(format="%d")
    return st.column_config.NumberColumn(format="%.4f")


def _curve_figures(series: Mapping[str, tuple[dict, Sequence[int], Sequence[float]]]) -> tuple[go.Figure, go.Figure]:
    """Overlaid ROC and precision-recall curves; ``series`` maps a legend name to (metrics, labels, scores)."""
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
    roc.update_layout(title="ROC (with_mask positive)", xaxis_title="false positive rate",
                      yaxis_title="true positive rate", legend={"orientation": "h", "y": -0.25})
    pr.update_layout(title="Precision-recall (with_mask positive)", xaxis_title="recall", yaxis_title="precision",
                     legend={"orientation": "h", "y": -0.25})
    return roc, pr


def _show_curves(series: Mapping[str, tuple[dict, Sequence[int], Sequence[float]]], key: str) -> None:
    single_class = [name for name, (_, labels, _) in series.items() if len(set(labels)) < 2]
    if single_class:
        st.caption(f"No curve for {', '.join(single_class)}: the data hold a single class, so ROC and PR are undefined.")
    roc, pr = _curve_figures(series)
    left, right = st.columns(2)
    left.plotly_chart(roc, key=f"{key}_roc")
    right.plotly_chart(pr, key=f"{key}_pr")


def _confusion_figure(name: str, confusion: list[list[int]]) -> go.Figure:
    figure = px.imshow(
        confusion, text_auto=True, color_continuous_scale="Blues",
        x=[f"predicted {c}" for c in CLASSES], y=[f"actual {c}" for c in CLASSES], title=name,
    )
    figure.update_layout(coloraxis_showscale=False, height=320, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return figure


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
                measured.append(with_latency(summary))
            except CheckpointError as exc:
                st.warning(f"Cannot load `{summary.name}` to time it: {exc}")
                measured.append(summary)
    return measured


def _evaluate_unseen(models: list[ModelSummary], data: Path) -> dict[str, DataEvaluation]:
    """Evaluate ``models`` on ``data`` with one progress bar; returns what succeeded, by model name."""
    bar = st.progress(0.0, text="Starting…")
    done_models: dict[str, DataEvaluation] = {}
    for index, summary in enumerate(models):
        def report(stage: str, done: int, total: int, index: int = index, name: str = summary.name) -> None:
            fraction = (index + done / max(total, 1)) / len(models)
            bar.progress(min(fraction, 1.0), text=f"{name} ({index + 1}/{len(models)}): "
                                                  f"{STAGE_LABELS[stage]} {done:,} / {total:,}")

        try:
            done_models[summary.name] = evaluate_dataset(summary, data, progress=report)
        except (DatasetError, CheckpointError, ImageDecodeError) as exc:
            st.error(f"Evaluating `{summary.name}` on {data.name} failed: {exc}")
    bar.empty()
    return done_models


st.title("📊 Compare models")
st.caption(
    "Every trained model on its own held-out test split (never seen in training or model selection), "
    "then the selected ones on another data set. `with_mask` is the positive class; threshold 0.5."
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
table = comparison_table(summaries)

st.subheader("All models")
st.caption("Click a header to sort. The best value of each column is highlighted (higher is better for quality, "
           f"lower for errors, size, training time and latency). {COL_LATENCY}: one face crop through the app's "
           f"classifier (batch 1, median of {LATENCY_RUNS} runs, {torch.get_num_threads()} CPU threads), measured "
           "once per model while the server runs; other work on the machine inflates it.")
st.dataframe(_styled(table), hide_index=True, key="compare_table")

selected_names = st.multiselect(
    "Models to plot and evaluate", list(by_name), default=list(by_name)[:DEFAULT_SELECTED], key="compare_models"
)
selected = [by_name[name] for name in selected_names]
unseen: dict[str, DataEvaluation] = {}
if not selected:
    st.info("Select at least one model to see its curves, confusion matrix and training history.")
else:
    curves_tab, confusion_tab, history_tab = st.tabs(["ROC and PR curves", "Confusion matrices", "Training curves"])
    with curves_tab:
        _show_curves({s.name: (s.test, s.labels, s.scores) for s in selected if s.test}, key="test")
    with confusion_tab:
        for start in range(0, len(selected), CONFUSION_COLUMNS):
            row = selected[start : start + CONFUSION_COLUMNS]
            for column, summary in zip(st.columns(CONFUSION_COLUMNS), row, strict=False):
                if summary.test:
                    column.plotly_chart(_confusion_figure(summary.name, summary.test["confusion"]),
                                        key=f"confusion_{summary.name}")
    with history_tab:
        for summary in selected:
            if summary.history:
                st.plotly_chart(_training_figure(summary), key=f"history_{summary.name}")
            else:
                st.caption(f"`{summary.name}` recorded no training history.")

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
    if fingerprint is not None:
        seen = [s.name for s in selected if s.training_fingerprint == fingerprint]
        if seen:
            st.warning(f"{', '.join(seen)} trained on this very folder: these numbers are not unseen data.")
        unseen = {s.name: e for s in selected if (e := cached_evaluation(s, fingerprint)) is not None}
        missing = [s for s in selected if s.name not in unseen]
        if missing and st.button(f"Evaluate {len(missing)} model(s) on {data.name}", key="compare_evaluate",
                                 type="primary"):
            unseen |= _evaluate_unseen(missing, data)
        if unseen:
            side_by_side = unseen_table(selected, unseen)
            st.dataframe(side_by_side, hide_index=True, key="compare_unseen_table",
                         column_config={c: _number_format(c) for c in side_by_side.columns if c != COL_MODEL})
            skipped = max(e.unreadable for e in unseen.values())  # the same folder for every model
            if skipped:
                st.caption(f"{skipped:,} unreadable file(s) in {data.name} were skipped.")
            _show_curves({f"{name} on {data.name}": (e.metrics, e.labels, e.scores) for name, e in unseen.items()},
                         key="unseen")

st.subheader("Export")
left, right = st.columns(2)
left.download_button("Table as CSV", table_csv(table), file_name="maskdet-comparison.csv", mime="text/csv",
                     key="compare_csv")
right.download_button("Full metrics as JSON", metrics_json(summaries, list(unseen.values())),
                      file_name="maskdet-metrics.json", mime="application/json", key="compare_json")
