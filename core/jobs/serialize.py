"""The JSON shapes of a job: the status document, a list row, the ETA."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from sqlalchemy import select

from ..db import Job, get_engine, session_scope, utcnow
from . import history
from .states import ACTIVE, COMPLETED, PROCESSING, Stage, stage_span

log = logging.getLogger(__name__)

# Realtime factors (seconds of media per second of work) until a job has completed here
# (2 CPU cores: tiny.en with the pyannote VAD 5x to 16x, by load; 720p veryfast render 7x).
# A running job's current stage never uses them: it goes at the speed measured on it.
_DEFAULT_RTF = {"transcribing": 10.0, "rendering": 7.0}
_HISTORY_JOBS, _HISTORY_SECONDS = 20, 300.0
_MEASURABLE = 0.005    # the share of a stage done before its speed is measured
_LIST_OMITS = ("segments", "text", "qc")
_rates: dict[str, tuple[float, dict[str, float]]] = {}


def iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") + "Z" if value else None


def _parse_iso(value: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(value.removesuffix("Z"))
    except (AttributeError, TypeError, ValueError):
        return None


def stage_rates() -> dict[str, float]:
    """Realtime factor of each stage over the last jobs completed in this store (re-read every 5 min)."""
    key = str(get_engine().url)
    cached = _rates.get(key)
    if cached and time.monotonic() - cached[0] < _HISTORY_SECONDS:
        return cached[1]
    media, work = dict.fromkeys(_DEFAULT_RTF, 0.0), dict.fromkeys(_DEFAULT_RTF, 0.0)
    try:
        with session_scope() as s:
            rows = s.execute(select(Job.media_duration, Job.timings)
                             .where(Job.status == COMPLETED, Job.media_duration > 0)
                             .order_by(Job.completed_at.desc()).limit(_HISTORY_JOBS)).all()
    except Exception:  # noqa: BLE001 - an ETA is never worth an error
        log.warning("could not read recent jobs' speed; using defaults", exc_info=True)
        rows = []
    for duration, timings in rows:
        seconds = {k: v for k, v in (timings or {}).items() if isinstance(v, (int, float)) and k != "total"}
        for stage, spent in (("transcribing", sum(v for k, v in seconds.items() if k != "rendering")),
                             ("rendering", seconds.get("rendering", 0.0))):
            if spent > 0:
                media[stage] += duration
                work[stage] += spent
    rates = {stage: media[stage] / work[stage] if work[stage] else rtf for stage, rtf in _DEFAULT_RTF.items()}
    _rates[key] = (time.monotonic(), rates)
    return rates


def _stage_left(job: Job, stage: str, since: datetime | None, now: datetime, whole: float) -> float:
    """Seconds left in the running ``stage``: what is left of it at the speed it went since ``since``."""
    lo, hi = stage_span(stage, bool((job.options or {}).get("burn_in", True)))
    done = min(max(((job.progress or 0.0) - lo) / (hi - lo), 0.0), 1.0) if hi > lo else 0.0
    elapsed = (now - since).total_seconds() if since else 0.0
    if done < _MEASURABLE or elapsed <= 0:
        return whole
    return elapsed * (1.0 - done) / done


def remaining_seconds(job: Job, now: datetime) -> float:
    """The current stage at this job's measured speed, the stages after it at recent jobs' speed."""
    duration = job.media_duration or 0.0
    rates = stage_rates()
    ahead = {stage: duration / rate for stage, rate in rates.items()}
    if not bool((job.options or {}).get("burn_in", True)):
        ahead[Stage.RENDERING.value] = 0.0
    stage = job.stage if job.status == PROCESSING and job.started_at else None
    if stage == Stage.RENDERING.value:
        started = _parse_iso((job.result or {}).get("render_started_at"))
        return _stage_left(job, stage, started, now, ahead[stage])
    if stage == Stage.TRANSCRIBING.value:
        return _stage_left(job, stage, job.started_at, now, ahead[stage]) + ahead[Stage.RENDERING.value]
    if stage == Stage.CAPTIONING.value:
        return ahead[Stage.RENDERING.value]
    return ahead[Stage.TRANSCRIBING.value] + ahead[Stage.RENDERING.value]   # queued, settling, probing


def estimated_completion(job: Job, now: datetime | None = None) -> datetime | None:
    if job.status not in ACTIVE:
        return None
    now = now or utcnow()
    return now + timedelta(seconds=remaining_seconds(job, now))


def job_dict(job: Job) -> dict:
    result = job.result or {}
    return {
        "job_id": job.id,
        "status": job.status,
        "stage": job.stage,
        "progress": round((job.progress or 0.0) * 100, 1),
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "completed_at": iso(job.completed_at),
        "estimated_completion": iso(estimated_completion(job)),
        "worker": job.worker,
        "error": job.error,
        "source": job.source,
        "batch_id": job.batch_id,
        "priority": job.priority,
        "options": job.options,
        "attempts": job.attempts,
        "task_id": job.task_id,
        "stage_label": history.stage_label(job.stage, result),     # "rendering revision 2" for a re-render
        "result": {
            "text": result.get("text"),
            "language": result.get("language"),
            "duration": result.get("duration", job.media_duration),
            "segments": result.get("segments"),
            "speech_found": result.get("speech_found"),
            "message": result.get("message"),
            "outputs": result.get("outputs", {}),
            "manifest": result.get("manifest", []),
            "qc_status": (result.get("qc") or {}).get("status"),
            "qc": result.get("qc"),
            "timecode": result.get("timecode"),
            "revision": history.latest(result),             # the latest caption revision (1: the machine's)
        } if result else None,
    }


def summary_dict(job: Job) -> dict:
    """A list row and the job_update event: the status shape without the (large) transcript."""
    data = job_dict(job)
    if data["result"]:
        data["result"] = {k: v for k, v in data["result"].items() if k not in _LIST_OMITS}
    return data
