"""Job lifecycle: submit, claim, progress, finish, cancel, retry, delete, list.

The job record is the single source of truth; Celery only carries job ids.
State: pending -> processing (stage: probing, transcribing, captioning,
rendering) -> completed | failed | cancelled.
"""

from __future__ import annotations

import logging
import shutil
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import case, func, or_, select, update

from ..db import (CANCELLED, COMPLETED, FAILED, FINISHED, PENDING, PROCESSING, STATUSES, Batch, Job,
                  new_id, session_scope, utcnow)
from . import events, media, storage
from .captions import MAX_ROWS
from .errors import CaptionError, InputError
from .pipeline import output_paths

log = logging.getLogger(__name__)

PRIORITIES = {"high": 0, "normal": 5}   # Redis transport: lower number is served first
MAX_BATCH = 1000
OPTION_KEYS = ("model", "language", "burn_in", "rows")

# Share of overall progress each stage covers (with and without burn-in).
_STAGE_SPAN = {
    True: {"probing": (0.0, 0.02), "transcribing": (0.02, 0.55), "captioning": (0.55, 0.6), "rendering": (0.6, 1.0)},
    False: {"probing": (0.0, 0.02), "transcribing": (0.02, 0.95), "captioning": (0.95, 1.0), "rendering": (1.0, 1.0)},
}
# Rough realtime factors used for ETAs before a job has progress to go on (CPU, tiny.en, 720p).
_RTF_TRANSCRIBE, _RTF_RENDER = 30.0, 7.0


