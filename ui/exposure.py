"""Whether this dashboard is private to this machine or reachable from the network, and saying so.

The answer comes from Streamlit's ``server.address`` (``.streamlit/config.toml`` binds to
``localhost``; ``streamlit run ... --server.address 0.0.0.0`` shares on purpose) and from the
request's headers: a session that reached the server through a reverse proxy (``X-Forwarded-For``,
``Forwarded``, ``X-Real-IP``) is from the network even when the server listens on loopback. The
decision itself is :func:`maskdet.sharing.is_exposed` (fail closed).
"""

from __future__ import annotations

import streamlit as st

from maskdet.sharing import forwarded, is_exposed


def server_address() -> str | None:
    """The address the server listens on, as configured; None = every interface (Streamlit's default)."""
    return st.get_option("server.address")


def request_headers() -> dict[str, str]:
    """The headers of this session's websocket request (empty outside a browser session, e.g. in AppTest)."""
    try:
        return dict(st.context.headers)
    except Exception:  # noqa: BLE001 - no request (bare script run): nothing was forwarded
        return {}


def server_exposed() -> bool:
    """True unless the server listens on loopback and this session did not come through a proxy."""
    return is_exposed(server_address(), request_headers())


def exposure_notice() -> None:
    """One sidebar line: private to this machine, or reachable from the network (and how to change it)."""
    address = server_address()
    if forwarded(request_headers()):
        st.sidebar.caption("🌐 Reachable from the network (this session came through a reverse proxy): anyone "
                           "who can reach the proxy can use this dashboard.")
    elif server_exposed():
        st.sidebar.caption(f"🌐 Reachable from the network (listening on `{address or 'every interface'}`): "
                           "anyone who can reach this machine can use this dashboard.")
    else:
        st.sidebar.caption(f"🔒 Private to this machine (listening on `{address}`); see docs/sharing.md to share it.")
