"""SMPTE timecode labels on SCC's 29.97 frame clock: drop-frame (``HH:MM:SS;FF``) and non-drop (``HH:MM:SS:FF``).

SCC always runs at 30000/1001 frames a second.  A label names a frame:
drop-frame labels skip ``;00`` and ``;01`` at each minute except every tenth,
so they stay within a frame of the wall clock (``01:00:00;00`` is frame
107,892); non-drop labels count 30 a second (``01:00:00:00`` is frame 108,000)
and drift 3.6 s an hour behind the wall clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DF, NDF = "df", "ndf"
_FRAMES_PER_10_MIN = 17982
_FRAMES_PER_MIN = 1798
_FRAMES_PER_DAY = {DF: 24 * 6 * _FRAMES_PER_10_MIN, NDF: 24 * 3600 * 30}
_LABEL = re.compile(r"^(\d{1,2}):([0-5]\d):([0-5]\d)([:;.,])([0-2]\d)$")


class TimecodeError(ValueError):
    """A label that is not a timecode, or names a frame the mode does not have."""


@dataclass(frozen=True)
class Timecode:
    """A start timecode: the label's frame count in its mode."""
    frames: int
    mode: str = DF

    @property
    def label(self) -> str:
        return frame_to_label(self.frames, self.mode)

    def as_dict(self) -> dict:
        return {"start_timecode": self.label, "start_frame": self.frames, "timecode_mode": self.mode,
                "scc_frame_rate": "30000/1001"}


ZERO = Timecode(0, DF)


def parse(text: str, mode: str | None = None) -> Timecode:
    """``HH:MM:SS;FF`` or ``HH:MM:SS:FF``.  Without ``mode``, ``;`` (or ``.``/``,``) means drop-frame."""
    match = _LABEL.match(str(text).strip())
    if not match:
        raise TimecodeError(f"{text!r} is not a timecode (HH:MM:SS;FF or HH:MM:SS:FF)")
    hh, mm, ss, sep, ff = match.groups()
    hh, mm, ss, ff = int(hh), int(mm), int(ss), int(ff)
    mode = mode or (NDF if sep == ":" else DF)
    if mode not in (DF, NDF):
        raise TimecodeError(f"timecode mode must be {DF!r} or {NDF!r}")
    if hh > 23:
        raise TimecodeError(f"{text!r}: hours run from 00 to 23")
    if ff > 29:
        raise TimecodeError(f"{text!r}: frame {ff} does not exist at 29.97 (00-29)")
    if mode == DF and ss == 0 and ff < 2 and mm % 10:
        raise TimecodeError(f"{text!r} does not exist in drop-frame (;00 and ;01 are skipped at minute {mm})")
    label = ((hh * 60 + mm) * 60 + ss) * 30 + ff
    if mode == NDF:
        return Timecode(label, NDF)
    minutes = hh * 60 + mm
    return Timecode(label - 2 * (minutes - minutes // 10), DF)


def frame_to_label(frame: int, mode: str = DF) -> str:
    """The label of ``frame`` (a frame count from 00:00:00;00)."""
    if frame < 0:
        raise TimecodeError(f"frame {frame} is before 00:00:00:00")
    frame %= _FRAMES_PER_DAY[mode]      # a programme that runs past midnight wraps, as timecode does
    if mode == DF:
        tens, rest = divmod(frame, _FRAMES_PER_10_MIN)
        label = frame + 18 * tens + (2 * ((rest - 2) // _FRAMES_PER_MIN) if rest >= 2 else 0)
        sep = ";"
    else:
        label, sep = frame, ":"
    ff, ss, mm, hh = label % 30, label // 30 % 60, label // 1800 % 60, label // 108000
    return f"{hh:02d}:{mm:02d}:{ss:02d}{sep}{ff:02d}"