class JobError(Exception):
    """A request about a job that cannot be honoured; ``status`` is the HTTP code."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def clean_options(raw: object, settings: dict) -> dict:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise JobError("options must be an object")
    unknown = set(raw) - set(OPTION_KEYS)
    if unknown:
        raise JobError(f"unknown option(s): {', '.join(sorted(unknown))}")
    options = {
        "model": raw.get("model") or settings["WHISPER_MODEL"],
        "language": raw.get("language") or settings["LANGUAGE"],
        "burn_in": raw.get("burn_in", settings["BURN_IN"]),
        "rows": raw.get("rows", settings["CAPTION_ROWS"]),
    }
    if not isinstance(options["model"], str) or not isinstance(options["language"], str):
        raise JobError("model and language must be strings")
    if options["model"] not in ("tiny.en", "base") and not Path(options["model"]).is_absolute():
        if "/" in options["model"] or ".." in options["model"]:
            raise JobError("model must be tiny.en, base, a model name or an absolute model directory")
    if not isinstance(options["burn_in"], bool):
        raise JobError("burn_in must be true or false")
    if isinstance(options["rows"], bool) or not isinstance(options["rows"], int) or not 1 <= options["rows"] <= MAX_ROWS:
        raise JobError(f"rows must be an integer from 1 to {MAX_ROWS}")
    return options


def clean_priority(raw: object) -> str:
    if raw in (None, ""):
        return "normal"
    if raw not in PRIORITIES:
        raise JobError('priority must be "high" or "normal"')
    return raw


def _validate(raw: object, settings: dict) -> tuple[Path, media.MediaInfo]:
    path = storage.resolve_source(raw, settings)
    return path, media.probe(path)


def submit_batch(paths: object, options: object, settings: dict, *, priority: object = None,
                 force: bool = False) -> dict:
    """Queue every valid path; reject the rest with reasons (partial success is normal)."""
    if not isinstance(paths, list) or not paths:
        raise JobError("paths must be a non-empty list of file paths")
    if len(paths) > MAX_BATCH:
        raise JobError(f"a batch holds at most {MAX_BATCH} paths; split it")
    options = clean_options(options, settings)
    priority = clean_priority(priority)
    rejected: list[dict] = []
    seen: set[str] = set()
    candidates: list[tuple[object, int]] = []
    for index, raw in enumerate(paths):
        key = raw if isinstance(raw, str) else repr(raw)
        if key in seen:
            rejected.append({"path": raw, "error": f"{raw}: listed more than once in this batch", "_i": index})
            continue
        seen.add(key)
        candidates.append((raw, index))
    with ThreadPoolExecutor(max_workers=8) as pool:
        checks = list(pool.map(lambda item: _try(_validate, item[0], settings), [c for c in candidates]))
    valid: list[tuple[object, Path, media.MediaInfo]] = []
    real_seen: set[Path] = set()
    for (raw, index), (value, error) in zip(candidates, checks):
        if error:
            rejected.append({"path": raw, "error": error, "_i": index})
        elif options["burn_in"] and not value[1].has_video:
            rejected.append({"path": raw, "error": f"{raw}: has no video stream to burn captions into "
                                                   "(submit with burn_in false)", "_i": index})
        elif value[0] in real_seen:
            rejected.append({"path": raw, "error": f"{raw}: same file as an earlier path in this batch", "_i": index})
        else:
            real_seen.add(value[0])
            valid.append((raw, value[0], value[1]))
    rejected.sort(key=lambda entry: entry.pop("_i"))
    if not valid:
        raise RejectedBatch(rejected, len(paths))

    queued, created = [], []
    with session_scope() as s:
        batch = Batch(options=options, priority=priority)
        s.add(batch)
        s.flush()
        running: dict[str, Job] = {}
        if not force:
            sources = [str(path) for _, path, _ in valid]
            for chunk in range(0, len(sources), 500):
                for job in s.scalars(select(Job).where(Job.source.in_(sources[chunk:chunk + 500]),
                                                       Job.status.in_((PENDING, PROCESSING)))):
                    running[job.source] = job
        for raw, path, info in valid:
            existing = running.get(str(path))
            if existing is not None:
                queued.append({"path": raw, "job_id": existing.id, "existing": True, "status": existing.status})
                continue
            job = Job(id=new_id(), batch_id=batch.id, source=str(path),
                      output_dir=str(storage.output_dir_for(path, settings)), options=options, priority=priority,
                      media_duration=info.duration, status=PENDING, progress=0.0, attempts=0, created_at=utcnow())
            s.add(job)
            queued.append({"path": raw, "job_id": job.id})
            created.append(job)
        batch_id = batch.id
    from ..tasks.dispatch import dispatch_batch

    to_dispatch = [job.id for job in created]
    for job in created:
        events.emit("job_update", summary_dict(job))
    task_id = dispatch_batch(batch_id, priority) if to_dispatch else None
    if task_id:
        with session_scope() as s:
            s.get(Batch, batch_id).task_id = task_id
    return {
        "message": f"queued {len(to_dispatch)} file(s)" + (f", {len(rejected)} rejected" if rejected else "")
                   + (f", {len(queued) - len(to_dispatch)} already queued" if len(queued) > len(to_dispatch) else ""),
        "batch_id": batch_id,
        "batch_task_id": task_id,
        "total_files": len(paths),
        "valid_paths": len(valid),
        "queued": queued,
        "rejected": rejected,
    }


class RejectedBatch(JobError):
    def __init__(self, rejected: list[dict], total: int):
        super().__init__("none of the paths can be queued", 400)
        self.rejected = rejected
        self.total = total


def _try(fn, *args):
    try:
        return fn(*args), None
    except CaptionError as err:
        return None, str(err)
    except OSError as err:
        return None, f"{args[0]}: {err.strerror or err}"


def submit_upload(path: Path, options: object, settings: dict, priority: object = None) -> dict:
    """Queue an uploaded file (already saved under UPLOAD_DIR); it is removed if unusable."""
    try:
        options = clean_options(options, settings)
        priority = clean_priority(priority)
        info = media.probe(path)
        if options["burn_in"] and not info.has_video:
            raise InputError(path.name, "has no video stream to burn captions into (upload with burn_in false)")
    except (CaptionError, JobError):
        path.unlink(missing_ok=True)
        raise
    with session_scope() as s:
        job = Job(source=str(path), output_dir=str(storage.output_dir_for(path, settings)), options=options,
                  priority=priority, media_duration=info.duration)
        s.add(job)
        s.flush()
        job_id = job.id
    dispatch(job_id)
    return {"job_id": job_id, "duration": info.duration, "burn_in": options["burn_in"]}


@events.announces
def dispatch(job_id: str) -> None:
    from ..tasks.dispatch import dispatch_job

    with session_scope() as s:
        job = s.get(Job, job_id)
        priority, duration = job.priority, job.media_duration or 0.0
    task_id = dispatch_job(job_id, priority, duration)
    with session_scope() as s:
        job = s.get(Job, job_id)
        if job is not None and job.status == PENDING and job.task_id is None:
            job.task_id = task_id  # lets a cancel revoke it before it starts


# --- worker side ---------------------------------------------------------------


@events.announces
def claim(job_id: str, task_id: str, worker: str) -> Job | None:
    """Mark the job processing for this task; None if it must not run.

    A job that is finished, cancelled or running under another live task is
    skipped, which makes redelivered or duplicated messages harmless.
    """
    now = utcnow()
    with session_scope() as s:
        job = s.get(Job, job_id)
        if job is None or job.status in FINISHED:
            return None
        if job.status == PROCESSING and job.task_id not in (None, task_id):
            return None
        job.status, job.stage, job.progress = PROCESSING, "probing", 0.0
        job.task_id, job.worker = task_id, worker
        job.started_at = job.started_at or now
        job.stage_started_at = job.heartbeat_at = now
        job.attempts += 1
        job.error = None
        return job


@events.announces
def claim_render(job_id: str, task_id: str, worker: str) -> Job | None:
    with session_scope() as s:
        job = s.get(Job, job_id)
        if job is None or job.status != PROCESSING or job.stage != "rendering":
            return None
        job.task_id, job.worker = task_id, worker
        job.stage_started_at = job.heartbeat_at = utcnow()
        return job


@events.announces
def report_progress(job_id: str, stage: str, fraction: float) -> None:
    burn_in = True
    with session_scope() as s:
        job = s.get(Job, job_id)
        if job is None or job.status != PROCESSING:
            return
        burn_in = bool(job.options.get("burn_in", True))
        lo, hi = _STAGE_SPAN[burn_in][stage]
        if job.stage != stage:
            job.stage, job.stage_started_at = stage, utcnow()
        job.progress = round(max(job.progress if job.stage == stage else 0.0, lo + (hi - lo) * fraction), 4)
        job.heartbeat_at = utcnow()


def heartbeat(job_id: str) -> None:
    with session_scope() as s:
        s.execute(update(Job).where(Job.id == job_id, Job.status == PROCESSING).values(heartbeat_at=utcnow()))


@events.announces
def store_result(job_id: str, result: dict, *, done: bool) -> bool:
    """Save the result; complete the job unless rendering follows.  False if it was cancelled meanwhile."""
    with session_scope() as s:
        job = s.get(Job, job_id)
        if job is None or job.status != PROCESSING:
            return False
        merged = dict(job.result or {})
        merged.update(result)
        for key in ("outputs", "timings"):
            merged[key] = {**(job.result or {}).get(key, {}), **result.get(key, {})}
        job.result = merged
        if done:
            job.status, job.stage, job.progress, job.completed_at = COMPLETED, None, 1.0, utcnow()
        else:
            job.stage, job.progress, job.stage_started_at = "rendering", _STAGE_SPAN[True]["rendering"][0], utcnow()
        return True


@events.announces
def fail(job_id: str, error: str, clear_outputs: bool = False) -> None:
    with session_scope() as s:
        job = s.get(Job, job_id)
        if job is None or job.status in FINISHED:
            return
        job.status, job.error, job.completed_at = FAILED, error, utcnow()
        if clear_outputs and job.result:
            job.result = {**job.result, "outputs": {}}
    if clear_outputs and job is not None:
        remove_outputs(job)


def status_of(job_id: str) -> str | None:
    with session_scope() as s:
        job = s.get(Job, job_id)
        return job.status if job else None


# --- operator actions -------------------------------------------------------------


def _get(s, job_id: str) -> Job:
    job = s.get(Job, job_id) if isinstance(job_id, str) and len(job_id) <= 64 else None
    if job is None:
        raise JobError(f"job {job_id} not found", 404)
    return job


def remove_outputs(job: Job) -> list[str]:
    """Delete a job's outputs and any staging folders its runs left."""
    removed = []
    source, out_dir = Path(job.source), Path(job.output_dir)
    for path in output_paths(source, out_dir).values():
        if path.is_file():
            path.unlink(missing_ok=True)
            removed.append(str(path))
    if out_dir.is_dir():
        for staging in out_dir.glob(f".{source.stem}.partial-*"):
            shutil.rmtree(staging, ignore_errors=True)
    return removed


