"""Queue depth and workers over time: samples the dashboard takes of the Queue tab's data, kept for a while.

The job store knows jobs, not how long the queue was at 3 a.m. or how many workers were up, so the
dashboard writes one small row per sample interval (see ``core/api/queue_sampler.py``) and prunes rows
older than ANALYTICS_RETENTION_DAYS.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, func, select

from ..db import QueueSample, get_engine, session_scope, utcnow
from .sql_time import epoch_slot

MAX_POINTS = 720      # a chart is at most ~1000 px wide: more points add nothing but bytes


def sample_of(snapshot: dict) -> dict:
    """The figures worth keeping from a Queue tab snapshot (``queue_inspect.snapshot``)."""
    counts = snapshot.get("counts") or {}
    workers = snapshot.get("workers") or []
    return {"waiting": int(counts.get("pending", 0)), "running": int(counts.get("processing", 0)),
            "workers": len(workers), "busy_workers": sum(1 for w in workers if (w.get("active") or 0) > 0)}


def record(sample: dict, url: str | None = None, when: datetime | None = None) -> dict:
    """Store one sample; returns it as the chart's point (``t`` in Unix seconds)."""
    taken_at = when or utcnow()
    with session_scope(url) as s:
        s.add(QueueSample(taken_at=taken_at, **sample))
    return {"t": round(taken_at.replace(tzinfo=timezone.utc).timestamp()), **sample}


def prune(retention_days: float, url: str | None = None) -> int:
    """Delete samples older than the retention; the number deleted."""
    cutoff = utcnow() - timedelta(days=retention_days)
    with session_scope(url) as s:
        return s.execute(delete(QueueSample).where(QueueSample.taken_at < cutoff)).rowcount or 0


def history(hours: float, sample_seconds: float, retention_days: float, url: str | None = None) -> dict:
    """The samples of the last ``hours``, at most MAX_POINTS: per step the highest queue depth, running
    jobs and busy workers and the fewest workers online (an outage shows however coarse the step)."""
    until = utcnow()
    since = until - timedelta(hours=hours)
    step = max(int(sample_seconds), math.ceil(hours * 3600 / MAX_POINTS))
    slot = epoch_slot(QueueSample.taken_at, step, get_engine(url).dialect.name)
    with session_scope(url) as s:
        rows = s.execute(select(slot.label("slot"), func.max(QueueSample.waiting), func.max(QueueSample.running),
                                func.min(QueueSample.workers), func.max(QueueSample.busy_workers))
                         .where(QueueSample.taken_at >= since).group_by("slot").order_by("slot")).all()
    points = {"t": [], "waiting": [], "running": [], "workers": [], "busy_workers": []}
    for slot_no, waiting, running, workers, busy in rows:
        for key, value in zip(points, (int(slot_no) * step, waiting, running, workers, busy)):
            points[key].append(int(value))
    return {"since": _epoch(since), "until": _epoch(until), "step_seconds": step,
            "sample_seconds": sample_seconds, "retention_days": retention_days, **points}


def _epoch(naive_utc: datetime) -> int:
    return round(naive_utc.replace(tzinfo=timezone.utc).timestamp())
