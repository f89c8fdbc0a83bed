"""Test-only: keep the dashboard server's WebRTC (aioice) ICE strictly on 127.0.0.1.

Put on the PYTHONPATH of the Streamlit server that the browser tests start, never in production.
On the closed test machine aioice gathers no loopback candidate, so headless Chromium (started
with --allow-loopback-in-peer-connection) and the server would never pair. This patch offers
127.0.0.1 as the only host address and ignores remote candidates / STUN checks from other
addresses, which cannot be reached here anyway.
"""

import logging

logger = logging.getLogger("maskdet.tests.loopback")
LOOPBACK = "127.0.0.1"

try:
    import aioice.ice as _ice
except ImportError:  # pragma: no cover - the server fails later with a clearer error
    _ice = None

if _ice is not None and not getattr(_ice, "_maskdet_loopback", False):
    _add_remote_candidate = _ice.Connection.add_remote_candidate
    _request_received = _ice.Connection.request_received

    def _loopback_addresses(use_ipv4: bool = True, use_ipv6: bool = True) -> list[str]:
        return [LOOPBACK]

    async def _add_loopback_candidate(self, remote_candidate):
        if remote_candidate is not None and remote_candidate.host != LOOPBACK:
            logger.debug("ignoring non-loopback remote candidate %s", remote_candidate.host)
            return None
        return await _add_remote_candidate(self, remote_candidate)

    def _loopback_request(self, message, addr, protocol, *args, **kwargs):
        if addr[0] != LOOPBACK:
            return None
        return _request_received(self, message, addr, protocol, *args, **kwargs)

    _ice.get_host_addresses = _loopback_addresses
    _ice.Connection.add_remote_candidate = _add_loopback_candidate
    _ice.Connection.request_received = _loopback_request
    _ice._maskdet_loopback = True
