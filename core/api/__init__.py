"""Flask application factory: the REST API, the dashboard page, Celery and Socket.IO wiring."""

from __future__ import annotations

import hmac
import mimetypes
import os
from urllib.parse import urlsplit

from flask import Flask, jsonify, request, session
from werkzeug.exceptions import HTTPException

from .. import db, events
from ..celery_app import celery_init_app
from ..config import PROJECT_ROOT, load_settings
from ..jobs.errors import JobError, RejectedBatch
from ..queue import QueueClient
from ..services.errors import CaptionError
from . import browse, jobs, live, pages, system


mimetypes.add_type("text/vtt", ".vtt")


def create_app(settings: dict | None = None, queue: QueueClient | None = None,
               socketio_mode: str | None = None) -> Flask:
    """The dashboard app.  ``queue``: a stand-in for Celery (tests); default, a client on REDIS_URL.
    ``socketio_mode`` ("eventlet" or "threading") serves Socket.IO on the same Redis."""
    settings = settings or load_settings()
    db.configure(settings)
    if queue is None:  # tests with a queue fake set their own event sink
        events.configure(settings["REDIS_URL"])
    app = Flask(__name__, template_folder=str(PROJECT_ROOT / "core" / "templates"),
                static_folder=str(PROJECT_ROOT / "static"))
    app.config["CAPTION_SETTINGS"] = settings
    app.config["MAX_CONTENT_LENGTH"] = settings["MAX_UPLOAD_MB"] * 1024 * 1024
    app.json.sort_keys = False

    app.secret_key = settings.get("SECRET_KEY") or os.urandom(32)
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Strict")

    celery_init_app(app, settings, queue)
    if socketio_mode:
        live.init_socketio(app, settings, async_mode=socketio_mode)

    app.register_blueprint(jobs.bp, url_prefix="/api")
    app.register_blueprint(system.bp, url_prefix="/api")
    app.register_blueprint(browse.bp, url_prefix="/api")
    app.register_blueprint(pages.bp)

    @app.before_request
    def same_origin_only():
        """A page on another site must not make an operator's browser change state here."""
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return None
        source = request.headers.get("Origin") or request.headers.get("Referer")
        if source and urlsplit(source).netloc != request.host:
            return jsonify(error="cross-site request refused"), 403
        return None

    @app.before_request
    def require_token():
        token = settings["API_TOKEN"]
        if not token or not request.path.startswith("/api/") or session.get("authenticated"):
            return None
        given = request.headers.get("X-API-Token") or request.headers.get("Authorization", "").removeprefix("Bearer ")
        if not hmac.compare_digest(given.strip().encode(), token.encode()):
            return jsonify(error="missing or wrong API token (send X-API-Token or Authorization: Bearer)"), 401
        return None

    @app.after_request
    def security_headers(resp):
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("X-Frame-Options", "DENY")
        resp.headers.setdefault("Referrer-Policy", "same-origin")
        resp.headers.setdefault("Content-Security-Policy", "default-src 'self'; media-src 'self' blob:; "
                                "img-src 'self' data:; style-src 'self'; connect-src 'self' ws: wss:")
        return resp

    @app.errorhandler(JobError)
    def job_error(err: JobError):
        body = {"error": str(err)}
        if isinstance(err, RejectedBatch):
            body.update(total_files=err.total, valid_paths=0, queued=[], rejected=err.rejected)
        return jsonify(body), err.status

    @app.errorhandler(CaptionError)
    def caption_error(err: CaptionError):
        return jsonify(error=str(err)), 400

    @app.errorhandler(HTTPException)
    def http_error(err: HTTPException):
        messages = {413: f"upload is larger than the {settings['MAX_UPLOAD_MB']} MB limit"}
        return jsonify(error=messages.get(err.code, err.description)), err.code

    @app.errorhandler(Exception)
    def unexpected(err: Exception):
        app.logger.exception("unhandled error")
        return jsonify(error=f"internal error: {type(err).__name__}"), 500

    return app
