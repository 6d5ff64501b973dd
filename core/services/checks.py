"""Infrastructure checks for ``python -m core.cli check``: what is wrong and how to fix it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis
from sqlalchemy import text

from ..config import project_path
from ..db import database_url, get_engine, utcnow
from ..embedded import redis_reachable
from ..queue import REAPER_LAST_RUN_KEY, QueueClient
from .models import resolve_model


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def _redis(settings) -> Check:
    url = settings["REDIS_URL"]
    if redis_reachable(url, 2.0):
        return Check("redis", True, url)
    return Check("redis", False, f"cannot reach {url}",
                 "start redis-server, or set REDIS_URL; `python start_dashboard.py` starts one for you")


def _workers(queue: QueueClient, redis_ok: bool) -> Check:
    if not redis_ok:
        return Check("workers", False, "not checked: Redis is unreachable")
    queues = queue.inspect("active_queues", timeout=2.0) or {}
    if not queues:
        return Check("workers", False, "no Celery worker answered",
                     "start one: celery -A core.tasks worker -l info (consumes both queues)")
    served = {q["name"] for qs in queues.values() for q in qs}
    detail = "; ".join(f"{name}: {', '.join(sorted(q['name'] for q in qs))}" for name, qs in sorted(queues.items()))
    missing = {"transcribe", "render"} - served
    if missing:
        return Check("workers", False, f"{detail}; nobody consumes {', '.join(sorted(missing))}",
                     f"start a worker with -Q {','.join(sorted(missing))}")
    return Check("workers", True, detail)


def _database(settings) -> Check:
    url = database_url(settings)
    try:
        with get_engine(url).connect() as conn:
            conn.execute(text("SELECT count(*) FROM jobs"))
        return Check("database", True, url.split("@")[-1])
    except Exception as err:  # noqa: BLE001 - report whatever the driver says
        return Check("database", False, f"{url.split('@')[-1]}: {err}",
                     "check DATABASE_URL (PostgreSQL needs the psycopg driver and an existing database)")


def _ffmpeg() -> Check:
    if not shutil.which("ffmpeg") or not shutil.which("ffprobe"):
        return Check("ffmpeg", False, "ffmpeg/ffprobe not on PATH", "apt-get install ffmpeg")
    filters = subprocess.run(["ffmpeg", "-hide_banner", "-filters"], capture_output=True, text=True).stdout
    if " subtitles " not in filters:
        return Check("ffmpeg", False, "ffmpeg lacks libass (no subtitles filter)", "install an ffmpeg built with libass")
    version = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout.split("\n")[0]
    return Check("ffmpeg", True, f"{version}; libass subtitles filter present")


def _model(settings) -> Check:
    name = settings["WHISPER_MODEL"]
    try:
        resolved = resolve_model(name)
    except Exception as err:  # noqa: BLE001
        return Check("model", False, str(err), "run scripts/setup.sh, or set WHISPER_MODEL to a CTranslate2 directory")
    if not Path(resolved).is_dir():
        return Check("model", True, f"{name}: will be downloaded by faster-whisper (needs internet)")
    return Check("model", True, f"{name}: {resolved}")


def _storage(settings) -> Check:
    missing = [r for r in settings["STORAGE_ROOTS"] if not Path(r).is_dir()]
    out = project_path(settings["OUTPUT_DIR"])
    try:
        out.mkdir(parents=True, exist_ok=True)
        writable = os.access(out, os.W_OK)
    except OSError:
        writable = False
    problems = []
    if missing:
        problems.append(f"storage root(s) missing: {', '.join(missing)}")
    if not writable:
        problems.append(f"OUTPUT_DIR {out} is not writable")
    if problems:
        return Check("storage", False, "; ".join(problems), "mount the shares or fix STORAGE_ROOTS / OUTPUT_DIR")
    return Check("storage", True, f"roots {', '.join(settings['STORAGE_ROOTS'])}; outputs {out}")


def _recovery(settings, redis_ok: bool) -> Check:
    """Whether a reaper (every worker runs one on a timer; beat may too) has run lately."""
    if not redis_ok:
        return Check("recovery", False, "not checked: Redis is unreachable")
    raw = redis.Redis.from_url(settings["REDIS_URL"], socket_timeout=2).get(REAPER_LAST_RUN_KEY)
    limit = 3 * settings["REAPER_INTERVAL"] + 30
    if raw:
        last = json.loads(raw)
        age = time.time() - last["at"]
        if age < limit:
            return Check("recovery", True, f"lost-job recovery active: the reaper ran {age:.0f} s ago "
                                           f"(by {last['by']}; every {settings['REAPER_INTERVAL']} s)")
    return Check("recovery", False, f"lost-job recovery inactive: no reaper ran in the last {limit} s",
                 "start a worker (each worker runs the reaper): celery -A core.tasks worker")


def _watch(settings) -> Check | None:
    """WATCH_FOLDERS usable, and the watcher (a child of start_dashboard.py) scanning them lately."""
    if not settings.get("WATCH_FOLDERS"):
        return None
    from ..db import WatchFolderScan, session_scope
    from ..watch.folders import parse

    folders, problems = parse(settings)
    if problems:
        return Check("watch", False, "; ".join(problems), "edit WATCH_FOLDERS in config.py")
    limit = 3 * settings["WATCH_SCAN_SECONDS"] + 30
    try:
        with session_scope() as s:
            scanned = {row.path: row.scanned_at for row in s.query(WatchFolderScan).all()}
    except Exception as err:  # noqa: BLE001 - the database line says why; this one must not hide the report
        return Check("watch", False, f"cannot read the watchers' last scans: {err}", "see the database line")
    now = utcnow()
    stale = [f.key for f in folders if scanned.get(f.key) is None or (now - scanned[f.key]).total_seconds() > limit]
    if stale:
        return Check("watch", False, f"no scan in the last {limit} s of {', '.join(stale)}",
                     "start_dashboard.py runs the watcher: start it (or see its log)")
    return Check("watch", True, f"watching {', '.join(f.key for f in folders)}")


def run_checks(settings: dict, queue: QueueClient) -> list[Check]:
    redis = _redis(settings)
    checks = [redis, _workers(queue, redis.ok), _recovery(settings, redis.ok), _database(settings), _ffmpeg(),
              _model(settings), _storage(settings), _watch(settings)]
    return [check for check in checks if check is not None]
