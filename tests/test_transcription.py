"""The transcription step: its speed tuning must not change what WhisperX finds, and a show's
vocabulary reaches the decoder bounded, for one call only.

On CPU our pipeline scores pyannote's VAD windows in other batch sizes than
WhisperX does (models.CPU_VAD_BATCH, CPU_SINCNET_BATCH; about 30% faster
here).  Each window is scored on its own, so the scores, and the speech
chunks WhisperX decodes, must be exactly the ones its own VAD finds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from bench.media import NEWS_SCRIPT, make_speech_clip
from core.services import media, models, transcription


@pytest.fixture(scope="module")
def whisper_tokenizer():
    """The bundled tiny.en model's tokenizer (a JSON file: no model is loaded)."""
    import tokenizers

    return tokenizers.Tokenizer.from_file(str(Path(models.resolve_model("tiny.en")) / "tokenizer.json"))


def _tokens(tokenizer, text: str) -> int:
    return len(tokenizer.encode(" " + text, add_special_tokens=False).ids)


def test_a_long_vocabulary_is_cut_to_whole_terms_that_fit_whispers_prompt(whisper_tokenizer):
    long_names = [f"Aleksandra Wojciechowska-Przybylska {n}" for n in range(40)]
    terms = ["Siobhan O'Neill", "Kyiv", *long_names, "Nkechi Okafor"]

    prompt, used, dropped = transcription.vocabulary_prompt(terms, lambda t: _tokens(whisper_tokenizer, t))

    assert _tokens(whisper_tokenizer, prompt) <= transcription.PROMPT_TOKENS
    assert used[:2] == ["Siobhan O'Neill", "Kyiv"] and dropped          # the first terms matter most
    assert "Nkechi Okafor" in used                                        # a short term after the cut still fits
    assert sorted(used + dropped) == sorted(terms)
    assert used == [t for t in terms if t in used] and dropped == [t for t in terms if t in dropped]  # order kept
    assert all(term in prompt for term in used) and not any(term in prompt for term in dropped)


def test_a_short_vocabulary_becomes_one_prompt_in_its_own_order(whisper_tokenizer):
    prompt, used, dropped = transcription.vocabulary_prompt(["Kyiv", "Siobhan O'Neill"],
                                                            lambda t: _tokens(whisper_tokenizer, t))
    assert prompt == "Kyiv, Siobhan O'Neill." and used == ["Kyiv", "Siobhan O'Neill"] and dropped == []
    assert transcription.vocabulary_prompt([], len) == ("", [], [])


@dataclass(frozen=True)
class _Options:                    # the fields of faster-whisper's TranscriptionOptions that matter here
    beam_size: int = 5
    initial_prompt: str | None = None


class _Model:
    def __init__(self, tokenizer):
        self.hf_tokenizer = tokenizer

    def generate_segment_batched(self, *args, **kwargs):  # pragma: no cover - the fake decoder never calls it
        raise AssertionError

    def encode(self, *args):  # pragma: no cover
        raise AssertionError


class _SharedPipeline:
    """A cached pipeline as WhisperX keeps it: options on the object, shared by every job of a process."""

    def __init__(self, tokenizer, fail: bool = False):
        self.model, self.options, self.fail = _Model(tokenizer), _Options(), fail
        self.vad_model, self._vad_params = object(), {"vad_onset": 0.5, "vad_offset": 0.363}
        self.prompts: list[str | None] = []

    def transcribe(self, audio, **kwargs):
        self.prompts.append(self.options.initial_prompt)
        if self.fail:
            raise RuntimeError("decoder ran out of memory")
        return {"language": "en", "segments": []}


def test_the_vocabulary_applies_to_one_call_and_is_recorded(whisper_tokenizer):
    pipeline = _SharedPipeline(whisper_tokenizer)
    original = pipeline.options
    silence = np.zeros(16000, np.float32)

    first = transcription.transcribe(pipeline, silence, language="en", vocabulary=["Kyiv", "Siobhan O'Neill"])
    second = transcription.transcribe(pipeline, silence, language="en")

    assert pipeline.prompts == ["Kyiv, Siobhan O'Neill.", None]
    assert pipeline.options is original
    assert first.as_dict()["vocabulary"] == ["Kyiv", "Siobhan O'Neill"]
    assert "vocabulary" not in second.as_dict() and "vocabulary_dropped" not in second.as_dict()


def test_the_shared_pipeline_gets_its_options_back_when_decoding_fails(whisper_tokenizer):
    pipeline = _SharedPipeline(whisper_tokenizer, fail=True)
    original, vad = pipeline.options, pipeline.vad_model

    with pytest.raises(RuntimeError, match="out of memory"):
        transcription.transcribe(pipeline, np.zeros(16000, np.float32), language="en", vocabulary=["Kyiv"])

    assert pipeline.prompts == ["Kyiv."]
    assert pipeline.options is original and pipeline.options.initial_prompt is None
    assert pipeline.vad_model is vad


def test_terms_beyond_the_prompt_are_logged_and_recorded(whisper_tokenizer, caplog):
    pipeline = _SharedPipeline(whisper_tokenizer)
    terms = [f"Bartholomew Featherstonehaugh-Cholmondeley {n}" for n in range(30)]

    with caplog.at_level(logging.WARNING, logger=transcription.__name__):
        result = transcription.transcribe(pipeline, np.zeros(16000, np.float32), language="en", vocabulary=terms)

    data = result.as_dict()
    assert data["vocabulary"] == terms[:len(data["vocabulary"])] and data["vocabulary_dropped"]
    assert data["vocabulary"] + data["vocabulary_dropped"] == terms
    assert _tokens(whisper_tokenizer, pipeline.prompts[0]) <= transcription.PROMPT_TOKENS
    assert any("left out" in r.getMessage() and terms[-1] in r.getMessage() for r in caplog.records)


@pytest.fixture(scope="module")
def news_audio(tmp_path_factory) -> np.ndarray:
    clip = make_speech_clip(tmp_path_factory.mktemp("vad"), NEWS_SCRIPT, size="320x240")
    return media.load_audio(media.probe(clip.path))


@pytest.mark.system
def test_tuned_vad_finds_the_same_speech_chunks_as_whisperx(news_audio):
    from whisperx.vads.pyannote import Pyannote

    pipeline = models.load_pipeline("tiny.en", "cpu", "int8", 0)
    params = pipeline._vad_params
    assert pipeline.vad_model.vad_pipeline._segmentation.batch_size == models.CPU_VAD_BATCH  # tuning applied
    stock = Pyannote("cpu", vad_onset=params["vad_onset"], vad_offset=params["vad_offset"])  # as WhisperX loads it
    assert stock.vad_pipeline._segmentation.batch_size != models.CPU_VAD_BATCH

    waveform = {"waveform": Pyannote.preprocess_audio(news_audio), "sample_rate": media.SAMPLE_RATE}
    tuned, default = pipeline.vad_model(waveform), stock(waveform)

    assert tuned.data.shape == default.data.shape
    assert np.abs(tuned.data - default.data).max() < 1e-6
    chunks = [Pyannote.merge_chunks(scores, 30, onset=params["vad_onset"], offset=params["vad_offset"])
              for scores in (tuned, default)]
    assert chunks[0] and chunks[0] == chunks[1]
