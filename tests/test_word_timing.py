"""Pure word-timing functions (core/services/word_timing.py) on made-up audio."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.services.word_timing import quiet_gaps, refine_turn_starts, snap_to_speech

RATE = 16000


@dataclass
class W:
    text: str
    start: float
    end: float
    probability: float = 0.9


def _audio(spans, total=6.0, noise=0.0, seed=1):
    """Tones at -12 dBFS over ``spans``; pink-ish noise (``noise`` rms) everywhere."""
    rng = np.random.default_rng(seed)
    audio = rng.normal(0, noise, int(total * RATE)) if noise else np.zeros(int(total * RATE))
    t = np.arange(int(total * RATE)) / RATE
    for a, b in spans:
        i, j = int(a * RATE), int(b * RATE)
        audio[i:j] += 0.35 * np.sin(2 * np.pi * 220 * t[i:j])
    return audio.astype(np.float32)


def test_quiet_gaps_are_found_under_a_steady_noise_bed():
    audio = _audio([(0.5, 2.0), (2.5, 4.0)], noise=0.01)
    gaps = quiet_gaps(audio)
    assert any(abs(g0 - 2.0) < 0.03 and abs(g1 - 2.5) < 0.03 for g0, g1 in gaps), gaps


def test_quiet_gaps_unchanged_on_clean_audio():
    gaps = quiet_gaps(_audio([(0.5, 2.0), (2.5, 4.0)]))
    assert [(round(a, 2), round(b, 2)) for a, b in gaps] == [(0.0, 0.5), (2.0, 2.5), (4.0, 6.0)]


def test_turn_start_after_a_short_pause_moves_to_the_pause_end():
    audio = _audio([(0.5, 2.0), (2.15, 3.0)])  # 0.15 s between turns: shorter than quiet_gaps takes
    words = [W("Right.", 0.5, 2.0), W("I", 2.45, 2.6), W("will", 2.6, 3.0)]
    refine_turn_starts(words, audio, regions=[(0.5, 3.0)])
    assert abs(words[1].start - 2.15) <= 0.02
    assert words[0].end <= 2.0 + 0.02


def test_word_inside_a_sentence_is_left_alone():
    audio = _audio([(0.5, 1.0), (1.2, 2.0)])
    words = [W("the", 0.5, 1.0), W("heating", 1.4, 2.0)]
    refine_turn_starts(words, audio)
    assert words[1].start == 1.4


def test_overlapping_turn_starts_at_the_previous_words_end():
    audio = _audio([(0.5, 2.0), (1.85, 2.6)])  # no pause: the second voice starts under the first
    words = [W("help.", 1.6, 1.95), W("Goodbye.", 2.35, 2.35)]
    refine_turn_starts(words, audio)
    assert words[1].start == 1.95


def test_short_unsure_first_word_snaps_further_than_max_shift():
    weak = [W("Hello?", 1.8, 1.95, probability=0.3)]
    sure = [W("Hello?", 2.2, 2.5, probability=0.95)]
    snap_to_speech(weak, [(1.0, 2.5)], max_shift=0.5)
    snap_to_speech(sure, [(1.0, 2.6)], max_shift=0.5)
    assert weak[0].start == 1.0 and sure[0].start == 2.2
