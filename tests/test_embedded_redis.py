"""start_dashboard.py and Redis: the embedded redis-server runs on the port REDIS_URL
names, and a Redis that is not ours is never taken over silently.

Ours is the one whose pid is in VAR_DIR/run/redis.pid and whose data is in
VAR_DIR/redis.  A foreign Redis answering at REDIS_URL is used (a packaged
redis-server on 6379 is the usual setup) with a warning in the log, and left
running on exit.  Each test runs the real script (no worker) against real
redis-server processes on free ports.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from core.embedded import RedisServer, free_port, pid_running, redacted, redis_reachable
from tests.system import interrupt, wait_for

pytestmark = pytest.mark.system

ROOT = Path(__file__).resolve().parent.parent
STARTED = "dashboard on http://"
OUR_WARNING = "WARNING start_dashboard:"


@contextmanager
def dashboard(tmp: Path, redis_url: str, *args: str):
    """start_dashboard.py --no-worker with ``redis_url``; yields (process, log path); Ctrl-C afterwards."""
    env = {**os.environ, "REDIS_URL": redis_url, "VAR_DIR": str(tmp / "var"),
           "DATABASE_URL": f"sqlite:///{tmp / 'jobs.db'}", "STORAGE_ROOTS": str(tmp),
           "OUTPUT_DIR": str(tmp / "out"), "UPLOAD_DIR": str(tmp / "uploads")}
    log = tmp / f"dashboard-{time.monotonic_ns()}.log"
    proc = subprocess.Popen([sys.executable, "start_dashboard.py", "--no-worker", "--async-mode", "threading",
                             "--port", str(free_port()), *args], cwd=ROOT, env=env,
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    try:
        yield proc, log
    finally:
        interrupt(proc)
        print(log.read_text()[-2000:])


def wait_started(proc: subprocess.Popen, log: Path) -> str:
    wait_for(lambda: STARTED in log.read_text() or proc.poll() is not None, 60, what="the dashboard")
    text = log.read_text()
    assert proc.poll() is None, f"the dashboard exited with {proc.returncode}:\n{text}"
    return text


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0


@pytest.fixture
def ours(tmp_path):
    """Kills an embedded redis-server a failed test left behind."""
    yield tmp_path / "var" / "run" / "redis.pid"
    left = pid_running(tmp_path / "var" / "run" / "redis.pid", "redis-server")
    if left:
        os.kill(left, signal.SIGKILL)


@pytest.mark.parametrize("auth", ["", ":s3cret@"], ids=["open", "password"])
def test_embedded_redis_starts_on_the_port_redis_url_names_and_stops_with_the_dashboard(tmp_path, ours, auth):
    url = f"redis://{auth}127.0.0.1:{free_port()}/0"
    with dashboard(tmp_path, url) as (proc, log):
        text = wait_started(proc, log)
        assert redis_reachable(url), f"nothing answers at {url}:\n{text}"
        assert f"started embedded redis-server at {redacted(url)}" in text and "s3cret" not in text
        if auth:
            assert not redis_reachable(url.replace(auth, "")), "the password in REDIS_URL is not required"
        assert pid_running(ours, "redis-server"), "no pidfile for the redis-server we started"
        assert OUR_WARNING not in text
        stop(proc)
    assert not redis_reachable(url), "Ctrl-C left the embedded redis-server running"


def test_a_redis_that_is_not_ours_is_used_with_a_warning_and_left_running(tmp_path, ours):
    foreign = RedisServer(tmp_path / "someone-else", persist=False).start()
    try:
        with dashboard(tmp_path, foreign.url) as (proc, log):
            text = wait_started(proc, log)
            assert f"{OUR_WARNING} Redis at {foreign.url} was not started by this dashboard" in text, text
            assert "started embedded redis-server" not in text
            stop(proc)
        assert redis_reachable(foreign.url), "the dashboard stopped a Redis that was not its own"
    finally:
        foreign.stop()


def test_our_redis_left_running_by_a_killed_dashboard_is_taken_back(tmp_path, ours):
    url = f"redis://127.0.0.1:{free_port()}/0"
    with dashboard(tmp_path, url) as (proc, log):
        wait_started(proc, log)
        proc.kill()                      # SIGKILL: the embedded redis-server outlives it
        proc.wait()
    left = pid_running(ours, "redis-server")
    assert left and redis_reachable(url)
    with dashboard(tmp_path, url) as (proc, log):
        text = wait_started(proc, log)
        assert f"using the embedded redis-server left running at {url} (pid {left}" in text, text
        assert OUR_WARNING not in text
        stop(proc)
    assert not redis_reachable(url), "Ctrl-C left the redis-server it took back running"


def test_an_unreachable_redis_on_another_host_is_not_replaced(tmp_path, ours):
    with dashboard(tmp_path, "redis://192.0.2.1:6379/0") as (proc, log):   # TEST-NET-1: nothing answers
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            code = None
        text = log.read_text()
    assert code not in (0, None), f"the dashboard ran without its Redis:\n{text}"
    assert "192.0.2.1" in text and "this machine" in text, text
    assert not pid_running(ours, "redis-server")


def test_no_redis_never_starts_one(tmp_path, ours):
    url = f"redis://127.0.0.1:{free_port()}/0"
    with dashboard(tmp_path, url, "--no-redis") as (proc, log):
        code = proc.wait(timeout=60)
        text = log.read_text()
    assert code == 1 and "unreachable" in text, text
    assert not redis_reachable(url)
