"""File browser, duration probes and the source stream for previews."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from ..jobs import queries
from ..jobs.errors import JobError
from ..services import browser, storage
from . import files
from .helpers import int_arg, settings

bp = Blueprint("browse", __name__)


@bp.get("/roots")
def roots():
    return jsonify({"roots": browser.roots(settings())})


@bp.get("/browse")
def browse():
    args = request.args
    order = args.get("order", "asc")
    if order not in ("asc", "desc"):
        raise JobError("order must be asc or desc")
    listing = browser.listing(args.get("path", ""), settings(), sort=args.get("sort", "name"), order=order,
                              filter_text=args.get("filter", ""), page=int_arg("page", 1, 1, 10**6),
                              page_size=int_arg("page_size", 200, 1, 1000),
                              videos_only=args.get("videos_only") in ("1", "true"))
    videos = [item for item in listing["items"] if item["is_video"]]
    done = queries.captioned([item["path"] for item in videos if storage.is_file_name_text(item["path"])])
    for item in videos:
        item["captioned"] = item["path"] in done
    return jsonify(listing)


@bp.post("/durations")
def durations():
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("paths"), list):
        raise JobError('send {"paths": [...]} as JSON')
    return jsonify({"durations": browser.durations(body["paths"], settings())})


@bp.get("/jobs/<job_id>/source")
def source(job_id: str):
    """The job's source file, for the QC preview (confined to the storage roots)."""
    return files.send_source(storage.resolve_source(queries.get(job_id).source, settings()))
