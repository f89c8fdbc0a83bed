"""maskdet dashboard entry point (`streamlit run streamlit_app.py`) and its Home page.

The Home page says what maskdet is, which data sets and trained models it finds, and where to go
next. The other pages live in ``pages/`` (Streamlit serves each at ``/<file name>``); every page,
this one included, starts with :func:`ui.shell.setup_page` (page config, navigation, sidebar job status).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from maskdet.data.datasets import DatasetError, scan_dataset
from maskdet.data.local import dataset_roots, find_sets, is_sample
from maskdet.settings import CLASSES, models_dir
from maskdet.evaluation.heldout import COL_SET
from maskdet.zoo.folders import default_model_name
from ui.held_out import common_set, scored_rows, summaries_of
from ui.access import is_owner
from ui.models import list_trained_models, show_broken_models
from ui.overview import show_overview
from ui.navigation import PAGES, page_named
from ui.tables import styled
from ui.shell import setup_page

setup_page("Home")

DATASET_LIST_TTL_S = 30  # listing walks every file; a short cache keeps reruns instant yet picks up new folders


@st.cache_data(ttl=DATASET_LIST_TTL_S, show_spinner=False)
def _datasets(roots: tuple[str, ...]) -> list[dict[str, object]]:
    """One row per data set folder under ``roots`` (the cache key; else the built-in sample's): files per class,
    or the problem found."""
    rows: list[dict[str, object]] = []
    for path in find_sets():
        row: dict[str, object] = {"data set": path.name, "folder": str(path)}
        try:
            counts = scan_dataset(path).counts()
        except (DatasetError, OSError) as exc:
            row["problem"] = str(exc)
        else:
            row.update(counts)
            row["total"] = sum(counts.values())
        rows.append(row)
    return rows


st.title("😷 maskdet")
st.markdown(
    "A face-mask detection studio: **audit** a data set (class balance, unreadable files, near-duplicates, "
    "label conflicts), **train** classifiers from a zoo of small CNNs on a duplicate-aware split, **compare** "
    "them on held-out and unseen data, and **detect** masks in photos or live from a webcam."
)

default = default_model_name()
st.info(
    "**Start here:** open the **Photo** page and drop a photo: it finds the faces and says who wears a mask, with "
    + (f"the default model `{default}` (marked ★ below)." if default else "a trained model (train one first).")
    + " Then the **Compare** page shows how every model does on the same held-out images and on data none of "
    "them has seen.", icon="👉")
st.page_link(page_named("Photo").file, label="Start with a photo", icon=page_named("Photo").icon)

st.subheader("Pages")
for page in PAGES[1:]:
    st.page_link(page.file, label=f"{page.title}: {page.description}", icon=page.icon)

st.subheader("Data sets")
roots = dataset_roots()
datasets = _datasets(tuple(str(root) for root in roots))
where = ", ".join(f"`{root}`" for root in roots)
if datasets and is_sample(Path(str(datasets[0]["folder"]))):
    st.info(f"No data sets under {where} yet: every page uses the **sample built into maskdet** (a few hundred "
            "face crops, CC0) until you get a public set on the Dataset page or set `MASKDET_DATA_ROOT`.")
elif datasets:
    st.caption(f"Folders under {where} (set `MASKDET_DATA_ROOT` to use another folder).")
if datasets:
    st.dataframe(pd.DataFrame(datasets), hide_index=True,
                 column_order=["data set", *CLASSES, "total", "problem", "folder"])

st.subheader("Trained models")
models = list_trained_models()
show_broken_models()
if models:
    summaries = summaries_of(models)
    rows = scored_rows(summaries, common_set(summaries))
    st.caption(f"Models in `{models_dir()}`, newest first; ★ marks the default model (the Photo, Webcam and Video "
               f"pages start with it). Accuracy at threshold 0.5 on `{COL_SET}`: the test files every "
               "model held out when there are such, so the numbers compare like with like.")
    table = pd.DataFrame({
        "name": [s.name for s, _ in rows],
        "default": ["★" if s.name == default else "" for s, _ in rows],
        "arch": [s.arch for s, _ in rows],
        "accuracy": [(s.test or {}).get("accuracy") for s, _ in rows],
        COL_SET: [label for _, label in rows],
        "images": [(s.test or {}).get("n") for s, _ in rows],
        "created": [s.created for s, _ in rows],
    })
    st.dataframe(styled(table, text_columns=("name", "default", "arch", COL_SET, "created")), hide_index=True)
else:
    st.info(f"No trained model in `{models_dir()}` yet: train one on the Train page.")

if is_owner():
    show_overview()
