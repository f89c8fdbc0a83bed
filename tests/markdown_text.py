"""What a reader sees of markdown source that AppTest reports: backslash escapes removed (code spans kept as is)."""

from __future__ import annotations

import re
import string

_ESCAPE = re.compile(f"\\\\([{re.escape(string.punctuation)}])")


def as_shown(source: str) -> str:
    """``source`` with CommonMark's backslash escapes of punctuation resolved, as the browser renders them."""
    return "`".join(part if index % 2 else _ESCAPE.sub(r"\1", part)
                    for index, part in enumerate(source.split("`")))


def texts(elements) -> str:  # noqa: ANN001 - AppTest element lists have no public type
    """The text of AppTest elements (errors, captions, markdown...) as the reader sees it, one per line."""
    return "\n".join(as_shown(str(e.value)) for e in elements)
