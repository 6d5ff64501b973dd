"""Watch-folder routes: what each folder is set to and what it saw (the watcher itself runs elsewhere)."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from ..jobs.errors import JobError
from ..watch import memory, status
from .helpers import int_arg, settings

bp = Blueprint("watch", __name__)


@bp.get("/watch")
def watch_overview():
    return jsonify(status.overview(settings()))


@bp.get("/watch/files")
def watch_files():
    folder = request.args.get("folder", "")
    state = request.args.get("state") or None
    if state is not None and state not in memory.STATES:
        raise JobError(f"state must be one of {', '.join(memory.STATES)}")
    page = status.files_page(settings(), folder, state, int_arg("page", 1), int_arg("page_size", 50, high=500))
    if page is None:
        return jsonify(error="folder is not a configured watch folder (see GET /api/watch)"), 404
    return jsonify(page)
