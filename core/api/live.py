"""Socket.IO: queue_update snapshots, worker_update, and job_update relayed from workers.

One background loop runs one Celery inspect per interval, however many
browsers watch, and only while at least one is connected.
"""

from __future__ import annotations

import hmac
import logging
import threading

from flask import current_app, request, session
from flask_socketio import SocketIO, disconnect

from ..services import queue_inspect

log = logging.getLogger(__name__)
socketio = SocketIO()
QUEUE_INTERVAL = 2.0


class _Watchers:
    def __init__(self):
        self.count = 0
        self.lock = threading.Lock()
        self.loop_started = False
        self.last_snapshot: dict | None = None
        self.workers: set[str] | None = None


watchers = _Watchers()


def init_socketio(app, settings: dict, async_mode: str | None = None) -> SocketIO:
    socketio.init_app(app, message_queue=settings["REDIS_URL"], async_mode=async_mode,
                      cors_allowed_origins=None, manage_session=False)
    return socketio


def _authorised(auth) -> bool:
    token = current_app.config["CAPTION_SETTINGS"]["API_TOKEN"]
    if not token:
        return True
    given = (auth or {}).get("token", "") if isinstance(auth, dict) else ""
    return session.get("authenticated") is True or hmac.compare_digest(str(given).encode(), token.encode())


@socketio.on("connect")
def on_connect(auth=None):
    if not _authorised(auth):
        log.warning("refused Socket.IO connection from %s", request.remote_addr)
        return False
    with watchers.lock:
        watchers.count += 1
        start = not watchers.loop_started
        watchers.loop_started = True
    if start:
        socketio.start_background_task(_queue_loop, current_app._get_current_object())
    if watchers.last_snapshot is not None:
        socketio.emit("queue_update", watchers.last_snapshot, to=request.sid)
    return None


@socketio.on("disconnect")
def on_disconnect(*_):
    with watchers.lock:
        watchers.count = max(0, watchers.count - 1)


@socketio.on("refresh")
def on_refresh(*_):
    if watchers.last_snapshot is not None:
        socketio.emit("queue_update", watchers.last_snapshot, to=request.sid)


def _queue_loop(app) -> None:
    from ..tasks import celery

    while True:
        if watchers.count > 0:
            try:
                with app.app_context():
                    snapshot = queue_inspect.snapshot(celery, timeout=1.0)
                watchers.last_snapshot = snapshot
                socketio.emit("queue_update", snapshot)
                names = {w["name"] for w in snapshot["workers"]}
                if watchers.workers is not None:
                    for name in sorted(names - watchers.workers):
                        socketio.emit("worker_update", {"name": name, "online": True})
                    for name in sorted(watchers.workers - names):
                        socketio.emit("worker_update", {"name": name, "online": False})
                watchers.workers = names
            except Exception:  # noqa: BLE001 - a failed poll must not kill the loop
                log.warning("queue poll failed", exc_info=True)
        socketio.sleep(QUEUE_INTERVAL)


__all__ = ["socketio", "init_socketio", "disconnect"]
