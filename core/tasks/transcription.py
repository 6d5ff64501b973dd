"""Celery tasks: a batch fans out to one transcription per file; burn-in follows on the render queue.

Tasks carry only a job id; the job record holds the truth.  A task that finds
its job finished, cancelled or owned by another live task does nothing, so a
redelivered message never produces a second set of outputs.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from pathlib import Path

from celery.exceptions import SoftTimeLimitExceeded
from celery.utils.log import get_task_logger
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from ..config import load_settings
from ..db import PENDING, PROCESSING, Job, session_scope
from ..services import jobs, media, pipeline, writers
from ..services.errors import CaptionError
from . import celery
from .dispatch import dispatch_job, dispatch_render

log = get_task_logger(__name__)
TRANSIENT = (RedisConnectionError, OperationalError)


class _Reporter:
    """Progress callback: writes the job record (throttled) and the Celery task state."""

    def __init__(self, task, job_id: str, interval: float = 1.0):
        self.task, self.job_id, self.interval = task, job_id, interval
        self.last_stage, self.last_time = None, 0.0

    def __call__(self, stage: str, fraction: float) -> None:
        now = time.monotonic()
        if stage == self.last_stage and fraction < 1.0 and now - self.last_time < self.interval:
            return
        self.last_stage, self.last_time = stage, now
        jobs.report_progress(self.job_id, stage, fraction)
        try:  # Celery's own view of progress (Flower, AsyncResult); losing it must not fail the job
            self.task.update_state(state="PROGRESS", meta={"job_id": self.job_id, "stage": stage,
                                                           "progress": round(fraction * 100, 1)})
        except TRANSIENT:
            log.warning("could not record progress of job %s in the result backend", self.job_id)


@contextmanager
def _heartbeat(job_id: str):
    """Keep the job's heartbeat fresh while the block runs (the reaper watches it)."""
    interval = load_settings()["HEARTBEAT_SECONDS"]
    stop = threading.Event()

    def beat():
        while not stop.wait(interval):
            try:
                jobs.heartbeat(job_id)
            except Exception:  # noqa: BLE001 - a missed beat is harmless; the next one retries
                log.warning("heartbeat for job %s failed", job_id, exc_info=True)

    thread = threading.Thread(target=beat, name=f"heartbeat-{job_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()


@celery.task(bind=True, name="core.tasks.transcription.batch_transcription")
def batch_transcription(self, batch_id: str) -> dict:
    """Dispatch one transcription per pending job of the batch."""
    with session_scope() as s:
        pending = s.execute(select(Job.id, Job.priority, Job.media_duration)
                            .where(Job.batch_id == batch_id, Job.status == PENDING, Job.task_id.is_(None))).all()
    for job_id, priority, duration in pending:
        task_id = dispatch_job(job_id, priority, duration or 0.0)
        with session_scope() as s:
            job = s.get(Job, job_id)
            if job is not None and job.status == PENDING and job.task_id is None:
                job.task_id = task_id
    return {"batch_id": batch_id, "dispatched": len(pending)}


@celery.task(bind=True, name="core.tasks.transcription.transcribe_video")
def transcribe_video(self, job_id: str) -> dict:
    """Probe, transcribe and write the caption files; queue the burn-in if asked."""
    job = jobs.claim(job_id, self.request.id, self.request.hostname or "")
    if job is None:
        return {"job_id": job_id, "skipped": True}
    options = pipeline.CaptionOptions(**job.options)
    report = _Reporter(self, job_id)
    timings: dict = {}
    try:
        with _heartbeat(job_id):
            started = time.monotonic()
            report("probing", 0.0)
            info, finals = pipeline.prepare(job.source, job.output_dir, options.burn_in)
            timings["probing"] = round(time.monotonic() - started, 3)
            transcript, captions = pipeline.transcribe_media(info, options, report, timings)
            sidecars = {kind: path for kind, path in finals.items() if kind != "video"}
            with pipeline.writing_outputs(Path(job.source), Path(job.output_dir)) as staging:
                pipeline.stage_sidecars(staging, sidecars, info, transcript, captions, options)
                if jobs.status_of(job_id) != PROCESSING:
                    return {"job_id": job_id, "cancelled": True}
                staging.publish(sidecars)
        record = pipeline.result_record(info, sidecars, transcript, captions, options, {}, timings)
        record["text"] = transcript.text
        record["segments"] = transcript.as_dict()["segments"]
        if not jobs.store_result(job_id, record, done=not options.burn_in):
            return {"job_id": job_id, "cancelled": True}
        if options.burn_in:
            render_id = dispatch_render(job_id, job.priority, info.duration)
            with session_scope() as s:
                s.get(Job, job_id).task_id = render_id
        return {"job_id": job_id, "captions": record["captions"], "render_queued": options.burn_in}
    except (CaptionError, SoftTimeLimitExceeded, *TRANSIENT) as err:
        return _failed(self, job, err)


@celery.task(bind=True, name="core.tasks.transcription.generate_captioned_video")
def generate_captioned_video(self, job_id: str) -> dict:
    """Burn the job's captions into an H.264 rendition (render queue)."""
    job = jobs.claim_render(job_id, self.request.id, self.request.hostname or "")
    if job is None:
        return {"job_id": job_id, "skipped": True}
    report = _Reporter(self, job_id)
    timings = dict((job.result or {}).get("timings", {}))
    try:
        with _heartbeat(job_id):
            info = media.probe(job.source)
            final = pipeline.output_paths(Path(job.source), Path(job.output_dir))["video"]
            caption_json = Path(job.result["outputs"]["json"])
            try:
                captions = writers.captions_from_json(caption_json)
            except (OSError, ValueError, KeyError) as err:
                raise CaptionError(caption_json, f"caption file is missing or unreadable ({err})") from err
            with pipeline.writing_outputs(Path(job.source), Path(job.output_dir)) as staging:
                render = pipeline.stage_video(staging, final, info, captions, load_settings(), report, timings)
                if jobs.status_of(job_id) != PROCESSING:
                    return {"job_id": job_id, "cancelled": True}
                staging.publish({"video": final})
        timings["total"] = round(sum(v for k, v in timings.items() if k != "total"), 3)
        jobs.store_result(job_id, {"outputs": {"video": str(final)}, "render": render, "timings": timings},
                          done=True)
        return {"job_id": job_id, "video": str(final)}
    except (CaptionError, SoftTimeLimitExceeded, *TRANSIENT) as err:
        return _failed(self, job, err, remove_outputs=True)


def _failed(task, job: Job, err: Exception, remove_outputs: bool = False) -> dict:
    """Bad input and tool failures fail the job; transient infrastructure faults
    are retried with exponential backoff, then fail it.  A job that fails while
    rendering loses its caption files too, so no incomplete set is left."""
    if isinstance(err, TRANSIENT):
        limit = load_settings()["TASK_MAX_RETRIES"]
        if task.request.retries < limit:
            raise task.retry(exc=err, countdown=min(300, 5 * 2 ** task.request.retries), max_retries=limit)
        message = f"{job.source}: gave up after {limit} retries: {err}"
    elif isinstance(err, SoftTimeLimitExceeded):
        message = (f"{job.source}: stopped after exceeding its time limit "
                   f"({job.media_duration or 0:.0f} s of media); see TIME_LIMIT_* settings")
    else:
        message = str(err)
    jobs.fail(job.id, message, clear_outputs=remove_outputs)
    return {"job_id": job.id, "error": message}
