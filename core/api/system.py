"""Queue and health routes."""

from __future__ import annotations

from flask import Blueprint, jsonify
from sqlalchemy import text

from ..db import get_engine
from ..jobs import queries
from ..queue import INSPECT_METHODS
from .helpers import queue
from .live import monitor

bp = Blueprint("system", __name__)


@bp.get("/queue")
def queue_snapshot():
    """The latest inspect snapshot (at most a few seconds old) joined to fresh job counts."""
    snapshot = dict(monitor.current())
    snapshot["counts"] = queries.counts()
    return jsonify(snapshot)


@bp.get("/health")
def health():
    celery = queue().celery
    report = {}
    try:
        with celery.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
            conn.default_channel.client.ping()
        report["redis"] = {"ok": True}
    except Exception as err:  # noqa: BLE001 - report any broker failure as unhealthy
        report["redis"] = {"ok": False, "error": str(err)}
    try:
        with get_engine().connect() as conn:
            conn.execute(text("SELECT 1"))
        report["database"] = {"ok": True}
    except Exception as err:  # noqa: BLE001
        report["database"] = {"ok": False, "error": str(err)}
    workers = {}
    if report["redis"]["ok"]:
        workers = queue().inspect("ping") or {}
    report["workers"] = {"ok": bool(workers), "count": len(workers), "names": sorted(workers)}
    healthy = all(part["ok"] for part in report.values())
    return jsonify({"status": "ok" if healthy else "degraded", **report}), 200 if healthy else 503


@bp.get("/inspect/<method>")
def inspect(method: str):
    """Raw Celery inspect replies, as `celery -A core.tasks inspect <method>` prints them."""
    if method not in INSPECT_METHODS:
        return jsonify(error=f"unknown inspect method; use one of {', '.join(INSPECT_METHODS)}"), 404
    replies = queue().inspect(method) or {}
    return jsonify({"method": method, "command": f"celery -A core.tasks inspect {method}", "replies": replies})
