"""Errors about jobs that an API turns into HTTP answers."""

from __future__ import annotations


class JobError(Exception):
    """A request about a job that cannot be honoured; ``status`` is the HTTP code, ``details`` join the
    answer's ``error`` (the violations of a refused caption edit, the latest revision of a stale one)."""

    def __init__(self, message: str, status: int = 400, **details):
        super().__init__(message)
        self.status = status
        self.details = details


class RejectedBatch(JobError):
    """No path of a batch could be queued; ``rejected`` has each one's reason."""

    def __init__(self, rejected: list[dict], total: int):
        super().__init__("none of the paths can be queued", 400)
        self.rejected = rejected
        self.total = total
