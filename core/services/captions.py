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
    if sum(len(w) for w in words) + n - 1 <= width:
        return 0.0, (" ".join(words),)
    best: tuple[float, tuple[str, ...]] | None = None
    for nrows in range(2, rows + 1):
        for cuts in _cut_sets(words, nrows, width):
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
                best = (cost, tuple(lines))
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


def build_captions(words: Sequence, rows: int = 2, media_duration: float | None = None) -> list[Caption]:
    """Cut timed words (objects with .text .start .end) into pop-on captions."""
    if not 1 <= rows <= MAX_ROWS:
        raise ValueError(f"rows must be 1..{MAX_ROWS}")
    items = []
    for w in words:
        text = to_608(w.text)
        if not text:
            continue
        pieces = _split_long_word(text, ROW_WIDTH)
        start, end = float(w.start), float(max(w.end, w.start))
        step = (end - start) / len(pieces)
        for k, piece in enumerate(pieces):  # pieces of a long word share its time, in order
            items.append((piece, round(start + k * step, 3), round(start + (k + 1) * step, 3), w))
    if not items:
        return []
    spans = _segment(items, rows)
    captions = []
    for i, j in spans:
        layout = wrap(tuple(t for t, *_ in items[i:j]), rows)
        assert layout is not None
        captions.append(Caption(items[i][1], items[j - 1][2], list(layout[1]), [x[3] for x in items[i:j]]))
    _set_end_times(captions, media_duration)
    return captions


def _segment(items, rows: int) -> list[tuple[int, int]]:
    """Choose caption spans [i, j) minimising total cost (see module doc)."""
    n = len(items)
    texts = [t for t, *_ in items]
    starts = [s for _, s, _, _ in items]
    ends = [e for _, _, e, _ in items]
    max_chars = rows * ROW_WIDTH

    def span_ok(i, j):
        chars = sum(len(t) for t in texts[i:j]) + (j - i - 1)
        if chars > max_chars + rows - 1:  # the spaces where rows break take no column
            return False
        if any(starts[k + 1] - ends[k] >= 1.0 for k in range(i, j - 1)):
            return False  # never show text across a pause of a second or more
        return j - i == 1 or ends[j - 1] - starts[i] <= MAX_DURATION - LINGER / 2

    def caption_cost(i, j):
        layout = wrap(tuple(texts[i:j]), rows)
        if layout is None:
            return None, 0
        cost = 1.5 + layout[0]
        for k in range(i, j - 1):  # breaks we do not take
            gap = starts[k + 1] - ends[k]
            if gap > 0.35:
                cost += 4.0 + 10.0 * gap  # text would show before a pause ends
            if _SENTENCE_END.search(texts[k]):
                cost += 3.0
        if j < n:  # the break we take after this caption
            gap = starts[j] - ends[j - 1]
            last = texts[j - 1]
            if _SENTENCE_END.search(last):
                cost += 0.0
            elif gap >= 0.35:
                cost += 0.5
            elif _CLAUSE_END.search(last):
                cost += 1.5
            else:  # mid-phrase: better before "on Tuesday" than after "the"
                cost += 5.0 + (3.0 if _is_weak(last) else 0.0) - (1.5 if _is_weak(texts[j]) else 0.0)
            avail = starts[j] - starts[i]
            if avail < MIN_DURATION:
                cost += 25.0 * (MIN_DURATION - avail) + 5.0
        if j - i == 1 and n > 1:
            cost += 3.0  # a lone word flashes by
        return cost, load_frames(layout[1])

    # best[(i, j)] = (cost, previous i) for a last caption words[i:j]
    best: dict[tuple[int, int], tuple[float, int]] = {}
    by_end: dict[int, list[int]] = {0: []}
    for j in range(1, n + 1):
        by_end[j] = []
        i = j - 1
        while i >= 0 and span_ok(i, j):
            cost, frames = caption_cost(i, j)
            if cost is not None:
                candidates = []
                if i == 0:
                    candidates.append((cost + _late_cost(frames, starts[0] * FPS), -1))
                for k in by_end[i]:
                    avail = (starts[i] - starts[k]) * FPS - 2
                    candidates.append((best[(k, i)][0] + cost + _late_cost(frames, avail), k))
                if candidates:
                    best[(i, j)] = min(candidates)
                    by_end[j].append(i)
            i -= 1
        if not by_end[j]:  # a single word too long for the rows: force it alone
            prev = by_end[j - 1] or [-1]
            best[(j - 1, j)] = (min(best[(k, j - 1)][0] for k in prev) if prev != [-1] else 0.0, prev[0])
            by_end[j].append(j - 1)
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


def _set_end_times(captions: list[Caption], media_duration: float | None) -> None:
    for idx, cap in enumerate(captions):
        nxt = captions[idx + 1].start if idx + 1 < len(captions) else math.inf
        limit = media_duration if media_duration else math.inf
        end = max(cap.end + LINGER, cap.start + MIN_DURATION)
        end = min(end, cap.start + MAX_DURATION, nxt, limit)
        if nxt - end < MERGE_GAP and nxt - cap.start <= MAX_DURATION:
            end = nxt
        cap.end = round(max(end, cap.start + 1 / FPS), 3)
