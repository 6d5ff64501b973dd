"""Analytics routes: period totals, the charts' series from the job store, queue depth and workers over time."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from ..jobs.errors import JobError
from ..services import analytics, queue_history
from .helpers import int_arg, settings

bp = Blueprint("analytics", __name__)


def _zone_name() -> str | None:
    name = request.args.get("tz") or None
    try:
        analytics.zone(name)
    except analytics.BadZone as err:
        raise JobError(str(err)) from None
    return name


@bp.get("/analytics")
def analytics_summary():
    return jsonify(analytics.summary(int_arg("days", 14, 1, 365), _zone_name()))


@bp.get("/analytics/series")
def analytics_series():
    bucket = request.args.get("bucket", "day")
    if bucket not in analytics.BUCKETS:
        raise JobError("bucket must be hour or day")
    high = analytics.MAX_HOURLY_DAYS if bucket == "hour" else 365
    return jsonify(analytics.series(int_arg("days", 14, 1, high), bucket, _zone_name()))


@bp.get("/analytics/queue")
def analytics_queue():
    conf = settings()
    retention = conf["ANALYTICS_RETENTION_DAYS"]
    # A range longer than the samples are kept shows what is kept (the tab asks for its whole range).
    hours = min(int_arg("hours", 24, 1, 24 * 365), max(1, int(retention * 24)))
    return jsonify(queue_history.history(hours, conf["ANALYTICS_SAMPLE_SECONDS"], retention))
