"""Queueing files: validate the request, check every path, create the jobs, dispatch them.

Checking a path is file-system and FFmpeg work (resolve it inside the storage roots, stat it, probe
it), so it runs in real OS threads: under eventlet the server's threads are green, and one probe of a
2-hour file (~70 ms in PyAV's C code) would stall every other request.  Paths that resolve to one file
are probed once, and a file is probed again only when it changed: probes are remembered by device,
inode, size and times.
"""

from __future__ import annotations

import functools
import os
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..db import Batch, Job, new_id, session_scope, utcnow
from ..queue import PRIORITIES, QueueClient
from ..services import artifacts, media, models, storage
from ..services.captions import MAX_ROWS
from ..services.pipeline import check_deliverable_options
from ..services.errors import CaptionError, InputError, OptionError
from . import queries, record
from .errors import JobError, RejectedBatch
from .states import PENDING

MAX_BATCH = 1000
OPTION_KEYS = ("model", "language", "burn_in", "rows", "start_timecode", "timecode_mode", "mov", "qc_profile")
BUNDLED_MODELS = models.BUNDLED_MODELS
CHECK_THREADS = 8                  # side by side: PyAV opens files in C without the GIL; stat waits on storage
PROBE_CACHE_SIZE = 4096
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
            **_deliverables(raw, settings)}


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


# --- checking paths ----------------------------------------------------------------------------------

def source_stat(path: Path) -> dict:
    """What the worker compares before it reads the file: the same file, unchanged or still settling."""
    return _stat_record(os.stat(path))


