"""What the watcher has seen, in the job store (same DATABASE_URL), so it survives restarts and is
shared by every watcher on the store.  A row per path and content; decided rows are kept."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select, update

from ..db import Job, WatchFile, WatchFolderScan, session_scope, utcnow
from ..jobs.states import COMPLETED, PENDING, PROCESSING

SETTLING, CLAIMED = "settling", "claimed"          # waiting to settle; being queued by one watcher
QUEUED, REJECTED, DUPLICATE = "queued", "rejected", "duplicate"
DECIDED = (QUEUED, REJECTED, DUPLICATE)
STATES = (SETTLING, CLAIMED) + DECIDED
WANTED = (PENDING, PROCESSING, COMPLETED)          # a job that makes the same content a duplicate
PATH_CHUNK = 500


def latest_by_path(folder: str, paths: list[str] | None = None) -> dict[str, WatchFile]:
    """The newest row of each of ``paths`` (all the folder's when None) seen in ``folder``.

    A scan asks only for the files on disk: the folder's memory grows with every file ever dropped, and
    reading all of it on every scan would cost seconds once it holds a few hundred thousand rows.
    """
    chunks = [None] if paths is None else [paths[i:i + PATH_CHUNK] for i in range(0, len(paths), PATH_CHUNK)]
    found: dict[str, WatchFile] = {}
    with session_scope() as s:
        for chunk in chunks:
            where = [WatchFile.folder == folder] + ([] if chunk is None else [WatchFile.path.in_(chunk)])
            newest = select(func.max(WatchFile.id)).where(*where).group_by(WatchFile.path).scalar_subquery()
            found.update((row.path, row) for row in s.scalars(select(WatchFile).where(WatchFile.id.in_(newest))))
    return found


def settling(folder: str) -> list[WatchFile]:
    """The files of ``folder`` still waiting to settle (or to be queued again)."""
    with session_scope() as s:
        return list(s.scalars(select(WatchFile).where(WatchFile.state == SETTLING, WatchFile.folder == folder)))


def add(folder: str, path: str, size: int, mtime_ns: int, now: datetime) -> WatchFile:
    row = WatchFile(folder=folder, path=path, size=size, mtime_ns=mtime_ns, stable_since=now, first_seen_at=now,
                    state=SETTLING)
    with session_scope() as s:
        s.add(row)
    return row


def restat(row_id: int, size: int, mtime_ns: int, now: datetime) -> None:
    """The file grew or was touched: its settle clock starts again."""
    with session_scope() as s:
        s.execute(update(WatchFile).where(WatchFile.id == row_id, WatchFile.state == SETTLING)
                  .values(size=size, mtime_ns=mtime_ns, stable_since=now))


def forget(row_ids: list[int]) -> None:
    """Files removed before they settled leave no trace."""
    if row_ids:
        with session_scope() as s:
            for row in s.scalars(select(WatchFile).where(WatchFile.id.in_(row_ids), WatchFile.state == SETTLING)):
                s.delete(row)


def claim(row_id: int, owner: str, now: datetime) -> bool:
    """Take a settled row for queueing; False when another watcher took it first."""
    with session_scope() as s:
        taken = s.execute(update(WatchFile).where(WatchFile.id == row_id, WatchFile.state == SETTLING)
                          .values(state=CLAIMED, claimed_by=owner, claimed_at=now)).rowcount
    return taken == 1


def release(row_id: int, reason: str | None) -> None:
    """Back to waiting (a transient error: the next scan tries again), with the reason shown meanwhile."""
    with session_scope() as s:
        s.execute(update(WatchFile).where(WatchFile.id == row_id, WatchFile.state == CLAIMED)
                  .values(state=SETTLING, reason=reason, claimed_by=None, claimed_at=None))


def decide(row_id: int, state: str, now: datetime, *, fingerprint: str | None = None, reason: str | None = None,
           job_id: str | None = None) -> None:
    with session_scope() as s:
        s.execute(update(WatchFile).where(WatchFile.id == row_id)
                  .values(state=state, fingerprint=fingerprint, reason=reason, job_id=job_id, decided_at=now))


def drop(row_id: int) -> None:
    with session_scope() as s:
        row = s.get(WatchFile, row_id)
        if row is not None:
            s.delete(row)


def same_content(folder: str, fingerprint: str, other_than: int) -> tuple[WatchFile, str] | None:
    """The first file of ``folder`` with this content whose job is still wanted (pending, processing or
    completed), with that job's status.  Content whose job was cancelled, failed or deleted, or that was
    rejected, is not held against a re-drop: the operator wants it captioned (or told why not) again."""
    with session_scope() as s:
        return s.execute(select(WatchFile, Job.status).join(Job, Job.id == WatchFile.job_id)
                         .where(WatchFile.folder == folder, WatchFile.fingerprint == fingerprint,
                                WatchFile.state.in_((QUEUED, DUPLICATE)), WatchFile.id != other_than,
                                Job.status.in_(WANTED))
                         .order_by(WatchFile.id).limit(1)).first()


def claims() -> list[WatchFile]:
    """Rows some watcher is queueing (or was, when it stopped)."""
    with session_scope() as s:
        return list(s.scalars(select(WatchFile).where(WatchFile.state == CLAIMED)))


def job_since(source: str, since: datetime) -> Job | None:
    """The newest job on ``source`` created at or after ``since`` (a claim that did queue before it stopped)."""
    with session_scope() as s:
        return s.scalars(select(Job).where(Job.source == source, Job.created_at >= since - timedelta(seconds=1))
                         .order_by(Job.created_at.desc()).limit(1)).first()


def record_scan(folder: str, *, mode: str, now: datetime, seconds: float, files: int | None, error: str | None,
                watcher: str) -> None:
    with session_scope() as s:
        row = s.get(WatchFolderScan, folder) or WatchFolderScan(path=folder)
        row.mode, row.scanned_at, row.scan_seconds, row.files, row.error, row.watcher = (
            mode, now, seconds, files, error, watcher)
        s.add(row)


def now() -> datetime:
    return utcnow()
