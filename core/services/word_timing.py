"""Word timing against the audio itself: pauses from the level, speech regions, snapping, turn onsets.

Whisper's cross-attention alignment starts a word late or early by up to a
few tenths of a second, most at the first word of a sentence or a turn.  The
level of the audio marks where speech resumes far more precisely: pauses are
runs of frames near the recording's floor (silence, or a steady noise bed),
and the first word after a pause starts where the pause ends.
"""

from __future__ import annotations

import re
from typing import Protocol

import numpy as np

SAMPLE_RATE = 16000
_SENTENCE_END = re.compile(r"[.!?…]['\")\]]*$")


class _Word(Protocol):
    text: str
    start: float
    end: float
    probability: float


def _monotonic(words: list) -> list:
    last = 0.0
    for w in words:
        w.start = max(w.start, last)
        w.end = max(w.end, w.start)
        last = w.start
    return words


def frame_levels(audio: np.ndarray, frame: float = 0.02) -> np.ndarray:
    """RMS level of each ``frame`` s of 16 kHz audio, in dBFS (float audio in -1..1)."""
    size = int(frame * SAMPLE_RATE)
    count = len(audio) // size
    if count == 0:
        return np.zeros(0)
    rms = np.sqrt(np.mean(np.square(audio[:count * size].reshape(count, size), dtype=np.float64), axis=1))
    return 20 * np.log10(rms + 1e-10)


def quiet_threshold(level: np.ndarray) -> float:
    """The level below which a frame is a pause.

    Far below the speech level (max(-50 dBFS, 95th percentile - 40 dB)), or,
    over a steady noise bed, a few dB above the floor (5th percentile + 6 dB,
    kept at least 20 dB under the speech) so pauses under noise count too.
    """
    loud = float(np.percentile(level, 95))
    floor = float(np.percentile(level, 5))
    return max(-50.0, loud - 40.0, min(floor + 6.0, loud - 20.0))


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    runs, start = [], None
    for index, value in enumerate(np.append(mask, False)):
        if value and start is None:
            start = index
        elif not value and start is not None:
            runs.append((start, index))
            start = None
    return runs


def quiet_gaps(audio: np.ndarray, min_gap: float = 0.25, frame: float = 0.02) -> list[tuple[float, float]]:
    """Pauses measured from the audio level: runs of >= ``min_gap`` s below ``quiet_threshold``.

    Pyannote's scores can stay above its offset threshold through short
    pauses, merging sentences into one region; the level does not.  Under
    music nothing is that quiet, so nothing changes there.
    """
    level = frame_levels(audio, frame)
    if level.size == 0:
        return []
    quiet = level < quiet_threshold(level)
    return [(a * frame, b * frame) for a, b in _runs(quiet) if (b - a) * frame >= min_gap]


