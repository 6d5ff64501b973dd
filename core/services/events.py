"""Live events for the dashboard, sent through Socket.IO's Redis message queue.

Any process (a Celery worker, the API) publishes with a write-only Socket.IO
client on REDIS_URL; the dashboard server, created on the same queue, relays
them to browsers.  Losing an event must never fail a job, so errors are logged.
"""

from __future__ import annotations

import functools
import logging
import time

from ..config import load_settings

log = logging.getLogger(__name__)
_emitters: dict[str, object] = {}


def _emitter():
    url = load_settings()["REDIS_URL"]
    emitter = _emitters.get(url)
    if emitter is None:
        from flask_socketio import SocketIO

        emitter = _emitters[url] = SocketIO(message_queue=url)
    return emitter


def emit(event: str, data: dict) -> None:
    try:
        _emitter().emit(event, {**data, "emitted_at": time.time()}, namespace="/")
    except Exception:  # noqa: BLE001 - the job record stays the truth; the next poll catches up
        log.warning("could not publish %s", event, exc_info=True)


def job_changed(job_id: str) -> None:
    from .jobs import JobError, job_dict_by_id

    try:
        data = job_dict_by_id(job_id)
    except JobError:
        data = {"job_id": job_id, "deleted": True}
    else:
        if data.get("result"):
            data["result"] = {k: v for k, v in data["result"].items() if k not in ("segments", "text")}
    emit("job_update", data)


def announces(fn):
    """After ``fn(job_id, ...)`` returns, publish the job's new state."""
    @functools.wraps(fn)
    def wrapper(job_id, *args, **kwargs):
        result = fn(job_id, *args, **kwargs)
        job_changed(job_id)
        return result
    return wrapper
