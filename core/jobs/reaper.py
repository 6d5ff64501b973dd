"""Jobs whose worker died: requeue them, or fail them after MAX_ATTEMPTS.

Two ways in.  A worker that starts reclaims at once the jobs the record says
run on its own node name (it runs none yet).  And a periodic pass, from beat
or from a timer in every worker, one at a time under a Redis lock, takes
jobs whose heartbeat stopped and whose task no worker runs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from ..db import Job
from ..queue import QueueClient
from ..services import artifacts
from . import history, queries, record, revisions
from .states import FAILED, PENDING, PROCESSING
from .submission import dispatch
from .worker import remove_outputs, without_outputs

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 3


@dataclass
class Decision:
    requeue: list[Job] = field(default_factory=list)
    fail: list[Job] = field(default_factory=list)


def decide(candidates: list[Job], running_task_ids: set[str] | None) -> Decision:
    """Which lost jobs go back to the queue and which have failed too often (pure)."""
    decision = Decision()
    for job in candidates:
        if running_task_ids and job.task_id in running_task_ids:
            continue
        (decision.fail if job.attempts >= MAX_ATTEMPTS else decision.requeue).append(job)
    return decision


def _requeue_render(job: Job, queue: QueueClient) -> bool:
    """A lost re-render of an edited revision: render it again; every revision's files stay."""
    same = record.transition(job.id, PENDING, only_from={PROCESSING}, when=lambda j, seen=job: (
        j.heartbeat_at == seen.heartbeat_at and j.task_id == seen.task_id and j.result == seen.result))
    if same is None:
        return False
    artifacts.discard_owned(Path(job.output_dir), Path(job.source).name, job.id)
    revisions.dispatch_render(job.id, history.render_target(job.result), queue)
    return True


def _apply(decision: Decision, queue: QueueClient) -> dict:
    requeued, failed = [], []
    for job in decision.requeue:
        if history.is_rerender(job.result):
            if _requeue_render(job, queue):
                requeued.append(job.id)
            continue
        # Only if nothing changed since the job was judged lost (a late heartbeat, or a caption revision, wins).
        same = record.transition(job.id, PENDING, only_from={PROCESSING}, result=None,
                                 when=lambda j, seen=job: j.heartbeat_at == seen.heartbeat_at
                                 and j.task_id == seen.task_id and j.result == seen.result)
        if same is not None:
            remove_outputs(job)   # the lost run's files: the next run writes a whole set
            dispatch(job.id, queue)
            requeued.append(job.id)
    for job in decision.fail:
        message = f"{job.source}: worker lost {job.attempts} times; giving up"
        rerender = history.is_rerender(job.result)     # a re-render keeps every revision's files
        if record.transition(job.id, FAILED, only_from={PROCESSING}, error=message,
                             result=job.result if rerender else without_outputs(job.result),
                             when=lambda j, seen=job: j.heartbeat_at == seen.heartbeat_at
                             and j.result == seen.result) is not None:
            if rerender:
                artifacts.discard_owned(Path(job.output_dir), Path(job.source).name, job.id)
            else:
                remove_outputs(job)
            failed.append(job.id)
    if requeued or failed:
        log.warning("lost jobs: requeued %s, failed %s", requeued, failed)
    return {"requeued": requeued, "failed": failed}


def reap(queue: QueueClient, stale_after: float) -> dict:
    """One pass over jobs whose heartbeat is older than ``stale_after`` seconds."""
    stale = queries.stale_jobs(timedelta(seconds=stale_after))
    if not stale:
        return {"requeued": [], "failed": []}
    return _apply(decide(stale, queue.active_task_ids()), queue)


def reclaim(worker: str, queue: QueueClient) -> dict:
    """At a worker's start: its own jobs in the record are lost (it runs nothing yet)."""
    return _apply(decide(queries.processing_on(worker), None), queue)
