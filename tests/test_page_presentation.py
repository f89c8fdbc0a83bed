"""What the dashboard's pages show a newcomer at a glance (issue 27): one colour per model on every chart, tables
that name the set they were measured on, defaults that do not mislead."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import streamlit as st
from dashboard import page_test
from markdown_text import texts

from ui.figures import MODEL_PALETTE, model_colours
from ui.jobs import job_queue

COMPARE = "pages/compare.py"
TIMEOUT = 180


@pytest.fixture(autouse=True)
def fresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MASKDET_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "root").mkdir()
    monkeypatch.setenv("MASKDET_DATA_ROOT", str(tmp_path / "root"))
    st.cache_data.clear()
    job_queue.clear()


def trace_colours(chart) -> dict[str, str]:
    """Model name (the legend up to its first " (") -> line colour, for every model trace of a plotly chart."""
    return {trace["name"].split(" (")[0]: trace.get("line", {}).get("color")
            for trace in json.loads(chart.proto.spec)["data"] if " (" in trace.get("name", "")}


def test_a_model_has_one_colour_in_the_roc_and_pr_figures(tiny_models_dir: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MASKDET_MODELS_DIR", str(tiny_models_dir))
    at = page_test(COMPARE, TIMEOUT).run()
    assert not at.exception, texts(at.exception)
    roc, pr = at.get("plotly_chart")[:2]
    roc_colours, pr_colours = trace_colours(roc), trace_colours(pr)
    assert set(roc_colours) == {"tiny-cnn", "tiny-mlp"}
    assert roc_colours == pr_colours  # plotly's own order would colour them by trace index, and differently
    assert len(set(roc_colours.values())) == 2 and set(roc_colours.values()) <= set(MODEL_PALETTE)
    reliability = at.get("plotly_chart")[4]
    assert trace_colours(reliability) == roc_colours


def test_model_colours_are_stable_as_models_are_added() -> None:
    before = model_colours(["a", "b", "c"])
    after = model_colours(["a", "b", "c", *(f"new-{i}" for i in range(6))])
    assert {name: after[name] for name in before} == before  # newer models never recolour older ones
    assert len(set(after.values())) == len(after)  # distinct while the palette lasts
