"""Caption revisions: read a revision, save an edit as a new one, revert, re-render.

Revision 1 is the machine's captions.  A save is checked against the 608 rules
and the job's QC profile, then its SCC, SRT, WebVTT, DFXP and JSON are
published (whole, never over another file: ``clip.mp4.r2.scc`` ...) before
the answer.  A job with burn-in then goes to ``processing`` (stage
"rendering", labelled "rendering revision N") and only a render is queued;
the newest revision's render wins: an older one still running stops at its
next progress report, and one that finishes anyway is discarded.  A failed or
cancelled re-render keeps every revision's files; retry, or the next save,
renders again.  Nothing is ever lost: every revision's files stay in the
job's manifest and downloadable by number.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from ..db import Job, utcnow
from ..queue import QueueClient
from ..services import artifacts, caption_edit
from ..services.errors import CaptionError
from . import history, queries, record
from .errors import JobError
from .serialize import iso
from .states import CANCELLED, COMPLETED, FAILED, PENDING, PROCESSING, Stage, overall_progress

MAX_NOTE = 500
log = logging.getLogger(__name__)


def _editable(job: Job) -> None:
    """Captions can be edited once they exist and no transcription runs."""
    rendering = job.status == PROCESSING and job.stage == Stage.RENDERING.value
    if (job.status == COMPLETED or rendering or history.is_rerender(job.result)) and history.revisions(job.result):
        return
    state = job.status + (f" ({history.stage_label(job.stage, job.result)})" if job.stage else "")
    raise JobError(f"job {job.id} has no captions to edit yet (it is {state})", 409)


def rules_for(job: Job, settings: dict) -> dict:
    options, result = job.options or {}, job.result or {}
    profile = options.get("qc_profile") or (result.get("qc") or {}).get("profile") or settings.get("QC_PROFILE")
    return caption_edit.rules(profile, int(options.get("rows") or settings.get("CAPTION_ROWS") or 2))


def _duration(job: Job) -> float | None:
    return job.media_duration or (job.result or {}).get("duration")


def _load(job: Job, entry: dict) -> dict:
    path = history.checked_path(job.id, history.file_entry(entry, "json"), "json",
                                f" for revision {entry['number']}")
    try:
        data = json.loads(path.read_text("utf-8"))
        data["captions"] = list(data["captions"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise JobError(f"revision {entry['number']}'s caption file {path.name} is unreadable ({err})", 409) from None
    return data


def _caption_dicts(captions) -> list[dict]:
    return [{"start": c.start, "end": c.end, "lines": list(c.lines)} for c in captions]


def captions(job_id: str, number: int | None, settings: dict) -> dict:
    """Revision ``number`` (None: the latest) with the machine's words, the rules and its warnings."""
    job = queries.get(job_id)
    entry = history.revision(job.result, number)
    data = _load(job, entry)
    limits = rules_for(job, settings)
    items = data["captions"]
    words = caption_edit.words_by_caption(items, data.get("segments", []))
    violations, warnings = caption_edit.check(caption_edit.parse(items), limits, _duration(job))
    return {"job_id": job.id, "revision": entry["number"], "latest": history.latest(job.result),
            "status": job.status, "stage": history.stage_label(job.stage, job.result), "burn_in": _burn_in(job),
            "duration": _duration(job), "source": job.source,
            "captions": [{"start": c["start"], "end": c["end"], "lines": c["lines"], "words": w}
                         for c, w in zip(items, words)],
            "rules": limits, "violations": violations, "warnings": warnings}


def list_revisions(job_id: str) -> dict:
    job = queries.get(job_id)
    found = history.revisions(job.result)
    latest = found[-1]["number"] if found else 0
    rerender = history.render_target(job.result) if history.is_rerender(job.result) else None
    return {"job_id": job.id, "latest": latest, "rendering": rerender, "status": job.status,
            "revisions": [history.summary(e, latest) for e in found]}


def _burn_in(job: Job) -> bool:
    return bool((job.options or {}).get("burn_in", True))


def _note(body: dict) -> str:
    note = body.get("note", "")
    if not isinstance(note, str) or len(note) > MAX_NOTE:
        raise JobError(f"note must be text of at most {MAX_NOTE} characters")
    return note.strip()


def _base(body: dict, key: str = "base_revision", required: bool = True) -> int | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise JobError(f"{key} must be the number of the revision the edit started from")
    return value


def _stale(job: Job, base: int | None) -> None:
    latest = history.latest(job.result)
    if base is not None and base != latest:
        entry = history.revision(job.result, latest)
        raise JobError(f"revision {base} is not the latest: revision {latest} was saved meanwhile "
                       f"(by {entry.get('author')}); load it and edit again", 409, latest=latest,
                       latest_revision=history.summary(entry, latest))


def save(job_id: str, body: dict, author: str, settings: dict, queue: QueueClient) -> dict:
    """Check an edit, publish its files as the next revision, queue the re-render (burn-in only)."""
    t0 = time.monotonic()
    job = queries.get(job_id)
    try:
        edited = caption_edit.parse(body.get("captions"))
    except caption_edit.EditError as err:
        raise JobError(str(err)) from None
    base, note = _base(body), _note(body)
    _editable(job)
    _stale(job, base)
    violations, warnings = caption_edit.check(edited, rules_for(job, settings), _duration(job))
    if violations:
        raise JobError(f"{len(violations)} problem(s) in the captions; nothing was saved", 400,
                       violations=violations, warnings=warnings)
    return _commit(job, edited, {"based_on": base, "author": author, "note": note}, warnings, settings, queue, t0)


