"""Small request helpers shared by the blueprints."""

from __future__ import annotations

from flask import current_app, request

from ..jobs.errors import JobError
from ..queue import QueueClient


def settings() -> dict:
    return current_app.config["CAPTION_SETTINGS"]


def queue() -> QueueClient:
    return current_app.extensions["queue"]


def json_body() -> dict:
    """The request's JSON object; 415 or 400 with the reason otherwise."""
    if not request.is_json:
        raise JobError("send a JSON body with Content-Type: application/json", 415)
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise JobError("request body is not a valid JSON object", 400)
    return body


def int_arg(name: str, default: int, low: int = 1, high: int = 10**9) -> int:
    """A query-string integer in [low, high]; a clear 400 otherwise."""
    raw = request.args.get(name, "")
    if not raw:
        return default
    if not (raw.isascii() and raw.isdigit()) or len(raw) > len(str(high)) or not low <= int(raw) <= high:
        raise JobError(f"{name} must be an integer from {low} to {high}")
    return int(raw)
