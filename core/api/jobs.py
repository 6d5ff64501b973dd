"""Job routes: batch and upload submission, status, history, cancel, retry, delete, downloads."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

from flask import Blueprint, jsonify, request, url_for

from ..config import project_path
from ..jobs import actions, queries, submission
from ..jobs.errors import JobError
from ..services import storage
from . import files
from .helpers import int_arg, json_body, queue, settings

bp = Blueprint("jobs", __name__)


@bp.post("/transcribe/batch")
def submit_batch():
    body = json_body()
    force = body.get("force", False)
    if not isinstance(force, bool):
        raise JobError("force must be true or false")
    result = submission.submit_batch(body.get("paths"), body.get("options"), settings(), queue(),
                                     priority=body.get("priority"), force=force)
    return jsonify(result), 202


# The batch options as form fields (vocabulary: comma-separated); the flags are "1", "true", "yes" or "on".
UPLOAD_TEXT_OPTIONS = ("model", "language", "start_timecode", "timecode_mode", "qc_profile", "vocabulary")
UPLOAD_FLAGS = ("burn_in", "mov", "speaker_changes")


@bp.post("/transcribe")
def upload():
    file = request.files.get("file")
    if file is None or not file.filename:
        raise JobError("send the video as multipart form field 'file'")
    form = request.form
    options = {k: form[k] for k in UPLOAD_TEXT_OPTIONS if form.get(k)}
    options.update({k: form[k].strip().lower() in ("1", "true", "yes", "on") for k in UPLOAD_FLAGS if k in form})
    if "rows" in form:
        if not (form["rows"].isascii() and form["rows"].isdigit()):
            raise JobError("rows must be an integer")
        options["rows"] = int(form["rows"])
    name = storage.safe_file_name(file.filename)
    folder = project_path(settings()["UPLOAD_DIR"]) / datetime.now(timezone.utc).strftime("%Y-%m-%d")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{uuid.uuid4().hex[:8]}-{name}"
    file.save(path)
    created = submission.submit_upload(path, options, settings(), queue(), priority=form.get("priority"))
    job = queries.job_dict_by_id(created["job_id"])
    return jsonify({
        "job_id": created["job_id"],
        "status": "pending",
        "message": f"{file.filename} queued for transcription",
        "status_url": url_for("jobs.status", job_id=created["job_id"], _external=True),
        "estimated_time": job["estimated_completion"],
    }), 202


@bp.get("/status/<job_id>")
def status(job_id: str):
    return jsonify(queries.job_dict_by_id(job_id))


@bp.get("/jobs")
def list_jobs():
    args = request.args
    return jsonify(queries.list_jobs(status=args.get("status") or None, batch_id=args.get("batch_id") or None,
                                  q=args.get("q") or None, page=int_arg("page", 1),
                                  page_size=int_arg("page_size", 50, 1, 500), qc=args.get("qc") or None))


@bp.get("/jobs/<job_id>/qc")
def qc_report(job_id: str):
    return jsonify(queries.qc_report(job_id))


@bp.post("/jobs/<job_id>/cancel")
def cancel(job_id: str):
    return jsonify(actions.cancel(job_id, queue()))


@bp.post("/jobs/<job_id>/retry")
def retry(job_id: str):
    return jsonify(actions.retry(job_id, queue())), 202


@bp.delete("/jobs/<job_id>")
def delete(job_id: str):
    outputs = request.args.get("outputs", "").lower() in ("1", "true", "yes")
    return jsonify(actions.delete(job_id, queue(), outputs=outputs))


@bp.get("/jobs/<job_id>/outputs/<kind>")
def download(job_id: str, kind: str):
    """The latest caption revision's file of ``kind``; ``?revision=N`` an older one's."""
    path = actions.output_file(job_id, kind, int_arg("revision", 0, 1) or None)
    return files.send_output(path, kind, inline=request.args.get("inline") is not None)


@bp.get("/batches/<batch_id>")
def batch(batch_id: str):
    return jsonify(queries.batch_dict(batch_id))
