""""Get a public data set": the registry of :mod:`maskdet.data.public` with licence and size, a progress bar,
and the fetched set chosen in the page's data-set picker at once. The owner's action on a shared dashboard.
"""

from __future__ import annotations

import logging

import pandas as pd
import streamlit as st

from maskdet.data.datasets import list_datasets
from maskdet.data.public import FetchError, default_destination, fetch, registry
from maskdet.sharing import Action
from ui.access import explain_refusal, may
from ui.dataset_picker import SOURCE_FOLDERS
from ui.markup import code, plain

logger = logging.getLogger(__name__)


@st.cache_data(show_spinner=False)
def _registry_rows() -> list[dict[str, object]]:
    return [dataset.describe() for dataset in registry()]


def get_public_dataset(picker_key: str) -> None:
    """The expander; after a fetch, selects the new set in the picker whose widget keys start with ``picker_key``."""
    rows = _registry_rows()
    if done := st.session_state.pop("public_done", None):
        st.success(done)
    with st.expander("Get a public data set", icon="⬇️"):
        table = pd.DataFrame(rows).assign(size_mb=lambda frame: frame["bytes"] / 1e6)
        st.dataframe(table, hide_index=True,
                     column_order=["name", "licence", "size_mb", "files", "layout", "description", "source"],
                     column_config={"size_mb": st.column_config.NumberColumn("size (MB)", format="%.0f")})
        if not may(Action.GET_DATASET):
            explain_refusal(Action.GET_DATASET)
            return
        name = st.selectbox("Data set", [row["name"] for row in rows], key="public_name")
        destination = default_destination()
        st.caption(f"Every file is checked against the publisher's files at a pinned commit; the set is unpacked "
                   f"into {code(destination)}. An interrupted download continues where it stopped.")
        if not st.button(f"Get {name}", key="public_get", type="primary"):
            return
        bar = st.progress(0.0, text=f"Getting {name}…")

        def show(done: int, total: int) -> None:
            bar.progress(min(1.0, done / total) if total else 1.0, text=f"{name}: {done / 1e6:,.1f} of "
                                                                        f"{total / 1e6:,.1f} MB verified")

        try:
            result = fetch(name, progress=show, command="dashboard: Dataset page, Get a public data set")
        except FetchError as exc:
            bar.empty()
            st.error(f"Cannot get {plain(name)}: {plain(exc)}")
            return
        logger.info("fetched %s to %s", name, result.path)
        if result.path in list_datasets(result.path.parent):  # a set of face crops: chosen below at once
            st.session_state[f"{picker_key}_source"] = SOURCE_FOLDERS
            st.session_state[f"{picker_key}_listed"] = result.path.name
            where = "it is listed below and chosen"
        else:
            where = "its boxed photos are listed on the Compare page (detector + classifier on photos)"
        verb = "Already there:" if result.already_there else "Saved"
        st.session_state["public_done"] = f"{verb} {code(result.path)}: {where}."
        st.rerun()
