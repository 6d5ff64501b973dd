"""Reading jobs: one job, lists, counts, batches, stale and lost jobs."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import case, func, or_, select

from ..db import Batch, Job, session_scope, utcnow
from .errors import JobError
from .serialize import iso, job_dict, summary_dict
from .states import COMPLETED, FINISHED, PENDING, PROCESSING, STATUSES


def get(job_id: object) -> Job:
    """The job (detached), or a 404 JobError."""
    with session_scope() as s:
        job = s.get(Job, job_id) if isinstance(job_id, str) and len(job_id) <= 64 else None
    if job is None:
        raise JobError(f"job {job_id} not found", 404)
    return job


def job_dict_by_id(job_id: str) -> dict:
    return job_dict(get(job_id))


QC_STATUSES = ("pass", "warn", "fail")


def list_jobs(status: str | None = None, batch_id: str | None = None, q: str | None = None,
              page: int = 1, page_size: int = 50, qc: str | None = None) -> dict:
    if status and status not in STATUSES:
        raise JobError(f"status must be one of {', '.join(STATUSES)}")
    if qc and qc not in QC_STATUSES:
        raise JobError(f"qc must be one of {', '.join(QC_STATUSES)}")
    if page < 1 or not 1 <= page_size <= 500:
        raise JobError("page must be >= 1 and page_size between 1 and 500")
    where = []
    if status:
        where.append(Job.status == status)
    if qc:
        where.append(Job.result["qc"]["status"].as_string() == qc)
    if batch_id:
        where.append(Job.batch_id == batch_id)
    if q:
        escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where.append(Job.source.ilike(f"%{escaped}%", escape="\\"))
    with session_scope() as s:
        total = s.scalar(select(func.count()).select_from(Job).where(*where))
        rows = s.scalars(select(Job).where(*where).order_by(Job.created_at.desc(), Job.id)
                         .offset((page - 1) * page_size).limit(page_size)).all()
        return {"items": [summary_dict(j) for j in rows], "page": page, "page_size": page_size, "total": total}


def next_waiting(limit: int = 50) -> list[dict]:
    """Pending jobs in the order workers will take them: high priority first, then oldest."""
    with session_scope() as s:
        rows = s.scalars(select(Job).where(Job.status == PENDING)
                         .order_by(case((Job.priority == "high", 0), else_=1), Job.created_at, Job.id).limit(limit))
        return [summary_dict(j) for j in rows]


def counts() -> dict:
    with session_scope() as s:
        rows = s.execute(select(Job.status, func.count()).group_by(Job.status)).all()
    data = {status: 0 for status in STATUSES}
    data.update({status: n for status, n in rows})
    data["total"] = sum(data[s] for s in STATUSES)
    return data


def jobs_by_ids(job_ids: list[str]) -> dict[str, dict]:
    if not job_ids:
        return {}
    with session_scope() as s:
        rows = s.scalars(select(Job).where(Job.id.in_(job_ids))).all()
        return {j.id: summary_dict(j) for j in rows}



def active_by_source(sources: list[str]) -> dict[str, Job]:
    found: dict[str, Job] = {}
    with session_scope() as s:
        for start in range(0, len(sources), 500):
            for job in s.scalars(select(Job).where(Job.source.in_(sources[start:start + 500]),
                                                   Job.status.in_((PENDING, PROCESSING)))):
                found[job.source] = job
    return found


def captioned(sources: list[str]) -> set[str]:
    """The sources among ``sources`` that have a completed job (the browser's Captions column)."""
    if not sources:
        return set()
    with session_scope() as s:
        return set(s.scalars(select(Job.source).where(Job.source.in_(sources), Job.status == COMPLETED)).all())


def qc_report(job_id: str) -> dict:
    """The job's QC report (404 until its captions are made)."""
    report = (get(job_id).result or {}).get("qc")
    if report is None:
        raise JobError(f"job {job_id} has no QC report yet", 404)
    return report


def batch_dict(batch_id: str) -> dict:
    with session_scope() as s:
        batch = s.get(Batch, batch_id) if isinstance(batch_id, str) and len(batch_id) <= 64 else None
        if batch is None:
            raise JobError(f"batch {batch_id} not found", 404)
        rows = s.execute(select(Job.status, func.count(), func.avg(Job.progress))
                         .where(Job.batch_id == batch_id).group_by(Job.status)).all()
        by_status = {status: 0 for status in STATUSES}
        total, progress = 0, 0.0
        for status, n, avg in rows:
            by_status[status] = n
            total += n
            progress += (1.0 if status in FINISHED else (avg or 0.0)) * n
        return {
            "batch_id": batch.id,
            "batch_task_id": batch.task_id,
            "created_at": iso(batch.created_at),
            "options": batch.options,
            "priority": batch.priority,
            "total": total,
            "counts": by_status,
            "progress": round(progress / total * 100, 1) if total else 100.0,
            "done": total == sum(by_status[s] for s in FINISHED),
        }


def pending_of_batch(batch_id: str) -> list[Job]:
    """The batch's jobs that wait for a task."""
    with session_scope() as s:
        return list(s.scalars(select(Job).where(Job.batch_id == batch_id, Job.status == PENDING,
                                                Job.task_id.is_(None))).all())


def stale_jobs(older_than: timedelta) -> list[Job]:
    cutoff = utcnow() - older_than
    with session_scope() as s:
        return list(s.scalars(select(Job).where(
            Job.status == PROCESSING, or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < cutoff))).all())


def processing_on(worker: str) -> list[Job]:
    """Jobs the record says run on ``worker`` (a node name)."""
    with session_scope() as s:
        return list(s.scalars(select(Job).where(Job.status == PROCESSING, Job.worker == worker)).all())


def finished_before(cutoff) -> list[str]:
    with session_scope() as s:
        return list(s.scalars(select(Job.id).where(Job.status.in_(FINISHED), Job.created_at < cutoff)).all())


def pending_jobs() -> list[Job]:
    with session_scope() as s:
        return list(s.scalars(select(Job).where(Job.status == PENDING)).all())
