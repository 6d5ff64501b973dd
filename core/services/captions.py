"""The caption model and the CEA-608 rules that shape it.

One list of ``Caption`` (start, end, rows of text) feeds every writer and the
burn-in.  Captions are cut from timed words by dynamic programming: breaks at
sentence ends, clause ends and pauses are cheap, anything else costs; every
caption fits ``rows`` rows of 32 columns, stays up 1-6 s, never overlaps the
next, and leaves enough time to load the next one over the 608 channel.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Sequence

from pycaption.scc.constants import CHARACTER_TO_CODE, SPECIAL_OR_EXTENDED_CHAR_TO_CODE

ROW_WIDTH = 32
MAX_ROWS = 4
FPS = 30000 / 1001
MIN_DURATION = 1.0
MAX_DURATION = 6.0
LINGER = 0.5          # seconds a caption stays after its last word, when there is room
MERGE_GAP = 0.3       # shorter gaps between captions are closed (avoids a blink)
UNKNOWN_CHAR = "?"
EARLY_FRAMES = 3      # a caption may start this many frames before its first word (reading rate only)
SPEAKER_MARK = ">> "
# The mark while cutting: a two-column token to_608 can never produce (control characters are dropped).
_MARK = "\x1e\x1e"
SHARED_CAPTION_COST = 6.0   # two speakers in one caption: allowed (row by row), a new caption preferred
RATE_COST, RATE_SLOPE = 15.0, 0.5   # a caption that cannot be read at the rate, and per char/s over
SHORT_OVER_RATE = 40.0             # a caption under MIN_DURATION costs more than any too-fast one
EARLY_COST = 1.0                   # one that can, if it starts up to EARLY_FRAMES early

# Typography without a 608 code, and 608 codes that cost three times the
# bandwidth of their plain equivalent (extended characters need a backspace).
_SUBSTITUTES = {
    "…": "...", "–": "-", "—": "--", "‐": "-", "‑": "-", "−": "-", "―": "--", "‒": "-",
    "‘": "'", "’": "'", "‚": "'", "‛": "'", "`": "'", "´": "'", "′": "'",
    "“": '"', "”": '"', "„": '"', "″": '"', "«": '"', "»": '"',
    "×": "x", "€": "EUR", "¼": "1/4", "¾": "3/4", "\u00a0": " ", "\t": " ",
}
_ENCODABLE = set(CHARACTER_TO_CODE) | set(SPECIAL_OR_EXTENDED_CHAR_TO_CODE)
_SENTENCE_END = re.compile(r"[.!?]['\")\]]*$")
_CLAUSE_END = re.compile(r"([,;:]|--|-)['\")\]]*$")
# Words a caption or row should not end on ("...for the | budget").
_WEAK_END = frozenset(
    "a an the and or but nor of to in on at by for from with as into onto than that "
    "this these those my your his her its our their is are was were be".split()
)


@dataclass
class Caption:
    start: float
    end: float
    lines: list[str]
    words: list = field(default_factory=list, repr=False, compare=False)

    @property
    def text(self) -> str:
        return " ".join(self.lines)


def to_608(text: str) -> str:
    """Map text onto the CEA-608 character set; nothing is dropped silently."""
    out = []
    for ch in unicodedata.normalize("NFC", text):
        if ch in _SUBSTITUTES:
            out.append(_SUBSTITUTES[ch])
        elif ch in _ENCODABLE:
            out.append(ch)
        elif ch.isspace():
            out.append(" ")
        elif unicodedata.category(ch) in ("Mn", "Cf", "Cc"):
            continue  # combining marks and control chars carry no glyph
        else:
            base = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
            out.append(base if base and all(c in _ENCODABLE for c in base) else UNKNOWN_CHAR)
    return re.sub(r" +", " ", "".join(out)).strip()


def load_frames(lines: Sequence[str]) -> int:
    """Frames needed to send a pop-on caption before its EOC (2 bytes/frame).

    ENM, RCL (doubled), then per row a PAC and tab offset (doubled) and the
    text; special and extended characters take a doubled pair each.
    """
    frames = 4
    for line in lines:
        frames += 4
        plain = 0
        for ch in line:
            if ch in CHARACTER_TO_CODE:
                plain += 1
            else:
                frames += math.ceil(plain / 2) + 2
                plain = 1 if ch not in ("®°½¿™¢£♪àèâêîôû\u00a0") else 0
        frames += math.ceil(plain / 2)
    return frames


def _is_weak(word: str) -> bool:
    return word.lower().strip("\"'.,;:!?()") in _WEAK_END


def _split_long_word(word: str, width: int) -> list[str]:
    return [word[k:k + width] for k in range(0, len(word), width)]


@lru_cache(maxsize=65536)
def wrap(words: tuple[str, ...], rows: int, width: int = ROW_WIDTH) -> tuple[float, tuple[str, ...]] | None:
    """Best layout of ``words`` in at most ``rows`` rows, or None if they do not fit.

    Fewest rows first; then break after punctuation rather than after a weak
    word, avoid one-word rows, and keep rows balanced.
    """
    n = len(words)
    marked = _MARK in words
    marks = {k for k in range(1, n) if words[k] == _MARK} if marked else set()
    if words[-1] == _MARK:
        return None
    if not marks and sum(len(w) for w in words) + n - 1 <= width:
        return 0.0, (" ".join(words).replace(_MARK, SPEAKER_MARK.strip()),)
    best: tuple[float, tuple[str, ...]] | None = None
    for nrows in range(2, rows + 1):
        for cuts in _cut_sets(words, nrows, width):
            if marked and (not marks.issubset(cuts) or any(words[c - 1] == _MARK for c in cuts)):
                continue  # a second speaker's mark starts a row, never ends one
            lines = [" ".join(words[a:b]) for a, b in zip((0,) + cuts, cuts + (n,))]
            if any(len(line) > width for line in lines):
                continue
            cost = 0.0
            for a, b in zip((0,) + cuts, cuts + (n,)):
                if b - a == 1 and n > nrows:
                    cost += 8.0  # one-word orphan row
            for c in cuts:
                last = words[c - 1]
                if _SENTENCE_END.search(last) or _CLAUSE_END.search(last):
                    cost -= 1.0
                elif _is_weak(last):
                    cost += 2.0
            lengths = [len(line) for line in lines]
            cost += (max(lengths) - min(lengths)) / width * 2.0
            if best is None or cost < best[0]:
                best = (cost, tuple(line.replace(_MARK, SPEAKER_MARK.strip()) for line in lines))
        if best is not None:
            return best
    return None


def _cut_sets(words: tuple[str, ...], nrows: int, width: int):
    """Row breaks for ``nrows`` rows, in lexicographic order, skipping any that
    overfill a row or leave more than the remaining rows can hold."""
    n = len(words)
    lens = [len(w) for w in words]

    def rec(start: int, rows_left: int):
        rest = sum(lens[start:]) + (n - start - 1)
        if rows_left == 1:
            if rest <= width:
                yield ()
            return
        length = -1
        for end in range(start + 1, n - rows_left + 2):
            length += lens[end - 1] + 1
            if length > width:
                break
            if rest - length - 1 > (rows_left - 1) * (width + 1) - 1:
                continue
            for tail in rec(end, rows_left - 1):
                yield (end,) + tail

    return rec(0, nrows)


def build_captions(words: Sequence, rows: int = 2, media_duration: float | None = None,
                   max_cps: float | None = None, speaker_marks: bool = False) -> list[Caption]:
    """Cut timed words (objects with .text .start .end, optionally .speaker) into pop-on captions.

    ``max_cps``: the reading rate to keep captions at or under where timing
    allows; ``speaker_marks``: ">> " where the speaker changes.
    """
    if not 1 <= rows <= MAX_ROWS:
        raise ValueError(f"rows must be 1..{MAX_ROWS}")
    items = _items(words, speaker_marks)
    if not items:
        return []
    spans = _segment(items, rows, max_cps, media_duration)
    captions = []
    for i, j in spans:
        layout = wrap(tuple(t for t, *_ in items[i:j]), rows)
        assert layout is not None
        captions.append(Caption(items[i][1], items[j - 1][2], list(layout[1]),
                                [x[3] for x in items[i:j] if x[3] is not None]))
    _set_end_times(captions, media_duration, max_cps)
    if max_cps:
        _start_early(captions, max_cps)
    return captions


def _items(words: Sequence, speaker_marks: bool) -> list[tuple[str, float, float, object]]:
    """(text, start, end, word) to cut: words in 608 text, a long word in row-wide pieces sharing its time,
    and a mark token (word None) before the first word of a new speaker."""
    items: list[tuple[str, float, float, object]] = []
    speaker = None
    marked = False
    for w in words:
        who = getattr(w, "speaker", None)
        if speaker_marks and who is not None and speaker is not None and who != speaker:
            marked = True  # held until a word that shows text
        if who is not None:
            speaker = who
        text = to_608(w.text)
        if not text:
            continue
        start, end = float(w.start), float(max(w.end, w.start))
        if marked and items:
            items.append((_MARK, round(start, 3), round(start, 3), None))
            head = ROW_WIDTH - len(SPEAKER_MARK)  # the mark takes 3 of the row's columns
            pieces = [text[:head]] + _split_long_word(text[head:], ROW_WIDTH) if len(text) > head else [text]
        else:
            pieces = _split_long_word(text, ROW_WIDTH)
        marked = False
        step = (end - start) / len(pieces)
        for k, piece in enumerate(pieces):  # pieces of a long word share its time, in order
            items.append((piece, round(start + k * step, 3), round(start + (k + 1) * step, 3), w))
    return items


def displayed_chars(lines: Sequence[str]) -> int:
    """Characters a viewer reads: the rows, spaces included, a leading speaker mark not."""
    return sum(len(line.removeprefix(SPEAKER_MARK)) for line in lines)


def _segment(items, rows: int, max_cps: float | None = None, media_duration: float | None = None
             ) -> list[tuple[int, int]]:
    """Choose caption spans [i, j) minimising total cost (see module doc)."""
    n = len(items)
    texts = [t for t, *_ in items]
    starts = [s for _, s, _, _ in items]
    ends = [e for _, _, e, _ in items]
    max_chars = rows * ROW_WIDTH
    end_room = (media_duration - starts[-1]) if media_duration else MAX_DURATION

    def span_ok(i, j):
        if texts[j - 1] == _MARK:
            return False  # a mark goes with its speaker's first word
        chars = sum(len(t) for t in texts[i:j]) + (j - i - 1)
        if chars > max_chars + rows - 1:  # the spaces where rows break take no column
            return False
        if any(starts[k + 1] - ends[k] >= 1.0 for k in range(i, j - 1)):
            return False  # never show text across a pause of a second or more
        return j - i == 1 or ends[j - 1] - starts[i] <= MAX_DURATION - LINGER / 2

    def caption_cost(i, j):
        layout = wrap(tuple(texts[i:j]), rows)
        if layout is None:
            return None, 0, None
        cost = 1.5 + layout[0]
        for k in range(i, j - 1):  # breaks we do not take
            gap = starts[k + 1] - ends[k]
            if gap > 0.35:
                cost += 4.0 + 10.0 * gap  # text would show before a pause ends
            if _SENTENCE_END.search(texts[k]):
                cost += 3.0
            if texts[k + 1] == _MARK:
                cost += SHARED_CAPTION_COST  # two speakers in one caption
        if j < n:  # the break we take after this caption
            gap = starts[j] - ends[j - 1]
            last = texts[j - 1]
            if _SENTENCE_END.search(last) or texts[j] == _MARK:
                cost += 0.0
            elif gap >= 0.35:
                cost += 0.5
            elif _CLAUSE_END.search(last):
                cost += 1.5
            else:  # mid-phrase: better before "on Tuesday" than after "the"
                cost += 5.0 + (3.0 if _is_weak(last) else 0.0) - (1.5 if _is_weak(texts[j]) else 0.0)
            avail = starts[j] - starts[i]
            if avail < MIN_DURATION:   # under 1 s is a QC error: never traded for a reading-rate warning
                cost += 25.0 * (MIN_DURATION - avail) + 5.0 + (SHORT_OVER_RATE if max_cps else 0.0)
        else:
            avail = end_room + starts[-1] - starts[i]
        if j - i - (texts[i] == _MARK) == 1 and n > 1:
            cost += 3.0  # a lone word flashes by
        reading = (displayed_chars(layout[1]), max(min(avail, MAX_DURATION), 1e-3)) if max_cps else None
        return cost, load_frames(layout[1]), reading

    early = EARLY_FRAMES / FPS

    def rate_cost(reading, prev_reading) -> float:
        """Reading ``chars`` in ``room`` seconds (until the next caption, or the media's end) at max_cps;
        the caption may start ``early`` where the previous caption's status does not change by it."""
        if not max_cps or reading[0] <= max_cps * reading[1]:
            return 0.0
        chars, room = reading
        if prev_reading is None:
            can_claim = True
        else:
            p_chars, p_room = prev_reading
            can_claim = p_room - early >= MIN_DURATION and (
                p_chars > max_cps * (p_room + early) or p_chars <= max_cps * (p_room - early))
        if can_claim and chars <= max_cps * (room + early):
            return EARLY_COST
        return RATE_COST + RATE_SLOPE * (chars / room - max_cps)

    # best[(i, j)] = (cost, previous i) for a last caption words[i:j]
    best: dict[tuple[int, int], tuple[float, int]] = {}
    readings: dict[tuple[int, int], tuple[int, float]] = {}
    by_end: dict[int, list[int]] = {0: []}
    for j in range(1, n + 1):
        by_end[j] = []
        i = j - 1
        while i >= 0 and span_ok(i, j):
            cost, frames, reading = caption_cost(i, j)
            if cost is not None:
                candidates = []
                if i == 0:
                    candidates.append((cost + rate_cost(reading, None) + _late_cost(frames, starts[0] * FPS), -1))
                for k in by_end[i]:
                    avail = (starts[i] - starts[k]) * FPS - 2
                    rate = rate_cost(reading, readings.get((k, i))) if max_cps else 0.0
                    candidates.append((best[(k, i)][0] + cost + rate + _late_cost(frames, avail), k))
                if candidates:
                    best[(i, j)] = min(candidates)
                    if max_cps:
                        readings[(i, j)] = reading
                    by_end[j].append(i)
            i -= 1
        if not by_end[j] and texts[j - 1] != _MARK:  # a single word too long for the rows: force it alone
            first = j - 2 if j >= 2 and texts[j - 2] == _MARK else j - 1
            prev = by_end[first] or [-1]
            best[(first, j)] = (min(best[(k, first)][0] for k in prev) if prev != [-1] else 0.0, prev[0])
            by_end[j].append(first)
    i = min(by_end[n], key=lambda k: best[(k, n)][0])
    spans, j = [], n
    while i >= 0:
        spans.append((i, j))
        i, j = best[(i, j)][1], i
    return spans[::-1]


def _late_cost(frames: int, available: float) -> float:
    """Cost of an EOC that cannot be on time because loading takes too long."""
    late = frames - available
    return 0.0 if late <= 0 else 5.0 + late * 1.0


def _set_end_times(captions: list[Caption], media_duration: float | None, max_cps: float | None = None) -> None:
    for idx, cap in enumerate(captions):
        nxt = captions[idx + 1].start if idx + 1 < len(captions) else math.inf
        limit = media_duration if media_duration else math.inf
        end = max(cap.end + LINGER, cap.start + MIN_DURATION)
        if max_cps:  # linger as long as reading takes, if the pause after allows
            end = max(end, cap.start + displayed_chars(cap.lines) / max_cps)
        end = min(end, cap.start + MAX_DURATION, nxt, limit)
        if nxt - end < MERGE_GAP and nxt - cap.start <= MAX_DURATION:
            end = nxt
        cap.end = round(max(end, cap.start + 1 / FPS), 3)


def _frame(t: float) -> int:
    return round(t * FPS)


def _start_early(captions: list[Caption], max_cps: float) -> None:
    """Start a caption still over the rate up to EARLY_FRAMES before its first word, where that brings it
    to the rate, the previous caption keeps its second and its own rate, and the load still fits."""
    for idx, cap in enumerate(captions):
        need = displayed_chars(cap.lines) / max_cps - (cap.end - cap.start)
        frames = math.ceil(need * FPS - 1e-6)
        if need <= 0 or frames > EARLY_FRAMES:
            continue
        start = round(cap.start - frames / FPS, 3)
        if start < 0 or cap.end - start > MAX_DURATION:
            continue
        load = load_frames(cap.lines)
        if idx == 0:
            if _frame(start) < load:
                continue
            cap.start = start
            continue
        prev = captions[idx - 1]
        prev_end = start if _frame(start) - _frame(prev.end) < 2 else prev.end  # no gap under 2 frames
        clear = 2 if _frame(start) - _frame(prev_end) >= 4 else 0      # the EDM that clears prev
        if _frame(start) - _frame(prev.start) - 2 - clear < load:
            continue  # the 608 channel could not load it by then
        readable = [displayed_chars(prev.lines) <= max_cps * (end - prev.start) for end in (prev.end, prev_end)]
        if prev_end < prev.end and (prev_end - prev.start < MIN_DURATION or readable == [True, False]):
            continue  # the previous caption keeps its second, and a readable one stays readable
        if prev_end - prev.start > MAX_DURATION:
            continue
        prev.end, cap.start = prev_end, start
