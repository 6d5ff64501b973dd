"""Speaker-change decisions (core/services/speakers.py) from given embeddings: no model, no audio."""

from __future__ import annotations

import numpy as np
import pytest

from core.services import speakers
from core.services.speakers import Params, Unit, assign_speakers, speech_units, split_segments
from core.services.transcription import Segment, Transcript, Word

DIM = 256


def _voice(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=DIM)
    return v / np.linalg.norm(v)


def _near(base: np.ndarray, seed: int, noise: float = 0.25) -> np.ndarray:
    """An embedding of the voice ``base`` with utterance-to-utterance variation (cosine ~0.9 to base)."""
    v = base + noise * np.random.default_rng(seed).normal(size=DIM) / np.sqrt(DIM)
    return v / np.linalg.norm(v)


def _units(durations: list[float]) -> list[Unit]:
    units, t = [], 0.0
    for i, d in enumerate(durations):
        units.append(Unit(i, i, t, t + d))
        t += d + 0.4
    return units


A, B, C = _voice(1), _voice(2), _voice(3)


def test_two_voices_taking_turns_get_two_speakers_numbered_by_first_appearance():
    voices = [B, A, B, A, A, B]
    units = _units([2.0] * len(voices))
    emb = np.stack([_near(v, i) for i, v in enumerate(voices)])
    assert assign_speakers(units, emb) == [0, 1, 0, 1, 1, 0]


def test_a_single_voice_never_changes_even_with_outlier_utterances():
    rng = np.random.default_rng(5)
    emb = np.stack([_near(A, 100 + i, noise=rng.uniform(0.1, 0.6)) for i in range(200)])
    durations = list(rng.uniform(0.3, 4.0, size=200))
    assert set(assign_speakers(_units(durations), emb)) == {0}


def test_a_voice_heard_too_briefly_is_not_a_new_speaker():
    # one long-enough utterance of B (under min_speaker_seconds in total) amid A: no change
    voices = [A, A, B, A, A]
    units = _units([2.0, 2.0, 1.5, 2.0, 2.0])
    emb = np.stack([_near(v, i) for i, v in enumerate(voices)])
    assert assign_speakers(units, emb, Params(min_speaker_seconds=3.0)) == [0] * 5


def test_a_short_turn_changes_speaker_only_when_clearly_the_other_voice():
    voices = [A, B, A, B]
    units = _units([2.5, 2.5, 2.5, 2.5])
    clear = np.stack([_near(v, i) for i, v in enumerate(voices)] + [_near(B, 50)] + [_near(A, 51)])
    short = units + [Unit(4, 4, 20.0, 20.4), Unit(5, 5, 21.0, 23.0)]
    # "Yes." sounds like B after A's... previous unit is B (index 3): it stays B, then A again
    assert assign_speakers(short, clear) == [0, 1, 0, 1, 1, 0]
    # a short unit halfway between the voices keeps the previous speaker
    between = (A + B) / np.linalg.norm(A + B)
    ambiguous = np.vstack([clear[:4], between[None], clear[5:]])
    labels = assign_speakers(short, ambiguous)
    assert labels[4] == labels[3]


def test_short_turn_of_the_other_voice_is_marked():
    units = _units([2.5, 0.5, 2.5, 2.5, 2.5, 2.5])  # A, "Yes." by B, A, B, A, B
    emb = np.stack([_near(A, 1), _near(B, 2, noise=0.3), _near(A, 3), _near(B, 4), _near(A, 5), _near(B, 6)])
    assert assign_speakers(units, emb) == [0, 1, 0, 1, 0, 1]


def test_units_without_audio_keep_the_previous_speaker():
    units = _units([2.5, 2.5, 2.5, 1.0, 2.5])
    emb = np.stack([_near(A, 1), _near(B, 2), _near(A, 3), np.zeros(DIM), _near(B, 4)])
    emb = np.vstack([emb, _near(B, 5)[None]])
    units.append(Unit(5, 5, 30.0, 32.5))
    assert assign_speakers(units, emb) == [0, 1, 0, 0, 1, 1]


def test_no_units_and_one_unit():
    assert assign_speakers([], np.zeros((0, DIM))) == []
    assert assign_speakers(_units([3.0]), _near(A, 1)[None]) == [0]


