"""Text from users (uploaded file names, typed paths, archive entry names) shown literally in Streamlit markdown.

Streamlit renders the text of ``st.subheader``, ``st.error``, ``st.spinner``, ``st.caption`` and the like as
markdown with extras (``$...$`` LaTeX, ``:red[...]`` colours, ``:smile:`` emoji shortcodes, links). A file named
``**x** [y](z) $a$.jpg`` must show as exactly that name, not as bold text, a link and a formula.
"""

from __future__ import annotations

import re
import string

_PUNCTUATION = re.compile(f"([{re.escape(string.punctuation)}])")
_BACKTICK_RUN = re.compile("`+")


def plain(text: object) -> str:
    """``text`` with every ASCII punctuation character backslash-escaped: markdown shows it verbatim."""
    return _PUNCTUATION.sub(r"\\\1", str(text))


def code(text: object) -> str:
    """``text`` as an inline code span, even when it holds backticks (a fence longer than any run inside)."""
    text = str(text)
    fence = "`" * (max((len(run) for run in _BACKTICK_RUN.findall(text)), default=0) + 1)
    padding = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{padding}{text}{padding}{fence}"
