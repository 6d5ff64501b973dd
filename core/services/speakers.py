"""Who speaks when: a speaker id for every word, and segments split where the speaker changes.

The words are grouped into units at sentence ends and pauses (a change of
speaker is only ever decided there).  Each unit's speech is embedded with
Resemblyzer's pretrained GE2E speaker encoder (shipped inside its wheel, CPU,
loaded once per process).  Units long enough for a trustworthy embedding are
clustered (average linkage on cosine distance); a cluster with too little
speech is not a speaker.  Two voices closer than the clustering cut (similar
male voices) are found by splitting the long units in two, accepted only when
two tests that one voice's units did not pass together on the calibration set
both agree.  Shorter units ("Yes.") join another speaker only
when they sound more like that speaker than like the one before them.
Everything errs towards "same speaker": a missing ">>" is a small loss, a
false one tells the viewer someone else is talking.

Thresholds were calibrated on generated two-voice conversations and single
voices and validated on held-out ones (``python -m bench.speakers``).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace

import numpy as np

from .transcription import SENTENCE_END, Segment, Transcript, Word

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
FRAMES_PER_SECOND = 100          # Resemblyzer's mel hop is 10 ms
PARTIAL_FRAMES = 160             # its partial utterance: 1.6 s
EMBEDDING_SIZE = 256
TARGET_DBFS = -30.0              # the loudness Resemblyzer's preprocess_wav normalises to


@dataclass(frozen=True)
class Params:
    # Calibration set (bench/speakers.py): one voice's units lie within 0.08 (median) to 0.30 (worst)
    # cosine distance of each other; two voices' centroids 0.28-0.46 apart.
    unit_pause: float = 0.3          # s between words that also ends a unit (turn gaps are 0.2-0.8 s)
    reliable_seconds: float = 1.0    # units at least this long are clustered
    cluster_distance: float = 0.25   # average-linkage cut (1 - cosine similarity)
    min_speaker_seconds: float = 3.0  # less clustered speech than this is not a speaker
    short_margin: float = 0.05       # how much closer a unit must be to another speaker than to the last one
    # Two voices closer than cluster_distance (two male espeak variants lie 0.12-0.13 apart) are still
    # told apart when the long units split cleanly in two: see _split_close_voices.  On the calibration
    # set no window of 12-60 units of one voice passed both tests; two close voices passed both.
    close_min_units: int = 12
    close_separation: float = 9.0    # halves' centroid distance / spread, times sqrt(units)
    close_cross_check: float = 5.0   # separation of one half of the units along the other half's split
    close_shuffles: int = 5


DEFAULTS = Params()


@dataclass
class Unit:
    first: int          # index of its first word in the transcript's word list
    last: int           # index of its last word (inclusive)
    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


def speech_units(words: list[Word], pause: float = DEFAULTS.unit_pause) -> list[Unit]:
    """Runs of words ending at a sentence end or a pause: the only places a speaker may change."""
    units: list[Unit] = []
    first = 0
    for i, w in enumerate(words):
        gap = words[i + 1].start - w.end if i + 1 < len(words) else 0.0
        if i + 1 == len(words) or SENTENCE_END.search(w.text) or gap >= pause:
            units.append(Unit(first, i, words[first].start, max(words[first].start, w.end)))
            first = i + 1
    return units


# --------------------------------------------------------------------------- embeddings

_encoder = None
_encoder_lock = threading.Lock()


def encoder():
    """Resemblyzer's VoiceEncoder, loaded once per process on the CPU."""
    global _encoder
    with _encoder_lock:
        if _encoder is None:
            from resemblyzer import VoiceEncoder

            _encoder = VoiceEncoder(device="cpu", verbose=False)
    return _encoder


def _mel(audio: np.ndarray) -> np.ndarray:
    from resemblyzer.audio import wav_to_mel_spectrogram

    return wav_to_mel_spectrogram(np.asarray(audio, dtype=np.float32))  # (frames, 40), linear power