@events.announces
def cancel(job_id: str) -> dict:
    from ..tasks.dispatch import revoke

    with session_scope() as s:
        job = _get(s, job_id)
        if job.status in FINISHED:
            raise JobError(f"job {job_id} is already {job.status}", 409)
        was_running, task_id = job.status == PROCESSING, job.task_id
        job.status, job.completed_at, job.error = CANCELLED, utcnow(), "cancelled by operator"
        snapshot = Job(source=job.source, output_dir=job.output_dir)
    if task_id:
        revoke(task_id, terminate=was_running)
    if was_running:
        remove_outputs(snapshot)
    return job_dict_by_id(job_id)


@events.announces
def retry(job_id: str) -> dict:
    with session_scope() as s:
        job = _get(s, job_id)
        if job.status not in (FAILED, CANCELLED):
            raise JobError(f"only failed or cancelled jobs can be retried (job is {job.status})", 409)
        job.status, job.stage, job.progress, job.error = PENDING, None, 0.0, None
        job.task_id = job.worker = job.started_at = job.completed_at = job.heartbeat_at = None
        job.result = None
    dispatch(job_id)
    return job_dict_by_id(job_id)


@events.announces
def delete(job_id: str, outputs: bool = False) -> dict:
    from ..tasks.dispatch import revoke

    with session_scope() as s:
        job = _get(s, job_id)
        task_id, active = job.task_id, job.status in (PENDING, PROCESSING)
        snapshot = Job(source=job.source, output_dir=job.output_dir)
        s.delete(job)
    if task_id and active:
        revoke(task_id, terminate=True)
    removed = remove_outputs(snapshot) if outputs or active else []
    return {"job_id": job_id, "deleted": True, "outputs_deleted": removed}


