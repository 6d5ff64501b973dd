"""Figures for the Analytics tab, from the job store: jobs, media hours, realtime factor and failures over time.

Aggregation happens in SQL per 15-minute slot of UTC time (the store may hold 100k jobs); the slots are
then folded into the operator's local hours or days, so a 30- or 45-minute time zone still gets whole
local hours and days start at local midnight, daylight saving included.
"""

from __future__ import annotations

import functools
import threading
import time
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from sqlalchemy import and_, case, func, select

from ..db import Job, get_engine, session_scope
from ..jobs.states import COMPLETED, FAILED
from . import failure_reasons
from .sql_time import epoch_slot

SLOT = 900                      # seconds: the finest offset any time zone has from UTC
BUCKETS = {"hour": 3600, "day": 86400}
MAX_HOURLY_DAYS = 31
# What each chart line covers, from the timings a job's result records: the job's own stages.
STAGES = {
    "transcribing": ("decode_audio", "load_model", "transcribing", "speakers"),
    "rendering": ("rendering",),
}
CACHE_SECONDS = 10.0            # many browsers on the tab share one query
_cache: dict[tuple, tuple[float, dict]] = {}
_cache_lock = threading.Lock()


class BadZone(ValueError):
    """A time zone name the server does not know."""


@functools.lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    return (frozenset(available_timezones()) | {"UTC"}) - {"localtime", "Factory"}   # not places


def zone(name: str | None) -> ZoneInfo | timezone:
    if not name:
        return timezone.utc
    try:
        if len(name) > 64 or name not in _zone_names():
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as err:
        raise BadZone(f"unknown time zone {name[:64]!r}; send an IANA name such as Europe/Berlin") from err


def _slot_rows(since: datetime, dialect: str) -> list[tuple]:
    """Per (slot, status): jobs, media seconds and, per stage and for the whole job, work and media seconds."""
    rows = (select(epoch_slot(Job.completed_at, SLOT, dialect).label("slot"), Job.status.label("status"),
                   func.coalesce(Job.media_duration, 0.0).label("media"), Job.timings.label("timings"))
            .where(Job.completed_at >= since)     # no status filter: an index on completed_at stays usable
            .cte("finished").prefix_with("MATERIALIZED"))   # else SQLite inlines it: one parse per reference

    def timing(key: str):
        return func.coalesce(rows.c.timings[key].as_float(), 0.0)

    done = rows.c.status == COMPLETED
    columns = [rows.c.slot, rows.c.status, func.count(), func.sum(case((done, rows.c.media), else_=0.0))]
    for keys in [*STAGES.values(), None]:
        spent = timing("total") if keys is None else sum((timing(k) for k in keys[1:]), timing(keys[0]))
        counted = and_(done, spent > 0, rows.c.media > 0)
        columns.append(func.sum(case((counted, spent), else_=0.0)))
        columns.append(func.sum(case((counted, rows.c.media), else_=0.0)))
    with session_scope() as s:
        return s.execute(select(*columns).group_by(rows.c.slot, rows.c.status)).all()


def _failure_rows(since: datetime, dialect: str) -> list[tuple]:
    slot = epoch_slot(Job.completed_at, SLOT, dialect)
    with session_scope() as s:  # the reason follows the path: tool output after it is not needed
        return s.execute(select(slot, func.substr(Job.error, 1, failure_reasons.HEAD))
                         .where(Job.completed_at >= since, Job.status == FAILED)).all()


def _window(days: int, bucket: str, tz, now: datetime) -> tuple[datetime, list[int]]:
    """The first bucket's start (naive UTC) and every bucket's start (Unix seconds) up to ``now``."""
    local_now = now.astimezone(tz)
    if bucket == "day":
        first = datetime.combine(local_now.date() - timedelta(days=days - 1), datetime.min.time(), tzinfo=tz)
    else:
        hour = local_now.replace(minute=0, second=0, microsecond=0).timestamp()   # real hours, not wall clock
        first = datetime.fromtimestamp(hour - (days * 24 - 1) * 3600, tz)
    start = int(first.timestamp()) // SLOT * SLOT
    starts, seen = [], set()
    for t in range(start, int(now.timestamp()) + 1, SLOT):
        b = _bucket_of(t, bucket, tz)
        if b not in seen:
            seen.add(b)
            starts.append(b)
    return datetime.fromtimestamp(starts[0], timezone.utc).replace(tzinfo=None), starts


def _bucket_of(t: int, bucket: str, tz) -> int:
    local = datetime.fromtimestamp(t, tz)
    if bucket == "day":
        return int(datetime.combine(local.date(), datetime.min.time(), tzinfo=tz).timestamp())
    return int(local.replace(minute=0, second=0, microsecond=0).timestamp())


def _last_finish() -> datetime | None:
    with session_scope() as s:
        return s.execute(select(func.max(Job.completed_at))).scalar()


