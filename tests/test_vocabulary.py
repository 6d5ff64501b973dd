"""A show's vocabulary through the real pipeline (WhisperX tiny.en, FFmpeg, the caption writers).

Names the bundled model gets wrong on its own ("Siobhan O'Neill", "Kyiv", "Nkechi Okafor", read by
the piper neural voice) come out spelt right in the JSON transcript and the SRT once the batch gives
them as its vocabulary; the same process captioning without a vocabulary right after gets no trace
of it; and on news speech without those names the vocabulary does not make recognition worse.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bench.conversation import PIPER
from bench.measure import wer
from bench.media import NEWS_SCRIPT
from bench.vocabulary import make_voiced_clip, names_found, spelt, timing_shift
from core.services import pipeline
from core.services.transcription import Word

pytestmark = pytest.mark.system

NAMES = ("Siobhan O'Neill", "Kyiv", "Nkechi Okafor")
SENTENCES = ("Our reporter Siobhan O'Neill is in Kyiv tonight.",
             "The finance minister, Nkechi Okafor, spoke to reporters this morning.")


def _caption(source: Path, out: Path, vocabulary: list[str] | None) -> tuple[dict, str]:
    options = pipeline.CaptionOptions(model="tiny.en", language="en", burn_in=False, mov=False,
                                      vocabulary=vocabulary or [])
    record = pipeline.caption_file(source, out, options)
    transcript = json.loads(Path(record["outputs"]["json"]).read_text(encoding="utf-8"))
    return transcript, Path(record["outputs"]["srt"]).read_text(encoding="utf-8")


def _srt_text(srt: str) -> str:
    lines = [line for line in srt.splitlines()
             if line.strip() and not line.strip().isdigit() and "-->" not in line]
    return re.sub(r"<[^>]+>", "", " ".join(lines))


def _words(transcript: dict) -> list[Word]:
    return [Word(w["text"], w["start"], w["end"]) for s in transcript["segments"] for w in s["words"]]


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("vocabulary")
    return {"names": make_voiced_clip(folder, SENTENCES, PIPER, "names.wav"),
            "news": make_voiced_clip(folder, NEWS_SCRIPT, "en-us", "news.wav")}


def test_a_name_the_model_misspells_comes_out_right_with_the_shows_vocabulary(clips, tmp_path):
    taught, taught_srt = _caption(clips["names"], tmp_path / "with", list(NAMES))
    # Same process, same cached model, next job without a vocabulary: nothing of it may carry over.
    plain, plain_srt = _caption(clips["names"], tmp_path / "without", None)

    assert names_found(taught["text"], NAMES) == list(NAMES), taught["text"]
    assert names_found(_srt_text(taught_srt), NAMES) == list(NAMES), taught_srt
    assert taught["vocabulary"] == list(NAMES)
    words = " ".join(w.text for w in _words(taught))
    assert spelt("Siobhan O'Neill") in spelt(words) and "O'Neill, Kyiv, Nkechi" not in taught["text"]

    assert names_found(plain["text"], NAMES) == [], plain["text"]
    assert names_found(_srt_text(plain_srt), NAMES) == [], plain_srt
    assert "vocabulary" not in plain


def test_the_vocabulary_neither_worsens_other_speech_nor_moves_its_timing(clips, tmp_path):
    plain, _ = _caption(clips["news"], tmp_path / "without", None)
    taught, taught_srt = _caption(clips["news"], tmp_path / "with", list(NAMES))
    script = " ".join(NEWS_SCRIPT)

    assert wer(script, taught["text"]) <= wer(script, plain["text"]), (plain["text"], taught["text"])
    assert wer(script, _srt_text(taught_srt)) <= wer(script, plain["text"]) + 1e-9
    assert names_found(taught["text"], NAMES) == []          # no name forced into speech without it

    shift = timing_shift(_words(plain), _words(taught))
    assert shift["words"] >= 0.9 * len(script.split())
    assert shift["median"] <= 0.02 and shift["max"] <= 0.25, shift
