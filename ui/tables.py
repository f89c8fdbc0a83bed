"""One way to show numbers in the dashboard's tables: percentages always with two decimals, counts whole.

Tables pass through :func:`styled` (a pandas Styler, which ``st.dataframe`` renders and still sorts by the
underlying values), so a column of accuracies never reads 98%, 99.8% and 92.17% side by side.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

PERCENT = "{:.2%}"
COUNT = "{:,.0f}"
DECIMALS = "{:.4f}"
HIGHLIGHT_CSS = "background-color: rgba(46, 158, 91, 0.25); font-weight: 600"
PERCENT_WORDS = ("accuracy", "precision", "recall", "rate", "F1")  # columns holding a share between 0 and 1
COUNT_WORDS = ("images", "false", "FP", "FN", "errors", "faces", "photos", "parameters", "shared", "own")


def percent(value: float) -> str:
    """A share as the tables show it, for text around them (``0.9851`` -> ``98.51%``)."""
    return PERCENT.format(value)


def column_format(column: str) -> str | None:
    """The format of a numeric column by its name: percent for shares, whole numbers for counts, else 4 decimals."""
    words = column.split()
    if any(word in column for word in PERCENT_WORDS):
        return PERCENT
    if any(word in words or column.startswith(word) for word in COUNT_WORDS):
        return COUNT
    return DECIMALS


def _format_of(column: pd.Series) -> str | None:
    """:func:`column_format` by the column's name; whole numbers stay whole where the name says nothing (a face's
    number reads 1, not 1.0000)."""
    chosen = column_format(str(column.name))
    return COUNT if chosen == DECIMALS and pd.api.types.is_integer_dtype(column) else chosen


def styled(frame: pd.DataFrame, formats: Mapping[str, str] | None = None, highlight: pd.DataFrame | None = None,
           text_columns: Iterable[str] = ()) -> pd.io.formats.style.Styler:
    """``frame`` with every numeric column formatted by :func:`column_format` (``formats`` overrides by column)
    and the cells where ``highlight`` is True highlighted; missing values read "—"."""
    text = set(text_columns)
    numeric = [c for c in frame.columns if c not in text and pd.api.types.is_numeric_dtype(frame[c])]
    chosen = {c: _format_of(frame[c]) for c in numeric} | dict(formats or {})
    style = frame.style.format(chosen, na_rep="—")
    if highlight is not None:
        style = style.apply(lambda _: np.where(highlight, HIGHLIGHT_CSS, ""), axis=None)
    return style
