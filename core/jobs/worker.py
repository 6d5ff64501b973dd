"""What a running task reports about its job: claim, progress, settle, results, failure.

A task that finds its job finished, cancelled or owned by another live task
gets None from ``claim`` and does nothing, so a redelivered message never runs
a job twice.
"""

from __future__ import annotations

import time
from pathlib import Path

from ..db import Job
from ..services import artifacts, pipeline
from . import history, queries, record
from .errors import JobError
from .states import COMPLETED, FAILED, PENDING, PROCESSING, Stage, overall_progress


class Superseded(Exception):
    """A newer caption revision was saved (or the job was cancelled) while this render ran."""


def claim(job_id: str, task_id: str, worker: str) -> Job | None:
    """Mark the job processing for this task; None if it must not run."""
    def free(job: Job) -> bool:
        if history.is_rerender(job.result):      # waits for a render of an edited revision, not a transcription
            return False
        return job.status == PENDING or (job.status == PROCESSING and job.task_id in (None, task_id))

    return record.transition(job_id, PROCESSING, when=free, new_attempt=True, stage=Stage.PROBING.value,
                             progress=0.0, task_id=task_id, worker=worker, error=None)


def claim_render(job_id: str, task_id: str, worker: str) -> Job | None:
    """The render of a job handed over by its transcription, or a re-render of an edited revision (which
    waits pending after a failed or cancelled one, and counts its own attempts)."""
    def ready(job: Job) -> bool:
        if job.status == PROCESSING:
            return job.stage == Stage.RENDERING.value
        return history.is_rerender(job.result)

    try:
        rerender = history.is_rerender(queries.get(job_id).result)
    except JobError:          # deleted meanwhile
        return None
    return record.transition(job_id, PROCESSING, only_from={PROCESSING, PENDING}, when=ready, new_attempt=rerender,
                             stage=Stage.RENDERING.value, progress=overall_progress("rendering", 0.0, True),
                             task_id=task_id, worker=worker)


def render_input(result: dict) -> tuple[int, Path, int | None]:
    """What a render burns: (revision, its captions JSON, the run its files are named after)."""
    revision = history.render_target(result)
    if not result.get("revisions"):          # the machine's captions, handed over by the transcription
        return revision, Path(result.get("outputs", {}).get("json", "")), result.get("run")
    entry = history.revision(result, revision)
    return revision, Path((history.file_entry(entry, "json") or {}).get("path", "")), entry.get("run")


def unless_superseded(job_id: str, revision: int, report, interval: float = 0.5):
    """``report`` that raises Superseded once the job no longer waits for this revision's render."""
    last = [0.0]

    def checked(stage: str, fraction: float) -> None:
        report(stage, fraction)
        now = time.monotonic()
        if now - last[0] < interval:
            return
        last[0] = now
        job = _still_running(job_id)
        if job is None or history.render_target(job.result) != revision:
            raise Superseded(f"the render of revision {revision} is no longer wanted")

    return checked


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


def video_published(job_id: str, result: dict, manifest: list[dict], revision: int = 1) -> bool:
    """The rendition of ``revision`` is in place: complete the job.  False (the caller removes the file) if the
    job was cancelled or deleted, or a newer revision was saved meanwhile: the newest revision's render wins."""
    job = _still_running(job_id)
    if job is None:
        return False
    current = job.result or {}
    if history.render_target(current) != revision:
        return False
    if current.get("revisions"):
        merged = history.with_video(current, revision, manifest, result.get("render", {}),
                                    result.get("timings", {}).get("rendering"))
    else:
        merged = _merged(job, result, manifest)
    return record.transition(job_id, COMPLETED, only_from={PROCESSING}, result=merged, stage=None, progress=1.0,
                             when=lambda j: (j.result or {}) == current) is not None


def hand_to_render(job_id: str, task_id: str) -> None:
    # Not over a re-render queued meanwhile (an edit saved while this task finished): that task's id counts.
    record.transition(job_id, PROCESSING, only_from={PROCESSING}, task_id=task_id, publish=False,
                      when=lambda job: not history.is_rerender(job.result))


def without_outputs(result: dict | None) -> dict | None:
    """The result of a job whose files were removed: no outputs to offer."""
    return {**result, "outputs": {}, "manifest": []} if result else result


def fail(job_id: str, error: str, revision: int | None = None) -> None:
    """Fail the job with its reason; what it published goes too, so no incomplete set is left.

    A failed re-render of an edited revision keeps every revision's files (retry renders again).  A render
    of ``revision`` that fails after a newer revision was saved fails nothing: the newer one's render runs."""
    before = queries.get(job_id)
    if revision is not None and history.render_target(before.result) != revision:
        return

    def unchanged(job: Job) -> bool:     # no revision saved since we read it (its render must not be lost)
        return (job.result or {}) == (before.result or {})

    if history.is_rerender(before.result):
        kept = {k: v for k, v in before.result.items() if k != "render_started_at"}
        if record.transition(job_id, FAILED, only_from={PENDING, PROCESSING}, error=error, result=kept,
                             when=unchanged) is not None:
            artifacts.discard_owned(Path(before.output_dir), Path(before.source).name, before.id)
        return
    job = record.transition(job_id, FAILED, only_from={PENDING, PROCESSING}, error=error,
                            result=without_outputs(before.result), when=unchanged)
    if job is not None:
        remove_outputs(before)


def remove_outputs(job: Job) -> tuple[list[str], list[str]]:
    """Delete the job's published files that are unchanged, and its unfinished staging."""
    removed, kept = artifacts.remove((job.result or {}).get("manifest", []))
    artifacts.discard_owned(Path(job.output_dir), Path(job.source).name, job.id)
    return removed, kept