def _spans(audio: np.ndarray, units: list[Unit]) -> list[tuple[int, int, int, float]]:
    """(unit index, first mel frame, end mel frame, gain to TARGET_DBFS) of the units that have sound."""
    spans = []
    total = len(audio) * FRAMES_PER_SECOND // SAMPLE_RATE
    for index, unit in enumerate(units):
        a = max(0, int(unit.start * FRAMES_PER_SECOND))
        b = min(total, int(np.ceil(unit.end * FRAMES_PER_SECOND)))
        if b - a < 10:  # under 0.1 s: nothing to go on
            continue
        piece = audio[a * SAMPLE_RATE // FRAMES_PER_SECOND:b * SAMPLE_RATE // FRAMES_PER_SECOND]
        rms = float(np.sqrt(np.mean(np.square(piece, dtype=np.float64))))
        if rms >= 1e-5:
            spans.append((index, a, b, 10 ** (TARGET_DBFS / 20) / rms))
    return spans


def embed_units(audio: np.ndarray, units: list[Unit]) -> np.ndarray:
    """One L2-normalised embedding per unit (a row of zeros where a unit has no sound).

    Each unit's mel spectrogram is computed on its own (memory stays flat however long the programme:
    the whole programme's STFT took ~2.5 GB an hour), its frames scaled to a common loudness (mel power
    scales with the square of the gain) and cut into 1.6 s partials, run through the encoder's LSTM in
    batches; a shorter unit is one partial of its own length."""
    out = np.zeros((len(units), EMBEDDING_SIZE), dtype=np.float32)
    spans = _spans(audio, units)
    if not spans:
        return out
    import torch

    model = encoder()
    hop = SAMPLE_RATE // FRAMES_PER_SECOND
    sums = np.zeros_like(out)
    batch: list[np.ndarray] = []
    owners: list[int] = []

    def flush() -> None:
        if batch:
            for owner, emb in zip(owners, model(torch.from_numpy(np.stack(batch))).numpy()):
                sums[owner] += emb
            batch.clear()
            owners.clear()

    with torch.inference_mode():
        for index, a, b, gain in spans:
            frames = _mel(audio[a * hop:b * hop])[:b - a] * np.float32(gain * gain)
            n = len(frames)
            if n < PARTIAL_FRAMES:
                out[index] = model(torch.from_numpy(np.ascontiguousarray(frames[None])))[0].numpy()
                continue
            starts = list(range(0, n - PARTIAL_FRAMES + 1, PARTIAL_FRAMES // 2))
            if starts[-1] != n - PARTIAL_FRAMES:
                starts.append(n - PARTIAL_FRAMES)
            for first in starts:
                batch.append(frames[first:first + PARTIAL_FRAMES])
                owners.append(index)
                if len(batch) == 256:
                    flush()
        flush()
    for owner in np.flatnonzero(np.abs(sums).sum(axis=1)):
        out[owner] = sums[owner] / max(np.linalg.norm(sums[owner]), 1e-9)
    return out


# --------------------------------------------------------------------------- decisions


def _cluster(embeddings: np.ndarray, max_distance: float) -> np.ndarray:
    """Average-linkage clusters of unit embeddings cut at ``max_distance`` (cosine)."""
    if len(embeddings) == 1:
        return np.zeros(1, dtype=int)
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import pdist

    tree = linkage(pdist(embeddings, "cosine"), method="average")
    return fcluster(tree, t=max_distance, criterion="distance") - 1


def _halves(embeddings: np.ndarray) -> np.ndarray:
    """0/1 per row: the best two-way (Ward) split once the common part of all the voices is removed."""
    from scipy.cluster.hierarchy import fcluster, linkage

    centred = embeddings - embeddings.mean(axis=0)
    centred /= np.maximum(np.linalg.norm(centred, axis=1, keepdims=True), 1e-9)
    return fcluster(linkage(centred, method="ward"), t=2, criterion="maxclust") - 1


def _unit_mean(rows: np.ndarray) -> np.ndarray:
    mean = rows.mean(axis=0)
    return mean / max(np.linalg.norm(mean), 1e-9)


def _cross_check(train: np.ndarray, test: np.ndarray) -> float:
    """How far apart ``test`` falls along the split found on ``train`` (gap between the sides' means
    over their spread).  Noise splits along a direction of its own that other units do not follow."""
    halves = _halves(train)
    if min(np.bincount(halves, minlength=2)) < 2:
        return 0.0
    direction = train[halves == 1].mean(axis=0) - train[halves == 0].mean(axis=0)
    middle = (train[halves == 1].mean(axis=0) + train[halves == 0].mean(axis=0)) / 2
    side = (test - middle) @ (direction / max(np.linalg.norm(direction), 1e-9))
    low, high = side[side < 0], side[side >= 0]
    if len(low) < 2 or len(high) < 2:
        return 0.0
    return float((high.mean() - low.mean()) / np.sqrt((low.var() + high.var()) / 2 + 1e-12))


def _split_close_voices(units: list[Unit], embeddings: np.ndarray, reliable: list[int],
                        params: Params) -> tuple[list[np.ndarray], dict[int, int]]:
    """Two speakers' centroids and long-unit labels when the long units split cleanly in two, else none.

    Any set of units splits somehow, so two tests that noise rarely passes together must agree: the
    halves lie far apart for their spread (scaled by sqrt(units), as noise splits shrink with more
    units), and the split found on half of the units also separates the other half, for every one of a
    few fixed shufflings."""
    if len(reliable) < params.close_min_units:
        return [], {}
    rows = embeddings[reliable]
    halves = _halves(rows)
    if any(sum(units[reliable[k]].duration for k in np.flatnonzero(halves == c)) < params.min_speaker_seconds
           for c in (0, 1)):
        return [], {}
    centroids = [_unit_mean(rows[halves == c]) for c in (0, 1)]
    spread = np.mean(np.concatenate([1 - rows[halves == c] @ centroids[c] for c in (0, 1)]))
    separation = (1 - float(centroids[0] @ centroids[1])) / max(float(spread), 1e-6) * np.sqrt(len(rows))
    # fixed shuffles, not odd/even units (turns that alternate unit by unit would put one voice in each
    # half); the worst of several, as one lucky halving can make noise look consistent
    cross = np.inf
    for seed in range(params.close_shuffles):
        order = np.random.default_rng(seed).permutation(len(rows))
        first, second = rows[order[::2]], rows[order[1::2]]
        cross = min(cross, _cross_check(first, second), _cross_check(second, first))
    if separation < params.close_separation or cross < params.close_cross_check:
        return [], {}
    return centroids, {reliable[k]: int(halves[k]) for k in range(len(reliable))}


def assign_speakers(units: list[Unit], embeddings: np.ndarray, params: Params = DEFAULTS) -> list[int]:
    """A speaker per unit, numbered 0, 1, ... by first appearance.

    Long units are clustered; clusters with less than ``min_speaker_seconds`` of
    speech are dropped; with fewer than two speakers left, the long units may
    still split into two close voices, otherwise nothing changes.
    Long units of a kept cluster keep their cluster; any other unit takes the
    speaker whose centroid it is nearest only if that is ``short_margin``
    nearer than the previous unit's speaker, otherwise the previous speaker."""
    if not units:
        return []
    has_audio = np.linalg.norm(embeddings, axis=1) > 0.5
    reliable = [i for i, u in enumerate(units) if has_audio[i] and u.duration >= params.reliable_seconds]
    centroids: list[np.ndarray] = []
    label: dict[int, int] = {}
    if reliable:
        clusters = _cluster(embeddings[reliable], params.cluster_distance)
        for c in sorted(set(clusters.tolist())):
            members = [reliable[k] for k in np.flatnonzero(clusters == c)]
            if sum(units[i].duration for i in members) < params.min_speaker_seconds:
                continue
            mean = embeddings[members].mean(axis=0)
            for i in members:
                label[i] = len(centroids)
            centroids.append(mean / max(np.linalg.norm(mean), 1e-9))
    if len(centroids) < 2:
        centroids, label = _split_close_voices(units, embeddings, reliable, params)
    if len(centroids) < 2:
        return [0] * len(units)
    sims = embeddings @ np.stack(centroids).T
    raw: list[int] = []
    previous: int | None = None
    for i in range(len(units)):
        if i in label:
            choice = label[i]
        elif not has_audio[i]:
            choice = previous if previous is not None else 0
        else:
            best = int(np.argmax(sims[i]))
            if previous is None or (best != previous and sims[i, best] - sims[i, previous] >= params.short_margin):
                choice = best
            else:
                choice = previous
        raw.append(choice)
        previous = choice
    order: dict[int, int] = {}
    return [order.setdefault(s, len(order)) for s in raw]


def speakers_by_word(words: list, units: list[Unit], unit_speakers: list[int]) -> list[int]:
    labels = [0] * len(words)
    for unit, speaker in zip(units, unit_speakers):
        labels[unit.first:unit.last + 1] = [speaker] * (unit.last - unit.first + 1)
    return labels


def split_segments(segments: list[Segment], speakers_by_word: list[int]) -> list[Segment]:
    """The segments cut wherever the speaker changes; every word kept, in order, each tagged."""
    out: list[Segment] = []
    index = 0
    for seg in segments:
        run: list[Word] = []
        for word in seg.words:
            tagged = replace(word, speaker=speakers_by_word[index])
            index += 1
            if run and run[-1].speaker != tagged.speaker:
                out.append(_segment(run))
                run = []
            run.append(tagged)
        if run:
            out.append(_segment(run))
    return out


def _segment(words: list[Word]) -> Segment:
    return Segment(words[0].start, words[-1].end, " ".join(w.text for w in words), words, words[0].speaker)


def label_speakers(transcript: Transcript, audio: np.ndarray, params: Params = DEFAULTS) -> Transcript:
    """The transcript with a speaker on every word and segment, segments split at speaker changes."""
    words = transcript.words
    if not words:
        return transcript
    units = speech_units(words, params.unit_pause)
    try:
        embeddings = embed_units(audio, units)
    except Exception:  # noqa: BLE001 - the marks are an aid: without the encoder, one speaker throughout
        log.warning("speaker embedding failed; no speaker changes marked", exc_info=True)
        embeddings = np.zeros((len(units), EMBEDDING_SIZE), dtype=np.float32)
    labels = speakers_by_word(words, units, assign_speakers(units, embeddings, params))
    return replace(transcript, segments=split_segments(transcript.segments, labels))
