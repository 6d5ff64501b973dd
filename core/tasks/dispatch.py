"""Sending work to Celery by task name, so the API never imports worker code."""

from __future__ import annotations

from ..config import load_settings
from ..services.jobs import PRIORITIES
from .app import RENDER_QUEUE, TRANSCRIBE_QUEUE


def _app():
    from . import celery

    return celery


def time_limits(duration: float, settings: dict | None = None) -> tuple[float, float]:
    """(soft, hard) seconds for a job on media of ``duration`` seconds."""
    s = settings or load_settings()
    soft = s["TIME_LIMIT_BASE"] + s["TIME_LIMIT_FACTOR"] * max(0.0, duration)
    return soft, soft + s["TIME_LIMIT_GRACE"]


def dispatch_batch(batch_id: str, priority: str) -> str:
    result = _app().send_task("core.tasks.transcription.batch_transcription", args=[batch_id],
                              queue=TRANSCRIBE_QUEUE, priority=0)
    return result.id


def dispatch_job(job_id: str, priority: str, duration: float) -> str:
    soft, hard = time_limits(duration)
    result = _app().send_task("core.tasks.transcription.transcribe_video", args=[job_id], queue=TRANSCRIBE_QUEUE,
                              priority=PRIORITIES[priority], soft_time_limit=soft, time_limit=hard)
    return result.id


def dispatch_render(job_id: str, priority: str, duration: float) -> str:
    soft, hard = time_limits(duration)
    result = _app().send_task("core.tasks.transcription.generate_captioned_video", args=[job_id],
                              queue=RENDER_QUEUE, priority=PRIORITIES[priority],
                              soft_time_limit=soft, time_limit=hard)
    return result.id


def revoke(task_id: str, terminate: bool) -> None:
    _app().control.revoke(task_id, terminate=terminate, signal="SIGTERM")
