"""Errors the pipeline raises.  Each names the file and the reason."""

from __future__ import annotations


class CaptionError(Exception):
    """A job failed; ``str(err)`` is the operator-facing message."""

    def __init__(self, path: object, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class InputError(CaptionError):
    """The input itself is unusable (missing, not media, no audio...).

    Retrying cannot help, so workers must not retry these.
    """


class ProcessingError(CaptionError):
    """A tool failed on a valid input (ffmpeg crash, disk full...)."""


class OptionError(ValueError):
    """A job option this installation cannot honour: a model it does not have (nothing is downloaded
    at run time) or a language the model does not know.  ``str(err)`` is the reason."""