def _word(text: str, start: float, dur: float = 0.3) -> Word:
    return Word(text, start, start + dur)


def test_units_end_at_sentence_ends_and_pauses():
    words = [_word("Good", 0.0), _word("evening.", 0.35), _word("Yes", 0.8), _word("indeed", 1.4),
             _word("it", 1.75), _word("is", 2.1)]
    # "indeed" follows a 0.3 s gap (kept), "Yes" starts after a sentence end
    units = speech_units(words, pause=0.5)
    assert [(u.first, u.last) for u in units] == [(0, 1), (2, 5)]
    words[3] = _word("indeed", 1.7)
    assert [(u.first, u.last) for u in speech_units(words, pause=0.5)] == [(0, 1), (2, 2), (3, 5)]


def test_segments_are_split_at_changes_and_keep_every_word_in_order():
    words = [_word(t, i * 0.5) for i, t in enumerate("Hello there. How are you? Fine thanks. Good.".split())]
    segments = [Segment(words[0].start, words[4].end, " ".join(w.text for w in words[:5]), words[:5]),
                Segment(words[5].start, words[-1].end, " ".join(w.text for w in words[5:]), words[5:])]
    labels = [0, 0, 1, 1, 1, 0, 0, 1]
    out = split_segments(segments, labels)
    assert [w.text for s in out for w in s.words] == [w.text for w in words]
    assert [(s.text, s.speaker) for s in out] == [("Hello there.", 0), ("How are you?", 1),
                                                   ("Fine thanks.", 0), ("Good.", 1)]
    assert [w.speaker for s in out for w in s.words] == labels
    assert out[1].start == words[2].start and out[1].end == words[4].end
    assert all(w.speaker is None for w in words), "the input words are not modified"


def test_label_speakers_on_silence_marks_nobody_and_keeps_the_transcript():
    words = [_word("One.", 0.2), _word("Two.", 1.5)]
    transcript = Transcript("en", 3.0, [Segment(0.2, 1.8, "One. Two.", words)], "test")
    out = speakers.label_speakers(transcript, np.zeros(16000 * 3, dtype=np.float32))
    assert [w.speaker for w in out.words] == [0, 0]
    assert [s.speaker for s in out.segments] == [0]
    assert out.text == "One. Two."
    assert speakers.label_speakers(Transcript("en", 1.0, [], "test"), np.zeros(16000)).segments == []


@pytest.mark.parametrize("seconds", [0.05, 1.0])
def test_label_speakers_on_tiny_audio_does_not_fail(seconds):
    words = [_word("Hi.", 0.0, 0.04)]
    transcript = Transcript("en", seconds, [Segment(0.0, 0.04, "Hi.", words)], "test")
    out = speakers.label_speakers(transcript, np.full(int(16000 * seconds), 0.01, dtype=np.float32))  # 0.04 s of speech
    assert [w.speaker for w in out.words] == [0]


def _close_to(base: np.ndarray, distance: float, seed: int) -> np.ndarray:
    """A voice whose embedding lies ``distance`` (cosine) from ``base``: two similar male voices are ~0.12."""
    other = _voice(seed)
    other -= (other @ base) * base
    other /= np.linalg.norm(other)
    return (1 - distance) * base + np.sqrt(1 - (1 - distance) ** 2) * other


def test_two_close_voices_are_told_apart_when_they_take_many_turns():
    # inside the 0.25 clustering cut, yet each unit is far nearer its own voice than the other
    close = _close_to(A, 0.12, seed=9)
    voices = [A, close] * 10
    emb = np.stack([_near(v, 200 + i, noise=0.3) for i, v in enumerate(voices)])
    assert assign_speakers(_units([2.5] * len(voices)), emb) == [0, 1] * 10
    # with too few turns to trust such a small difference, nothing is marked
    assert set(assign_speakers(_units([2.5] * 6), emb[:6])) == {0}


@pytest.mark.parametrize("count", [12, 20, 40, 80])
def test_a_single_voice_is_not_split_in_two_however_many_units(count):
    rng = np.random.default_rng(count)
    emb = np.stack([_near(A, 300 + i, noise=rng.uniform(0.2, 0.4)) for i in range(count)])
    assert set(assign_speakers(_units(list(rng.uniform(1.0, 4.0, size=count))), emb)) == {0}
