"""Programme timecode on SCC's 29.97 clock: drop-frame and non-drop labels, offsets and pre-roll."""

from __future__ import annotations

import re

import pytest

from core.services import timecode
from core.services.captions import FPS, Caption
from core.services.scc import eoc_frames, write_scc
from core.services.timecode import DF, NDF, TimecodeError, frame_to_label, parse


@pytest.mark.parametrize("label, frames, mode", [
    ("00:00:00;00", 0, DF), ("00:01:00;02", 1800, DF), ("00:10:00;00", 17982, DF), ("01:00:00;00", 107892, DF),
    ("10:00:00;00", 1078920, DF), ("00:00:00:00", 0, NDF), ("00:01:00:00", 1800, NDF),
    ("01:00:00:00", 108000, NDF), ("23:59:59:29", 2591999, NDF),
])
def test_known_labels(label, frames, mode):
    assert parse(label) == timecode.Timecode(frames, mode)
    assert frame_to_label(frames, mode) == label


def test_both_separators_are_accepted_and_the_mode_can_be_forced():
    assert parse("01:00:00:00", DF).frames == 107892        # the operator asked for drop-frame
    assert parse("01:00:00;00", NDF).frames == 108000
    assert parse("01:00:00.00").mode == DF


@pytest.mark.parametrize("bad", ["", "1:00:00", "01:60:00;00", "01:00:00;30", "aa:bb:cc;dd", "00:01:00;00",
                                 "00:01:00;01", "-01:00:00;00"])
def test_labels_that_do_not_exist_are_refused(bad):
    with pytest.raises(TimecodeError):
        parse(bad)


def test_every_frame_round_trips_in_both_modes():
    for frame in range(0, 3 * 17982 + 50, 13):
        for mode in (DF, NDF):
            assert parse(frame_to_label(frame, mode), mode).frames == frame


def test_drop_frame_labels_skip_00_and_01_except_every_tenth_minute():
    labels = [frame_to_label(f) for f in range(0, 20 * 1800)]
    minute_starts = [lab for lab in labels if lab.endswith(":00;00") or lab.endswith(":00;01")]
    assert all(int(lab[3:5]) % 10 == 0 for lab in minute_starts)


def _eocs(scc: str, mode: str) -> list[int]:
    """Frames (counted from 00:00:00) at which the SCC shows each caption."""
    return eoc_frames(scc, timecode.Timecode(0, mode))


CAPTIONS = [Caption(0.05, 1.5, ["At the very start"]), Caption(2.0, 4.0, ["Good evening", "and welcome."]),
            Caption(62.0, 64.0, ["A minute later."])]


def test_a_drop_frame_start_moves_every_eoc_by_107892_frames_and_preloads_the_first():
    zero, report = write_scc(CAPTIONS)
    hour, hour_report = write_scc(CAPTIONS, start=parse("01:00:00;00"))
    targets = [round(c.start * FPS) for c in CAPTIONS]
    assert _eocs(hour, DF) == [t + 107892 for t in targets]                    # every EOC on its frame
    assert hour_report.eoc_frames == targets
    assert report.eoc_frames[0] > targets[0]                                  # without pre-roll it was late
    assert ";" in hour.splitlines()[2] and hour.splitlines()[2] < "01:00:00;00"  # the first load sits in the pre-roll


def test_a_non_drop_start_writes_colon_labels_108000_frames_on():
    text, report = write_scc(CAPTIONS, start=parse("01:00:00:00", NDF))
    labels = [line.split("\t")[0] for line in text.splitlines() if "\t" in line]
    assert labels and all(re.match(r"^\d\d:\d\d:\d\d:\d\d$", lab) for lab in labels)
    assert _eocs(text, NDF) == [round(c.start * FPS) + 108000 for c in CAPTIONS]


def test_one_code_word_a_line_keeps_every_word_on_its_frame():
    runs, _ = write_scc(CAPTIONS)
    single, _ = write_scc(CAPTIONS, one_word_per_line=True)
    assert _eocs(runs, DF) == _eocs(single, DF)
    assert all(len(line.split("\t")[1].split()) == 1 for line in single.splitlines() if "\t" in line)


def test_hours_past_23_are_refused_and_a_programme_past_midnight_wraps():
    with pytest.raises(TimecodeError):
        parse("24:00:00;00")
    assert frame_to_label(parse("23:59:59;29").frames + 1) == "00:00:00;00"
    assert frame_to_label(parse("23:59:59:29", NDF).frames + 1, NDF) == "00:00:00:00"