def series(days: int = 14, bucket: str = "day", tz_name: str | None = None, now: datetime | None = None) -> dict:
    """The charts' data for the last ``days`` in ``bucket``s of the operator's local time (Unix seconds)."""
    if bucket not in BUCKETS:
        raise ValueError("bucket must be hour or day")
    if bucket == "hour" and days > MAX_HOURLY_DAYS:
        raise ValueError(f"hourly buckets cover at most {MAX_HOURLY_DAYS} days; use bucket=day")
    tz = zone(tz_name)
    # The newest finish is part of the key (one index lookup): a job that finishes is in the next answer.
    key = (str(get_engine().url), days, bucket, tz_name or "UTC", _last_finish())
    with _cache_lock:
        hit = _cache.get(key)
    if now is None and hit and time.monotonic() - hit[0] < CACHE_SECONDS:
        return hit[1]
    data = _series(days, bucket, tz, now or datetime.now(timezone.utc))
    data["time_zone"] = tz_name or "UTC"
    if now is None:
        with _cache_lock:
            for stale in [k for k, (at, _) in _cache.items() if time.monotonic() - at >= CACHE_SECONDS]:
                del _cache[stale]
            _cache[key] = (time.monotonic(), data)
    return data


def _series(days: int, bucket: str, tz, now: datetime) -> dict:
    since, starts = _window(days, bucket, tz, now)
    index = {t: i for i, t in enumerate(starts)}
    n = len(starts)
    dialect = get_engine().dialect.name
    completed, failed, media = [0] * n, [0] * n, [0.0] * n
    work = {stage: ([0.0] * n, [0.0] * n) for stage in [*STAGES, "whole_job"]}
    totals = {"completed": 0, "failed": 0, "media_seconds": 0.0}
    total_work = {stage: [0.0, 0.0] for stage in work}
    buckets_of: dict[int, int | None] = {}

    def position(slot_no: int) -> int | None:
        if slot_no not in buckets_of:
            buckets_of[slot_no] = index.get(_bucket_of(int(slot_no) * SLOT, bucket, tz))
        return buckets_of[slot_no]

    for slot_no, status, count, media_s, *stage_sums in _slot_rows(since, dialect):
        i = position(slot_no)
        if i is None:
            continue
        if status not in (COMPLETED, FAILED):      # cancelled
            continue
        if status == FAILED:
            failed[i] += count
            totals["failed"] += count
            continue
        completed[i] += count
        media[i] += media_s or 0.0
        totals["completed"] += count
        totals["media_seconds"] += media_s or 0.0
        for j, stage in enumerate(work):
            spent, covered = stage_sums[2 * j] or 0.0, stage_sums[2 * j + 1] or 0.0
            work[stage][0][i] += spent
            work[stage][1][i] += covered
            total_work[stage][0] += spent
            total_work[stage][1] += covered

    by_reason: dict[str, list[int]] = defaultdict(lambda: [0] * n)
    for slot_no, error in _failure_rows(since, dialect):
        i = position(slot_no)
        if i is not None:
            by_reason[failure_reasons.reason_of(error)][i] += 1
    reasons = sorted(by_reason, key=lambda r: (-sum(by_reason[r]), failure_reasons.REASONS.index(r)))
    return {
        "bucket": bucket, "bucket_seconds": BUCKETS[bucket], "days": days,
        "since": starts[0], "until": int(now.timestamp()), "t": starts,
        "jobs": {"completed": completed, "failed": failed},
        "media_hours": [round(s / 3600.0, 4) for s in media],
        "realtime_factor": {stage: [round(m / w, 2) if w > 0 else None for w, m in zip(*work[stage])]
                            for stage in work},
        "failures_by_reason": {"reasons": [{"reason": r, "title": failure_reasons.title_of(r),
                                            "count": sum(by_reason[r])} for r in reasons],
                               "series": {r: by_reason[r] for r in reasons}},
        "totals": {**totals, "media_hours": round(totals["media_seconds"] / 3600.0, 4),
                   "realtime_factor": {stage: round(m / w, 2) for stage, (w, m) in total_work.items() if w > 0}},
    }


def summary(days: int = 14, tz_name: str | None = None) -> dict:
    """The period's totals in the shape the tab's first version used: hours per day, realtime factor per
    stage, failures by reason (labels of ``failure_reasons.REASONS``)."""
    data = series(days, "day", tz_name)
    days_list = [datetime.fromtimestamp(t, zone(tz_name)).date().isoformat() for t in data["t"]]
    return {
        "days": days,
        "audio_hours_per_day": [{"day": d, "hours": h} for d, h in zip(days_list, data["media_hours"])],
        "realtime_factor": {stage: x for stage, x in data["totals"]["realtime_factor"].items() if stage in STAGES},
        "failures_by_reason": data["failures_by_reason"]["reasons"],
        "jobs": {"completed": data["totals"]["completed"], "failed": data["totals"]["failed"]},
    }


__all__ = ["series", "summary", "zone", "BadZone", "STAGES", "MAX_HOURLY_DAYS"]
