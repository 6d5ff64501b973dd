"""Start the captioning dashboard: the REST API on 127.0.0.1:5050 (DASHBOARD_HOST/PORT).

When Redis is unreachable it starts an embedded ``redis-server`` (data under
var/redis, append-only persistence, so queued jobs survive a restart), and it
runs a supervised Celery worker with beat (restarted if it dies).  Use
``--no-redis`` / ``--no-worker`` where Redis and workers live elsewhere.
Ctrl-C stops everything: the worker shuts down warm, nothing is orphaned.

    python start_dashboard.py [--host H] [--port P] [--no-redis] [--no-worker]
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import signal
import sys
import threading

from core.config import PROJECT_ROOT, load_settings
from core.embedded import RedisServer, Worker, redis_reachable

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
                log.warning("worker exited (code %s); restarting it", self.worker.proc and self.worker.proc.returncode)
                self.worker.start()


def main(argv: list[str] | None = None) -> int:
    settings = load_settings()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default=settings["DASHBOARD_HOST"])
    parser.add_argument("--port", type=int, default=settings["DASHBOARD_PORT"])
    parser.add_argument("--no-redis", action="store_true", help="never start an embedded redis-server")
    parser.add_argument("--no-worker", action="store_true", help="do not run a Celery worker here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    if not _is_loopback(args.host) and not settings["API_TOKEN"]:
        print(f"refusing to listen on {args.host} without API_TOKEN: set it in config.py or the environment",
              file=sys.stderr)
        return 2

    redis = None
    if not redis_reachable(settings["REDIS_URL"]):
        if args.no_redis or "REDIS_URL" in os.environ:
            print(f"Redis at {settings['REDIS_URL']} is unreachable", file=sys.stderr)
            if args.no_redis:
                return 1
        if not args.no_redis:
            port = int(os.environ.get("EMBEDDED_REDIS_PORT", "6380"))
            redis = RedisServer(PROJECT_ROOT / "var" / "redis", port=port).start()
            os.environ["REDIS_URL"] = redis.url
            log.info("started embedded redis-server at %s (data in var/redis)", redis.url)
    settings = load_settings()

    worker = supervisor = None
    if not args.no_worker:
        worker = Worker({"REDIS_URL": settings["REDIS_URL"]}, PROJECT_ROOT / "var" / "log" / "worker.log",
                        beat=True, name="dashboard@%h").start()
        supervisor = Supervisor(worker)
        supervisor.start()
        log.info("started Celery worker with beat (log: var/log/worker.log)")

    def shutdown(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, shutdown)
    from werkzeug.serving import run_simple

    from core.api import create_app

    app = create_app(settings)
    log.info("dashboard on http://%s:%s", args.host, args.port)
    try:
        run_simple(args.host, args.port, app, threaded=True, use_reloader=False)
    except KeyboardInterrupt:
        pass
    finally:
        log.info("shutting down")
        if supervisor:
            supervisor.stopping.set()
        if worker:
            worker.stop(timeout=60)
        if redis:
            redis.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