def split_at_pauses(regions: list[tuple[float, float]], gaps: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Speech regions with the quiet gaps taken out."""
    out = []
    for start, end in regions:
        pieces = [(start, end)]
        for g0, g1 in gaps:
            if g1 <= start or g0 >= end:
                continue
            last = pieces.pop()
            if g0 - last[0] > 0.05:
                pieces.append((last[0], g0))
            if last[1] - g1 > 0.05:
                pieces.append((g1, last[1]))
            if not pieces:
                break
        out.extend(pieces)
    return out


def snap_to_speech(words: list[_Word], regions: list[tuple[float, float]],
                   max_shift: float = 1.0, weak_shift: float = 2.0) -> list[_Word]:
    """Keep words out of pauses and start each speech region's first word at its onset.

    Whisper's alignment smears a pause into the word after it (starts early)
    or before it (runs on, or starts late); the region boundaries (VAD onsets
    refined by the audio level) are within a few frames of the speech.  A word
    never starts inside a pause.  Other shifts larger than ``max_shift`` are
    left alone: then the region is likely noise, not this word; except that a
    short, unsure word (``weak_word``) may move up to ``weak_shift``: that is
    how Whisper misplaces the first word of a conversation ("Hello?").
    """
    if not regions:
        return words
    starts = [r[0] for r in regions]
    for w in words:
        k = int(np.searchsorted(starts, w.start, side="right")) - 1
        if k >= 0 and w.start < regions[k][1]:
            if w.end > regions[k][1]:  # runs on into the pause after its region
                w.end = round(max(w.start + 0.05, regions[k][1]), 3)
        elif k + 1 < len(regions) and regions[k + 1][0] < w.end:
            w.start = round(regions[k + 1][0], 3)  # starts in a pause, speech begins later
        else:  # wholly inside a pause (a hallucinated or misplaced word)
            edge = regions[k][1] if k >= 0 else starts[0]
            w.start = w.end = round(edge, 3)
    i = 0
    for onset, _ in regions:
        while i < len(words) and words[i].end <= onset + 0.05:
            i += 1
        if i == len(words):
            break
        w = words[i]
        limit = weak_shift if weak_word(w) and w.start > onset else max_shift
        if abs(w.start - onset) <= limit and onset < w.end:
            w.start = round(onset, 3)
            if i and words[i - 1].end > onset:
                words[i - 1].end = round(max(words[i - 1].start, onset), 3)
    return _monotonic(words)




def weak_word(w: _Word, short: float = 0.25, unsure: float = 0.6) -> bool:
    """A word aligned short (<= ``short`` s) with a low probability: its start is likely wrong."""
    return w.end - w.start <= short and w.probability < unsure


def refine_turn_starts(words: list[_Word], audio: np.ndarray, regions: list[tuple[float, float]] = (),
                       search: float = 1.0, min_pause: float = 0.08, frame: float = 0.01,
                       ahead: float = 0.1) -> list[_Word]:
    """Start the first word of each sentence (a turn in a conversation) where the pause before it ends.

    Turns in a conversation follow each other by less than the pauses
    ``quiet_gaps`` takes (0.25 s), so the region onsets miss them and
    Whisper's start, often 0.1-0.5 s late there, stays.  Here the level is
    searched from ``search`` s before the aligned start (not before the
    previous word's start) to ``ahead`` s after it for runs of at least
    ``min_pause`` s below the pause level; the word starts at the end of the
    latest.  A start already at a region onset is kept.  With no such run
    (turns that run on or overlap) the word starts where the aligner ended the
    previous one: Whisper gives the gap between them to the previous word's
    full stop, while the new voice begins at or before that end.
    """
    level = frame_levels(audio, frame)
    if level.size == 0 or not words:
        return words
    threshold = quiet_threshold(frame_levels(audio, 0.02))
    quiet = level < threshold
    onsets = {round(r[0], 3) for r in regions}
    for i, w in enumerate(words):
        if i and not _SENTENCE_END.search(words[i - 1].text):
            continue
        if round(w.start, 3) in onsets:
            continue
        low = w.start - search if i == 0 else max(w.start - search, words[i - 1].start + 0.05)
        a, b = max(0, int(low / frame)), min(len(quiet), int((w.start + ahead) / frame) + 1)
        if b - a < 2:
            continue
        runs = [(a + r0, a + r1) for r0, r1 in _runs(quiet[a:b]) if (r1 - r0) * frame >= min_pause and a + r1 < b]
        if not runs:  # no pause: the turns run on or overlap; the previous word's end is the boundary
            if i and 0 < w.start - words[i - 1].end <= search - 0.4 and words[i - 1].end > words[i - 1].start:
                w.start = round(words[i - 1].end, 3)
            continue
        pause_start, pause_end = runs[-1][0] * frame, runs[-1][1] * frame
        if pause_end >= w.end:
            continue
        w.start = round(pause_end, 3)
        if i and words[i - 1].end > pause_start:
            words[i - 1].end = round(max(words[i - 1].start, pause_start), 3)
    return _monotonic(words)
