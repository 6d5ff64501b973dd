"""Flask application factory: the REST API (and, later, the dashboard pages)."""

from __future__ import annotations

import hmac

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from ..config import PROJECT_ROOT, load_settings


def create_app(settings: dict | None = None) -> Flask:
    settings = settings or load_settings()
    app = Flask(__name__, template_folder=str(PROJECT_ROOT / "core" / "templates"),
                static_folder=str(PROJECT_ROOT / "static"))
    app.config["CAPTION_SETTINGS"] = settings
    app.config["MAX_CONTENT_LENGTH"] = settings["MAX_UPLOAD_MB"] * 1024 * 1024
    app.json.sort_keys = False

    from .jobs import bp as jobs_bp
    from .system import bp as system_bp

    app.register_blueprint(jobs_bp, url_prefix="/api")
    app.register_blueprint(system_bp, url_prefix="/api")

    @app.before_request
    def require_token():
        token = settings["API_TOKEN"]
        if not token or not request.path.startswith("/api/"):
            return None
        given = request.headers.get("X-API-Token") or request.headers.get("Authorization", "").removeprefix("Bearer ")
        if not hmac.compare_digest(given.strip().encode(), token.encode()):
            return jsonify(error="missing or wrong API token (send X-API-Token or Authorization: Bearer)"), 401
        return None

    @app.errorhandler(HTTPException)
    def http_error(err: HTTPException):
        messages = {413: f"upload is larger than the {settings['MAX_UPLOAD_MB']} MB limit"}
        return jsonify(error=messages.get(err.code, err.description)), err.code

    @app.errorhandler(Exception)
    def unexpected(err: Exception):
        app.logger.exception("unhandled error")
        return jsonify(error=f"internal error: {type(err).__name__}"), 500

    return app
