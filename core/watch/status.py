"""The dashboard's view of the watch folders: options, last scan, files queued, rejected and waiting."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select

from ..db import Job, WatchFile, WatchFolderScan, session_scope, utcnow
from . import memory
from .folders import parse

RECENT = 10


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() + "Z" if value else None


def file_view(row: WatchFile, job_status: str | None = None) -> dict:
    return {"path": row.path, "state": row.state, "size": row.size, "reason": row.reason, "job_id": row.job_id,
            "job_status": job_status, "first_seen_at": _iso(row.first_seen_at),
            "stable_since": _iso(row.stable_since), "decided_at": _iso(row.decided_at)}


def _with_jobs(s, rows: list[WatchFile]) -> list[dict]:
    ids = {r.job_id for r in rows if r.job_id}
    statuses = dict(s.execute(select(Job.id, Job.status).where(Job.id.in_(ids))).all()) if ids else {}
    return [file_view(r, statuses.get(r.job_id)) for r in rows]


def _recent(s, folder: str, states: tuple[str, ...], limit: int) -> list[WatchFile]:
    order = WatchFile.decided_at.desc() if set(states) <= set(memory.DECIDED) else WatchFile.first_seen_at
    return list(s.scalars(select(WatchFile).where(WatchFile.folder == folder, WatchFile.state.in_(states))
                          .order_by(order, WatchFile.id.desc()).limit(limit)))


def overview(settings: dict) -> dict:
    """Every configured folder with its options, its last scan and what it saw; configuration problems."""
    folders, problems = parse(settings)
    interval = settings["WATCH_SCAN_SECONDS"]
    now = utcnow()
    out = []
    with session_scope() as s:
        for folder in folders:
            scan = s.get(WatchFolderScan, folder.key)
            counts = dict(s.execute(select(WatchFile.state, func.count()).where(WatchFile.folder == folder.key)
                                    .group_by(WatchFile.state)).all())
            age = (now - scan.scanned_at).total_seconds() if scan and scan.scanned_at else None
            out.append({
                "path": folder.key, "options": folder.options, "priority": folder.priority,
                "mode": scan.mode if scan else None, "last_scan_at": _iso(scan.scanned_at) if scan else None,
                "last_scan_seconds": scan.scan_seconds if scan else None, "files": scan.files if scan else None,
                "error": scan.error if scan else None,
                # the watcher writes a scan at least every interval: a much older one means it is not running
                "watcher_running": age is not None and age <= 3 * interval + 30,
                "counts": {state: counts.get(state, 0) for state in memory.STATES},
                "queued": _with_jobs(s, _recent(s, folder.key, (memory.QUEUED,), RECENT)),
                "rejected": _with_jobs(s, _recent(s, folder.key, (memory.REJECTED,), RECENT)),
                "duplicates": _with_jobs(s, _recent(s, folder.key, (memory.DUPLICATE,), RECENT)),
                "waiting": _with_jobs(s, _recent(s, folder.key, (memory.SETTLING, memory.CLAIMED), 50)),
            })
    return {"folders": out, "problems": problems, "settle_seconds": settings["SETTLE_SECONDS"],
            "scan_seconds": interval, "events": bool(settings["WATCH_EVENTS"])}


def files_page(settings: dict, folder: str, state: str | None, page: int, page_size: int) -> dict | None:
    """One page of a folder's files, newest first; None when ``folder`` is not a configured watch folder."""
    if folder not in {f.key for f in parse(settings)[0]}:
        return None
    where = [WatchFile.folder == folder] + ([WatchFile.state == state] if state else [])
    with session_scope() as s:
        total = s.scalar(select(func.count()).select_from(WatchFile).where(*where))
        rows = list(s.scalars(select(WatchFile).where(*where).order_by(WatchFile.id.desc())
                              .offset((page - 1) * page_size).limit(page_size)))
        items = _with_jobs(s, rows)
    return {"folder": folder, "state": state, "page": page, "page_size": page_size, "total": total, "items": items}
