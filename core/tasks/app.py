"""The Celery application, configured from settings (see config.example.py for the why)."""

from __future__ import annotations

from celery import Celery
from kombu import Queue

from ..config import load_settings

TRANSCRIBE_QUEUE, RENDER_QUEUE = "transcribe", "render"


def create_celery(settings: dict | None = None) -> Celery:
    s = settings or load_settings()
    app = Celery("core", broker=s["REDIS_URL"], backend=s["REDIS_URL"],
                 include=["core.tasks.transcription", "core.tasks.maintenance", "core.tasks.warmup"])
    app.conf.update(
        # A task is acknowledged only when it finished, and requeued if its
        # process dies; one message per process so a long job holds no other.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # GPU hosts consume "transcribe", CPU hosts "render"; a plain worker both.
        task_queues=(Queue(TRANSCRIBE_QUEUE), Queue(RENDER_QUEUE)),
        task_default_queue=TRANSCRIBE_QUEUE,
        task_routes={
            "core.tasks.transcription.generate_captioned_video": {"queue": RENDER_QUEUE},
            "core.tasks.transcription.*": {"queue": TRANSCRIBE_QUEUE},
            "core.tasks.maintenance.*": {"queue": RENDER_QUEUE},
        },
        broker_transport_options={
            # Must exceed the longest job, or Redis delivers it a second time.
            "visibility_timeout": s["VISIBILITY_TIMEOUT"],
            # Priorities: Redis keeps one list per step; 0 is served first.
            "priority_steps": list(range(10)),
            "sep": ":",
            "queue_order_strategy": "priority",
        },
        task_default_priority=5,
        result_expires=s["RESULT_TTL"],
        result_extended=True,
        task_track_started=True,
        task_send_sent_event=True,
        worker_send_task_events=True,
        broker_connection_retry_on_startup=True,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        timezone="UTC",
        beat_schedule={
            "reap-lost-jobs": {"task": "core.tasks.maintenance.reap_lost_jobs", "schedule": float(s["REAPER_INTERVAL"])},
            "apply-retention": {"task": "core.tasks.maintenance.apply_retention", "schedule": 6 * 3600.0},
        },
    )
    return app
