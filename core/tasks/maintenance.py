"""Periodic housekeeping run by Celery beat: requeue lost jobs, apply retention."""

from __future__ import annotations

from datetime import timedelta

from celery.utils.log import get_task_logger
from sqlalchemy import select

from ..config import load_settings
from ..db import FINISHED, PENDING, PROCESSING, Job, session_scope, utcnow
from ..services import jobs
from . import celery

log = get_task_logger(__name__)
MAX_ATTEMPTS = 3


def _active_task_ids() -> set[str] | None:
    replies = celery.control.inspect(timeout=2.0).active()
    if replies is None:
        return None
    return {task["id"] for tasks in replies.values() for task in tasks}


@celery.task(name="core.tasks.maintenance.reap_lost_jobs")
def reap_lost_jobs() -> dict:
    """A processing job whose heartbeat stopped and whose task no worker runs
    lost its worker: requeue it (or fail it after MAX_ATTEMPTS)."""
    settings = load_settings()
    stale = jobs.stale_jobs(timedelta(seconds=settings["STALE_JOB_SECONDS"]))
    if not stale:
        return {"requeued": [], "failed": []}
    active = _active_task_ids() or set()
    requeued, failed = [], []
    for candidate in stale:
        if candidate.task_id in active:
            continue
        with session_scope() as s:
            job = s.get(Job, candidate.id)
            if job is None or job.status != PROCESSING or job.heartbeat_at != candidate.heartbeat_at:
                continue
            if job.attempts >= MAX_ATTEMPTS:
                job.status, job.completed_at = "failed", utcnow()
                job.error = f"{job.source}: worker lost {job.attempts} times; giving up"
                failed.append(job.id)
                continue
            job.status, job.stage, job.progress, job.task_id = PENDING, None, 0.0, None
            requeued.append(job.id)
    for job_id in requeued:
        jobs.dispatch(job_id)
    if requeued or failed:
        log.warning("reaper: requeued %s, failed %s", requeued, failed)
    return {"requeued": requeued, "failed": failed}


@celery.task(name="core.tasks.maintenance.apply_retention")
def apply_retention() -> dict:
    """Delete finished jobs older than RETENTION_DAYS (0 = keep forever)."""
    settings = load_settings()
    days = settings["RETENTION_DAYS"]
    if days <= 0:
        return {"deleted": 0, "policy": "off"}
    cutoff = utcnow() - timedelta(days=days)
    with session_scope() as s:
        old = s.scalars(select(Job.id).where(Job.status.in_(FINISHED), Job.created_at < cutoff)).all()
    for job_id in old:
        jobs.delete(job_id, outputs=settings["RETENTION_DELETE_OUTPUTS"])
    return {"deleted": len(old), "policy": f"{days} days"}
