"""The JSON shapes of a job: the status document, a list row, the ETA."""

from __future__ import annotations

from datetime import datetime, timedelta

from ..db import Job, utcnow
from .states import ACTIVE, PENDING

# Rough realtime factors used for ETAs before a job has progress to go on (CPU, tiny.en, 720p).
_RTF_TRANSCRIBE, _RTF_RENDER = 30.0, 7.0
_LIST_OMITS = ("segments", "text")


def iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") + "Z" if value else None


def estimated_completion(job: Job, now: datetime | None = None) -> datetime | None:
    if job.status not in ACTIVE:
        return None
    now = now or utcnow()
    duration = job.media_duration or 0.0
    burn_in = bool((job.options or {}).get("burn_in", True))
    expected = duration / _RTF_TRANSCRIBE + (duration / _RTF_RENDER if burn_in else 0.0) + 5.0
    if job.status == PENDING or not job.started_at:
        return now + timedelta(seconds=expected)
    elapsed = (now - job.started_at).total_seconds()
    if job.progress >= 0.1:
        remaining = elapsed / job.progress * (1.0 - job.progress)
    else:
        remaining = max(expected - elapsed, expected * 0.1)
    return now + timedelta(seconds=remaining)


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
        "result": {
            "text": result.get("text"),
            "language": result.get("language"),
            "duration": result.get("duration", job.media_duration),
            "segments": result.get("segments"),
            "speech_found": result.get("speech_found"),
            "message": result.get("message"),
            "outputs": result.get("outputs", {}),
            "manifest": result.get("manifest", []),
        } if result else None,
    }


def summary_dict(job: Job) -> dict:
    """A list row and the job_update event: the status shape without the (large) transcript."""
    data = job_dict(job)
    if data["result"]:
        data["result"] = {k: v for k, v in data["result"].items() if k not in _LIST_OMITS}
    return data
