"""Housekeeping: requeue lost jobs and apply retention.

Lost-job recovery never depends on beat: a worker that starts reclaims its own
jobs at once, and every worker runs the reaper on a timer, one at a time
under a Redis lock (beat may run it too; the lock and the record's checks make
that harmless).
"""

from __future__ import annotations

import json
import threading
import time

import redis
from celery import shared_task
from celery.signals import worker_ready, worker_shutdown
from celery.utils.log import get_task_logger

from ..celery_app import create_celery
from ..jobs import actions, reaper
from ..queue import REAPER_LAST_RUN_KEY as LAST_RUN_KEY, REAPER_LOCK_KEY as LOCK_KEY, QueueClient
from .runtime import queue_client, settings

log = get_task_logger(__name__)
_stop = threading.Event()


@shared_task(bind=True, name="core.tasks.maintenance.reap_lost_jobs")
def reap_lost_jobs(self) -> dict:
    return reap_once(queue_client(self.app), "beat")


@shared_task(bind=True, name="core.tasks.maintenance.apply_retention")
def apply_retention(self) -> dict:
    s = settings()
    return actions.apply_retention(queue_client(self.app), s["RETENTION_DAYS"], s["RETENTION_DELETE_OUTPUTS"])


def reap_once(queue: QueueClient, runner: str) -> dict:
    """One reaper pass if no other runs now; records when and where it ran (``core.cli check`` reads it)."""
    s = settings()
    client = redis.Redis.from_url(s["REDIS_URL"], socket_timeout=10)
    lock = client.lock(LOCK_KEY, timeout=max(30, s["REAPER_INTERVAL"]), blocking=False)
    if not lock.acquire(blocking=False):
        return {"skipped": "another reaper is running"}
    try:
        result = reaper.reap(queue, s["STALE_JOB_SECONDS"])
        client.set(LAST_RUN_KEY, json.dumps({"at": time.time(), "by": runner}), ex=max(600, 10 * s["REAPER_INTERVAL"]))
        return result
    finally:
        try:
            lock.release()
        except redis.exceptions.LockError:
            pass


def _reaper_loop(name: str) -> None:
    queue = QueueClient(create_celery(settings(), include_tasks=False), settings())
    while True:
        try:
            reap_once(queue, name)
        except Exception:  # noqa: BLE001 - Redis or the database away for a moment: try again next time
            log.warning("reaper pass failed", exc_info=True)
        if _stop.wait(settings()["REAPER_INTERVAL"]):
            return


@worker_ready.connect
def _recover_on_start(sender=None, **_) -> None:
    """Requeue the jobs the record says run on this node (it runs none yet), then reap on a timer."""
    name = getattr(sender, "hostname", None)
    if not name:
        return
    try:
        result = reaper.reclaim(name, queue_client(sender.app))
        if result["requeued"] or result["failed"]:
            log.warning("%s reclaimed its jobs from before a restart: %s", name, result)
    except Exception:  # noqa: BLE001 - the timer below catches them later
        log.warning("reclaiming jobs at start failed", exc_info=True)
    _stop.clear()
    threading.Thread(target=_reaper_loop, args=(name,), name="reaper", daemon=True).start()


@worker_shutdown.connect
def _stop_reaper(**_) -> None:
    _stop.set()
