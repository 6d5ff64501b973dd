"""``GET /metrics``: the Prometheus text format, behind METRICS_TOKEN (or API_TOKEN) when one is set.

The figures come from ``core.services.metrics`` at each scrape; this module only checks the token and
hands the collector what the dashboard process itself knows (its Socket.IO clients, and the workers
in its own inspect snapshot when that is fresh).
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request, session
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from ..services import metrics
from . import auth
from .live import QUEUE_INTERVAL, monitor

bp = Blueprint("metrics", __name__)
REFUSED = "missing or wrong metrics token (send Authorization: Bearer <token> or X-API-Token)"
SNAPSHOT_FRESH = 2 * QUEUE_INTERVAL + 1.5     # the queue loop refreshes every QUEUE_INTERVAL while someone watches


@bp.record_once
def _install(state) -> None:
    app = state.app
    queue = app.extensions["queue"]
    collector = metrics.CaptioningCollector(queue, metrics.WorkerPresence(queue),
                                            _snapshot_workers, lambda: monitor.count)
    app.extensions["metrics_registry"] = metrics.registry_for(collector)
    # Its own count of wrong tokens: a Prometheus with a stale token must not lock the people at its address
    # (everyone, behind a reverse proxy) out of the dashboard.
    app.extensions["metrics_limiter"] = auth.LoginLimiter()


def _snapshot_workers() -> dict | None:
    """The workers of the Queue tab's inspect snapshot, when a loop keeps it fresh (no broadcast then)."""
    snapshot = monitor.last_snapshot
    if snapshot is None or not monitor.fresh(SNAPSHOT_FRESH):
        return None
    return {w["name"]: list(w.get("queues") or []) for w in snapshot.get("workers", [])}


def _required_token(settings: dict) -> tuple[str, bool]:
    """(the token /metrics asks for, whether a logged-in browser session also opens it)."""
    if settings.get("METRICS_TOKEN"):
        return settings["METRICS_TOKEN"], False
    return settings.get("API_TOKEN") or "", True


@bp.before_request
def require_metrics_token():
    token, session_ok = _required_token(current_app.config["CAPTION_SETTINGS"])
    if not token or (session_ok and session.get("authenticated") is True):
        return None
    given = auth.token_from_headers(request.headers)
    headers = {"WWW-Authenticate": 'Bearer realm="metrics"'}
    if given is None:
        return jsonify(error=REFUSED), 401, headers
    accepted, wait = auth.check(current_app.extensions["metrics_limiter"], request.remote_addr or "", given, token)
    if wait:
        return jsonify(error=f"too many wrong tokens; try again in {wait} s"), 429, {"Retry-After": str(wait)}
    if not accepted:
        return jsonify(error=REFUSED), 401, headers
    return None


@bp.get("/metrics")
def scrape():
    body = generate_latest(current_app.extensions["metrics_registry"])
    return Response(body, mimetype=None, headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4, "Cache-Control": "no-store"})
