"""One look at a watch folder: note new and changed files, forget removed ones, queue the settled ones.

A file is queued once it has settled (the worker's rule, SETTLE_SECONDS: unchanged in size and mtime
for that long, or its mtime that old), exactly once: a settled file is claimed in the job store before
it is queued, and its content fingerprint is compared with every file this folder has seen, so a
rescan, a restart, a rename within the folder or a copy of the same content is recognised.
Events and periodic rescans both end here; a failure on one file is recorded and the scan goes on.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable

from ..jobs.errors import JobError, RejectedBatch
from ..services import storage
from . import files, memory
from .folders import WatchFolder, _excluded_trees

log = logging.getLogger(__name__)
Submit = Callable[[str, WatchFolder], dict]       # queue one path with the folder's options: submit_batch's answer
CLAIM_TIMEOUT = timedelta(minutes=10)


def owner_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, timezone.utc).replace(tzinfo=None)


@dataclass
class ScanReport:
    files: int = 0
    queued: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    due: float | None = None          # when the next settling file may settle (epoch seconds)


class Scanner:
    def __init__(self, settings: dict, folders: list[WatchFolder], submit: Submit, clock=time.time,
                 owner: str | None = None):
        self.settings, self.folders, self.submit, self.clock = settings, folders, submit, clock
        self.settle = float(settings["SETTLE_SECONDS"])
        self.owner = owner or owner_name()
        self.modes: dict[str, str] = {f.key: "rescan" for f in folders}
        self.problems: dict[str, str | None] = {}       # each folder's last error, logged when it changes
        excluded = set(_excluded_trees(settings))
        # A folder's walk skips our own trees and the watch folders nested in it (they have their own options).
        self.skip = {f.key: frozenset(excluded | {g.path for g in folders if f.path in g.path.parents})
                     for f in folders}

    # --- whole passes --------------------------------------------------------------------------------

    def scan_all(self) -> dict[str, ScanReport]:
        return {folder.key: self.scan(folder) for folder in self.folders}

    def scan(self, folder: WatchFolder) -> ScanReport:
        """Look at ``folder`` once; never raises (problems are logged and shown in the dashboard)."""
        started = self.clock()
        report, error = ScanReport(), None
        try:
            self._scan(folder, report)
        except Exception as err:  # noqa: BLE001 - an unreachable folder (unmounted share) is shown, then retried
            error = f"{type(err).__name__}: {err}" if not isinstance(err, OSError) else \
                f"cannot read the folder: {err.strerror or err}"
        self._log_change(folder.key, error)
        if report.errors and not error:
            error = f"{len(report.errors)} file(s) could not be handled, retried next scan: {report.errors[0]}"
        try:
            memory.record_scan(folder.key, mode=self.modes.get(folder.key, "rescan"), now=_utc(started),
                               seconds=round(self.clock() - started, 3), files=report.files, error=error,
                               watcher=self.owner)
        except Exception:  # noqa: BLE001 - the store briefly unavailable: the next scan records again
            log.warning("could not record the scan of %s", folder.key, exc_info=True)
        return report

    def _log_change(self, key: str, error: str | None) -> None:
        """A folder's own error (a file's is logged with the file) is logged when it appears or changes and
        once when it clears, not every scan (an unmounted share would fill the log); the Watch tab shows it."""
        before = self.problems.get(key)
        if error and error != before:
            log.warning("watch folder %s: %s", key, error)
        elif before and not error:
            log.info("watch folder %s: readable again, scanning (was: %s)", key, before)
        self.problems[key] = error if error else None

    def _scan(self, folder: WatchFolder, report: ScanReport) -> None:
        if not folder.path.is_dir():
            raise OSError(2, "the folder does not exist (not mounted?)")
        on_disk = files.list_files(folder.path, self.skip[folder.key])
        report.files = len(on_disk)
        keys = {path: storage.printable(path) for path in on_disk}
        seen = memory.latest_by_path(folder.key, list(keys.values()))      # only the files on disk: see memory
        present = set(keys.values())
        memory.forget([row.id for row in memory.settling(folder.key) if row.path not in present])
        for path, st in sorted(on_disk.items(), key=lambda item: item[1].st_mtime_ns):
            try:
                self._observe(folder, path, st, seen.get(keys[path]), report)
            except Exception as err:  # noqa: BLE001 - one file's trouble never stops the others
                expected = isinstance(err, (JobError, OSError))     # the broker or the share down: no traceback
                log.warning("watch folder %s: %s: %s", folder.key, path, err, exc_info=not expected)
                report.errors.append(f"{keys[path]}: {err}")

    # --- one file ------------------------------------------------------------------------------------

    def _observe(self, folder: WatchFolder, path: str, st: os.stat_result, row, report: ScanReport) -> None:
        now = self.clock()
        key = storage.printable(path)           # a name that is not UTF-8 is stored (and refused) by its escape
        current = (st.st_size, st.st_mtime_ns)
        if row is not None and row.state == memory.CLAIMED:
            return                                                  # another watcher is queueing it right now
        if row is None or (row.state in memory.DECIDED and (row.size, row.mtime_ns) != current):
            row = memory.add(folder.key, key, *current, _utc(now))  # new, or new content under a known name
        elif row.state == memory.SETTLING and (row.size, row.mtime_ns) != current:
            memory.restat(row.id, *current, _utc(now))
            report.due = _earliest(report.due, now + self.settle)
            return
        if row.state != memory.SETTLING:
            return
        since = row.stable_since.replace(tzinfo=timezone.utc).timestamp()
        settles_at = min(st.st_mtime_ns / 1e9, since) + self.settle
        if now < settles_at:
            report.due = _earliest(report.due, settles_at)
            return
        if memory.claim(row.id, self.owner, _utc(now)):
            self._decide(folder, path, key, row.id, current, report)

    def _decide(self, folder: WatchFolder, path: str, key: str, row_id: int, settled: tuple[int, int],
                report: ScanReport) -> None:
        now = _utc(self.clock())
        if key != path:
            memory.decide(row_id, memory.REJECTED, now, reason="the file name is not valid UTF-8: rename the file")
            report.rejected.append(key)
            return
        try:
            fingerprint = files.fingerprint(path)
            after = os.stat(path)
        except FileNotFoundError:
            memory.drop(row_id)                 # removed as it settled: forgotten, like before settling
            return
        except OSError as err:
            memory.release(row_id, f"could not read it, trying again: {err.strerror or err}")
            raise
        if (after.st_size, after.st_mtime_ns) != settled:
            memory.release(row_id, None)        # written to again while hashed: settles anew (next scan restats)
            return
        earlier = memory.same_content(folder.key, fingerprint, other_than=row_id)
        if earlier is not None:
            (first, job_status) = earlier
            memory.decide(row_id, memory.DUPLICATE, now, fingerprint=fingerprint, job_id=first.job_id,
                          reason=f"same content as {first.path} (its job is {job_status}); not queued again")
            report.duplicates.append(key)
            return
        try:
            answer = self.submit(path, folder)
        except RejectedBatch as err:
            reason = err.rejected[0]["error"] if err.rejected else str(err)
            memory.decide(row_id, memory.REJECTED, now, fingerprint=fingerprint, reason=reason)
            report.rejected.append(key)
            return
        except JobError as err:
            if err.status >= 500:               # the broker unreachable: transient, the next scan tries again
                memory.release(row_id, f"could not queue it, trying again: {err}")
                raise
            memory.decide(row_id, memory.REJECTED, now, fingerprint=fingerprint, reason=str(err))
            report.rejected.append(key)
            return
        except Exception as err:
            memory.release(row_id, f"could not queue it, trying again: {err}")
            raise
        job_id = answer["queued"][0]["job_id"]
        memory.decide(row_id, memory.QUEUED, now, fingerprint=fingerprint, job_id=job_id)
        report.queued.append(key)
        log.info("watch folder %s: queued %s as job %s", folder.key, path, job_id)

    # --- after a restart -----------------------------------------------------------------------------

    def recover_claims(self) -> int:
        """Claims a stopped watcher left: recorded as queued if its job exists, otherwise settling again."""
        host, now = socket.gethostname(), _utc(self.clock())
        stale = [row for row in memory.claims()
                 if row.claimed_by != self.owner
                 and (_dead_here(row.claimed_by, host) or (row.claimed_at or now) < now - CLAIM_TIMEOUT)]
        for row in stale:
            job = memory.job_since(row.path, row.claimed_at or row.first_seen_at)
            if job is not None:
                memory.decide(row.id, memory.QUEUED, now, fingerprint=row.fingerprint, job_id=job.id)
            else:
                memory.release(row.id, None)
        return len(stale)


def _dead_here(owner: str | None, host: str) -> bool:
    """A claim by a process of this machine that no longer runs."""
    name, _, pid = (owner or "").rpartition(":")
    if name != host or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _earliest(a: float | None, b: float) -> float:
    return b if a is None else min(a, b)

