"""CEA-608 pop-on captions as an SCC file, scheduled so each caption shows on time.

A pop-on caption is loaded into the decoder's hidden buffer (ENM, RCL, PACs,
text) and shown by EOC.  608 carries one code word (2 bytes) per frame, so
loading takes frames; we place the load in the frames *before* the caption's
start so the EOC lands on the start frame, never earlier than the previous
caption's EOC (the hidden buffer is busy until then) and around the EDM that
clears a caption at its end.  Character codes, PACs and tab offsets come from
pycaption's 608 tables; pycaption's own SCCWriter shifts captions late and
cannot preload across caption boundaries, which is why scheduling lives here.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Sequence

from pycaption.scc.constants import (
    CHARACTER_TO_CODE,
    EXTENDED_CHARS,
    HEADER,
    SPECIAL_CHARS,
    TAB_OFFSET_CODES,
    WRITER_PAC_CODES,
)

from .captions import FPS, ROW_WIDTH, Caption
from .timecode import ZERO, Timecode, frame_to_label, parse

ENM, RCL, EOC, EDM = "94ae", "9420", "942f", "942c"
_SPECIAL = {ch: code for code, ch in SPECIAL_CHARS.items()}
_EXTENDED = {ch: code for code, ch in EXTENDED_CHARS.items()}


@dataclass
class Schedule:
    """Where each caption's EOC landed versus where it was wanted (frames)."""
    targets: list[int] = field(default_factory=list)
    eoc_frames: list[int] = field(default_factory=list)

    @property
    def late_seconds(self) -> list[float]:
        return [(e - t) / FPS for t, e in zip(self.targets, self.eoc_frames)]


def _fallback(ch: str) -> str:
    """Basic character an extended character overwrites (608 extended codes backspace)."""
    base = unicodedata.normalize("NFKD", ch)[0]
    return base if base in CHARACTER_TO_CODE else {"“": '"', "”": '"', "‘": "'", "’": "'", "—": "-"}.get(ch, " ")


def encode_row(text: str) -> list[tuple[str, ...]]:
    """Code-word units for one row of text; a unit is sent in consecutive frames."""
    units: list[tuple[str, ...]] = []
    pending: list[str] = []

    def flush(pad: bool):
        while len(pending) >= 2 or (pad and pending):
            pair = pending[:2] + ["80"] * (2 - len(pending[:2]))
            del pending[:2]
            units.append(("".join(pair),))

    for ch in text:
        if ch in CHARACTER_TO_CODE:
            pending.append(CHARACTER_TO_CODE[ch])
            flush(False)
        elif ch in _SPECIAL:
            flush(True)
            units.append((_SPECIAL[ch], _SPECIAL[ch]))
        elif ch in _EXTENDED:
            pending.append(CHARACTER_TO_CODE[_fallback(ch)])
            flush(True)
            units.append((_EXTENDED[ch], _EXTENDED[ch]))
        else:
            raise ValueError(f"character {ch!r} has no CEA-608 code (map it with captions.to_608)")
    flush(True)
    return units


