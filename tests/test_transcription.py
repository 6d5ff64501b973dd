"""The transcription step's speed tuning must not change what WhisperX finds.

On CPU our pipeline scores pyannote's VAD windows in other batch sizes than
WhisperX does (models.CPU_VAD_BATCH, CPU_SINCNET_BATCH; about 30% faster
here).  Each window is scored on its own, so the scores, and the speech
chunks WhisperX decodes, must be exactly the ones its own VAD finds.
"""

from __future__ import annotations

import numpy as np
import pytest

from bench.media import NEWS_SCRIPT, make_speech_clip
from core.services import media, models

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def news_audio(tmp_path_factory) -> np.ndarray:
    clip = make_speech_clip(tmp_path_factory.mktemp("vad"), NEWS_SCRIPT, size="320x240")
    return media.load_audio(media.probe(clip.path))


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
