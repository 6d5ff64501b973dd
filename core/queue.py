"""The client side of the task queue: names, priorities, time limits, enqueue, revoke, purge, inspect.

Services and routes talk to Celery only through a ``QueueClient``; they never
import task code.  Tasks are sent by name.
"""

from __future__ import annotations

TRANSCRIBE_QUEUE, RENDER_QUEUE = "transcribe", "render"
PRIORITIES = {"high": 0, "normal": 5}   # Redis transport: lower number is served first

BATCH_TASK = "core.tasks.transcription.batch_transcription"
TRANSCRIBE_TASK = "core.tasks.transcription.transcribe_video"
RENDER_TASK = "core.tasks.transcription.generate_captioned_video"
REAP_TASK = "core.tasks.maintenance.reap_lost_jobs"
RETENTION_TASK = "core.tasks.maintenance.apply_retention"

# Lost-job recovery: one reaper at a time, and when it last ran (``core.cli check`` reads it).
REAPER_LOCK_KEY, REAPER_LAST_RUN_KEY = "caption:reaper:lock", "caption:reaper:last"

# What `celery -A core.tasks inspect <method>` offers that the dashboard shows.
INSPECT_METHODS = ("ping", "stats", "registered", "active_queues", "active", "reserved", "scheduled", "revoked",
                   "conf")


def time_limits(duration: float, settings: dict) -> tuple[float, float]:
    """(soft, hard) seconds for a job on media of ``duration`` seconds."""
    soft = settings["TIME_LIMIT_BASE"] + settings["TIME_LIMIT_FACTOR"] * max(0.0, duration)
    return soft, soft + settings["TIME_LIMIT_GRACE"]


class QueueClient:
    """Enqueue, revoke, purge and inspect on one Celery app."""

    def __init__(self, celery_app, settings: dict):
        self.celery, self.settings = celery_app, settings

    def enqueue_batch(self, batch_id: str) -> str:
        return self.celery.send_task(BATCH_TASK, args=[batch_id], queue=TRANSCRIBE_QUEUE, priority=0).id

    def enqueue_transcription(self, job_id: str, priority: str, duration: float) -> str:
        return self._send(TRANSCRIBE_TASK, TRANSCRIBE_QUEUE, job_id, priority, duration)

    def enqueue_render(self, job_id: str, priority: str, duration: float) -> str:
        return self._send(RENDER_TASK, RENDER_QUEUE, job_id, priority, duration)

    def _send(self, name: str, queue: str, job_id: str, priority: str, duration: float) -> str:
        soft, hard = time_limits(duration, self.settings)
        return self.celery.send_task(name, args=[job_id], queue=queue, priority=PRIORITIES[priority],
                                     soft_time_limit=soft, time_limit=hard).id

    def revoke(self, task_id: str, terminate: bool) -> None:
        self.celery.control.revoke(task_id, terminate=terminate, signal="SIGTERM")

    def purge(self, task_ids: list[str]) -> int:
        """Empty the queues, and revoke ``task_ids`` that a worker may already have reserved."""
        messages = self.celery.control.purge()
        for task_id in task_ids:
            self.celery.control.revoke(task_id)
        return messages

    def inspect(self, method: str, timeout: float = 1.0):
        if method not in INSPECT_METHODS + ("active_queues",):
            raise ValueError(f"unknown inspect method {method!r}")
        return getattr(self.celery.control.inspect(timeout=timeout), method)()

    def active_task_ids(self, timeout: float = 2.0) -> set[str] | None:
        """Ids of the tasks running on any worker; None when no worker answered."""
        replies = self.inspect("active", timeout)
        if replies is None:
            return None
        return {task["id"] for tasks in replies.values() for task in tasks}
