"""Start the captioning dashboard (pages, REST API, Socket.IO) on 127.0.0.1:5050.

When nothing answers at REDIS_URL it starts an embedded ``redis-server`` on
that URL's port (loopback only; data under var/redis, append-only persistence,
so queued jobs survive a restart; a Redis it did not start is used with a
warning), and it runs a supervised Celery worker with beat (restarted if it
dies).  Use ``--no-redis`` / ``--no-worker`` where Redis and workers live elsewhere.
With WATCH_FOLDERS set it also runs the watch-folder process (``python -m core.watch``), in every mode.
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
import logging  # noqa: E402
import signal  # noqa: E402
import threading  # noqa: E402
from pathlib import Path  # noqa: E402

from core.config import load_settings, project_path  # noqa: E402
from core.embedded import (  # noqa: E402
    RedisServer, Worker, is_loopback, our_redis, redacted, redis_address, redis_reachable)
from core.watch.process import WatcherProcess, config_problems  # noqa: E402

log = logging.getLogger("start_dashboard")


def local_redis(url: str, var: Path, no_redis: bool) -> RedisServer | None:
    """Make sure Redis answers at ``url``; the embedded redis-server to stop on exit, if we run one.

    Ours has its pid in var/run/redis.pid and its data in var/redis: started
    here on the URL's port (a loopback host) when nothing answers, or taken
    back when an earlier dashboard was killed and left it running.  Any other
    Redis answering there is used as it is, with a warning: it is not ours to stop.
    """
    data, pidfile, shown = var / "redis", var / "run" / "redis.pid", redacted(url)
    if redis_reachable(url):
        pid = None if no_redis else our_redis(url, pidfile, data)
        if pid:
            log.info("using the embedded redis-server left running at %s (pid %s, data in %s)", shown, pid, data)
            return RedisServer.adopt(data, url, pid)
        if no_redis:
            log.info("using Redis at %s", shown)
        else:
            log.warning("Redis at %s was not started by this dashboard (no pid in %s for it): using it as it is; "
                        "its data is not in %s and it is left running on exit", shown, pidfile, data)
        return None
    if no_redis:
        raise SystemExit(f"Redis at {shown} is unreachable")
    host, port, password = redis_address(url)
    if not is_loopback(host):
        raise SystemExit(f"Redis at {shown} is unreachable; an embedded redis-server can only stand in for one on "
                         "this machine (a loopback host in REDIS_URL)")
    try:
        redis = RedisServer(data, port=port, host=host, pidfile=pidfile, password=password).start()
    except RuntimeError as err:
        raise SystemExit(f"could not start an embedded redis-server for {shown}: {err}") from None
    log.info("started embedded redis-server at %s (pid %s, data in %s)", shown, redis.pid, data)
    return redis


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
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    if not is_loopback(args.host) and not settings["API_TOKEN"]:
        print(f"refusing to listen on {args.host} without API_TOKEN: set it in config.py or the environment",
              file=sys.stderr)
        return 2
    problems = config_problems(settings)
    if problems:
        print("WATCH_FOLDERS is not usable as configured:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 2

    var = project_path(settings["VAR_DIR"])
    redis = local_redis(settings["REDIS_URL"], var, args.no_redis)

    worker = supervisor = None
    if not args.no_worker:
        worker = Worker({"REDIS_URL": settings["REDIS_URL"]}, var / "log" / "worker.log",
                        concurrency=settings["WORKER_CONCURRENCY"], beat=True, name="dashboard@%h",
                        pidfile=var / "run" / "worker.pid").start()
        supervisor = Supervisor(worker)
        supervisor.start()
        log.info("%s Celery worker with beat, pid %s (log: %s)",
                 "adopted the running" if worker.adopted else "started", worker.pid, worker.log_file)

    watcher = WatcherProcess().start() if settings["WATCH_FOLDERS"] else None
    if watcher:
        log.info("watch-folder process, pid %s", watcher.pid)

    stopped = threading.Event()

    def stop_everything() -> None:
        if stopped.is_set():
            return
        stopped.set()
        log.info("shutting down")
        if watcher:
            watcher.stop()
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