def revert(job_id: str, body: dict, author: str, settings: dict, queue: QueueClient) -> dict:
    """A new revision equal to an older one (its captions published again under the new number)."""
    t0 = time.monotonic()
    job = queries.get(job_id)
    number = _base(body, "revision")
    base, note = _base(body, required=False), _note(body)
    _editable(job)
    _stale(job, base)
    old = _load(job, history.revision(job.result, number))
    restored = caption_edit.parse(old["captions"])
    violations, warnings = caption_edit.check(restored, rules_for(job, settings), _duration(job))
    meta = {"based_on": history.latest(job.result), "reverted_from": number, "author": author,
            "note": note or f"revert to revision {number}"}
    answer = _commit(job, restored, meta, warnings, settings, queue, t0)
    return {**answer, "violations": violations}


def _commit(job: Job, edited, meta: dict, warnings: list, settings: dict, queue: QueueClient, t0: float) -> dict:
    latest = history.latest(job.result)
    entry_of_latest = history.revision(job.result, latest)
    base_data = _load(job, entry_of_latest)
    number = latest + 1
    created = iso(utcnow())
    revision_meta = {"number": number, "created_at": created, **meta}
    t_files = time.monotonic()
    try:
        texts = caption_edit.sidecars(base_data, edited, revision_meta, rules_for(job, settings))
        with artifacts.writing(Path(job.output_dir), Path(job.source).name, job.id) as staging:
            for kind, text in texts.items():
                staging.path(kind).write_text(text, encoding="utf-8")
            run, manifest = staging.publish(list(artifacts.SIDECAR_KINDS), settings["OUTPUT_CONFLICT"],
                                            run=entry_of_latest.get("run") or (job.result or {}).get("run"),
                                            revision=number)
    except artifacts.OutputConflict as err:
        raise JobError(f"could not write revision {number}: {err}", 409) from None
    except CaptionError as err:
        raise JobError(f"could not write revision {number}: {err}", 507) from None
    files_ms = round((time.monotonic() - t_files) * 1000, 1)
    entry = {**revision_meta, "run": run, "captions": len(edited), "manifest": manifest}
    render = _burn_in(job)
    try:
        job, result, done = _record(job, entry, render, latest)
    except JobError:
        artifacts.remove(manifest)
        raise
    render_error = None
    if render:
        try:
            dispatch_render(job.id, number, queue)
            if job.task_id and job.status in (PROCESSING, PENDING):
                queue.revoke(job.task_id, terminate=False)   # a queued older render never starts
        except Exception as err:  # noqa: BLE001 - the revision is saved; the reaper queues its render later
            log.warning("revision %s of job %s saved, its render not queued: %s", number, job.id, err)
            render_error = f"the render could not be queued now ({type(err).__name__}); it is retried automatically"
    return {"job_id": job.id, "revision": number, "latest": number, "status": done.status,
            "render_queued": render and render_error is None, "render_error": render_error,
            "outputs": history.outputs_of(entry),
            "revisions": [history.summary(e, number) for e in result["revisions"]], "warnings": warnings,
            "timings": {"files_ms": files_ms, "total_ms": round((time.monotonic() - t0) * 1000, 1)}}


def _record(job: Job, entry: dict, render: bool, latest: int) -> tuple[Job, dict, Job]:
    """Write the new revision into the record, moving the job to its re-render when it has burn-in:
    (the job as it was, the new result, the job as written).  A render that finished meanwhile is taken
    into account (read again, written again); another revision saved meanwhile is a 409."""
    for _ in range(5):
        result = history.with_revision(job.result or {}, entry, rerender=render)

        def same(j: Job, seen: Job = job) -> bool:     # nothing changed since ``job`` was read
            return j.status == seen.status and j.stage == seen.stage and (j.result or {}) == (seen.result or {})

        if not render:
            done = record.amend_result(job.id, result, when=same)
        elif job.status in (COMPLETED, PROCESSING):
            done = record.transition(job.id, PROCESSING, only_from={job.status}, when=same, result=result,
                                     stage=Stage.RENDERING.value, progress=overall_progress("rendering", 0.0, True),
                                     task_id=None, worker=None, error=None, attempts=0)
        else:   # a failed or cancelled re-render (or one waiting after them): pending until a render worker takes it
            done = record.transition(job.id, PENDING, only_from={FAILED, CANCELLED, PENDING}, when=same,
                                     error=None, attempts=0, task_id=None, result=result)
        if done is not None:
            return job, result, done
        job = queries.get(job.id)
        _editable(job)
        _stale(job, latest)
    raise JobError(f"job {job.id} keeps changing; nothing was saved, try again", 409)


def dispatch_render(job_id: str, number: int, queue: QueueClient) -> str:
    """Queue the render of revision ``number`` and record its task id (a cancel can then revoke it)."""
    job = queries.get(job_id)
    task_id = queue.enqueue_render(job_id, job.priority, job.media_duration or 0.0)
    for status in (PROCESSING, PENDING):
        if record.transition(job_id, status, only_from={status}, publish=False, task_id=task_id,
                             when=lambda j: j.task_id is None and history.render_target(j.result) == number):
            break
    return task_id


def retry_render(job: Job, queue: QueueClient) -> bool:
    """Retry of a failed or cancelled re-render: render the same revision again (no transcription)."""
    if not history.is_rerender(job.result):
        return False
    number = history.render_target(job.result)
    if record.transition(job.id, PENDING, only_from={FAILED, CANCELLED}, error=None, attempts=0) is None:
        raise JobError(f"job {job.id} changed state meanwhile; try again", 409)
    dispatch_render(job.id, number, queue)
    return True
