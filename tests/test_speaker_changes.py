"""Speaker changes through the real pipeline (tiny.en): a speaker id per JSON segment, ">>" in the captions.

Two voices (the piper neural voice and an espeak-ng voice) take turns; a
single piper voice reads on its own.  Turns are whole sentences: the bench
(python -m bench.speakers) measures the hard cases (one-word turns, more
voice pairs, ten minutes of a single voice).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bench.conversation import PIPER, _tokens, first_word_index
from bench.measure import decode_scc_captions
from bench.speakers import Clip, make_scripted
from core.services import pipeline

pytestmark = pytest.mark.system

OTHER = "en-us+m7"
TWO_VOICES = (
    (PIPER, "Good evening. The river burst its banks on Tuesday and several roads are still closed."),
    (OTHER, "Thank you. I am standing on the old bridge, and the water is only a metre below it."),
    (PIPER, "How long will the roads stay closed?"),
    (OTHER, "The police expect to open the main road by Friday morning, but the side streets will take longer."),
    (PIPER, "And what are the residents saying tonight?"),
    (OTHER, "Most of them are worried about the shops. Many have lost a whole week of trade."),
    (PIPER, "Thank you for joining us. We will come back to you later in the programme."),
)
ONE_VOICE = (
    (PIPER, "Good evening. Here are the main stories tonight."),
    (PIPER, "The council has approved the new budget after a long debate."),
    (PIPER, "Train fares will rise by three percent from January."),
    (PIPER, "Is that going to be enough? Many people do not think so."),
    (PIPER, "A new library opened in the town centre this morning."),
    (PIPER, "And finally, the weather will stay dry and mild until the weekend."),
)


def _caption(clip: Clip, out: Path) -> tuple[dict, str, list[str]]:
    """(JSON transcript, SRT text, SCC rows as pycaption decodes them)."""
    record = pipeline.caption_file(clip.wav, out, pipeline.CaptionOptions(model="tiny.en", burn_in=False))
    data = json.loads(Path(record["outputs"]["json"]).read_text(encoding="utf-8"))
    scc_rows = [row for cap in decode_scc_captions(Path(record["outputs"]["scc"])) for row in cap.lines]
    return data, Path(record["outputs"]["srt"]).read_text(encoding="utf-8"), scc_rows


def _turn_starts(clip: Clip, words: list[str]) -> list[int]:
    """Index of the transcript word that starts each turn after the first (the script's word it maps to)."""
    script, owner = _tokens([t.text for t in clip.turns])
    hyp, hyp_owner = _tokens(words)
    mapping = first_word_index(script, hyp)
    starts = []
    for k in range(1, len(clip.turns)):
        s = next((s for s in range(owner.index(k), len(owner)) if owner[s] == k and s in mapping), None)
        starts.append(hyp_owner[mapping[s]] if s is not None else -1)
    return starts


def test_two_voices_taking_turns_get_a_new_speaker_and_a_mark_at_most_changes(tmp_path):
    clip = make_scripted(tmp_path / "media", "two-voices", list(TWO_VOICES), seed=3)
    data, srt, scc_rows = _caption(clip, tmp_path / "out")
    segments = data["segments"]
    assert all(isinstance(seg["speaker"], int) for seg in segments), segments
    words = [(w["text"], seg["speaker"]) for seg in segments for w in seg["words"]]
    starts = _turn_starts(clip, [text for text, _ in words])
    changes = {i for i in range(1, len(words)) if words[i][1] != words[i - 1][1]}
    marked = [s for s in starts if s >= 0 and {s - 1, s, s + 1} & changes]
    assert len(marked) >= 0.8 * len(starts), (starts, sorted(changes), [seg["text"] for seg in segments])
    assert {seg["speaker"] for seg in segments} == {0, 1}
    assert segments[0]["speaker"] == 0, "speakers are numbered by first appearance"
    # the captions: ">>" starts a row at the changes, never the programme's first caption
    cues = [c for c in re.split(r"\n\s*\n", srt.strip()) if c.strip()]
    rows = [line for cue in cues for line in cue.splitlines()[2:]]
    assert not cues[0].splitlines()[2].startswith(">>"), cues[0]
    assert sum(line.startswith(">>") for line in rows) >= 0.8 * len(starts), srt
    assert sum(line.startswith(">>") for line in rows) <= len(changes), srt
    assert all(">>" not in line[1:] for line in rows), "a mark only ever starts a row"
    assert sum(row.startswith(">>") for row in scc_rows) == sum(line.startswith(">>") for line in rows), scc_rows


def _marked_changes(clip: Clip, segments: list[dict]) -> tuple[list[int], list[int], set[int]]:
    """(turn starts, those with a speaker change within one word, all speaker changes) in word indices."""
    words = [(w["text"], seg["speaker"]) for seg in segments for w in seg["words"]]
    starts = _turn_starts(clip, [text for text, _ in words])
    changes = {i for i in range(1, len(words)) if words[i][1] != words[i - 1][1]}
    return starts, [s for s in starts if s >= 0 and {s - 1, s, s + 1} & changes], changes


def test_two_similar_male_voices_taking_turns_are_still_told_apart(tmp_path):
    # two espeak male variants whose voices the encoder puts only 0.12 apart (inside one voice's spread)
    sentences = [text for _, text in TWO_VOICES + ONE_VOICE]
    turns = [("en-us+m1" if i % 2 == 0 else "en-gb+m3", text) for i, text in enumerate(sentences + sentences[:3])]
    clip = make_scripted(tmp_path / "media", "close-voices", turns, seed=5)
    data, srt, _ = _caption(clip, tmp_path / "out")
    starts, marked, changes = _marked_changes(clip, data["segments"])
    assert {seg["speaker"] for seg in data["segments"]} == {0, 1}
    # a lower bar than for distinct voices: tiny.en runs some turns into one sentence here, and short
    # turns ("Thank you.", "Good evening.") keep the previous speaker unless clearly the other voice
    assert len(marked) >= 0.6 * len(starts), (starts, sorted(changes), [seg["text"] for seg in data["segments"]])
    assert len(changes) <= len(starts) + 1, "at most one mark where nobody new speaks"


def test_a_single_voice_gets_no_speaker_change(tmp_path):
    clip = make_scripted(tmp_path / "media", "one-voice", list(ONE_VOICE), seed=4)
    data, srt, scc_rows = _caption(clip, tmp_path / "out")
    assert data["segments"], data
    assert {seg["speaker"] for seg in data["segments"]} == {0}
    assert ">>" not in srt
    assert scc_rows and not any(">>" in row for row in scc_rows)


def test_speaker_changes_off_gives_no_marks_and_no_speaker_ids(tmp_path):
    clip = make_scripted(tmp_path / "media", "two-voices", list(TWO_VOICES[:4]), seed=3)
    record = pipeline.caption_file(clip.wav, tmp_path / "out",
                                   pipeline.CaptionOptions(model="tiny.en", burn_in=False, speaker_changes=False))
    data = json.loads(Path(record["outputs"]["json"]).read_text(encoding="utf-8"))
    assert all(seg.get("speaker") is None for seg in data["segments"])
    assert ">>" not in Path(record["outputs"]["srt"]).read_text(encoding="utf-8")
