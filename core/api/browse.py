"""File browser, duration probes, analytics and the source stream for previews."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request, send_file

from ..services import analytics, browser, jobs, storage
from ..services.errors import CaptionError

bp = Blueprint("browse", __name__)


def _settings() -> dict:
    return current_app.config["CAPTION_SETTINGS"]


@bp.errorhandler(CaptionError)
def caption_error(err: CaptionError):
    return jsonify(error=str(err)), 400


def _int(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name, "")
    if not raw:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise jobs.JobError(f"{name} must be an integer from {low} to {high}")
    return int(raw)


@bp.errorhandler(jobs.JobError)
def job_error(err: jobs.JobError):
    return jsonify(error=str(err)), err.status


@bp.get("/roots")
def roots():
    return jsonify({"roots": browser.roots(_settings())})


@bp.get("/browse")
def browse():
    args = request.args
    order = args.get("order", "asc")
    if order not in ("asc", "desc"):
        raise jobs.JobError("order must be asc or desc")
    return jsonify(browser.listing(args.get("path", ""), _settings(), sort=args.get("sort", "name"), order=order,
                                   filter_text=args.get("filter", ""), page=_int("page", 1, 1, 10**6),
                                   page_size=_int("page_size", 200, 1, 1000),
                                   videos_only=args.get("videos_only") in ("1", "true")))


@bp.post("/durations")
def durations():
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("paths"), list):
        raise jobs.JobError('send {"paths": [...]} as JSON')
    return jsonify({"durations": browser.durations(body["paths"], _settings())})


@bp.get("/analytics")
def analytics_summary():
    return jsonify(analytics.summary(_int("days", 14, 1, 365)))


@bp.get("/jobs/<job_id>/source")
def source(job_id: str):
    """The job's source file, for the QC preview (confined to the storage roots)."""
    path = storage.resolve_source(jobs.job_dict_by_id(job_id)["source"], _settings())
    return send_file(path, conditional=True)
