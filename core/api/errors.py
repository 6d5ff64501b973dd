"""Error answers: JSON ``{"error": ...}`` with a 4xx code for anything a request did wrong; a 500 only
for a fault of the server itself (logged with its traceback).

Bad input that reaches Python itself rather than our validation is recognised here too: JSON nested
deeper than the parser recurses, text that cannot name a file (lone surrogates), a name the file
system refuses as too long.
"""

from __future__ import annotations

import errno
import logging

import flask
from flask import jsonify
from werkzeug.exceptions import BadRequest, HTTPException

from ..jobs.errors import JobError, RejectedBatch
from ..services.errors import CaptionError

log = logging.getLogger(__name__)
INPUT_ERRNOS = {errno.ENAMETOOLONG, errno.EILSEQ}


class Request(flask.Request):
    """Flask's request, with JSON too deeply nested to parse treated as invalid JSON (400), not a crash."""

    def get_json(self, force: bool = False, silent: bool = False, cache: bool = True):
        try:
            return super().get_json(force=force, silent=silent, cache=cache)
        except RecursionError:
            if silent:
                return None
            raise BadRequest("the JSON body is nested too deeply") from None


def input_fault(err: BaseException) -> str | None:
    """The reason if ``err`` was caused by the request's content; None for a server fault."""
    if isinstance(err, RecursionError):
        return "the request is nested too deeply"
    if isinstance(err, UnicodeError):
        return "the request holds text that is not valid Unicode (a lone surrogate)"
    if isinstance(err, OSError) and err.errno in INPUT_ERRNOS:
        return err.strerror or str(err)
    return None


def register(app: flask.Flask, settings: dict) -> None:
    @app.errorhandler(JobError)
    def job_error(err: JobError):
        body = {"error": str(err), **getattr(err, "details", {})}
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
        reason = input_fault(err)
        if reason is not None:
            log.warning("bad input answered 400: %s", reason, exc_info=err)
            return jsonify(error=reason), 400
        log.error("unhandled error", exc_info=err)
        return jsonify(error=f"internal error: {type(err).__name__}"), 500
