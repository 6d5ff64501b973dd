"""The one writer of a job's state.

``transition()`` alone changes status, stage, progress, task id, worker and the
timestamps, checks the move against the transitions table, and publishes
``job_update`` after the commit.  Everything else reads.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from sqlalchemy import delete as sql_delete, update

from .. import events
from ..db import Job, session_scope, utcnow
from .errors import JobError
from .serialize import summary_dict
from .states import FINISHED, PENDING, PROCESSING, check

_FIELDS = {"stage", "progress", "task_id", "worker", "error", "result", "attempts", "source_stat"}


def _locked(s, job_id: object) -> Job | None:
    """The job, read after taking its row for this transaction: a no-op UPDATE first (a row lock in
    PostgreSQL, the write lock in SQLite, whose driver begins a transaction only at a write), so what
    ``only_from`` and ``when`` see is what the write replaces (a caption revision saved by the dashboard
    while a worker finishes a render is never overwritten with what the worker read before)."""
    if not isinstance(job_id, str):
        return None
    s.execute(update(Job).where(Job.id == job_id).values(status=Job.status).execution_options(
        synchronize_session=False))
    return s.get(Job, job_id)


def transition(job_id: str, status: str, *, only_from: Collection[str] | None = None,
               when: Callable[[Job], bool] | None = None, new_attempt: bool = False, publish: bool = True,
               **changes: Any) -> Job | None:
    """Move the job to ``status`` and apply ``changes``; the updated job (detached).

    ``only_from`` (the statuses the caller expects) and ``when`` (any other
    condition on the job) are checked inside the transaction; when they do not
    hold the call does nothing and returns None: a race lost to a cancel or
    another worker is not an error.  A move the table does not allow raises
    IllegalTransition.  Timestamps follow the move: claiming stamps
    ``started_at`` and the heartbeat, finishing stamps ``completed_at``, going
    back to pending clears the run.  Progress never goes backwards within a stage.
    """
    unknown = set(changes) - _FIELDS
    if unknown:
        raise TypeError(f"transition() cannot set {', '.join(sorted(unknown))}")
    with session_scope() as s:
        job = _locked(s, job_id)
        if job is None:
            raise JobError(f"job {job_id} not found", 404)
        if (only_from is not None and job.status not in only_from) or (when is not None and not when(job)):
            return None
        check(job.status, status)
        if "progress" in changes and changes.get("stage", job.stage) == job.stage and job.status == status:
            changes["progress"] = max(changes["progress"], job.progress or 0.0)
        if new_attempt:
            job.attempts = (job.attempts or 0) + 1
        now = utcnow()
        if status == PENDING and job.status != PENDING:
            job.stage, job.progress, job.task_id, job.worker = None, 0.0, None, None
            job.started_at = job.completed_at = job.heartbeat_at = None
        elif status == PROCESSING:
            if job.status != PROCESSING:
                job.started_at, job.completed_at, job.error = now, None, None
            job.heartbeat_at = now
        elif status in FINISHED:
            job.completed_at = now
        job.status = status
        for name, value in changes.items():
            setattr(job, name, value)
        s.flush()
        data = summary_dict(job)
    if publish:
        events.publish("job_update", data)
    return job


def amend_result(job_id: str, result: dict, when: Callable[[Job], bool]) -> Job | None:
    """A completed job without burn-in gains a caption revision: its result changes, its state (status,
    stage, progress, times) does not.  None when ``when`` does not hold (a race lost to another save)."""
    with session_scope() as s:
        job = _locked(s, job_id)
        if job is None:
            raise JobError(f"job {job_id} not found", 404)
        if not when(job):
            return None
        job.result = result
        s.flush()
        data = summary_dict(job)
    events.publish("job_update", data)
    return job


def heartbeat(job_id: str) -> None:
    """A running job is alive: the reaper watches this stamp."""
    with session_scope() as s:
        s.execute(update(Job).where(Job.id == job_id, Job.status == PROCESSING).values(heartbeat_at=utcnow()))


def create(jobs: list[Job]) -> None:
    """Insert new pending jobs (each already holds its fields) and announce them."""
    with session_scope() as s:
        s.add_all(jobs)
        s.flush()
        rows = [summary_dict(job) for job in jobs]
    for row in rows:
        events.publish("job_update", row)


def delete_many(job_ids: list[str]) -> None:
    """Remove records just created whose queueing failed (one transaction), and announce each."""
    with session_scope() as s:
        s.execute(sql_delete(Job).where(Job.id.in_(job_ids)).execution_options(synchronize_session=False))
    for job_id in job_ids:
        events.publish("job_update", {"job_id": job_id, "deleted": True})


def delete(job_id: str) -> Job:
    """Remove the record; the deleted job (detached)."""
    with session_scope() as s:
        job = s.get(Job, job_id) if isinstance(job_id, str) else None
        if job is None:
            raise JobError(f"job {job_id} not found", 404)
        s.delete(job)
    events.publish("job_update", {"job_id": job_id, "deleted": True})
    return job
