"""Errors about jobs that an API turns into HTTP answers."""

from __future__ import annotations


class JobError(Exception):
    """A request about a job that cannot be honoured; ``status`` is the HTTP code."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


class RejectedBatch(JobError):
    """No path of a batch could be queued; ``rejected`` has each one's reason."""

    def __init__(self, rejected: list[dict], total: int):
        super().__init__("none of the paths can be queued", 400)
        self.rejected = rejected
        self.total = total
