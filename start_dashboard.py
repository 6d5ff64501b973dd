"""Start the captioning dashboard (pages, REST API, Socket.IO) on 127.0.0.1:5050.

When Redis is unreachable it starts an embedded ``redis-server`` (data under
var/redis, append-only persistence, so queued jobs survive a restart), and it
runs a supervised Celery worker with beat (restarted if it dies).  Use
``--no-redis`` / ``--no-worker`` where Redis and workers live elsewhere.
Ctrl-C stops everything: the worker shuts down warm, nothing is orphaned.

    python start_dashboard.py [--host H] [--port P] [--no-redis] [--no-worker] [--async-mode M]
"""

from __future__ import annotations

import os
import sys


def _async_mode(argv: list[str]) -> str:
    """--async-mode, else SOCKETIO_ASYNC_MODE (environment or config), else eventlet."""
    for i, arg in enumerate(argv):
        if arg.startswith("--async-mode="):
            return arg.split("=", 1)[1]
        if arg == "--async-mode" and i + 1 < len(argv):
            return argv[i + 1]
    from core.config import load_settings

    return load_settings()["SOCKETIO_ASYNC_MODE"]


ASYNC_MODE = _async_mode(sys.argv[1:]) if __name__ == "__main__" else "threading"
if ASYNC_MODE == "eventlet":
    import eventlet  # must patch the standard library before anything else imports it

    eventlet.monkey_patch()

import argparse  # noqa: E402
import ipaddress  # noqa: E402
import logging  # noqa: E402
import signal  # noqa: E402
import threading  # noqa: E402

from core.config import load_settings, project_path  # noqa: E402
from core.embedded import RedisServer, Worker, redis_reachable  # noqa: E402

log = logging.getLogger("start_dashboard")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Supervisor(threading.Thread):
    """Restarts the worker if it dies, until stopped."""

    def __init__(self, worker: Worker):
        super().__init__(daemon=True, name="worker-supervisor")
        self.worker, self.stopping = worker, threading.Event()

    def run(self):
        while not self.stopping.wait(2.0):
            if not self.worker.alive():
                log.warning("worker %s exited; restarting it", self.worker.pid)
                self.worker.start()


def main(argv: list[str] | None = None) -> int:
    settings = load_settings()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default=settings["DASHBOARD_HOST"])
    parser.add_argument("--port", type=int, default=settings["DASHBOARD_PORT"])
    parser.add_argument("--no-redis", action="store_true", help="never start an embedded redis-server")
    parser.add_argument("--no-worker", action="store_true", help="do not run a Celery worker here")
    parser.add_argument("--async-mode", choices=("eventlet", "threading"), default=ASYNC_MODE,
                        help="Socket.IO server mode (default: SOCKETIO_ASYNC_MODE, eventlet)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    if not _is_loopback(args.host) and not settings["API_TOKEN"]:
        print(f"refusing to listen on {args.host} without API_TOKEN: set it in config.py or the environment",
              file=sys.stderr)
        return 2

    var = project_path(settings["VAR_DIR"])
    redis = None
    if not redis_reachable(settings["REDIS_URL"]):
        if args.no_redis or "REDIS_URL" in os.environ:
            print(f"Redis at {settings['REDIS_URL']} is unreachable", file=sys.stderr)
            if args.no_redis:
                return 1
        if not args.no_redis:
            port = int(os.environ.get("EMBEDDED_REDIS_PORT", "6380"))
            embedded_url = f"redis://127.0.0.1:{port}/0"
            if redis_reachable(embedded_url):  # left running by a dashboard that was killed
                os.environ["REDIS_URL"] = embedded_url
                log.info("using the embedded redis-server already running at %s", embedded_url)
            else:
                redis = RedisServer(var / "redis", port=port).start()
                os.environ["REDIS_URL"] = redis.url
                log.info("started embedded redis-server at %s (data in %s)", redis.url, redis.data_dir)
    settings = load_settings()

    worker = supervisor = None
    if not args.no_worker:
        worker = Worker({"REDIS_URL": settings["REDIS_URL"]}, var / "log" / "worker.log",
                        concurrency=settings["WORKER_CONCURRENCY"], beat=True, name="dashboard@%h",
                        pidfile=var / "run" / "worker.pid").start()
        supervisor = Supervisor(worker)
        supervisor.start()
        log.info("%s Celery worker with beat, pid %s (log: %s)",
                 "adopted the running" if worker.adopted else "started", worker.pid, worker.log_file)

    stopped = threading.Event()

    def stop_everything() -> None:
        if stopped.is_set():
            return
        stopped.set()
        log.info("shutting down")
        if supervisor:
            supervisor.stopping.set()
        if worker:
            worker.stop(timeout=60)
        if redis:
            redis.stop()

    def on_signal(*_):
        # Raising here could land in any greenlet or handler (eventlet swallows it
        # there); stop the children from the handler itself and leave.
        stop_everything()
        logging.shutdown()
        os._exit(0)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)  # also when started in the background, where SIGINT is ignored
    from core.api import create_app
    from core.api.live import socketio

    app = create_app(settings, socketio_mode=args.async_mode)
    log.info("dashboard on http://%s:%s (Socket.IO %s)", args.host, args.port, socketio.async_mode)
    try:
        socketio.run(app, host=args.host, port=args.port, use_reloader=False, log_output=False,
                     **({"allow_unsafe_werkzeug": True} if socketio.async_mode == "threading" else {}))
    finally:
        stop_everything()
    return 0


if __name__ == "__main__":
    sys.exit(main())
