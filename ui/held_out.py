"""The held-out set the Home and Compare pages score models on, read once per model version.

:func:`common_set` is :func:`maskdet.evaluation.heldout.common_held_out` of every model that kept its test
files (hashing those files takes a few seconds once); :func:`scored_rows` pairs each model with the set it is
scored on, the common set when there is one and its own test split otherwise.
"""

from __future__ import annotations

from dataclasses import replace

import streamlit as st

from maskdet.evaluation.errors import held_out_files, ScoredFiles
from maskdet.evaluation.summary import ModelSummary, summarize
from maskdet.evaluation.heldout import HeldOutSet, common_held_out, own_split_label
from maskdet.zoo.folders import METADATA_FILE


def summaries_of(models: list[dict]) -> list[ModelSummary]:
    """A summary per listed model; one whose metadata has fields of the wrong type is left out with a warning."""
    summaries = []
    for metadata in models:
        try:
            summaries.append(summarize(metadata))
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            st.warning(f"Leaving out `{metadata['name']}`: its {METADATA_FILE} is malformed ({exc}).")
    return summaries


@st.cache_data(show_spinner=False, max_entries=64)
def held_out(path: str, cache_key: str, created: str, _summary: ModelSummary) -> ScoredFiles | None:
    """:func:`maskdet.evaluation.compare.held_out_files`, read once per model version (split.json can be large)."""
    return held_out_files(_summary)


@st.cache_data(show_spinner="Finding the test files every model held out…", max_entries=16)
def _common_set(models: tuple[tuple[str, str, str], ...], _summaries: list[ModelSummary]) -> HeldOutSet | None:
    files = {s.name: f for s in _summaries if (f := held_out(str(s.path), s.cache_key, s.created, s)) is not None}
    return common_held_out([s for s in _summaries if s.name in files], files)


def common_set(summaries: list[ModelSummary]) -> HeldOutSet | None:
    """The test files every model that kept them held out, each model rescored on them; keyed by (name,
    weights, created) of each model."""
    return _common_set(tuple((s.name, s.cache_key, s.created) for s in summaries), summaries)


def scored_rows(summaries: list[ModelSummary], held: HeldOutSet | None) -> list[tuple[ModelSummary, str]]:
    """Each model with the set it is scored on: rescored on ``held`` when it is part of it, else its own split."""
    if held is None:
        return [(s, own_split_label(s)) for s in summaries]
    return [(replace(s, test=r.test, labels=r.labels, scores=r.scores), held.label)
            if (r := held.summaries.get(s.name)) is not None else (s, own_split_label(s)) for s in summaries]
