"""Who is using this browser session: the owner of the machine or a visitor, and what each may do.

On a server that listens on loopback only (and a session that did not come through a proxy), the person at
the screen is the owner. On a server reachable from the network every session is a visitor (fail closed)
until it signs in as the owner, one of two ways:

- Streamlit's own authentication (``st.login``, OIDC, an ``[auth]`` section in ``.streamlit/secrets.toml``)
  with an e-mail address listed in ``MASKDET_OWNER_EMAILS``;
- the server's secret (``MASKDET_OWNER_SECRET``), typed in the sidebar; attempts are rate-limited per
  session and server-wide (:class:`maskdet.sharing.SignInLimiter`).

Pages ask :func:`may` before offering an owner's action (:class:`maskdet.sharing.Action`) and call
:func:`explain_refusal` to say why it is not offered. :func:`session_id` names this browser session (the key of
its jobs, streams and files); :func:`who_line` is the one line every page shows.
"""

from __future__ import annotations

import logging
import re

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from maskdet.settings import current_settings
from maskdet.sharing import Action, SignInLimiter, owner_email, secret_matches
from maskdet.sharing import may as role_may
from ui.exposure import server_exposed

logger = logging.getLogger(__name__)

OWNER_KEY = "access_owner_signed_in"
SECRET_KEY = "access_owner_secret"
NO_SESSION = "script"  # outside a browser session (a bare script run)


@st.cache_resource(show_spinner=False)
def sign_in_limiter() -> SignInLimiter:
    """The server's one limiter of owner sign-in attempts (all sessions)."""
    return SignInLimiter()


def session_id() -> str:
    """This browser session's id (Streamlit's, a UUID; other characters made ``-``); every tab is a session."""
    ctx = get_script_run_ctx()
    return re.sub(r"[^A-Za-z0-9_-]", "-", ctx.session_id)[:64] if ctx is not None else NO_SESSION


def oidc_configured() -> bool:
    """True when ``.streamlit/secrets.toml`` has an ``[auth]`` section, so ``st.login`` can be offered."""
    try:
        return "auth" in st.secrets
    except Exception:  # noqa: BLE001 - no or unreadable secrets file: no OIDC
        return False


def _oidc_owner() -> bool:
    if not oidc_configured():
        return False
    try:
        user = st.user
        return bool(user.get("is_logged_in")) and owner_email(user.get("email"), current_settings().owner_emails)
    except Exception:  # noqa: BLE001 - auth misconfigured: not the owner (fail closed)
        return False


def is_owner() -> bool:
    """True for the owner of this server: on loopback whoever is at the screen, else a signed-in owner."""
    return not server_exposed() or bool(st.session_state.get(OWNER_KEY)) or _oidc_owner()


def may(action: Action) -> bool:
    """Whether this session may do ``action``."""
    return role_may(action, owner=is_owner())


def explain_refusal(action: Action) -> None:
    """One line saying that ``action`` is the owner's on a shared dashboard."""
    st.info(f"On a shared dashboard only the owner may {action.value}.", icon="🔒")


def who_line() -> str:
    """Who you are and what you may do, in one line."""
    if not server_exposed():
        return "👤 Owner (this machine): you may do everything."
    if is_owner():
        return "👤 Owner (signed in): you may train, type server paths, save thresholds, export and change limits."
    return ("👤 Visitor: try photos, the webcam, clips and your own uploads (deleted when you leave); training, "
            "server paths, saving and settings are the owner's.")


def _try_secret() -> None:
    typed = st.session_state.get(SECRET_KEY, "")
    st.session_state[SECRET_KEY] = ""  # never kept in the session
    limiter, me = sign_in_limiter(), session_id()
    if limiter.wait_s(me) > 0:
        return
    secret = current_settings().owner_secret
    if secret_matches(typed, secret.get_secret_value() if secret else None):
        st.session_state[OWNER_KEY] = True
        logger.info("session %s signed in as the owner", me)
    else:
        limiter.failed(me)
        logger.warning("failed owner sign-in from session %s", me)
        st.session_state[f"{SECRET_KEY}_failed"] = True


def sign_in_controls() -> None:
    """In the sidebar: sign in as the owner (secret or OIDC), or sign out; nothing on loopback."""
    if not server_exposed():
        return
    with st.sidebar:
        if is_owner():
            if st.session_state.get(OWNER_KEY) and st.button("Sign out", key="access_sign_out"):
                st.session_state[OWNER_KEY] = False
                st.rerun()
            elif _oidc_owner() and st.button("Sign out", key="access_oidc_sign_out"):
                st.logout()
            return
        with st.expander("Owner sign-in"):
            if oidc_configured():
                st.button("Sign in with your account", key="access_login", on_click=st.login)
            if current_settings().owner_secret is None:
                if not oidc_configured():
                    st.caption("No owner sign-in is configured on this server (see the README).")
                return
            wait = sign_in_limiter().wait_s(session_id())
            if wait > 0:
                st.caption(f"Too many attempts: try again in {wait / 60:.0f} min.")
                return
            st.text_input("Owner secret", type="password", key=SECRET_KEY)
            st.button("Sign in", key="access_sign_in", on_click=_try_secret)
            if st.session_state.pop(f"{SECRET_KEY}_failed", False):
                st.caption("That is not the owner's secret.")
