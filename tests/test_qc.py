"""The QC report: each profile's rules, errors versus warnings, and the report's shape."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from core.services import qc
from core.services.captions import FPS, Caption


@dataclass
class W:
    text: str
    probability: float = 0.9


def rule(report: dict, rule_id: str) -> dict:
    return next(r for r in report["rules"] if r["id"] == rule_id)


def clean() -> list[Caption]:
    return [Caption(1.0, 3.0, ["Good evening."]), Caption(3.0, 5.5, ["The news at nine."])]


def test_clean_captions_pass_every_rule():
    report = qc.check(clean(), eoc_frames=[round(1.0 * FPS), round(3.0 * FPS)], speech=[(0.9, 5.6)], shot_changes=[])
    assert report["status"] == "pass" and report["profile"] == "broadcast-608"
    assert {r["id"] for r in report["rules"]} >= {"columns", "rows", "min_duration", "max_duration", "gap_frames",
                                                   "in_time", "reading_rate", "no_speech", "low_confidence",
                                                   "shot_change"}
    assert all(r["status"] == "pass" and r["count"] == 0 and r["items"] == [] for r in report["rules"])


@pytest.mark.parametrize("captions, rule_id, detail", [
    ([Caption(0, 2, ["x" * 33])], "columns", {"columns": 33}),
    ([Caption(0, 2, ["a", "b", "c"])], "rows", {"rows": 3}),
    ([Caption(0, 0.5, ["Hi."])], "min_duration", {"seconds": 0.5}),
    ([Caption(0, 6.5, ["A long one."])], "max_duration", {"seconds": 6.5}),
    ([Caption(0, 1.5, ["One."]), Caption(1.5 + 1 / FPS, 3, ["Two."])], "gap_frames", {"frames": 1}),
])
def test_error_rules_fail_the_report_and_name_the_caption(captions, rule_id, detail):
    report = qc.check(captions)
    found = rule(report, rule_id)
    assert report["status"] == "fail" and found["status"] == "fail" and found["count"] == 1
    assert found["items"][0]["index"] == 0 and found["items"][0]["text"] == " / ".join(captions[0].lines)
    assert detail.items() <= found["items"][0].items()


def test_a_caption_shown_two_frames_late_by_the_scc_is_an_in_time_warning():
    report = qc.check(clean(), eoc_frames=[round(1.0 * FPS) + 2, round(3.0 * FPS) + 1])
    found = rule(report, "in_time")
    assert found["count"] == 1 and found["items"][0]["frames_late"] == 2
    assert found["status"] == "warn" and report["status"] == "warn"


def test_a_caption_shown_over_half_a_second_late_fails_in_time():
    report = qc.check(clean(), eoc_frames=[round(1.0 * FPS) + 16, round(3.0 * FPS)])
    assert rule(report, "in_time")["status"] == "fail" and report["status"] == "fail"


def test_back_to_back_captions_are_not_a_gap():
    assert rule(qc.check(clean()), "gap_frames")["count"] == 0


def test_fast_speech_is_a_reading_rate_warning_not_an_error():
    fast = [Caption(0, 1.0, ["This sentence is far too fast", "to read."])]
    report = qc.check(fast)
    assert report["status"] == "warn" and rule(report, "reading_rate")["items"][0]["chars_per_second"] == 37.0


def test_reading_rate_ignores_the_speaker_mark():
    exact = [Caption(0, 1.0, [">> " + "x" * 20])]     # 20 characters in 1 s: at the limit, not over
    assert rule(qc.check(exact), "reading_rate")["count"] == 0


def test_profiles_differ_where_their_house_rules_do():
    caption = [Caption(0, 0.9, ["Eighteen chars ok."])]       # 0.9 s, 20 chars/s
    assert rule(qc.check(caption, "broadcast-608"), "min_duration")["count"] == 1
    assert rule(qc.check(caption, "netflix-like"), "min_duration")["count"] == 0
    assert rule(qc.check(caption, "netflix-like"), "reading_rate")["count"] == 1      # over 17 chars/s
    three_rows = [Caption(0, 3, ["One", "two", "three"])]
    assert rule(qc.check(three_rows, "broadcast-608", rows=4), "rows")["count"] == 0
    assert rule(qc.check(three_rows, "dcmp", rows=4), "rows")["count"] == 1            # DCMP: two rows
    wordy = [Caption(0, 1.0, ["one two three four five"])]                             # 300 words a minute
    assert rule(qc.check(wordy, "dcmp"), "words_per_minute")["items"][0]["words_per_minute"] == 300
    assert "words_per_minute" not in {r["id"] for r in qc.check(wordy)["rules"]}


def test_warnings_for_silence_low_confidence_and_shot_changes():
    captions = [Caption(0, 2, ["Spoken."], words=[W("Spoken.", 0.2)]), Caption(5, 7, ["Over silence."])]
    report = qc.check(captions, speech=[(0.0, 2.0)], shot_changes=[1.0, 6.95])
    assert report["status"] == "warn"
    assert [i["index"] for i in rule(report, "no_speech")["items"]] == [1]
    assert rule(report, "low_confidence")["items"][0]["words"] == ["Spoken."]
    assert rule(report, "shot_change")["items"][0]["cuts"] == [1.0]        # 6.95 is at the caption's very end


def test_items_are_capped_but_the_count_is_not():
    many = [Caption(i * 2.0, i * 2.0 + 0.5, ["x"]) for i in range(150)]
    found = rule(qc.check(many), "min_duration")
    assert found["count"] == 150 and len(found["items"]) == qc.MAX_ITEMS


def test_unknown_profile_is_refused():
    with pytest.raises(KeyError):
        qc.check(clean(), "house-style-that-does-not-exist")


@pytest.mark.system
def test_scene_cuts_are_found_by_ffmpeg(tmp_path):
    import subprocess

    out = tmp_path / "cuts.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "color=red:s=160x120:d=2,format=yuv420p",
                    "-f", "lavfi", "-i", "color=blue:s=160x120:d=2,format=yuv420p", "-filter_complex",
                    "[0][1]concat=n=2:v=1", "-c:v", "libx264", str(out)], check=True)
    assert [round(t, 1) for t in qc.shot_changes(str(out))] == [2.0]
