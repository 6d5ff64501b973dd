"""A person's edit of a job's captions: the rules it must keep, its warnings, and its caption files.

An edit is a list of captions (start and end in seconds, rows of text).  It is
refused (``violations``, each with the caption's index and the rule) when a
row is wider than 32 columns once mapped onto the 608 character set, a caption
has more rows than the job allows or no text, a time is negative or past the
media's end, a caption ends before it starts, or two captions overlap.
Durations outside the QC profile's range, reading rates over its limit and
gaps of a frame are ``warnings``: the edit is saved with them.  The files of
an accepted edit are written by the same writers as the machine's captions,
from the machine's transcript (segments and word probabilities) and the
edited captions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from . import qc, timecode, writers
from .captions import FPS, MAX_ROWS, ROW_WIDTH, Caption, to_608
from .transcription import Segment, Transcript, Word

MAX_CAPTIONS = 20_000
MAX_ROW_CHARS = 500            # a row this long is refused before it is even mapped
HALF_FRAME = 0.5 / FPS
ERRORS = ("negative", "order", "past_end", "overlap", "empty", "columns", "rows")
WARNINGS = ("min_duration", "max_duration", "reading_rate", "words_per_minute", "gap_frames")
# Keys of a caption JSON that belong to the transcript or to one revision's captions; the rest is carried over.
_OWN_KEYS = {"language", "duration", "segments", "word_timing", "text", "speech_found", "captions", "scc",
             "revision", "qc"}


class EditError(ValueError):
    """The edit is not a list of captions at all (a 400 with this reason)."""


def rules(profile: str | None, rows: int) -> dict:
    """The limits an edit is checked against: the QC profile's, the job's rows."""
    p = qc.PROFILES.get(profile or "", qc.PROFILES[qc.DEFAULT_PROFILE])
    allowed = max(1, min(MAX_ROWS, p.max_rows or rows or 2))
    return {"profile": p.name, "columns": ROW_WIDTH, "rows": allowed, "min_duration": p.min_duration,
            "max_duration": p.max_duration, "max_cps": p.max_cps, "max_wpm": p.max_wpm,
            "frame": 1001 / 30000, "low_confidence": qc.LOW_CONFIDENCE}


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise EditError(f"{where} must be a number of seconds")
    return round(float(value), 3)


def parse(items: Any) -> list[Caption]:
    """Captions from the request's ``captions``: rows mapped onto the 608 set, empty rows dropped."""
    if not isinstance(items, list):
        raise EditError("captions must be a list of {start, end, lines}")
    if len(items) > MAX_CAPTIONS:
        raise EditError(f"at most {MAX_CAPTIONS} captions")
    captions = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise EditError(f"caption {index} must be an object with start, end and lines")
        lines = item.get("lines")
        if not isinstance(lines, list) or not all(isinstance(line, str) for line in lines):
            raise EditError(f"caption {index}: lines must be a list of strings")
        if len(lines) > MAX_ROWS * 4 or any(len(line) > MAX_ROW_CHARS for line in lines):
            raise EditError(f"caption {index}: too many or too long rows")
        rows = [to_608(line) for line in lines]
        captions.append(Caption(_number(item.get("start"), f"caption {index}: start"),
                                _number(item.get("end"), f"caption {index}: end"), [r for r in rows if r]))
    return captions


def _violation(index: int, rule: str, message: str, **detail) -> dict:
    return {"index": index, "rule": rule, "message": message, **detail}


MAX_CAPTIONS_PER_SECOND = 2   # a 608 caption needs frames to load: denser is not readable, nor writable


