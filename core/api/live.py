"""Socket.IO: queue_update snapshots, worker_update, and job_update relayed from workers.

One background loop runs one Celery inspect per interval, however many
browsers watch, and only while at least one is connected.
"""

from __future__ import annotations

import json
import logging
import threading
import time

from flask import current_app, request, session
from flask_socketio import SocketIO

from ..services import queue_inspect
from . import auth as tokens
from . import hosts, queue_sampler

log = logging.getLogger(__name__)
socketio = SocketIO()
QUEUE_INTERVAL = 2.0
FRESH_FOR_NEW_CLIENT = QUEUE_INTERVAL + 2.0  # one loop period (interval plus the ~1 s poll), with slack


class QueueMonitor:
    """The latest inspect snapshot, refreshed by one loop for everyone.

    The loop runs while a browser is connected or the REST API asked within the
    last minute; requests get the cached snapshot (single-flight refresh when
    it is stale), so /api/queue never waits for an inspect broadcast.
    """

    DEMAND_WINDOW = 60.0

    def __init__(self):
        self.count = 0
        self.lock = threading.Lock()
        self.refresh_lock = threading.Lock()
        self.loop_started = False
        self.last_snapshot: dict | None = None
        self.taken_at = 0.0
        self.last_demand = 0.0
        self.workers: set[str] | None = None

    def wanted(self) -> bool:
        return self.count > 0 or time.monotonic() - self.last_demand < self.DEMAND_WINDOW

    def fresh(self, max_age: float) -> bool:
        return self.last_snapshot is not None and time.monotonic() - self.taken_at < max_age

    def refresh(self) -> dict:
        with self.refresh_lock:
            return self._refresh_locked()

    def _refresh_locked(self) -> dict:
        snapshot = queue_inspect.snapshot(current_app.extensions["queue"], timeout=1.0)
        self.last_snapshot, self.taken_at = snapshot, time.monotonic()
        return snapshot

    def current(self, max_age: float = 2 * QUEUE_INTERVAL + 1.5) -> dict:
        """For the REST API: keeps the loop polling for a minute after the request."""
        self.last_demand = time.monotonic()
        self.ensure_loop()
        return self.recent(max_age)

    def recent(self, max_age: float) -> dict:
        """The cached snapshot if younger than ``max_age``, else a new one."""
        if self.fresh(max_age):
            return self.last_snapshot
        with self.refresh_lock:  # single flight: one inspect for everyone waiting
            return self.last_snapshot if self.fresh(max_age) else self._refresh_locked()

    def ensure_loop(self) -> None:
        if socketio.server is None:  # plain WSGI (tests, flask run): no background loop
            return
        with self.lock:
            if self.loop_started:
                return
            self.loop_started = True
        socketio.start_background_task(_queue_loop, current_app._get_current_object())


watchers = monitor = QueueMonitor()


def init_socketio(app, settings: dict, async_mode: str | None = None) -> SocketIO:
    socketio.init_app(app, message_queue=settings["REDIS_URL"], async_mode=async_mode,
                      cors_allowed_origins=None, manage_session=False)
    # Socket.IO's middleware answers /socket.io/ before Flask sees the request: check the Host in
    # front of it, so a foreign name gets a 400 at the handshake (on_connect checks again).
    app.wsgi_app = KnownHostOnly(app.wsgi_app, hosts.allowed_hosts(settings))
    queue_sampler.start(app, socketio, monitor)
    return socketio


class KnownHostOnly:
    """WSGI middleware: a request whose Host is not a name of this dashboard gets a 400."""

    def __init__(self, wsgi_app, allowed):
        self.wsgi_app, self.allowed = wsgi_app, allowed

    def __call__(self, environ, start_response):
        if hosts.host_allowed(environ, self.allowed):
            return self.wsgi_app(environ, start_response)
        log.warning("refused a request for Host %r", environ.get("HTTP_HOST", "")[:100])
        body = json.dumps({"error": hosts.refusal(environ)}).encode()
        start_response("400 BAD REQUEST", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]


def _authorised(auth) -> bool:
    token = current_app.config["CAPTION_SETTINGS"]["API_TOKEN"]
    if not token or session.get("authenticated") is True:
        return True
    given = auth.get("token") if isinstance(auth, dict) else None
    if given is None:
        return False
    accepted, _ = tokens.check(current_app.extensions["login_limiter"], request.remote_addr or "", given, token)
    return accepted


@socketio.on("connect")
def on_connect(auth=None):
    if not hosts.host_allowed(request.environ, hosts.allowed_hosts(current_app.config["CAPTION_SETTINGS"])):
        log.warning("refused Socket.IO connection for Host %r", request.environ.get("HTTP_HOST", "")[:100])
        return False
    if not _authorised(auth):
        log.warning("refused Socket.IO connection from %s", request.remote_addr)
        return False
    with watchers.lock:
        watchers.count += 1
    watchers.ensure_loop()
    # The loop idles while nobody watches, so the cached snapshot may be old: a
    # browser that connects is sent only a current one.
    if watchers.fresh(FRESH_FOR_NEW_CLIENT):
        socketio.emit("queue_update", watchers.last_snapshot, to=request.sid)
    else:
        socketio.start_background_task(_send_current, current_app._get_current_object(), request.sid)
    return None


def _send_current(app, sid: str) -> None:
    try:
        with app.app_context():
            snapshot = watchers.recent(FRESH_FOR_NEW_CLIENT)
        socketio.emit("queue_update", snapshot, to=sid)
    except Exception:  # noqa: BLE001 - the loop sends the next one anyway
        log.warning("queue snapshot for a new client failed", exc_info=True)


@socketio.on("disconnect")
def on_disconnect(*_):
    with watchers.lock:
        watchers.count = max(0, watchers.count - 1)


def _queue_loop(app) -> None:
    while True:
        if monitor.wanted():
            try:
                with app.app_context():
                    snapshot = monitor.refresh()
                if monitor.count > 0:
                    socketio.emit("queue_update", snapshot)
                names = {w["name"] for w in snapshot["workers"]}
                if monitor.workers is not None and monitor.count > 0:
                    for name in sorted(names - monitor.workers):
                        socketio.emit("worker_update", {"name": name, "online": True})
                    for name in sorted(monitor.workers - names):
                        socketio.emit("worker_update", {"name": name, "online": False})
                monitor.workers = names
            except Exception:  # noqa: BLE001 - a failed poll must not kill the loop
                log.warning("queue poll failed", exc_info=True)
        socketio.sleep(QUEUE_INTERVAL)


__all__ = ["socketio", "init_socketio", "monitor"]
