"""The dashboard's model charts: ROC and precision-recall curves, reliability diagrams, confusion matrices and
training curves, with one colour per model on every chart.

A model's colour comes from :func:`model_colours`, a mapping by model name (never plotly's trace order):
each model takes the palette slot its name hashes to, or the next free one, oldest model first, so a
model keeps its colour on every chart and page, and when newer models are trained.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from maskdet.evaluation.summary import ModelSummary
from maskdet.evaluation.metrics import calibration, curves
from maskdet.settings import KNOWN_CLASSES
from ui.models import list_trained_models

# Paul Tol's colour-blind-safe qualitative palette, without its grey (kept for reference lines).
MODEL_PALETTE = tuple(c for c in px.colors.qualitative.Safe if c != "rgb(136, 136, 136)")
REFERENCE_LINE = {"dash": "dot", "color": "grey"}
CONFUSION_COLUMNS = 3
TOP_MARGIN_PX, RIGHT_MARGIN_PX = 64, 40
RELIABILITY_MARKER_PX = (6.0, 34.0)  # marker diameter of an almost empty bin and of the fullest one

# (metrics, labels, scores) of one model: metrics from maskdet.evaluation.metrics.compute_metrics
CurveSeries = tuple[dict, Sequence[int], Sequence[float]]


def with_room_for_the_toolbar(figure: go.Figure) -> go.Figure:
    """Leave the top of the plot to the title and the hover toolbar (plotly's mode bar, stood on its side at the
    right edge) so that neither covers a title, a bar label or a matrix cell."""
    figure.update_layout(margin={"t": TOP_MARGIN_PX, "r": RIGHT_MARGIN_PX}, modebar={"orientation": "v"})
    return figure


def model_colours(names_oldest_first: Iterable[str]) -> dict[str, str]:
    """A stable colour per model name: the palette slot its name hashes to, or the next free one.

    Older models claim their slots first, so adding a model never recolours an existing one; beyond
    ``len(MODEL_PALETTE)`` models colours repeat.
    """
    colours: dict[str, str] = {}
    taken: set[int] = set()
    size = len(MODEL_PALETTE)
    for name in names_oldest_first:
        if name in colours:
            continue
        slot = zlib.crc32(name.encode()) % size
        if len(taken) < size:
            while slot in taken:
                slot = (slot + 1) % size
        taken.add(slot)
        colours[name] = MODEL_PALETTE[slot]
    return colours


def dashboard_colours() -> dict[str, str]:
    """:func:`model_colours` of every trained model (the list is newest first, so it is read backwards)."""
    return model_colours(m["name"] for m in reversed(list_trained_models()))


def _colour(colours: Mapping[str, str], name: str) -> str:
    """``name``'s colour, or one derived from the name alone for a model the mapping does not know."""
    return colours.get(name) or MODEL_PALETTE[zlib.crc32(name.encode()) % len(MODEL_PALETTE)]


def _marker(x: float | None, y: float | None, name: str, colour: str) -> go.Scatter:
    return go.Scatter(x=[x], y=[y], mode="markers", name=name,
                      marker={"symbol": "x", "size": 13, "line": {"width": 2}, "color": colour})


def curve_figures(series: Mapping[str, CurveSeries], colours: Mapping[str, str], suffix: str = "",
                  marks: Mapping[str, tuple[float, dict]] | None = None) -> tuple[go.Figure, go.Figure]:
    """Overlaid ROC and precision-recall curves; ``series`` maps a model name to (metrics, labels, scores),
    ``marks`` a model name to (threshold, :func:`~maskdet.evaluation.metrics.operating_point`) drawn as a cross;
    ``suffix`` follows each model's name in the legend (e.g. " on scenes-dev")."""
    roc = go.Figure()
    roc.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=REFERENCE_LINE, name="chance", showlegend=False))
    pr = go.Figure()
    for name, (metrics, labels, scores) in series.items():
        points = curves(labels, scores)
        if points is None:  # a single class: no curve exists
            continue
        colour = _colour(colours, name)
        roc.add_trace(go.Scatter(x=points["roc"]["fpr"], y=points["roc"]["tpr"], mode="lines", line={"color": colour},
                                 name=f"{name}{suffix} (AUC {metrics['roc_auc']:.3f})"))
        pr.add_trace(go.Scatter(x=points["pr"]["recall"], y=points["pr"]["precision"], mode="lines",
                                line={"color": colour}, name=f"{name}{suffix} (AP {metrics['average_precision']:.3f})"))
        if marks and name in marks:
            threshold, point = marks[name]
            roc.add_trace(_marker(point["fpr"], point["tpr"], f"{name} at {threshold:.2f}", colour))
            pr.add_trace(_marker(point["recall"], point["precision"], f"{name} at {threshold:.2f}", colour))
    for figure in (roc, pr):
        with_room_for_the_toolbar(figure)
    roc.update_layout(title="ROC (with_mask positive)", xaxis_title="false positive rate",
                      yaxis_title="true positive rate", legend={"orientation": "h", "y": -0.25})
    pr.update_layout(title="Precision-recall (with_mask positive)", xaxis_title="recall", yaxis_title="precision",
                     legend={"orientation": "h", "y": -0.25})
    return roc, pr


