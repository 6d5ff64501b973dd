"""The watcher: a process of start_dashboard.py's tree (``python -m core.watch``), one per deployment.

Each folder is rescanned every WATCH_SCAN_SECONDS; with WATCH_EVENTS on, watchdog's inotify events
wake a scan at once (network shares deliver none for writes made on other machines: the rescan
finds those), and a scan is also woken when a waiting file is due to settle.  The process exits when
the dashboard that started it goes away.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

from . import files
from .folders import WatchConfigError, WatchFolder, load
from .scanner import Scanner, Submit

log = logging.getLogger("core.watch")
NETWORK_FS = {"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "fuse.sshfs", "ceph", "glusterfs", "fuse.glusterfs",
              "lustre", "afs", "davfs", "fuse.rclone"}
DEBOUNCE = 0.2          # a burst of events (a file being written) wakes one scan, not hundreds


def file_system_type(path: Path) -> str:
    """The type of the mount holding ``path`` (from /proc/self/mounts; "" when unknown)."""
    best, kind = "", ""
    try:
        with open("/proc/self/mounts", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) < 3:
                    continue
                point = parts[1].replace("\\040", " ")
                if (str(path) == point or str(path).startswith(point.rstrip("/") + "/")) and len(point) > len(best):
                    best, kind = point, parts[2]
    except OSError:
        pass
    return kind


class Watcher:
    """Scans on a timer, on file events and when a waiting file is due; ``stop`` ends ``run``."""

    def __init__(self, settings: dict, folders: list[WatchFolder], submit: Submit, clock=time.time):
        self.settings, self.folders = settings, folders
        self.interval = max(0.5, float(settings["WATCH_SCAN_SECONDS"]))
        self.events = bool(settings["WATCH_EVENTS"])
        self.scanner = Scanner(settings, folders, submit, clock=clock)
        self.stopping, self.wake = threading.Event(), threading.Event()
        self.dirty: set[str] = set()
        self.observer = None
        self.watched: set[str] = set()

    # --- events --------------------------------------------------------------------------------------

    def _on_event(self, event) -> None:
        names = [getattr(event, "src_path", ""), getattr(event, "dest_path", "")]
        if all(not name or files.ignored(os.path.basename(os.fsdecode(name))) for name in names):
            return
        for folder in self.folders:
            if any(os.fsdecode(n).startswith(folder.key + os.sep) for n in names if n):
                self.dirty.add(folder.key)
        self.wake.set()

    def _watch_events(self) -> None:
        """Schedule inotify watches for the folders that have none yet (a share mounted late gets one too)."""
        if not self.events:
            for folder in self.folders:
                self.scanner.modes[folder.key] = f"rescan every {self.interval:g} s (WATCH_EVENTS off)"
            return
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        if self.observer is None:
            handler = FileSystemEventHandler()
            handler.on_any_event = self._on_event
            self.handler, self.observer = handler, Observer()
            self.observer.daemon = True
            self.observer.start()
        for folder in self.folders:
            if folder.key in self.watched or not folder.path.is_dir():
                continue
            kind = file_system_type(folder.path)
            try:
                self.observer.schedule(self.handler, folder.key, recursive=True)
            except OSError as err:     # inotify watches exhausted, or no inotify on this file system
                self.scanner.modes[folder.key] = f"rescan every {self.interval:g} s (no events: {err.strerror or err})"
                continue
            self.watched.add(folder.key)
            self.scanner.modes[folder.key] = (
                f"events + rescan every {self.interval:g} s"
                + (f" ({kind} share: events only for writes made on this machine)" if kind in NETWORK_FS else ""))

    # --- the loop ------------------------------------------------------------------------------------

    def run(self) -> None:
        recovered = self.scanner.recover_claims()
        if recovered:
            log.info("took back %d file(s) a stopped watcher was queueing", recovered)
        next_full, due = 0.0, {}
        while not self.stopping.is_set():
            now = time.time()
            if now >= next_full:
                self._watch_events()
                targets = [f for f in self.folders]
                next_full = now + self.interval
            else:
                targets = [f for f in self.folders if f.key in self.dirty or (due.get(f.key) or now + 1) <= now]
            self.dirty.difference_update(f.key for f in targets)
            for folder in targets:
                if self.stopping.is_set():
                    break
                due[folder.key] = self.scanner.scan(folder).due
            wake_at = min([next_full] + [d for d in due.values() if d is not None])
            self.wake.wait(timeout=max(0.05, wake_at - time.time()))
            if self.wake.is_set():
                self.wake.clear()
                self.stopping.wait(DEBOUNCE)
        if self.observer is not None:
            # Here, not in stop(): from a signal handler it races watchdog's own emitter set
            # ("Set changed size during iteration" on Ctrl-C).
            self.observer.stop()
            self.observer.join(5)

    def stop(self) -> None:
        """Ask ``run`` to end (safe from a signal handler: it only sets flags)."""
        self.stopping.set()
        self.wake.set()


def submitter(settings: dict, queue) -> Submit:
    """Queue through the job core, as the dashboard's batch form does, always as a new job (``force``): the
    watcher's own memory decides exactly once, and new content under the name of a file whose job is still
    pending must get a job of its own (the old job then fails: its source changed)."""
    from ..jobs.submission import submit_batch

    return lambda path, folder: submit_batch([path], folder.options, settings, queue, priority=folder.priority,
                                             force=True)


def queue_submitter(settings: dict) -> Submit:
    from ..celery_app import create_celery
    from ..queue import QueueClient

    return submitter(settings, QueueClient(create_celery(settings, include_tasks=False), settings))


def _exit_with_parent(watcher: Watcher, parent: int) -> None:
    """No orphan: a dashboard killed outright takes its watcher with it."""
    while not watcher.stopping.wait(2.0):
        if os.getppid() != parent:
            log.warning("the dashboard that started this watcher is gone; stopping")
            watcher.stop()


def main(argv: list[str] | None = None) -> int:
    from .. import db, events
    from ..config import load_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings()
    try:
        folders = load(settings)
    except WatchConfigError as err:
        print(f"watch folders: {err}", file=sys.stderr)
        return 2
    if not folders:
        log.info("no WATCH_FOLDERS configured; nothing to watch")
        return 0
    db.configure(settings)
    events.configure(settings["REDIS_URL"])
    watcher = Watcher(settings, folders, queue_submitter(settings))
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: watcher.stop())
    if "--exit-with-parent" in (argv if argv is not None else sys.argv[1:]):
        threading.Thread(target=_exit_with_parent, args=(watcher, os.getppid()), daemon=True).start()
    log.info("watching %s (settle %s s, rescan every %s s, events %s)", ", ".join(f.key for f in folders),
             settings["SETTLE_SECONDS"], settings["WATCH_SCAN_SECONDS"], "on" if settings["WATCH_EVENTS"] else "off")
    watcher.run()
    log.info("watcher stopped")
    return 0
