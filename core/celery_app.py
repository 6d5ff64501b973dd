"""The Celery application, configured from settings (see config.example.py for the why).

``celery -A core.tasks worker`` builds it in ``core/tasks``; the dashboard builds
its own in the app factory (``celery_init_app``), as Flask's Celery example does.
"""

from __future__ import annotations

from celery import Celery
from kombu import Queue

from .queue import REAP_TASK, RENDER_QUEUE, RENDER_TASK, RETENTION_TASK, TRANSCRIBE_QUEUE, QueueClient

TASK_MODULES = ["core.tasks.transcription", "core.tasks.maintenance", "core.tasks.warmup"]


def create_celery(settings: dict, include_tasks: bool = True) -> Celery:
    app = Celery("core", broker=settings["REDIS_URL"], backend=settings["REDIS_URL"],
                 include=TASK_MODULES if include_tasks else [])
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
            RENDER_TASK: {"queue": RENDER_QUEUE},
            "core.tasks.transcription.*": {"queue": TRANSCRIBE_QUEUE},
            "core.tasks.maintenance.*": {"queue": RENDER_QUEUE},
        },
        broker_transport_options={
            # Must exceed the longest job, or Redis delivers it a second time.
            "visibility_timeout": settings["VISIBILITY_TIMEOUT"],
            # Priorities: Redis keeps one list per step; 0 is served first.
            "priority_steps": list(range(10)),
            "sep": ":",
            "queue_order_strategy": "priority",
        },
        task_default_priority=5,
        result_expires=settings["RESULT_TTL"],
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
            "reap-lost-jobs": {"task": REAP_TASK, "schedule": float(settings["REAPER_INTERVAL"])},
            "apply-retention": {"task": RETENTION_TASK, "schedule": 6 * 3600.0},
        },
    )
    if not include_tasks:
        # A client (dashboard, watcher, CLI) that sends a task while Redis is down hears so in about a second,
        # not after Celery's 20 reconnect attempts (19 s): the request gets a 503 and nothing is queued.
        app.conf.result_backend_transport_options = {
            "retry_policy": {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}}
    app.conf.caption_settings = settings
    return app


def celery_init_app(flask_app, settings: dict, queue: QueueClient | None = None) -> QueueClient:
    """Attach a Celery app and its queue client to a Flask app (``app.extensions``)."""
    if queue is None:
        celery = create_celery(settings, include_tasks=False)
        queue = QueueClient(celery, settings)
    flask_app.extensions["celery"] = queue.celery
    flask_app.extensions["queue"] = queue
    return queue
