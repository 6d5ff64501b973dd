"""A throwaway system for benchmarks: redis-server on a free port and
`start_dashboard.py --no-redis` (eventlet, with its supervised worker)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from core.embedded import RedisServer, free_port

ROOT = Path(__file__).resolve().parent.parent


def get_json(url: str) -> tuple[float, dict]:
    """(milliseconds, body) of a GET."""
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as resp:
        body = json.loads(resp.read())
    return (time.perf_counter() - start) * 1000, body


def post_json(url: str, payload: dict) -> tuple[float, dict]:
    start = time.perf_counter()
    req = urllib.request.Request(url, json.dumps(payload).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=300) as resp:
        body = json.loads(resp.read())
    return (time.perf_counter() - start) * 1000, body


@contextmanager
def running_dashboard(folder: Path, storage: Path) -> Iterator[str]:
    """Yield the URL of a dashboard whose worker answers; stop everything afterwards."""
    redis = RedisServer(folder / "redis", persist=False).start()
    url = f"http://127.0.0.1:{free_port()}"
    env = {**os.environ, "REDIS_URL": redis.url, "DATABASE_URL": f"sqlite:///{folder / 'jobs.db'}",
           "STORAGE_ROOTS": str(storage), "OUTPUT_DIR": str(folder / "out"), "VAR_DIR": str(folder / "var")}
    dash = subprocess.Popen([sys.executable, "start_dashboard.py", "--no-redis", "--port", url.rsplit(":", 1)[1]],
                            cwd=ROOT, env=env, stdout=open(folder / "dashboard.log", "wb"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if get_json(f"{url}/api/health")[1]["workers"]["count"]:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the dashboard did not come up; see {folder / 'dashboard.log'}")
            time.sleep(1)
        yield url
    finally:
        dash.send_signal(signal.SIGINT)
        try:
            dash.wait(timeout=120)
        except subprocess.TimeoutExpired:
            dash.kill()
        redis.stop()
