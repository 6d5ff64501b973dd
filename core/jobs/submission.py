"""Queueing files: validate the request, check every path (``sources``), create the jobs, dispatch them."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from ..db import Batch, Job, new_id, session_scope, utcnow
from ..queue import PRIORITIES, QueueClient
from ..services import models
from ..services.captions import MAX_ROWS
from ..services.pipeline import check_deliverable_options, clean_vocabulary
from ..services.errors import OptionError
from . import queries, record
from .errors import JobError, RejectedBatch
from .sources import Checked, check_paths, shown
from .states import PENDING

log = logging.getLogger(__name__)
MAX_BATCH = 1000
OPTION_KEYS = ("model", "language", "burn_in", "rows", "start_timecode", "timecode_mode", "mov", "qc_profile",
               "speaker_changes", "vocabulary")
BUNDLED_MODELS = models.BUNDLED_MODELS
CREATE_CHUNK = 200


# --- the request's fields ----------------------------------------------------------------------------

def clean_options(raw: object, settings: dict) -> dict:
    """The job options of a request, each checked (JobError with the reason otherwise)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise JobError("options must be an object")
    unknown = set(raw) - set(OPTION_KEYS)
    if unknown:
        raise JobError(f"unknown option(s): {', '.join(sorted(map(str, unknown)))}")
    model = _text(raw, "model") or settings["WHISPER_MODEL"]
    language = _text(raw, "language")
    burn_in = raw.get("burn_in", settings["BURN_IN"])
    if not isinstance(burn_in, bool):
        raise JobError("burn_in must be true or false")
    rows = raw.get("rows", settings["CAPTION_ROWS"])
    if isinstance(rows, bool) or not isinstance(rows, int) or not 1 <= rows <= MAX_ROWS:
        raise JobError(f"rows must be an integer from 1 to {MAX_ROWS}")
    return {"model": model, "language": _language(model, language, settings), "burn_in": burn_in, "rows": rows,
            **_deliverables(raw, settings), **_recognition(raw, settings)}


def _recognition(raw: dict, settings: dict) -> dict:
    """Speaker-change marks and the show's vocabulary (the settings' values where absent)."""
    speaker_changes = raw.get("speaker_changes", settings["SPEAKER_CHANGES"])
    if not isinstance(speaker_changes, bool):
        raise JobError("speaker_changes must be true or false")
    vocabulary = raw.get("vocabulary")
    try:
        vocabulary = clean_vocabulary(settings["VOCABULARY"] if vocabulary is None else vocabulary)
    except ValueError as err:
        raise JobError(str(err)) from None
    return {"speaker_changes": speaker_changes, "vocabulary": vocabulary}


def _deliverables(raw: dict, settings: dict) -> dict:
    """Start timecode, timecode mode, MOV and QC profile (the settings' values where absent)."""
    mov = raw.get("mov", settings["MOV_OUTPUT"])
    if not isinstance(mov, bool):
        raise JobError("mov must be true or false")
    chosen = {"start_timecode": _text(raw, "start_timecode") or settings["START_TIMECODE"],
              "timecode_mode": _text(raw, "timecode_mode") or settings["TIMECODE_MODE"],
              "mov": mov, "qc_profile": _text(raw, "qc_profile") or settings["QC_PROFILE"]}
    try:
        check_deliverable_options(chosen["start_timecode"], chosen["timecode_mode"], chosen["qc_profile"])
    except ValueError as err:
        raise JobError(str(err)) from None
    return chosen


def _text(raw: dict, key: str) -> str | None:
    """A string option; None when absent, null or empty (the configured value applies)."""
    value = raw.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise JobError(f"{key} must be a string")
    return value


def _language(model: str, language: str | None, settings: dict) -> str:
    """The job's language, once this installation can run ``model`` and the model knows the language.

    Without one the configured LANGUAGE applies; an English-only model then takes "en" (config.example.py:
    English-only models always use "en"), while asking one for another language is refused.
    """
    try:
        english = models.english_only(model, settings)
        if language is None:
            language = settings["LANGUAGE"]
            if english and language != "auto":
                language = "en"
        models.check_language(language, model, english)
    except OptionError as err:
        raise JobError(str(err)) from None
    return language


def clean_priority(raw: object) -> str:
    if raw in (None, ""):
        return "normal"
    if not isinstance(raw, str) or raw not in PRIORITIES:
        raise JobError('priority must be "high" or "normal"')
    return raw


# --- queueing ----------------------------------------------------------------------------------------

def _new_job(checked: Checked, options: dict, priority: str, batch_id: str | None = None) -> Job:
    return Job(id=new_id(), batch_id=batch_id, source=str(checked.path), source_stat=checked.stat,
               output_dir=str(checked.output_dir), options=options, priority=priority,
               media_duration=checked.info.duration, status=PENDING, progress=0.0, attempts=0, created_at=utcnow())