def load_units(caption: Caption) -> list[tuple[str, ...]]:
    """ENM, RCL, then a centred PAC (+ tab offset) and the text for each row."""
    units: list[tuple[str, ...]] = [(ENM, ENM), (RCL, RCL)]
    first_row = 16 - len(caption.lines)
    for index, line in enumerate(caption.lines):
        column = max(0, (ROW_WIDTH - len(line)) // 2)
        indent = min(28, column - column % 4)
        pac = WRITER_PAC_CODES[(first_row + index, indent, "plain")]
        units.append((pac, pac))
        if column - indent:
            tab = TAB_OFFSET_CODES[column - indent]
            units.append((tab, tab))
        units.extend(encode_row(line))
    return units


class _Timeline:
    """Frame -> code word, with placement of atomic units around taken frames."""

    def __init__(self):
        self.words: dict[int, str] = {}

    def free(self, frame: int, size: int) -> bool:
        return all(frame + k not in self.words for k in range(size))

    def put(self, frame: int, unit: Sequence[str]) -> None:
        for k, word in enumerate(unit):
            self.words[frame + k] = word

    def place_before(self, units, end: int, floor: int) -> bool:
        """Place units to finish just before ``end``, none earlier than ``floor``."""
        spots, pos = [], end
        for unit in reversed(units):
            pos -= len(unit)
            while pos >= floor and not self.free(pos, len(unit)):
                pos -= 1
            if pos < floor:
                return False
            spots.append(pos)
        for unit, frame in zip(reversed(units), spots):
            self.put(frame, unit)
        return True

    def place_after(self, units, floor: int) -> int:
        """Place units as early as possible from ``floor``; return the next frame."""
        pos = floor
        for unit in units:
            while not self.free(pos, len(unit)):
                pos += 1
            self.put(pos, unit)
            pos += len(unit)
        return pos

    def next_free(self, frame: int, size: int) -> int:
        while not self.free(frame, size):
            frame += 1
        return frame


def schedule(captions: Sequence[Caption], preroll: int = 0) -> tuple[dict[int, str], Schedule]:
    """Lay out every caption's load, EOC and clear on the 29.97 frame timeline.

    Frames count from the media's start; ``preroll`` frames before it (a
    programme's start timecode leaves them) may hold the first caption's load.
    """
    timeline, report = _Timeline(), Schedule()
    floor = -preroll  # the hidden buffer is free from here (after the previous EOC pair)
    for idx, cap in enumerate(captions):
        units = load_units(cap)
        target = max(0, round(cap.start * FPS))
        eoc = timeline.next_free(target, 2)  # the previous clear may sit on the target
        if not timeline.place_before(units, eoc, floor):
            # Not enough time since the previous EOC: load now, show when loaded.
            eoc = timeline.next_free(max(eoc, timeline.place_after(units, floor)), 2)
        timeline.put(eoc, (EOC, EOC))
        report.targets.append(target)
        report.eoc_frames.append(eoc)
        floor = eoc + 2
        next_start = round(captions[idx + 1].start * FPS) if idx + 1 < len(captions) else None
        clear = max(round(cap.end * FPS), floor)
        if next_start is None or next_start - clear >= 4:
            clear = timeline.next_free(clear, 2)
            timeline.put(clear, (EDM, EDM))
    return timeline.words, report


def frame_to_timecode(frame: int) -> str:
    """29.97 drop-frame timecode label HH:MM:SS;FF for a frame count."""
    return frame_to_label(frame)


def write_scc(captions: Sequence[Caption], start: Timecode = ZERO, one_word_per_line: bool = False
              ) -> tuple[str, Schedule]:
    """SCC text and the schedule report for ``captions``.

    Labels are in ``start``'s mode (drop-frame or non-drop) and every frame
    moves by ``start.frames``.  ``one_word_per_line`` writes each code word on
    its own line, so a reader that stamps a line's words with the line's time
    (FFmpeg's demuxer, which makes the MOV's 608 track) keeps each on its frame.
    """
    words, report = schedule(captions, preroll=start.frames)
    lines = [HEADER, ""]
    run: list[str] = []
    run_start = prev = None
    for frame in sorted(words):
        if prev is not None and (frame != prev + 1 or one_word_per_line):
            lines += [f"{frame_to_label(run_start + start.frames, start.mode)}\t{' '.join(run)}", ""]
            run = []
        if not run:
            run_start = frame
        run.append(words[frame])
        prev = frame
    if run:
        lines += [f"{frame_to_label(run_start + start.frames, start.mode)}\t{' '.join(run)}", ""]
    return "\n".join(lines) + "\n", report


def eoc_frames(text: str, start: Timecode = ZERO) -> list[int]:
    """Read an SCC back: the frame (from the media's start) at which each caption is shown (its EOC)."""
    words: dict[int, str] = {}
    for line in text.splitlines():
        label, _, codes = line.partition("\t")
        if not codes:
            continue
        first = parse(label, start.mode).frames - start.frames
        words.update({first + i: word for i, word in enumerate(codes.split())})
    return [f for f in sorted(words) if words[f] == EOC and words.get(f - 1) != EOC]