def output_file(job_id: str, kind: str) -> Path:
    with session_scope() as s:
        job = _get(s, job_id)
        outputs = (job.result or {}).get("outputs", {})
    if kind not in ("scc", "srt", "vtt", "dfxp", "json", "video"):
        raise JobError(f"unknown output kind {kind!r} (scc, srt, vtt, dfxp, json, video)", 404)
    path = outputs.get(kind)
    if not path or not Path(path).is_file():
        raise JobError(f"job {job_id} has no {kind} output", 404)
    return Path(path)


# --- reading -------------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") + "Z" if value else None


def estimated_completion(job: Job, now: datetime | None = None) -> datetime | None:
    if job.status not in (PENDING, PROCESSING):
        return None
    now = now or utcnow()
    duration = job.media_duration or 0.0
    burn_in = bool((job.options or {}).get("burn_in", True))
    expected = duration / _RTF_TRANSCRIBE + (duration / _RTF_RENDER if burn_in else 0.0) + 5.0
    if job.status == PENDING or not job.started_at:
        return now + timedelta(seconds=expected)
    elapsed = (now - job.started_at).total_seconds()
    if job.progress >= 0.1:
        remaining = elapsed / job.progress * (1.0 - job.progress)
    else:
        remaining = max(expected - elapsed, expected * 0.1)
    return now + timedelta(seconds=remaining)


def job_dict(job: Job) -> dict:
    result = job.result or {}
    return {
        "job_id": job.id,
        "status": job.status,
        "stage": job.stage,
        "progress": round((job.progress or 0.0) * 100, 1),
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "completed_at": _iso(job.completed_at),
        "estimated_completion": _iso(estimated_completion(job)),
        "worker": job.worker,
        "error": job.error,
        "source": job.source,
        "batch_id": job.batch_id,
        "priority": job.priority,
        "options": job.options,
        "attempts": job.attempts,
        "task_id": job.task_id,
        "result": {
            "text": result.get("text"),
            "language": result.get("language"),
            "duration": result.get("duration", job.media_duration),
            "segments": result.get("segments"),
            "speech_found": result.get("speech_found"),
            "message": result.get("message"),
            "outputs": result.get("outputs", {}),
        } if result else None,
    }