def _create(jobs: list[Job]) -> None:
    """Insert the jobs CREATE_CHUNK at a time, letting other requests run in between (under eventlet one
    1,000-row insert holds the server for 100 ms or more).  If one chunk fails, the others go too."""
    done: list[Job] = []
    try:
        for start in range(0, len(jobs), CREATE_CHUNK):
            record.create(jobs[start:start + CREATE_CHUNK])
            done += jobs[start:start + CREATE_CHUNK]
            time.sleep(0)           # a green sleep under eventlet: the hub serves what waits
    except Exception:
        for job in done:
            record.delete(job.id)
        raise


def _sort_paths(paths: list, settings: dict, options: dict) -> tuple[list[Checked], list[dict]]:
    """The paths that can be queued, and the others each with its reason (in the request's order)."""
    rejected: list[dict] = []
    seen: set[str] = set()
    candidates: list[tuple[object, int]] = []
    for index, raw in enumerate(paths):
        key = raw if isinstance(raw, str) else repr(raw)
        if key in seen:
            rejected.append({"path": raw, "error": f"{shown(raw)}: listed more than once in this batch", "_i": index})
            continue
        seen.add(key)
        candidates.append((raw, index))
    valid: list[Checked] = []
    real_seen: set[Path] = set()
    checks = check_paths([raw for raw, _ in candidates], settings, options["burn_in"], options["mov"])
    for (raw, index), (checked, error) in zip(candidates, checks):
        if error:
            rejected.append({"path": raw, "error": error, "_i": index})
        elif checked.path in real_seen:
            rejected.append({"path": raw, "error": f"{shown(raw)}: same file as an earlier path in this batch",
                             "_i": index})
        else:
            real_seen.add(checked.path)
            valid.append(checked)
    rejected.sort(key=lambda entry: entry.pop("_i"))
    return valid, rejected


def submit_batch(paths: object, options: object, settings: dict, queue: QueueClient, *, priority: object = None,
                 force: bool = False) -> dict:
    """Queue every valid path; reject the rest with reasons (partial success is normal)."""
    if not isinstance(paths, list) or not paths:
        raise JobError("paths must be a non-empty list of file paths")
    if len(paths) > MAX_BATCH:
        raise JobError(f"a batch holds at most {MAX_BATCH} paths; split it")
    options = clean_options(options, settings)
    priority = clean_priority(priority)
    valid, rejected = _sort_paths(paths, settings, options)
    if not valid:
        raise RejectedBatch(rejected, len(paths))

    running = {} if force else queries.active_by_source([str(c.path) for c in valid])
    batch_id = new_id() if len(running) < len(valid) else None   # no batch when every file is already queued
    queued, created = [], []
    for checked in valid:
        existing = running.get(str(checked.path))
        if existing is not None:
            queued.append({"path": checked.raw, "job_id": existing.id, "existing": True, "status": existing.status})
            continue
        job = _new_job(checked, options, priority, batch_id)
        queued.append({"path": checked.raw, "job_id": job.id})
        created.append(job)
    task_id = None
    if created:
        with session_scope() as s:
            s.add(Batch(id=batch_id, options=options, priority=priority))
        _create(created)
        task_id = _send(lambda: queue.enqueue_batch(batch_id), [job.id for job in created], batch_id)
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
        ((checked, error),) = check_paths([str(path)], settings, options["burn_in"], options["mov"])
        if error:
            raise JobError(error)
    except JobError:
        path.unlink(missing_ok=True)
        raise
    job = _new_job(checked, options, priority)
    record.create([job])
    try:
        dispatch(job.id, queue, undo_on_failure=True)
    except JobError:
        path.unlink(missing_ok=True)
        raise
    return {"job_id": job.id, "duration": checked.info.duration, "burn_in": options["burn_in"]}


def _send(send, job_ids: list[str], batch_id: str | None = None):
    """``send()``'s task id; if the queue cannot take it (Redis down), the jobs just made are removed again
    and the request gets a 503: nothing is left pending that no worker will ever be sent."""
    try:
        return send()
    except Exception as err:  # noqa: BLE001 - whatever the broker raised, the request must not leave orphans
        log.warning("queueing failed, the new jobs are removed: %s", err)
        record.delete_many(job_ids)
        if batch_id is not None:
            with session_scope() as s:
                batch = s.get(Batch, batch_id)
                if batch is not None:
                    s.delete(batch)
        raise JobError("the queue (Redis) cannot be reached; nothing was queued: try again when it is back",
                       503) from None


def dispatch(job_id: str, queue: QueueClient, *, undo_on_failure: bool = False) -> None:
    """Send a pending job to the transcribe queue and record the task id (a cancel can then revoke it).
    ``undo_on_failure``: a job just created is removed again if the queue cannot take it (a 503)."""
    job = queries.get(job_id)
    send = lambda: queue.enqueue_transcription(job_id, job.priority, job.media_duration or 0.0)  # noqa: E731
    task_id = _send(send, [job_id]) if undo_on_failure else send()
    record.transition(job_id, PENDING, only_from={PENDING}, when=lambda j: j.task_id is None, task_id=task_id)


def dispatch_batch(batch_id: str, queue: QueueClient) -> int:
    """Dispatch every pending job of the batch that has no task yet."""
    pending = queries.pending_of_batch(batch_id)
    for job in pending:
        dispatch(job.id, queue)
    return len(pending)
