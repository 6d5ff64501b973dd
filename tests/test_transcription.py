"""The transcription step's speed tuning must not change what WhisperX finds.

Our pipeline runs pyannote's VAD windows 8 at a time on CPU instead of 32
(models.CPU_VAD_BATCH, about 25% faster here).  Each window is scored on its
own, so the speech chunks WhisperX decodes must be exactly the ones it finds
with its default batch.
"""

from __future__ import annotations

import numpy as np
import pytest

from bench.media import NEWS_SCRIPT, make_speech_clip
from core.services import media, models


@pytest.fixture(scope="module")
def news_audio(tmp_path_factory) -> np.ndarray:
    clip = make_speech_clip(tmp_path_factory.mktemp("vad"), NEWS_SCRIPT, size="320x240")
    return media.load_audio(media.probe(clip.path))


def test_tuned_vad_batch_finds_the_same_speech_chunks(news_audio):
    from whisperx.vads.pyannote import Pyannote

    pipeline = models.load_pipeline("tiny.en", "cpu", "int8", 0)
    inference = pipeline.vad_model.vad_pipeline._segmentation
    assert inference.batch_size == models.CPU_VAD_BATCH  # the tuning is applied, not silently skipped

    waveform = {"waveform": Pyannote.preprocess_audio(news_audio), "sample_rate": media.SAMPLE_RATE}
    tuned = pipeline.vad_model(waveform)
    inference.batch_size = 32  # pyannote's default, as raw WhisperX runs it
    try:
        default = pipeline.vad_model(waveform)
    finally:
        inference.batch_size = models.CPU_VAD_BATCH

    assert np.abs(tuned.data - default.data).max() < 1e-5
    params = pipeline._vad_params
    chunks = [Pyannote.merge_chunks(scores, 30, onset=params["vad_onset"], offset=params["vad_offset"])
              for scores in (tuned, default)]
    assert chunks[0] and chunks[0] == chunks[1]