def show_curves(series: Mapping[str, CurveSeries], colours: Mapping[str, str], key: str, suffix: str = "",
                marks: Mapping[str, tuple[float, dict]] | None = None) -> None:
    """ROC and PR side by side (see :func:`curve_figures`), with a note on models whose data hold one class."""
    single_class = [name for name, (_, labels, _) in series.items() if len(set(labels)) < 2]
    if single_class:
        st.caption(f"No curve for {', '.join(single_class)}: the data hold a single class, so ROC and PR are undefined.")
    roc, pr = curve_figures(series, colours, suffix, marks)
    left, right = st.columns(2)
    left.plotly_chart(roc, key=f"{key}_roc")
    right.plotly_chart(pr, key=f"{key}_pr")


def _bin_marker_sizes(counts: np.ndarray) -> list[float]:
    """Marker diameters whose areas follow the bins' image counts (the fullest bin RELIABILITY_MARKER_PX)."""
    low, high = RELIABILITY_MARKER_PX
    return (low + (high - low) * np.sqrt(counts / counts.max())).tolist()


def reliability_figure(series: Mapping[str, tuple[Sequence[int], Sequence[float]]], colours: Mapping[str, str],
                       title: str) -> go.Figure:
    """Reliability diagram: per filled bin of p(with_mask), the mean score against the fraction truly with_mask, as a
    marker whose area follows the bin's image count; each model's ECE in the legend."""
    figure = go.Figure()
    figure.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=REFERENCE_LINE, name="perfectly calibrated"))
    for name, (labels, scores) in series.items():
        reliability = calibration(labels, scores)
        if reliability is None:
            continue
        counts = np.asarray(reliability["count"], dtype=float)
        figure.add_trace(go.Scatter(  # filled bins only, no line: a line would cross the empty bins between them
            x=reliability["mean_predicted"], y=reliability["fraction_positive"], mode="markers",
            marker={"color": _colour(colours, name), "size": _bin_marker_sizes(counts), "opacity": 0.8,
                    "line": {"width": 1, "color": "white"}},
            name=f"{name} (ECE {reliability['expected_calibration_error']:.3f})",
            customdata=reliability["count"], hovertemplate="mean p %{x:.3f}<br>with_mask %{y:.3f}<br>%{customdata} images",
        ))
    figure.update_layout(title=title, xaxis_title="mean predicted p(with_mask) in the bin",
                         yaxis_title="fraction with_mask in the bin", xaxis_range=[0, 1], yaxis_range=[0, 1],
                         legend={"orientation": "h", "y": -0.25})
    return with_room_for_the_toolbar(figure)


def confusion_figure(name: str, confusion: list[list[int]]) -> go.Figure:
    figure = px.imshow(
        confusion, text_auto=True, color_continuous_scale="Blues",
        x=[f"predicted {c}" for c in KNOWN_CLASSES[: len(confusion)]],
        y=[f"actual {c}" for c in KNOWN_CLASSES[: len(confusion)]], title=name,
    )
    figure.update_layout(coloraxis_showscale=False, height=340, margin={"l": 10, "r": RIGHT_MARGIN_PX,
                                                                        "t": TOP_MARGIN_PX, "b": 10},
                         modebar={"orientation": "v"})
    return figure


def show_confusions(confusions: Mapping[str, list[list[int]]], key: str) -> None:
    """Confusion matrices, CONFUSION_COLUMNS to a row; ``confusions`` maps a title to ``[[tn, fp], [fn, tp]]``."""
    items = list(confusions.items())
    for start in range(0, len(items), CONFUSION_COLUMNS):
        for index, (column, (title, confusion)) in enumerate(
                zip(st.columns(CONFUSION_COLUMNS), items[start : start + CONFUSION_COLUMNS], strict=False)):
            column.plotly_chart(confusion_figure(title, confusion), key=f"{key}_{start + index}")


def training_figure(summary: ModelSummary) -> go.Figure:
    """Loss and accuracy per epoch of one model, train against validation."""
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
    figure.update_layout(height=320)
    return with_room_for_the_toolbar(figure)
