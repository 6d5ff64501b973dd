"""The Host check against DNS rebinding: a page on another site whose name resolves to this machine
reaches the dashboard with its own name in ``Host``; only the names the dashboard is known by pass.

Allowed: the loopback names (``localhost``, ``127.0.0.1``, ``::1``), ``DASHBOARD_HOST``, the names in
``ALLOWED_HOSTS`` and the IP address the request arrived on, on any port; ``"*"`` in ALLOWED_HOSTS turns
the check off (a reverse proxy that checks the Host itself).  Used by every route (``before_request``) and by Socket.IO (its handshake and connect).
"""

from __future__ import annotations

import ipaddress
import re

LOOPBACK = ("localhost", "127.0.0.1", "::1")
REFUSED = "Host {host!r} is not a name of this dashboard (add it to ALLOWED_HOSTS)"
_NAME = re.compile(r"[a-z0-9_.-]+")
_PORT = re.compile(r"[0-9]{1,5}")


def allowed_hosts(settings: dict) -> frozenset[str] | None:
    """Lower-case host names allowed in ``Host``; None when the check is off."""
    extra = settings.get("ALLOWED_HOSTS") or []
    if isinstance(extra, str):
        extra = [extra]
    if "*" in extra:
        return None
    names = {*LOOPBACK, settings.get("DASHBOARD_HOST") or "", *extra}
    return frozenset(filter(None, (host_name(name) or "" for name in names)))


def host_name(value: str) -> str | None:
    """The host name of a ``Host`` header value (port and brackets dropped, lower case), None if malformed."""
    value = value.strip().lower()
    if value.startswith("["):                          # [v6] or [v6]:port
        end = value.find("]")
        if end < 0 or (value[end + 1:] and not (value[end + 1] == ":" and _PORT.fullmatch(value[end + 2:]))):
            return None
        try:
            return str(ipaddress.IPv6Address(value[1:end]))
        except ValueError:
            return None
    if value.count(":") > 1:                           # a bare IPv6 address (a setting, not a Host header)
        try:
            return str(ipaddress.IPv6Address(value))
        except ValueError:
            return None
    name, _, port = value.partition(":")
    if (port or value.endswith(":")) and not _PORT.fullmatch(port):
        return None
    name = name.removesuffix(".")
    return name if name and _NAME.fullmatch(name) else None


def host_allowed(environ: dict, allowed: frozenset[str] | None) -> bool:
    """Whether the request's ``Host`` names this dashboard.  A request without one (HTTP/1.0; no
    browser sends such a request) is addressed to the server's own name and passes, and so does the
    IP address the request came in on (``SERVER_NAME``: a browser that sends it is on that address's
    own origin; rebinding needs a domain name)."""
    if allowed is None:
        return True
    raw = environ.get("HTTP_HOST")
    if raw is None:
        return True
    name = host_name(raw)
    if name in allowed:
        return True
    return name is not None and _is_ip(name) and name == host_name(environ.get("SERVER_NAME") or "")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def refusal(environ: dict) -> str:
    return REFUSED.format(host=environ.get("HTTP_HOST", "")[:100])
