"""Caption quality control against a house profile: every job gets a report.

A rule is an error (``fail``) or a warning (``warn``); a job that breaks an
error rule still completes, with ``qc.status: "fail"``.  Each rule reports a
count and the offending captions (index, time, text).
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from typing import Sequence

from .captions import FPS, ROW_WIDTH, SPEAKER_MARK, Caption, displayed_chars, to_608
from .media import ffmpeg_url

MAX_ITEMS = 100          # offending captions listed per rule (the count covers all)
LOW_CONFIDENCE = 0.4     # a word recognised with less probability is flagged
LATE_FAIL_FRAMES = 15    # in_time: shown over half a second from its intended start fails


@dataclass(frozen=True)
class Profile:
    name: str
    min_duration: float
    max_duration: float
    max_cps: float | None = 20.0          # reading rate, characters a second (warning)
    max_wpm: float | None = None          # words a minute (warning)
    max_rows: int | None = None           # None: the job's rows setting
    gap_frames: int = 2
    in_time_frames: int = 1

    @property
    def reading_cps(self) -> float:
        """The reading rate the caption builder aims at: the profile's characters a second, or its words a
        minute at 6 characters a word (5 letters and a space)."""
        if self.max_cps:
            return self.max_cps
        return self.max_wpm * 6 / 60 if self.max_wpm else 20.0


PROFILES = {
    "broadcast-608": Profile("broadcast-608", 1.0, 6.0, max_cps=20.0),
    # Netflix's 42 columns are not possible in 608; its timing and reading-rate template are.
    "netflix-like": Profile("netflix-like", 5 / 6, 7.0, max_cps=17.0),
    "dcmp": Profile("dcmp", 1.0, 6.0, max_cps=None, max_wpm=225.0, max_rows=2),
}
DEFAULT_PROFILE = "broadcast-608"


def _item(index: int, cap: Caption, **detail) -> dict:
    return {"index": index, "start": round(cap.start, 3), "end": round(cap.end, 3), "text": " / ".join(cap.lines),
            **detail}


def _rule(rule_id: str, severity: str, items: list[dict]) -> dict:
    return {"id": rule_id, "status": severity if items else "pass", "count": len(items), "items": items[:MAX_ITEMS]}


def _overlaps(start: float, end: float, spans: Sequence[tuple[float, float]]) -> float:
    return sum(max(0.0, min(end, b) - max(start, a)) for a, b in spans)


def check(captions: Sequence[Caption], profile: str = DEFAULT_PROFILE, rows: int = 2,
          eoc_frames: Sequence[int] | None = None, speech: Sequence[tuple[float, float]] | None = None,
          shot_changes: Sequence[float] | None = None, intended_starts: Sequence[float] | None = None) -> dict:
    """The QC report of ``captions``.

    ``eoc_frames``: where the SCC, read back, shows each caption; ``speech``:
    the VAD's speech regions; ``shot_changes``: scene cut times; any of them
    missing skips its rule.  ``intended_starts`` default to the captions' starts.
    """
    p = PROFILES[profile]
    max_rows = p.max_rows or rows
    starts = list(intended_starts) if intended_starts is not None else [c.start for c in captions]
    found: dict[str, list[dict]] = {key: [] for key in (
        "columns", "rows", "min_duration", "max_duration", "gap_frames", "in_time", "reading_rate",
        "words_per_minute", "no_speech", "low_confidence", "shot_change")}
    for i, cap in enumerate(captions):
        duration = cap.end - cap.start
        widest = max((len(to_608(row)) for row in cap.lines), default=0)
        if widest > ROW_WIDTH:
            found["columns"].append(_item(i, cap, columns=widest))
        if len(cap.lines) > max_rows:
            found["rows"].append(_item(i, cap, rows=len(cap.lines)))
        if duration < p.min_duration - 0.5 / FPS:
            found["min_duration"].append(_item(i, cap, seconds=round(duration, 3)))
        if duration > p.max_duration + 0.5 / FPS:
            found["max_duration"].append(_item(i, cap, seconds=round(duration, 3)))
        if i + 1 < len(captions):
            gap = round(captions[i + 1].start * FPS) - round(cap.end * FPS)
            if 0 < gap < p.gap_frames:
                found["gap_frames"].append(_item(i, cap, frames=gap))
        if eoc_frames is not None and i < len(eoc_frames):
            off = eoc_frames[i] - round(starts[i] * FPS)
            if abs(off) > p.in_time_frames:
                found["in_time"].append(_item(i, cap, frames_late=off))
        if duration > 0 and p.max_cps and displayed_chars(cap.lines) / duration > p.max_cps:
            found["reading_rate"].append(_item(i, cap, chars_per_second=round(displayed_chars(cap.lines) / duration, 1)))
        words = len(" ".join(cap.lines).replace(SPEAKER_MARK.strip(), " ").split())
        if duration > 0 and p.max_wpm and words / duration * 60 > p.max_wpm:
            found["words_per_minute"].append(_item(i, cap, words_per_minute=round(words / duration * 60)))
        if speech is not None and _overlaps(cap.start, cap.end, speech) <= 0.0:
            found["no_speech"].append(_item(i, cap))
        unsure = [w.text for w in cap.words if getattr(w, "probability", 1.0) < LOW_CONFIDENCE]
        if unsure:
            found["low_confidence"].append(_item(i, cap, words=unsure))
        if shot_changes is not None:
            cuts = [t for t in shot_changes if cap.start + 0.1 < t < cap.end - 0.1]
            if cuts:
                found["shot_change"].append(_item(i, cap, cuts=[round(t, 3) for t in cuts]))
    errors = ("columns", "rows", "min_duration", "max_duration", "gap_frames")
    # A caption shown a few frames late is the 608 channel loading it (a start timecode's pre-roll helps the
    # first one): a warning.  Late by more than LATE_FAIL_FRAMES is an error.
    late = any(abs(item["frames_late"]) > LATE_FAIL_FRAMES for item in found["in_time"])
    rules = [_rule(key, "fail" if key in errors or (key == "in_time" and late) else "warn", items)
             for key, items in found.items()
             if not ((key == "in_time" and eoc_frames is None) or (key == "no_speech" and speech is None)
                     or (key == "shot_change" and shot_changes is None)
                     or (key == "reading_rate" and not p.max_cps) or (key == "words_per_minute" and not p.max_wpm))]
    status = "fail" if any(r["status"] == "fail" for r in rules) else \
        "warn" if any(r["status"] == "warn" for r in rules) else "pass"
    return {"status": status, "profile": p.name, "rules": rules}


def shot_changes(path: str, threshold: float = 0.4) -> list[float]:
    """Times of scene cuts (FFmpeg's scene score on a small copy of the picture)."""
    proc = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", ffmpeg_url(path), "-an", "-sn", "-vf",
                           f"scale=160:-2,select='gt(scene,{threshold})',metadata=print:file=-", "-f", "null", "-"],
                          capture_output=True, text=True)
    return [float(t) for t in re.findall(r"pts_time:([0-9.]+)", proc.stdout)]
