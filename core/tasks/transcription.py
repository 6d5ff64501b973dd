"""Transcription and render tasks: claim the job, run one stage, complete or fail.

Tasks carry only a job id; the job record holds the truth (``core.jobs``).
"""

from __future__ import annotations

from celery import shared_task
from celery.utils.log import get_task_logger

from ..jobs import execute, history, submission, worker
from ..services import models
from ..services.errors import InputError, OptionError
from .runtime import TRANSIENT, failure_message, queue_client, settings

log = get_task_logger(__name__)


@shared_task(bind=True, name="core.tasks.transcription.batch_transcription")
def batch_transcription(self, batch_id: str) -> dict:
    """Dispatch one transcription per pending job of the batch."""
    return {"batch_id": batch_id, "dispatched": submission.dispatch_batch(batch_id, queue_client(self.app))}


@shared_task(bind=True, name="core.tasks.transcription.transcribe_video")
def transcribe_video(self, job_id: str) -> dict:
    """Transcribe and publish the caption files; queue the burn-in if asked."""
    job = worker.claim(job_id, self.request.id, self.request.hostname or "")
    if job is None:
        return {"job_id": job_id, "skipped": True}
    try:
        _check_options(job, settings())
        result = execute.run_captions(job, settings(), _reporter(self, job_id))
    except Exception as err:  # noqa: BLE001 - every failure ends the job with its reason, or is retried
        return _failed(self, job, err)
    if result is None:
        return {"job_id": job_id, "cancelled": True}
    if job.options.get("burn_in", True):
        worker.hand_to_render(job_id, queue_client(self.app).enqueue_render(job_id, job.priority, result["duration"]))
    return {"job_id": job_id, "captions": result["captions"], "render_queued": bool(job.options.get("burn_in"))}


@shared_task(bind=True, name="core.tasks.transcription.generate_captioned_video")
def generate_captioned_video(self, job_id: str) -> dict:
    """Burn the job's captions into an H.264 rendition (render queue)."""
    job = worker.claim_render(job_id, self.request.id, self.request.hostname or "")
    if job is None:
        return {"job_id": job_id, "skipped": True}
    try:
        result = execute.run_render(job, settings(), _reporter(self, job_id))
    except Exception as err:  # noqa: BLE001
        return _failed(self, job, err, revision=history.render_target(job.result))
    return {"job_id": job_id, **(result or {"cancelled": True})}


def _check_options(job, s: dict) -> None:
    """A job whose model or language this worker cannot honour (a record from an older release, or edited
    by hand; submission refuses them) fails at once with the reason: no model download at run time, no
    silent switch to another language."""
    options = job.options or {}
    model = options.get("model") or s["WHISPER_MODEL"]
    try:
        english = models.english_only(model, s)
        if options.get("language"):
            models.check_language(options["language"], model, english)
    except OptionError as err:
        raise InputError(job.source, str(err)) from None


def _reporter(task, job_id: str) -> execute.Reporter:
    def celery_state(stage: str, fraction: float) -> None:
        try:  # Celery's own view of progress (Flower, AsyncResult); losing it must not fail the job
            task.update_state(state="PROGRESS", meta={"job_id": job_id, "stage": stage,
                                                      "progress": round(fraction * 100, 1)})
        except TRANSIENT:
            log.warning("could not record progress of job %s in the result backend", job_id)

    return execute.Reporter(job_id, celery_state)


def _failed(task, job, err: Exception, revision: int | None = None) -> dict:
    """Transient infrastructure faults are retried with backoff; everything else fails the job at once."""
    limit = settings()["TASK_MAX_RETRIES"]
    if isinstance(err, TRANSIENT) and task.request.retries < limit:
        raise task.retry(exc=err, countdown=min(300, 5 * 2 ** task.request.retries), max_retries=limit)
    message = failure_message(job, err, limit)
    if not isinstance(err, TRANSIENT):
        log.warning("job %s failed: %s", job.id, message, exc_info=not message.startswith(job.source))
    worker.fail(job.id, message, revision)     # a render's revision: a newer one saved meanwhile is not failed
    return {"job_id": job.id, "error": message}
