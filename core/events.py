"""Live events for the dashboard: a leaf that publishes a dict.

Every process (a Celery worker, the API) publishes through Socket.IO's Redis
message queue with a write-only client; the dashboard server, created on the
same queue, relays to browsers.  Losing an event must never fail a job, so
errors are logged.  Tests swap the sink for a list.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

log = logging.getLogger(__name__)
Sink = Callable[[str, dict], None]

_redis_url: str | None = None
_sink: Sink | None = None


def configure(redis_url: str | None = None, sink: Sink | None = None) -> None:
    """Publish to Socket.IO on ``redis_url``, or to ``sink`` (tests)."""
    global _redis_url, _sink
    _redis_url, _sink = redis_url, sink


def _socketio_sink() -> Sink:
    from flask_socketio import SocketIO

    url = _redis_url
    if url is None:
        from .config import process_settings

        url = process_settings()["REDIS_URL"]
    emitter = SocketIO(message_queue=url, async_mode="threading")   # a writer needs no eventlet
    return lambda event, data: emitter.emit(event, data, namespace="/")


def publish(event: str, data: dict) -> None:
    global _sink
    try:
        if _sink is None:
            _sink = _socketio_sink()
        _sink(event, {**data, "emitted_at": time.time()})
    except Exception:  # noqa: BLE001 - the job record stays the truth; the next poll catches up
        log.warning("could not publish %s", event, exc_info=True)
