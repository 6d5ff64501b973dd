"""Caption review routes: read a revision, save an edit, list revisions, revert (logic in core.jobs.revisions)."""

from __future__ import annotations

from flask import Blueprint, jsonify, session

from ..jobs import revisions
from .helpers import int_arg, json_body, queue, settings

bp = Blueprint("captions", __name__)


def _author() -> str:
    """Who saved: the browser session that logged in, an API client with the token, or "local"."""
    if session.get("authenticated"):
        return f"session {session.get('sid', '')}".strip()
    return "api token" if settings()["API_TOKEN"] else "local"


@bp.get("/jobs/<job_id>/captions")
def get_captions(job_id: str):
    return jsonify(revisions.captions(job_id, int_arg("revision", 0, 1) or None, settings()))


@bp.put("/jobs/<job_id>/captions")
def save_captions(job_id: str):
    return jsonify(revisions.save(job_id, json_body(), _author(), settings(), queue()))


@bp.get("/jobs/<job_id>/captions/revisions")
def list_revisions(job_id: str):
    return jsonify(revisions.list_revisions(job_id))


@bp.post("/jobs/<job_id>/captions/revert")
def revert(job_id: str):
    return jsonify(revisions.revert(job_id, json_body(), _author(), settings(), queue()))
