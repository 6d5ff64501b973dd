"""Why jobs fail, as a small fixed set of categories (the Analytics tab and the Prometheus metrics share it).

A failed job's error is free text: "<source path>: <reason>" for the pipeline's own errors, or the
worker's words for a lost worker, a time limit or a crash.  ``reason_of`` maps it to one label of
``REASONS`` so charts and metric labels stay bounded whatever the paths and tool output say.

    source_missing     the file was gone, or is a folder or not a regular file
    source_changed     the file was modified, replaced or swapped after it was queued
    unreadable_media   empty, truncated, corrupt, or not media at all
    no_audio           no audio stream: nothing to transcribe
    no_video           no video stream for a burn-in or a MOV deliverable
    input_refused      the path or file is refused by a rule (outside the roots, name too long, too large a frame)
    model_unavailable  the model or language cannot be served by this installation
    render_failed      FFmpeg failed to burn in or to make the MOV
    output_conflict    an output name is taken by a file this job did not write
    storage_error      a storage fault: outputs could not be written, or permission denied
    time_limit         the job ran past its time limit
    worker_lost        the worker died under the job too many times
    infrastructure     Redis or the job store stayed unreachable through the retries
    internal_error     an unexpected exception in the worker (a bug)
    other              anything else, and a failure without a message
"""

from __future__ import annotations

import re

REASONS = ("source_missing", "source_changed", "unreadable_media", "no_audio", "no_video", "input_refused",
           "model_unavailable", "render_failed", "output_conflict", "storage_error", "time_limit", "worker_lost",
           "infrastructure", "internal_error", "other")

TITLES = {
    "source_missing": "source missing", "source_changed": "source changed", "unreadable_media": "unreadable media",
    "no_audio": "no audio stream", "no_video": "no video stream", "input_refused": "input refused",
    "model_unavailable": "model unavailable", "render_failed": "render failed", "output_conflict": "output conflict",
    "storage_error": "storage error", "time_limit": "time limit", "worker_lost": "worker lost",
    "infrastructure": "Redis / database", "internal_error": "internal error", "other": "other",
}

HEAD = 2000
# First match wins: the more specific phrases come before the general ones.  Patterns look at the
# reason the pipeline wrote, which follows the path; a file name rarely holds these phrases.
_RULES: tuple[tuple[str, re.Pattern], ...] = tuple((label, re.compile(pattern, re.IGNORECASE)) for label, pattern in (
    ("source_changed", r"source changed|source was replaced|modified after it was queued"),
    ("source_missing", r"file not found|\(it was removed\)|source was removed|is a directory|"
                       r"is not a regular file|no such file"),
    ("time_limit", r"time limit|SoftTimeLimitExceeded|TimeLimitExceeded"),
    ("worker_lost", r"worker lost|WorkerLostError"),
    ("infrastructure", r"gave up after \d+ retries|OperationalError|ConnectionError|redis"),
    ("no_audio", r"has no audio stream"),
    ("no_video", r"has no video stream"),
    ("unreadable_media", r"not a readable media file|not a media file|file is empty|truncated or corrupt|"
                         r"has no duration|audio cannot be decoded|audio ends at"),
    ("model_unavailable", r"model .*(not available|not installed|cannot load)|not a CTranslate2 model|"
                          r"English-only model|not a Whisper language|ModelNotFound|cannot load model|"
                          r"is not installed"),
    ("output_conflict", r"not written by this job|output name was taken|no free output name"),
    ("storage_error", r"cannot write outputs|no space left|permission denied|read-only file system|disk quota"),
    ("render_failed", r"ffmpeg burn-in failed|ffmpeg could not make|burn-in failed"),
    ("input_refused", r"outside the storage roots|path must|path contains|not valid UTF-8|name is too long|"
                      r"rendition is limited|too large|not allowed"),
    ("internal_error", r"(^|: )[A-Z]\w*(Error|Exception): "),
))


def reason_of(error_text: str | None) -> str:
    """The category of a failed job's error text: always one of ``REASONS`` ("other" when none fits)."""
    if not error_text:
        return "other"
    text = error_text[:HEAD]           # path, reason, then any tool output: a huge log must not cost much
    for label, pattern in _RULES:
        if pattern.search(text):
            return label
    return "other"


def title_of(reason: str) -> str:
    """What the dashboard shows for a label."""
    return TITLES.get(reason, reason)
