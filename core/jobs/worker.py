"""What a running task reports about its job: claim, progress, settle, results, failure.

A task that finds its job finished, cancelled or owned by another live task
gets None from ``claim`` and does nothing, so a redelivered message never runs
a job twice.
"""

from __future__ import annotations

from pathlib import Path

from ..db import Job
from ..services import artifacts, pipeline
from . import queries, record
from .errors import JobError
from .states import COMPLETED, FAILED, PENDING, PROCESSING, Stage, overall_progress


def claim(job_id: str, task_id: str, worker: str) -> Job | None:
    """Mark the job processing for this task; None if it must not run."""
    def free(job: Job) -> bool:
        return job.status == PENDING or (job.status == PROCESSING and job.task_id in (None, task_id))

    return record.transition(job_id, PROCESSING, when=free, new_attempt=True, stage=Stage.PROBING.value,
                             progress=0.0, task_id=task_id, worker=worker, error=None)


def claim_render(job_id: str, task_id: str, worker: str) -> Job | None:
    return record.transition(job_id, PROCESSING, only_from={PROCESSING},
                             when=lambda job: job.stage == Stage.RENDERING.value, task_id=task_id, worker=worker)


def report_progress(job_id: str, stage: str, fraction: float) -> None:
    job = queries.get(job_id)
    burn_in = bool((job.options or {}).get("burn_in", True))
    record.transition(job_id, PROCESSING, only_from={PROCESSING}, stage=stage,
                      progress=overall_progress(stage, fraction, burn_in))


def _still_running(job_id: str) -> Job | None:
    try:
        job = queries.get(job_id)
    except JobError:          # deleted meanwhile
        return None
    return job if job.status == PROCESSING else None


def is_processing(job_id: str) -> bool:
    return _still_running(job_id) is not None


def _merged(job: Job, result: dict, manifest: list[dict]) -> dict:
    merged = {**(job.result or {}), **result}
    merged["manifest"] = [*(job.result or {}).get("manifest", []), *manifest]
    merged["outputs"] = {entry["kind"]: entry["path"] for entry in merged["manifest"]}
    merged["timings"] = {**(job.result or {}).get("timings", {}), **result.get("timings", {})}
    merged["timings"]["total"] = pipeline.total_seconds(merged["timings"])
    return merged


def captions_published(job_id: str, result: dict, manifest: list[dict], render_follows: bool) -> bool:
    """The caption files are in place: complete the job, or hand it to the render queue.

    False if the job was cancelled or deleted meanwhile (the caller then removes what it published).
    """
    job = _still_running(job_id)
    if job is None:
        return False
    merged = _merged(job, result, manifest)
    if render_follows:
        done = record.transition(job_id, PROCESSING, only_from={PROCESSING}, result=merged,
                                 stage=Stage.RENDERING.value, progress=overall_progress("rendering", 0.0, True))
    else:
        done = record.transition(job_id, COMPLETED, only_from={PROCESSING}, result=merged, stage=None,
                                 progress=1.0)
    return done is not None


def video_published(job_id: str, result: dict, manifest: list[dict]) -> bool:
    job = _still_running(job_id)
    if job is None:
        return False
    merged = _merged(job, result, manifest)
    return record.transition(job_id, COMPLETED, only_from={PROCESSING}, result=merged, stage=None,
                             progress=1.0) is not None


def hand_to_render(job_id: str, task_id: str) -> None:
    record.transition(job_id, PROCESSING, only_from={PROCESSING}, task_id=task_id, publish=False)


def without_outputs(result: dict | None) -> dict | None:
    """The result of a job whose files were removed: no outputs to offer."""
    return {**result, "outputs": {}, "manifest": []} if result else result


def fail(job_id: str, error: str) -> None:
    """Fail the job with its reason; what it published goes too, so no incomplete set is left."""
    before = queries.get(job_id)
    job = record.transition(job_id, FAILED, only_from={PENDING, PROCESSING}, error=error,
                            result=without_outputs(before.result))
    if job is not None:
        remove_outputs(before)


def remove_outputs(job: Job) -> tuple[list[str], list[str]]:
    """Delete the job's published files that are unchanged, and its unfinished staging."""
    removed, kept = artifacts.remove((job.result or {}).get("manifest", []))
    artifacts.discard_owned(Path(job.output_dir), Path(job.source).name, job.id)
    return removed, kept
