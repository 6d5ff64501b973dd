"""The dashboard page (a single page with tabs) and token login for browsers."""

from __future__ import annotations

import secrets

from flask import Blueprint, current_app, redirect, render_template, request, session, url_for

from ..jobs.states import public_vocabulary
from ..jobs.submission import BUNDLED_MODELS
from ..queue import INSPECT_METHODS
from ..services import qc
from ..services.captions import MAX_ROWS
from . import auth

bp = Blueprint("pages", __name__)


def _token() -> str:
    return current_app.config["CAPTION_SETTINGS"]["API_TOKEN"]


@bp.get("/")
def index():
    if _token() and not session.get("authenticated"):
        return redirect(url_for("pages.login"))
    settings = current_app.config["CAPTION_SETTINGS"]
    models = list(dict.fromkeys([settings["WHISPER_MODEL"], *BUNDLED_MODELS]))
    vocabulary = {**public_vocabulary(), "models": models, "rows": list(range(1, MAX_ROWS + 1)),
                  "inspect_methods": list(INSPECT_METHODS), "qc_profiles": list(qc.PROFILES)}
    return render_template("index.html", defaults={
        "model": settings["WHISPER_MODEL"], "language": settings["LANGUAGE"],
        "burn_in": settings["BURN_IN"], "rows": settings["CAPTION_ROWS"], "start_timecode": settings["START_TIMECODE"],
        "timecode_mode": settings["TIMECODE_MODE"], "mov": settings["MOV_OUTPUT"], "qc_profile": settings["QC_PROFILE"],
        "speaker_changes": settings["SPEAKER_CHANGES"], "vocabulary": settings["VOCABULARY"]}, vocabulary=vocabulary,
        token_required=bool(_token()))


@bp.route("/login", methods=["GET", "POST"])
def login():
    error, status, headers = None, 200, {}
    if not _token():
        return redirect(url_for("pages.index"))          # nothing to log in to
    if request.method == "POST":
        limiter = current_app.extensions["login_limiter"]
        accepted, wait = auth.check(limiter, request.remote_addr or "", request.form.get("token", ""), _token())
        if accepted:
            session.clear()
            session["authenticated"] = True
            session["sid"] = secrets.token_hex(4)      # names this session as the author of caption revisions
            return redirect(url_for("pages.index"))
        if wait:
            error, status, headers = f"too many wrong tokens; try again in {wait} s", 429, {"Retry-After": str(wait)}
        else:
            error, status = "wrong token", 401
    return render_template("login.html", error=error), status, headers


@bp.post("/logout")
def logout():
    session.clear()
    return redirect(url_for("pages.login"))
