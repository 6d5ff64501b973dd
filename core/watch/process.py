"""start_dashboard.py's side of the watcher: check WATCH_FOLDERS, run ``python -m core.watch``, restart it."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading

from ..config import PROJECT_ROOT
from ..embedded import wait_exit
from .folders import parse

log = logging.getLogger("start_dashboard")


def config_problems(settings: dict) -> list[str]:
    """Why WATCH_FOLDERS cannot be used as configured (empty when it can)."""
    return parse(settings)[1]


class WatcherProcess:
    """The watcher as a child process (its log lines go to the dashboard's), restarted if it dies.

    A process of its own keeps inotify reads, hashing and probes off the dashboard's eventlet hub; it
    exits by itself if the dashboard is killed outright.
    """

    def __init__(self, env: dict | None = None):
        self.env = env
        self.proc: subprocess.Popen | None = None
        self.stopping = threading.Event()
        self.supervisor = threading.Thread(target=self._supervise, daemon=True, name="watch-supervisor")

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> "WatcherProcess":
        self._spawn()
        self.supervisor.start()
        return self

    def _spawn(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "core.watch", "--exit-with-parent"], cwd=PROJECT_ROOT,
                                     env=self.env if self.env is not None else os.environ.copy())

    def _supervise(self) -> None:
        while not self.stopping.wait(2.0):
            code = self.proc.poll()
            if code is not None and not self.stopping.is_set():
                if code == 2:       # a configuration error: restarting would only repeat it
                    log.error("the watcher refused its configuration (see above); not restarting it")
                    return
                log.warning("watcher %s exited (%s); restarting it", self.proc.pid, code)
                self._spawn()
                if self.stopping.is_set():      # stop() came in while it started: do not leave it running
                    self.stop()

    def stop(self, timeout: float = 20.0) -> None:
        self.stopping.set()
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        if not wait_exit(self.proc, timeout):
            self.proc.kill()
            wait_exit(self.proc, 5)
