"""What an operator does to a job: cancel, retry, delete, download an output."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from ..db import utcnow
from ..queue import QueueClient
from ..services import artifacts
from . import history, queries, record, revisions
from .errors import JobError
from .serialize import job_dict
from .states import ACTIVE, CANCELLED, FAILED, PENDING, PROCESSING
from .sources import source_stat
from .submission import dispatch
from .worker import remove_outputs, without_outputs

OUTPUT_KINDS = artifacts.KINDS


def cancel(job_id: str, queue: QueueClient) -> dict:
    """Stop a pending or running job; what it published or staged is removed (nothing else).

    A re-render of an edited caption revision stops and keeps every revision's files (retry renders again)."""
    for _ in range(5):   # a worker may publish between our read and our write: read again
        job = queries.get(job_id)
        if job.status not in ACTIVE:
            raise JobError(f"job {job_id} is already {job.status}", 409)
        seen = (job.result or {}).get("manifest")
        rerender = history.is_rerender(job.result)
        reason = (f"re-render of caption revision {history.render_target(job.result)} cancelled by operator"
                  if rerender else "cancelled by operator")
        done = record.transition(job_id, CANCELLED, only_from={job.status}, error=reason,
                                 result=job.result if rerender else without_outputs(job.result),
                                 when=lambda j, seen=seen: (j.result or {}).get("manifest") == seen)
        if done is not None:
            break
    else:
        raise JobError(f"job {job_id} keeps changing; try again", 409)
    if job.task_id:
        queue.revoke(job.task_id, terminate=job.status == PROCESSING)
    if rerender:
        artifacts.discard_owned(Path(job.output_dir), Path(job.source).name, job.id)
    else:
        remove_outputs(job)
    return job_dict(done)


def retry(job_id: str, queue: QueueClient) -> dict:
    job = queries.get(job_id)
    if job.status not in (FAILED, CANCELLED):
        raise JobError(f"only failed or cancelled jobs can be retried (job is {job.status})", 409)
    if revisions.retry_render(job, queue):     # a failed or cancelled re-render: render again, no transcription
        return queries.job_dict_by_id(job_id)
    # The operator retries the file as it is now (it may have been fixed after "source changed" failed it).
    try:
        current = source_stat(Path(job.source))
    except OSError:
        current = job.source_stat      # gone: the worker says so
    if record.transition(job_id, PENDING, only_from={FAILED, CANCELLED}, error=None, result=None, attempts=0,
                         source_stat=current, publish=False) is None:
        raise JobError(f"job {job_id} changed state meanwhile; try again", 409)
    dispatch(job_id, queue)
    return queries.job_dict_by_id(job_id)


def delete(job_id: str, queue: QueueClient, outputs: bool = False) -> dict:
    """Forget the job; with ``outputs`` (or while its first run runs) remove the files it published, if unchanged.

    A re-render of an edited revision in progress loses only its unfinished work: revisions already
    published are deliverables and go only with ``outputs``."""
    job = record.delete(queries.get(job_id).id)
    active = job.status in ACTIVE
    if job.task_id and active:
        queue.revoke(job.task_id, terminate=True)
    if outputs or (active and not history.is_rerender(job.result)):
        removed, kept = remove_outputs(job)
    else:
        removed, kept = [], []
        artifacts.discard_owned(Path(job.output_dir), Path(job.source).name, job.id)
    return {"job_id": job_id, "deleted": True, "outputs_deleted": removed, "outputs_kept": kept}


def output_file(job_id: str, kind: str, revision: int | None = None) -> Path:
    """The job's own published file of ``kind`` (of caption ``revision``; None: the latest), while it is
    what the job published."""
    if kind not in OUTPUT_KINDS:
        raise JobError(f"unknown output kind {kind!r} ({', '.join(OUTPUT_KINDS)})", 404)
    result = queries.get(job_id).result or {}
    if revision is not None:
        entry = history.file_entry(history.revision(result, revision), kind)
        return history.checked_path(job_id, entry, kind, f" for revision {revision}")
    if "manifest" not in result and result.get("outputs", {}).get(kind):  # a job of an earlier version
        entry = {"path": result["outputs"][kind]}
    elif result.get("revisions"):                                           # the latest revision's
        entry = history.file_entry(history.revision(result, None), kind)
    else:
        entry = next((e for e in result.get("manifest", []) if e["kind"] == kind), None)
    return history.checked_path(job_id, entry, kind)


def purge_waiting(queue: QueueClient) -> dict:
    """Empty the broker queues and cancel every job that had not started."""
    cancelled, task_ids = [], []
    for job in queries.pending_jobs():
        if record.transition(job.id, CANCELLED, only_from={PENDING},
                             error="purged from the queue by operator") is not None:
            cancelled.append(job.id)
            if job.task_id:
                task_ids.append(job.task_id)
    messages = queue.purge(task_ids)
    return {"purged_messages": messages, "cancelled_jobs": len(cancelled), "job_ids": cancelled}


def apply_retention(queue: QueueClient, days: int, delete_outputs: bool) -> dict:
    """Delete finished jobs older than ``days`` (0 keeps everything)."""
    if days <= 0:
        return {"deleted": 0, "policy": "off"}
    old = queries.finished_before(utcnow() - timedelta(days=days))
    for job_id in old:
        delete(job_id, queue, outputs=delete_outputs)
    return {"deleted": len(old), "policy": f"{days} days"}
