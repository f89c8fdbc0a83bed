"""maskdet dashboard entry point (`streamlit run streamlit_app.py`) and its Home page.

The Home page says what maskdet is, which data sets and trained models it finds, and where to go
next. The other pages live in ``pages/`` (Streamlit serves each at ``/<file name>``); every page,
this one included, starts with :func:`ui.shell.setup_page` (page config, navigation, sidebar job status).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from maskdet.data.datasets import DatasetError, list_datasets, scan_dataset
from maskdet.settings import CLASSES, data_root, models_dir
from ui.access import is_owner
from ui.models import list_trained_models, show_broken_models
from ui.overview import show_overview
from ui.navigation import PAGES
from ui.shell import setup_page

setup_page("Home")

DATASET_LIST_TTL_S = 30  # listing walks every file; a short cache keeps reruns instant yet picks up new folders


@st.cache_data(ttl=DATASET_LIST_TTL_S, show_spinner=False)
def _datasets(root: str) -> list[dict[str, object]]:
    """One row per data set folder under ``root``: files per class, or the problem found."""
    rows: list[dict[str, object]] = []
    for path in list_datasets(Path(root)):
        row: dict[str, object] = {"data set": path.name}
        try:
            counts = scan_dataset(path).counts()
        except (DatasetError, OSError) as exc:
            row["problem"] = str(exc)
        else:
            row.update(counts)
            row["total"] = sum(counts.values())
        rows.append(row)
    return rows


def _test_accuracy(metadata: dict) -> float | None:
    """``metadata["metrics"]["test"]["accuracy"]`` when the model recorded it."""
    test = (metadata.get("metrics") or {}).get("test") or {}
    accuracy = test.get("accuracy") if isinstance(test, dict) else None
    return float(accuracy) if isinstance(accuracy, int | float) else None


st.title("😷 maskdet")
st.markdown(
    "A face-mask detection studio: **audit** a data set (class balance, unreadable files, near-duplicates, "
    "label conflicts), **train** classifiers from a zoo of small CNNs on a duplicate-aware split, **compare** "
    "them on held-out and unseen data, and **detect** masks in photos or live from a webcam."
)

st.subheader("Pages")
for page in PAGES[1:]:
    st.page_link(page.file, label=f"{page.title}: {page.description}", icon=page.icon)

st.subheader("Data sets")
root = data_root()
datasets = _datasets(str(root))
if datasets:
    st.caption(f"Folders under `{root}` (set `MASKDET_DATA_ROOT` to use another folder).")
    st.dataframe(pd.DataFrame(datasets), hide_index=True, column_order=["data set", *CLASSES, "total", "problem"])
else:
    st.info(
        f"No data sets found under `{root}`. A data set is a folder with class sub-folders such as `with_mask/` "
        "and `without_mask/`; set `MASKDET_DATA_ROOT`, or open the Dataset page to type a path or upload a .zip."
    )

st.subheader("Trained models")
models = list_trained_models()
show_broken_models()
if models:
    st.caption(f"Models in `{models_dir()}`, newest first.")
    st.dataframe(
        pd.DataFrame(
            {
                "name": [m.get("name", Path(m["path"]).name) for m in models],
                "arch": [m.get("arch", "?") for m in models],
                "test accuracy": [_test_accuracy(m) for m in models],
                "created": [m.get("created", "") for m in models],
            }
        ),
        hide_index=True,
        column_config={"test accuracy": st.column_config.NumberColumn(format="percent")},
    )
else:
    st.info(f"No trained model in `{models_dir()}` yet: train one on the Train page.")

if is_owner():
    show_overview()