def check(captions: Sequence[Caption], limits: dict, media_duration: float | None) -> tuple[list[dict], list[dict]]:
    """(violations, warnings) of an edit; each names the caption's index and the rule."""
    most = max(10, int(MAX_CAPTIONS_PER_SECOND * (media_duration or 0.0)))
    if len(captions) > most:   # also keeps the 608 scheduling (and the request) short
        return [_violation(most, "too_many", f"{len(captions)} captions; at most {MAX_CAPTIONS_PER_SECOND} a second "
                                             f"of media ({most} here)", captions=len(captions))], []
    violations: list[dict] = []
    for i, cap in enumerate(captions):
        if cap.start < 0 or cap.end < 0:
            violations.append(_violation(i, "negative", "a time is negative", start=cap.start, end=cap.end))
        if cap.end <= cap.start:
            violations.append(_violation(i, "order", "the caption ends before it starts", start=cap.start,
                                         end=cap.end))
        if media_duration and max(cap.start, cap.end) > media_duration + HALF_FRAME:
            violations.append(_violation(i, "past_end", f"a time is past the media's end ({media_duration:.3f} s)",
                                         end=cap.end, media_duration=round(media_duration, 3)))
        if i and cap.start < captions[i - 1].end - 0.0005:
            violations.append(_violation(i, "overlap", f"starts before caption {i - 1} ends",
                                         start=cap.start, previous_end=captions[i - 1].end))
        if not cap.lines:
            violations.append(_violation(i, "empty", "the caption has no text"))
        widest = max((len(row) for row in cap.lines), default=0)
        if widest > limits["columns"]:
            violations.append(_violation(i, "columns", f"a row is {widest} columns wide (608: {limits['columns']})",
                                         columns=widest))
        if len(cap.lines) > limits["rows"]:
            violations.append(_violation(i, "rows", f"{len(cap.lines)} rows (this job allows {limits['rows']})",
                                         rows=len(cap.lines)))
    report = qc.check(captions, limits["profile"], rows=limits["rows"])
    warnings = []
    for rule in report["rules"]:
        if rule["id"] in WARNINGS:
            warnings += [{**item, "rule": rule["id"], "message": _warning_text(rule["id"], item, limits)}
                         for item in rule["items"]]
    warnings.sort(key=lambda w: (w["index"], WARNINGS.index(w["rule"])))
    return violations, warnings


def _warning_text(rule: str, item: dict, limits: dict) -> str:
    texts = {
        "min_duration": lambda: f"on screen {item.get('seconds')} s (at least {limits['min_duration']:g} s)",
        "max_duration": lambda: f"on screen {item.get('seconds')} s (at most {limits['max_duration']:g} s)",
        "reading_rate": lambda: f"{item.get('chars_per_second')} characters a second (at most {limits['max_cps']:g})",
        "words_per_minute": lambda: f"{item.get('words_per_minute')} words a minute (at most {limits['max_wpm']:g})",
        "gap_frames": lambda: f"a gap of {item.get('frames')} frame before the next caption",
    }
    return texts[rule]()


def words_by_caption(captions: Sequence[dict], segments: Sequence[dict]) -> list[list[dict]]:
    """The machine's timed words (with their probabilities) that fall within each caption."""
    words = [w for seg in segments or [] for w in seg.get("words", []) if "start" in w and "end" in w]
    out: list[list[dict]] = [[] for _ in captions]
    k = 0
    for i, cap in enumerate(captions):
        start, end = float(cap["start"]), float(cap["end"])
        while k < len(words) and (words[k]["start"] + words[k]["end"]) / 2 < start:
            k += 1
        j = k
        while j < len(words) and (words[j]["start"] + words[j]["end"]) / 2 <= end:
            w = words[j]
            out[i].append({"text": w["text"], "start": w["start"], "end": w["end"],
                           "probability": w.get("probability", 1.0)})
            j += 1
    return out


def transcript_of(data: dict) -> Transcript:
    """The machine's transcript as a caption JSON holds it."""
    segments = [Segment(float(s["start"]), float(s["end"]), s.get("text", ""),
                        [Word(w["text"], float(w["start"]), float(w["end"]), float(w.get("probability", 1.0)))
                         for w in s.get("words", [])]) for s in data.get("segments", [])]
    return Transcript(data.get("language") or "en", float(data.get("duration") or 0.0), segments,
                      data.get("word_timing", ""))


def sidecars(base: dict, captions: Sequence[Caption], revision: dict, limits: dict | None = None) -> dict[str, str]:
    """Every caption file of a revision: the base JSON's transcript and details, the edited captions; the SCC
    on the base's start timecode, and a QC report of its own where the base JSON carried one."""
    extra = {k: v for k, v in base.items() if k not in _OWN_KEYS}
    scc = base.get("scc") or {}
    if "start_frame" in scc:
        extra["start"] = timecode.Timecode(int(scc["start_frame"]), scc.get("timecode_mode") or timecode.DF)
    if "qc" in base and limits:
        extra.update(qc_profile=limits["profile"], rows=limits["rows"])
    return writers.render_sidecars(transcript_of(base), captions, revision=revision, **extra)
