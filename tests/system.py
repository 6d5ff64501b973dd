"""A private captioning system for tests: redis-server on a free port, a real
Celery worker, a SQLite job store and a storage root, all under one tmp dir."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from core.embedded import RedisServer, Worker, wait_for_worker


@dataclass
class System:
    root: Path
    storage: Path
    outputs: Path
    env: dict
    redis: RedisServer
    worker: Worker
    settings: dict
    app: object = None       # Flask app
    celery: object = None

    def restart_worker(self) -> None:
        self.worker.stop()
        self.worker.start()
        wait_for_worker(self.celery)


def start_system(tmp: Path, beat: bool = False, extra_env: dict | None = None, persist: bool = False) -> System:
    storage, outputs = tmp / "mnt", tmp / "var" / "outputs"
    (storage / "news").mkdir(parents=True, exist_ok=True)
    outputs.mkdir(parents=True, exist_ok=True)
    redis = RedisServer(tmp / "redis", persist=persist).start()
    env = {
        "REDIS_URL": redis.url,
        "DATABASE_URL": f"sqlite:///{tmp / 'var' / 'jobs.db'}",
        "STORAGE_ROOTS": str(storage),
        "OUTPUT_DIR": str(outputs),
        "UPLOAD_DIR": str(tmp / "var" / "uploads"),
        "HEARTBEAT_SECONDS": "2",
        "STALE_JOB_SECONDS": "10",
        "SETTLE_SECONDS": "0",      # test clips are written just before they are queued
        **(extra_env or {}),
    }
    from core.api import create_app
    from core.config import load_settings

    settings = load_settings({**os.environ, **env})
    app = create_app(settings)   # its own Celery app and queue client on this system's Redis
    celery = app.extensions["celery"]
    worker = Worker(env, tmp / "worker.log", beat=beat).start()
    try:
        wait_for_worker(celery, timeout=90)
    except BaseException:
        worker.stop()
        redis.stop()
        raise
    return System(tmp, storage, outputs, env, redis, worker, settings, app, celery)


def stop_system(system: System) -> None:
    system.worker.stop()
    system.redis.stop()


def wait_for(predicate, timeout: float = 180.0, interval: float = 0.5, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def interrupt(proc, timeout: float = 30.0) -> None:
    """Stop a start_dashboard.py child as an operator does (Ctrl-C); kill it (and its group) if that hangs."""
    import signal
    import subprocess

    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)     # started in a session of its own: its worker too
        except (ProcessLookupError, PermissionError):
            proc.kill()
        proc.wait(timeout=10)