def _stat_record(st: os.stat_result) -> dict:
    return {"dev": st.st_dev, "ino": st.st_ino, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


@dataclass(frozen=True)
class Located:
    """A requested path, resolved inside the storage roots and stat'ed."""
    path: Path
    output_dir: Path
    stat: dict | None                 # None when it cannot be stat'ed: the probe then says why
    identity: tuple | None            # what the probe cache is keyed by


@dataclass(frozen=True)
class Checked:
    raw: object
    path: Path
    output_dir: Path
    info: media.MediaInfo
    stat: dict


def _locate(raw: object, settings: dict) -> Located:
    path = storage.resolve_source(raw, settings)
    output_dir = storage.output_dir_for(path, settings)
    try:
        st = os.stat(path)
    except OSError:
        return Located(path, output_dir, None, None)
    return Located(path, output_dir, _stat_record(st),
                   (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))


def _probe(path: Path) -> media.MediaInfo | InputError:
    """What the probe finds, or the InputError that the file's content earns (as true next time as now);
    any other error (the storage failing to read) is raised, and not remembered."""
    try:
        return media.probe(path)
    except InputError as err:
        return err


_probes: dict[tuple, media.MediaInfo | str] = {}     # identity -> what the probe found, or why it refused


def _probe_all(located: list[Located]) -> dict[object, media.MediaInfo | str]:
    """Probe each file once, unless it was probed before and has not changed since: keyed by identity, or
    by path for a file that could not be stat'ed.  Each outcome is a MediaInfo or the reason."""
    paths = {loc.identity or loc.path: loc.path for loc in located}
    outcomes = {key: _probes[key] for key in paths if key in _probes}
    missing = [key for key in paths if key not in outcomes]
    found = _in_threads(lambda key: _try(_probe, paths[key]), missing)
    if len(_probes) > PROBE_CACHE_SIZE:
        _probes.clear()
    for key, (value, error) in zip(missing, found):
        if error is not None:
            outcomes[key] = error.removeprefix(f"{paths[key]}: ")
        else:
            outcomes[key] = value.reason if isinstance(value, InputError) else value
            if isinstance(key, tuple):
                _probes[key] = outcomes[key]
    return outcomes


def _accept(raw: object, loc: Located, outcome: media.MediaInfo | str, settings: dict,
            burn_in: bool, mov: bool = False) -> Checked:
    """The checked path, or InputError with why it cannot be queued with these options."""
    if isinstance(outcome, str):
        raise InputError(loc.path, outcome)
    if burn_in and not outcome.has_video:
        raise InputError(raw, "has no video stream to burn captions into (submit with burn_in false)")
    if mov and not outcome.has_video:
        raise InputError(raw, "has no video stream for a MOV deliverable (submit with mov false)")
    if burn_in:
        _check_render_size(raw, outcome, settings["MAX_RENDER_PIXELS"])
    _check_name_length(raw, loc.path)
    return Checked(raw, loc.path, loc.output_dir, outcome, loc.stat or source_stat(loc.path))


def _check_render_size(raw: object, info: media.MediaInfo, limit: int) -> None:
    """A picture larger than MAX_RENDER_PIXELS is not rendered (a 10,000×10,000 source drove FFmpeg to 3.5 GB)."""
    if info.width * info.height > limit:
        usual = " (4096×2160)" if limit == 4096 * 2160 else ""
        raise InputError(raw, f"is {info.width}×{info.height}; the captioned rendition is limited to "
                              f"MAX_RENDER_PIXELS = {limit:,} pixels{usual}; submit with burn_in false for "
                              "captions only")


def _check_name_length(raw: object, path: Path) -> None:
    """Output and staging names add to the source's name; refuse one whose outputs the file system cannot name."""
    longest = max(len(os.fsencode(artifacts.file_name(path.name, "video", run=999, revision=999))),
                  len(os.fsencode(f".{path.name}.partial-{'0' * 32}-{socket.gethostname()}-4194304-abcdefgh")))
    if longest > 255:
        raise InputError(raw, f"name is too long for its output files ({longest} bytes with the outputs' suffixes; "
                              "the file system allows 255): rename the file")


def check_paths(raws: list, settings: dict, burn_in: bool, mov: bool = False) -> list[tuple[Checked | None, str | None]]:
    """For each requested path (in order): (Checked, None) if it can be queued, else (None, reason)."""
    located = _in_threads(lambda raw: _try(_locate, raw, settings), raws)
    outcomes = _probe_all([loc for loc, error in located if error is None])
    return [(None, error) if error else
            _try(_accept, raw, loc, outcomes[loc.identity or loc.path], settings, burn_in, mov)
            for raw, (loc, error) in zip(raws, located)]


def _try(fn, raw, *args):
    """(fn's value, None), or (None, the reason) for whatever makes this one path unusable."""
    try:
        return fn(raw, *args), None
    except CaptionError as err:
        return None, str(err)
    except OSError as err:
        return None, f"{_shown(raw)}: {err.strerror or err}"
    except Exception as err:  # noqa: BLE001 - one odd path (or file) must not fail the whole batch
        return None, f"{_shown(raw)}: {err}"


def _shown(raw: object) -> str:
    """``raw`` for a message, lone surrogates spelled as escapes."""
    return str(raw).encode("utf-8", "backslashreplace").decode("utf-8")


# --- real OS threads ---------------------------------------------------------------------------------

def _in_threads(fn, items: list, threads: int = CHECK_THREADS) -> list:
    """``[fn(item) for item in items]``, run in up to ``threads`` real OS threads, in chunks."""
    if not items:
        return []
    size = max(1, len(items) // (threads * 4))
    chunks = [items[i:i + size] for i in range(0, len(items), size)]
    run = _os_thread(functools.partial(_each, fn))
    with ThreadPoolExecutor(max_workers=min(threads, len(chunks))) as pool:
        return [value for chunk in pool.map(run, chunks) for value in chunk]


def _each(fn, chunk: list) -> list:
    return [fn(item) for item in chunk]


def _os_thread(fn):
    """``fn`` as it must be called to run in a real OS thread.  Under eventlet's monkey patching the
    executor's threads are green threads of the server's one hub: hand the call to eventlet's pool of
    OS threads (tpool), whose callers wait without blocking the hub."""
    patcher = sys.modules.get("eventlet.patcher")
    if patcher is None or not patcher.is_monkey_patched("thread"):
        return fn
    from eventlet import tpool

    return functools.partial(tpool.execute, fn)


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
            rejected.append({"path": raw, "error": f"{_shown(raw)}: listed more than once in this batch", "_i": index})
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
            rejected.append({"path": raw, "error": f"{_shown(raw)}: same file as an earlier path in this batch",
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
        ((checked, error),) = check_paths([str(path)], settings, options["burn_in"], options["mov"])
        if error:
            raise JobError(error)
    except JobError:
        path.unlink(missing_ok=True)
        raise
    job = _new_job(checked, options, priority)
    record.create([job])
    dispatch(job.id, queue)
    return {"job_id": job.id, "duration": checked.info.duration, "burn_in": options["burn_in"]}


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
