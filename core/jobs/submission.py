"""Queueing files: validate the request, probe every path, create the jobs, dispatch them."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..db import Batch, Job, new_id, session_scope, utcnow
from ..queue import PRIORITIES, QueueClient
from ..services import media, storage
from ..services.captions import MAX_ROWS
from ..services.errors import CaptionError, InputError
from . import queries, record
from .errors import JobError, RejectedBatch
from .states import PENDING

MAX_BATCH = 1000
OPTION_KEYS = ("model", "language", "burn_in", "rows")
BUNDLED_MODELS = ("tiny.en", "base")


def clean_options(raw: object, settings: dict) -> dict:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise JobError("options must be an object")
    unknown = set(raw) - set(OPTION_KEYS)
    if unknown:
        raise JobError(f"unknown option(s): {', '.join(sorted(map(str, unknown)))}")
    options = {
        "model": raw.get("model") or settings["WHISPER_MODEL"],
        "language": raw.get("language") or settings["LANGUAGE"],
        "burn_in": raw.get("burn_in", settings["BURN_IN"]),
        "rows": raw.get("rows", settings["CAPTION_ROWS"]),
    }
    if not isinstance(options["model"], str) or not isinstance(options["language"], str):
        raise JobError("model and language must be strings")
    if options["model"] not in BUNDLED_MODELS and not Path(options["model"]).is_absolute():
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
    if not isinstance(raw, str) or raw not in PRIORITIES:
        raise JobError('priority must be "high" or "normal"')
    return raw


def source_stat(path: Path) -> dict:
    """What the worker compares before it reads the file: the same file, unchanged or still settling."""
    st = os.stat(path)
    return {"dev": st.st_dev, "ino": st.st_ino, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _check(raw: object, settings: dict, burn_in: bool) -> tuple[Path, media.MediaInfo, dict]:
    path = storage.resolve_source(raw, settings)
    info = media.probe(path)
    if burn_in and not info.has_video:
        raise InputError(raw, "has no video stream to burn captions into (submit with burn_in false)")
    return path, info, source_stat(path)


def _try(fn, raw, *args):
    try:
        return fn(raw, *args), None
    except CaptionError as err:
        return None, str(err)
    except OSError as err:
        return None, f"{raw}: {err.strerror or err}"


def _new_job(path: Path, info: media.MediaInfo, stat: dict, options: dict, priority: str, settings: dict,
             batch_id: str | None = None) -> Job:
    return Job(id=new_id(), batch_id=batch_id, source=str(path), source_stat=stat,
               output_dir=str(storage.output_dir_for(path, settings)), options=options, priority=priority,
               media_duration=info.duration, status=PENDING, progress=0.0, attempts=0, created_at=utcnow())


def submit_batch(paths: object, options: object, settings: dict, queue: QueueClient, *, priority: object = None,
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
        checks = list(pool.map(lambda c: _try(_check, c[0], settings, options["burn_in"]), candidates))
    valid: list[tuple[object, Path, media.MediaInfo, dict]] = []
    real_seen: set[Path] = set()
    for (raw, index), (value, error) in zip(candidates, checks):
        if error:
            rejected.append({"path": raw, "error": error, "_i": index})
        elif value[0] in real_seen:
            rejected.append({"path": raw, "error": f"{raw}: same file as an earlier path in this batch", "_i": index})
        else:
            real_seen.add(value[0])
            valid.append((raw, *value))
    rejected.sort(key=lambda entry: entry.pop("_i"))
    if not valid:
        raise RejectedBatch(rejected, len(paths))

    running = {} if force else queries.active_by_source([str(path) for _, path, _, _ in valid])
    batch_id = new_id() if len(running) < len(valid) else None   # no batch when every file is already queued
    queued, created = [], []
    for raw, path, info, stat in valid:
        existing = running.get(str(path))
        if existing is not None:
            queued.append({"path": raw, "job_id": existing.id, "existing": True, "status": existing.status})
            continue
        job = _new_job(path, info, stat, options, priority, settings, batch_id)
        queued.append({"path": raw, "job_id": job.id})
        created.append(job)
    task_id = None
    if created:
        with session_scope() as s:
            s.add(Batch(id=batch_id, options=options, priority=priority))
        record.create(created)
        task_id = queue.enqueue_batch(batch_id)
        with session_scope() as s:
            s.get(Batch, batch_id).task_id = task_id
    extra = len(queued) - len(created)
    return {
        "message": f"queued {len(created)} file(s)" + (f", {len(rejected)} rejected" if rejected else "")
                   + (f", {extra} already queued" if extra else ""),
        "batch_id": batch_id,
        "batch_task_id": task_id,
        "total_files": len(paths),
        "valid_paths": len(valid),
        "queued": queued,
        "rejected": rejected,
    }


def submit_upload(path: Path, options: object, settings: dict, queue: QueueClient, priority: object = None) -> dict:
    """Queue an uploaded file (already saved under UPLOAD_DIR); it is removed if unusable."""
    try:
        options = clean_options(options, settings)
        priority = clean_priority(priority)
        _, info, stat = _check(str(path), settings, options["burn_in"])
    except (CaptionError, JobError):
        path.unlink(missing_ok=True)
        raise
    job = _new_job(path, info, stat, options, priority, settings)
    record.create([job])
    dispatch(job.id, queue)
    return {"job_id": job.id, "duration": info.duration, "burn_in": options["burn_in"]}


def dispatch(job_id: str, queue: QueueClient) -> None:
    """Send a pending job to the transcribe queue and record the task id (a cancel can then revoke it)."""
    job = queries.get(job_id)
    task_id = queue.enqueue_transcription(job_id, job.priority, job.media_duration or 0.0)
    record.transition(job_id, PENDING, only_from={PENDING}, when=lambda j: j.task_id is None, task_id=task_id)


def dispatch_batch(batch_id: str, queue: QueueClient) -> int:
    """Dispatch every pending job of the batch that has no task yet."""
    pending = queries.pending_of_batch(batch_id)
    for job in pending:
        dispatch(job.id, queue)
    return len(pending)
