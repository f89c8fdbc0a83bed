"""Whether this dashboard is private to this machine or reachable from the network, and saying so.

The answer comes from Streamlit's ``server.address`` (``.streamlit/config.toml`` binds to
``localhost``; ``streamlit run ... --server.address 0.0.0.0`` shares on purpose); the decision
itself is :func:`maskdet.sharing.is_loopback`.
"""

from __future__ import annotations

import streamlit as st

from maskdet.sharing import is_loopback


def server_address() -> str | None:
    """The address the server listens on, as configured; None = every interface (Streamlit's default)."""
    return st.get_option("server.address")


def server_exposed() -> bool:
    """True unless the server listens on loopback only."""
    return not is_loopback(server_address())


def exposure_notice() -> None:
    """One sidebar line: private to this machine, or reachable from the network (and how to change it)."""
    address = server_address()
    if server_exposed():
        st.sidebar.caption(f"🌐 Reachable from the network (listening on `{address or 'every interface'}`): "
                           "anyone who can reach this machine can use this dashboard.")
    else:
        st.sidebar.caption(f"🔒 Private to this machine (listening on `{address}`); see docs/sharing.md to share it.")
