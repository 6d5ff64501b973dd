"""Local Redis and Celery worker processes, for a one-machine setup and for tests."""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from .config import PROJECT_ROOT


def _sleep(seconds: float) -> None:
    """A real sleep, even under eventlet (a signal handler must not yield to its hub)."""
    if "eventlet" in sys.modules:
        from eventlet.patcher import original

        original("time").sleep(seconds)
    else:
        time.sleep(seconds)


def wait_exit(proc: subprocess.Popen, timeout: float) -> bool:
    """Whether ``proc`` ended within ``timeout`` (real sleeps: callers include signal handlers)."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        if time.monotonic() > deadline:
            return False
        _sleep(0.1)
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_reachable(url: str, timeout: float = 1.0) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout).ping())
    except Exception:  # noqa: BLE001 - any failure means "not usable"
        return False


def redis_address(url: str) -> tuple[str, int, str | None]:
    """(host, port, password) of a ``redis://`` URL (Redis's defaults where it names none)."""
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 6379, parts.password


def redacted(url: str) -> str:
    """``url`` with its password hidden, for logs and messages."""
    password = urlsplit(url).password
    return url.replace(f":{password}@", ":***@", 1) if password else url


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class RedisServer:
    """A private ``redis-server`` with append-only persistence under ``data_dir``.

    With a ``pidfile`` it can be recognised later as ours (``our_redis``) and taken back
    (``adopt``) by a dashboard started after the one that started it was killed.
    """

    def __init__(self, data_dir: Path, port: int | None = None, persist: bool = True, host: str = "127.0.0.1",
                 pidfile: Path | None = None, password: str | None = None):
        self.data_dir, self.port, self.persist = Path(data_dir), port or free_port(), persist
        self.host = "127.0.0.1" if host == "localhost" else host
        self.pidfile, self.password = (Path(pidfile) if pidfile else None), password
        self.proc: subprocess.Popen | None = None
        self.pid: int | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"redis://{':' + self.password + '@' if self.password else ''}{host}:{self.port}/0"

    @classmethod
    def adopt(cls, data_dir: Path, url: str, pid: int) -> "RedisServer":
        host, port, password = redis_address(url)
        server = cls(data_dir, port, host=host, password=password)
        server.pid = pid
        return server

    def start(self, timeout: float = 10.0) -> "RedisServer":
        if not shutil.which("redis-server"):
            raise RuntimeError("redis-server is not installed (run scripts/setup.sh)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = ["redis-server", "--port", str(self.port), "--bind", self.host, "--dir", str(self.data_dir),
                "--save", "", "--appendonly", "yes" if self.persist else "no", "--protected-mode", "yes"]
        if self.pidfile:
            self.pidfile.parent.mkdir(parents=True, exist_ok=True)
            args += ["--pidfile", str(self.pidfile.absolute())]
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdout=open(self.data_dir / "redis.log", "ab"), stderr=subprocess.STDOUT)
        self.pid = self.proc.pid
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited; see {self.data_dir / 'redis.log'}")
            if redis_reachable(self.url, 0.2):
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("redis-server did not start")

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            if not wait_exit(self.proc, timeout):
                self.proc.kill()
                wait_exit(self.proc, 10)
        elif self.proc is None and self.pid and _alive(self.pid):   # adopted: not our child
            os.kill(self.pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while _alive(self.pid) and time.monotonic() < deadline:
                _sleep(0.1)
        self.proc = self.pid = None


def our_redis(url: str, pidfile: Path, data_dir: Path) -> int | None:
    """The pid of the redis-server answering at ``url`` if it is the one we started:
    its pid is in ``pidfile`` and it keeps its data in ``data_dir``."""
    import redis

    pid = pid_running(pidfile, "redis-server")
    if pid is None:
        return None
    try:
        answering = redis.Redis.from_url(url, socket_timeout=2).info("server").get("process_id")
        workdir = Path(os.readlink(f"/proc/{pid}/cwd"))
    except Exception:  # noqa: BLE001 - anything unclear means "not ours"
        return None
    return pid if answering == pid and workdir.resolve() == Path(data_dir).resolve() else None


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def pid_running(pidfile: Path | None, marker: str) -> int | None:
    """The pid in ``pidfile`` if that process is alive and its command line has ``marker``."""
    try:
        pid = int(Path(pidfile).read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except (TypeError, OSError, ValueError):
        return None
    return pid if marker in cmdline else None


class Worker:
    """``celery -A core.tasks worker`` as a child process (optionally with beat).

    With a ``pidfile``, a worker left running by a dashboard that was killed
    is adopted instead of started twice.
    """

    def __init__(self, env: dict[str, str], log_file: Path, queues: str = "transcribe,render",
                 concurrency: int = 1, beat: bool = False, name: str | None = None, pidfile: Path | None = None):
        self.env, self.log_file, self.queues = env, Path(log_file), queues
        self.concurrency, self.beat, self.name = concurrency, beat, name or f"worker-{os.getpid()}@%h"
        self.pidfile = Path(pidfile) if pidfile else None
        self.proc: subprocess.Popen | None = None
        self.pid: int | None = None
        self.adopted = False

    def start(self) -> "Worker":
        existing = pid_running(self.pidfile, "celery")
        if existing:
            self.proc, self.pid, self.adopted = None, existing, True
            return self
        args = [sys.executable, "-m", "celery", "-A", "core.tasks", "worker", "-l", "info",
                "-Q", self.queues, "-c", str(self.concurrency), "-n", self.name, "--without-mingle"]
        if self.beat:
            args += ["-B", "-s", str(self.log_file.parent / "celerybeat-schedule")]
        if self.pidfile:
            self.pidfile.parent.mkdir(parents=True, exist_ok=True)
            args += ["--pidfile", str(self.pidfile)]
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(args, cwd=PROJECT_ROOT, env={**os.environ, **self.env},
                                     stdout=open(self.log_file, "ab"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.pid, self.adopted = self.proc.pid, False
        return self

    def alive(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        return self.pid is not None and _alive(self.pid)

    def stop(self, timeout: float = 30.0) -> None:
        """Warm shutdown (finish or requeue the current task), then kill the group if it hangs."""
        if not self.alive():
            return
        os.kill(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.alive() and time.monotonic() < deadline:
            _sleep(0.2)
        self._kill_group()
        if self.proc:
            wait_exit(self.proc, 10)

    def kill(self) -> None:
        """SIGKILL the worker and its pool children (a crash, for fault tests)."""
        self._kill_group()
        if self.proc:
            wait_exit(self.proc, 10)

    def _kill_group(self) -> None:
        if self.pid is None:
            return
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def wait_for_worker(app, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            replies = app.control.inspect(timeout=1.0).ping()
        except Exception:  # noqa: BLE001 - the broker may be (re)starting
            replies = None
        if replies:
            return replies
        time.sleep(0.5)
    raise RuntimeError("no Celery worker answered")
