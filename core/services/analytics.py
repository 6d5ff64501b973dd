"""Figures for the Analytics tab, from the job store."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from datetime import timedelta

from sqlalchemy import select

from ..db import Job, session_scope, utcnow
from ..jobs.states import COMPLETED, FAILED


def _reason(error: str) -> str:
    """An error without its file name and tool detail: "/mnt/a.mp4: file not found" -> "file not found"."""
    text = error.split(": ", 1)[1] if ": " in error else error
    return re.sub(r"\s*\(.*\)$", "", text).strip()[:80] or "unknown"


def summary(days: int = 14) -> dict:
    since = utcnow() - timedelta(days=days)
    with session_scope() as s:
        rows = s.execute(select(Job.status, Job.completed_at, Job.media_duration, Job.result, Job.error)
                         .where(Job.completed_at >= since)).all()
    hours: dict[str, float] = defaultdict(float)
    stage_time: dict[str, float] = defaultdict(float)
    stage_media: dict[str, float] = defaultdict(float)
    failures: Counter[str] = Counter()
    for status, done_at, duration, result, error in rows:
        if status == COMPLETED and duration:
            hours[done_at.date().isoformat()] += duration / 3600.0
            for stage, seconds in ((result or {}).get("timings") or {}).items():
                if stage in ("transcribing", "rendering") and seconds:
                    stage_time[stage] += seconds
                    stage_media[stage] += duration
        elif status == FAILED:
            failures[_reason(error or "")] += 1
    day_list = [(since + timedelta(days=i + 1)).date().isoformat() for i in range(days)]
    return {
        "days": days,
        "audio_hours_per_day": [{"day": d, "hours": round(hours.get(d, 0.0), 4)} for d in day_list],
        "realtime_factor": {stage: round(stage_media[stage] / stage_time[stage], 1) for stage in stage_time},
        "failures_by_reason": [{"reason": r, "count": n} for r, n in failures.most_common(10)],
    }
