"""Who is using this browser session: the owner of the machine or a visitor, and what each may do.

On a server that listens on loopback only, the person at the screen is the owner. On a server reachable
from the network every session is a visitor (fail closed). Pages ask :func:`may` before offering an owner's
action (:class:`maskdet.sharing.Action`) and say why it is not offered.
"""

from __future__ import annotations

import streamlit as st

from maskdet.sharing import Action
from maskdet.sharing import may as role_may
from ui.exposure import server_exposed


def is_owner() -> bool:
    """True for the owner of this server (on loopback: whoever is at the screen)."""
    return not server_exposed()


def may(action: Action) -> bool:
    """Whether this session may do ``action``."""
    return role_may(action, owner=is_owner())


def explain_refusal(action: Action) -> None:
    """One line saying that ``action`` is the owner's on a shared dashboard."""
    st.info(f"On a shared dashboard only the owner may {action.value}.", icon="🔒")
