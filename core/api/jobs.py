"""Job routes: batch and upload submission, status, history, cancel, retry, delete, downloads."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

from flask import Blueprint, jsonify, request, send_file, url_for
from werkzeug.utils import secure_filename

from ..config import project_path
from ..services import jobs
from .helpers import int_arg, settings

bp = Blueprint("jobs", __name__)


def _json_body() -> dict:
    if not request.is_json:
        raise jobs.JobError("send a JSON body with Content-Type: application/json", 415)
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise jobs.JobError("request body is not a valid JSON object", 400)
    return body


@bp.post("/transcribe/batch")
def submit_batch():
    body = _json_body()
    force = body.get("force", False)
    if not isinstance(force, bool):
        raise jobs.JobError("force must be true or false")
    result = jobs.submit_batch(body.get("paths"), body.get("options"), settings(),
                               priority=body.get("priority"), force=force)
    return jsonify(result), 202


@bp.post("/transcribe")
def upload():
    file = request.files.get("file")
    if file is None or not file.filename:
        raise jobs.JobError("send the video as multipart form field 'file'")
    form = request.form
    options = {k: form[k] for k in ("model", "language") if form.get(k)}
    if "burn_in" in form:
        options["burn_in"] = form["burn_in"].strip().lower() in ("1", "true", "yes", "on")
    if "rows" in form:
        if not form["rows"].isdigit():
            raise jobs.JobError("rows must be an integer")
        options["rows"] = int(form["rows"])
    name = secure_filename(file.filename) or "upload"
    folder = project_path(settings()["UPLOAD_DIR"]) / datetime.now(timezone.utc).strftime("%Y-%m-%d")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{uuid.uuid4().hex[:8]}-{name}"
    file.save(path)
    created = jobs.submit_upload(path, options, settings(), priority=form.get("priority"))
    job = jobs.job_dict_by_id(created["job_id"])
    return jsonify({
        "job_id": created["job_id"],
        "status": "pending",
        "message": f"{file.filename} queued for transcription",
        "status_url": url_for("jobs.status", job_id=created["job_id"], _external=True),
        "estimated_time": job["estimated_completion"],
    }), 202


@bp.get("/status/<job_id>")
def status(job_id: str):
    return jsonify(jobs.job_dict_by_id(job_id))


@bp.get("/jobs")
def list_jobs():
    args = request.args
    return jsonify(jobs.list_jobs(status=args.get("status") or None, batch_id=args.get("batch_id") or None,
                                  q=args.get("q") or None, page=int_arg("page", 1),
                                  page_size=int_arg("page_size", 50, 1, 500)))


@bp.post("/jobs/<job_id>/cancel")
def cancel(job_id: str):
    return jsonify(jobs.cancel(job_id))


@bp.post("/jobs/<job_id>/retry")
def retry(job_id: str):
    return jsonify(jobs.retry(job_id)), 202


@bp.delete("/jobs/<job_id>")
def delete(job_id: str):
    outputs = request.args.get("outputs", "").lower() in ("1", "true", "yes")
    return jsonify(jobs.delete(job_id, outputs=outputs))


@bp.get("/jobs/<job_id>/outputs/<kind>")
def download(job_id: str, kind: str):
    path = jobs.output_file(job_id, kind)
    return send_file(path, as_attachment=request.args.get("inline") is None, download_name=path.name,
                     conditional=True)


@bp.get("/batches/<batch_id>")
def batch(batch_id: str):
    return jsonify(jobs.batch_dict(batch_id))
