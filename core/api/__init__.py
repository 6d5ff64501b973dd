"""Flask application factory: the REST API, the dashboard page, Celery and Socket.IO wiring."""

from __future__ import annotations

import mimetypes
import os
from urllib.parse import urlsplit

from flask import Flask, jsonify, request, session

from .. import db, events
from ..celery_app import celery_init_app
from ..config import PROJECT_ROOT, load_settings
from ..queue import QueueClient
from . import analytics, auth, browse, captions, errors, hosts, jobs, live, pages, system
from . import metrics as metrics_api
from . import openapi
from . import watch as watch_api

mimetypes.add_type("text/vtt", ".vtt")
# Same-origin everything: 'self' in connect-src covers the page's own ws:/wss: (CSP 3), so the
# Socket.IO client can reach this dashboard and nothing else; no form posts elsewhere, no framing.
CSP = ("default-src 'self'; media-src 'self' blob:; img-src 'self' data:; style-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'self'; object-src 'none'")


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
    app.request_class = errors.Request
    allowed = hosts.allowed_hosts(settings)
    limiter = app.extensions["login_limiter"] = auth.LoginLimiter()
    app.config["CAPTION_SETTINGS"] = settings
    app.config["MAX_CONTENT_LENGTH"] = settings["MAX_UPLOAD_MB"] * 1024 * 1024
    app.json.sort_keys = False

    app.secret_key = settings.get("SECRET_KEY") or os.urandom(32)
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Strict")

    celery_init_app(app, settings, queue)
    if socketio_mode:
        live.init_socketio(app, settings, async_mode=socketio_mode)

    app.register_blueprint(jobs.bp, url_prefix="/api")
    app.register_blueprint(captions.bp, url_prefix="/api")
    app.register_blueprint(system.bp, url_prefix="/api")
    app.register_blueprint(browse.bp, url_prefix="/api")
    app.register_blueprint(analytics.bp, url_prefix="/api")
    app.register_blueprint(watch_api.bp, url_prefix="/api")     # /api/watch: watch folders
    app.register_blueprint(openapi.bp, url_prefix="/api")      # /api/openapi.json, /api/docs
    app.register_blueprint(pages.bp)
    app.register_blueprint(metrics_api.bp)      # /metrics: its own token check (METRICS_TOKEN)

    @app.before_request
    def known_host_only():
        """DNS rebinding: a page on another site, its name resolving here, sends its own name as Host."""
        if not hosts.host_allowed(request.environ, allowed):
            return jsonify(error=hosts.refusal(request.environ)), 400
        return None

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
        given = auth.token_from_headers(request.headers)
        if given is None:
            return jsonify(error="missing or wrong API token (send X-API-Token or Authorization: Bearer)"), 401
        accepted, wait = auth.check(limiter, request.remote_addr or "", given, token)
        if wait:
            return jsonify(error=f"too many wrong tokens; try again in {wait} s"), 429, {"Retry-After": str(wait)}
        if not accepted:
            return jsonify(error="missing or wrong API token (send X-API-Token or Authorization: Bearer)"), 401
        return None

    @app.after_request
    def security_headers(resp):
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("X-Frame-Options", "DENY")
        resp.headers.setdefault("Referrer-Policy", "same-origin")
        resp.headers.setdefault("Content-Security-Policy", CSP)
        return resp

    errors.register(app, settings)
    return app