def job_dict_by_id(job_id: str) -> dict:
    with session_scope() as s:
        return job_dict(_get(s, job_id))


def summary_dict(job: Job) -> dict:
    """A list row: the status shape without the (large) transcript."""
    data = job_dict(job)
    if data["result"]:
        data["result"] = {k: v for k, v in data["result"].items() if k not in ("segments", "text")}
    return data


def list_jobs(status: str | None = None, batch_id: str | None = None, q: str | None = None,
              page: int = 1, page_size: int = 50) -> dict:
    if status and status not in STATUSES:
        raise JobError(f"status must be one of {', '.join(STATUSES)}")
    if page < 1 or not 1 <= page_size <= 500:
        raise JobError("page must be >= 1 and page_size between 1 and 500")
    where = []
    if status:
        where.append(Job.status == status)
    if batch_id:
        where.append(Job.batch_id == batch_id)
    if q:
        escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where.append(Job.source.ilike(f"%{escaped}%", escape="\\"))
    with session_scope() as s:
        total = s.scalar(select(func.count()).select_from(Job).where(*where))
        rows = s.scalars(select(Job).where(*where).order_by(Job.created_at.desc(), Job.id)
                         .offset((page - 1) * page_size).limit(page_size)).all()
        return {"items": [summary_dict(j) for j in rows], "page": page, "page_size": page_size, "total": total}


def next_waiting(limit: int = 50) -> list[dict]:
    """Pending jobs in the order workers will take them: high priority first, then oldest."""
    with session_scope() as s:
        rows = s.scalars(select(Job).where(Job.status == PENDING)
                         .order_by(case((Job.priority == "high", 0), else_=1), Job.created_at, Job.id).limit(limit))
        return [summary_dict(j) for j in rows]


def counts() -> dict:
    with session_scope() as s:
        rows = s.execute(select(Job.status, func.count()).group_by(Job.status)).all()
    data = {status: 0 for status in STATUSES}
    data.update({status: n for status, n in rows})
    data["total"] = sum(data[s] for s in STATUSES)
    return data


def jobs_by_ids(job_ids: list[str]) -> dict[str, dict]:
    if not job_ids:
        return {}
    with session_scope() as s:
        rows = s.scalars(select(Job).where(Job.id.in_(job_ids))).all()
        return {j.id: summary_dict(j) for j in rows}


def batch_dict(batch_id: str) -> dict:
    with session_scope() as s:
        batch = s.get(Batch, batch_id) if isinstance(batch_id, str) else None
        if batch is None:
            raise JobError(f"batch {batch_id} not found", 404)
        rows = s.execute(select(Job.status, func.count(), func.avg(Job.progress))
                         .where(Job.batch_id == batch_id).group_by(Job.status)).all()
        by_status = {status: 0 for status in STATUSES}
        total, progress = 0, 0.0
        for status, n, avg in rows:
            by_status[status] = n
            total += n
            progress += (1.0 if status in FINISHED else (avg or 0.0)) * n
        return {
            "batch_id": batch.id,
            "batch_task_id": batch.task_id,
            "created_at": _iso(batch.created_at),
            "options": batch.options,
            "priority": batch.priority,
            "total": total,
            "counts": by_status,
            "progress": round(progress / total * 100, 1) if total else 100.0,
            "done": total == sum(by_status[s] for s in FINISHED),
        }


def stale_jobs(older_than: timedelta) -> list[Job]:
    cutoff = utcnow() - older_than
    with session_scope() as s:
        return list(s.scalars(select(Job).where(
            Job.status == PROCESSING, or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < cutoff))).all())


def purge_waiting(app) -> dict:
    """Empty the broker queues and cancel every job that had not started."""
    with session_scope() as s:
        waiting = s.scalars(select(Job).where(Job.status == PENDING)).all()
        task_ids = [j.task_id for j in waiting if j.task_id]
        for job in waiting:
            job.status, job.completed_at, job.error = CANCELLED, utcnow(), "purged from the queue by operator"
        ids = [j.id for j in waiting]
    messages = app.control.purge()
    for task_id in task_ids:  # messages a worker already reserved are not in the queue any more
        app.control.revoke(task_id)
    return {"purged_messages": messages, "cancelled_jobs": len(ids), "job_ids": ids}
