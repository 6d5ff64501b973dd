"""Speech to timed words with WhisperX.

WhisperX decodes the text (VAD-chunked, batched).  Word timings then come from
``whisperx.align`` when a wav2vec2 alignment model is configured and loads, or
otherwise from the already loaded Whisper model: its cross-attention aligns the
text WhisperX decoded (CTranslate2 ``align``), so nothing is decoded twice.
A show's vocabulary reaches the decoder as Whisper's initial prompt, for one call only.
Whisper's word starts run early after a pause, so starts that fall in a
non-speech gap are moved to the onset the bundled pyannote VAD found.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from .media import SAMPLE_RATE
from .word_timing import _monotonic, quiet_gaps, refine_turn_starts, snap_to_speech, split_at_pauses

log = logging.getLogger(__name__)

OFFLINE_ALIGNER = "whisper-cross-attention"
LEVEL_ONSETS = "level-onsets"  # sentence starts refined where the pause before them ends (word_timing.py)
# faster-whisper keeps at most max_length // 2 - 1 = 223 prompt tokens (max_length 448) and silently
# cuts the rest from the front; the vocabulary is bounded before that, whole terms at a time.
PROMPT_TOKENS = 223
VAD_SHARE = 0.55  # of the progress: 19 min of speech on 2 cores, tiny.en: VAD 35 s, decode batches 31 s
SENTENCE_END = re.compile(r"[.!?…]['\")\]]*$")


@dataclass
class Word:
    text: str
    start: float
    end: float
    probability: float = 1.0
    speaker: int | None = None      # speakers.py: 0, 1, ... in order of first appearance


@dataclass
class Segment:
    start: float
    end: float
    text: str
    words: list[Word] = field(default_factory=list)
    speaker: int | None = None


@dataclass
class Transcript:
    language: str
    duration: float
    segments: list[Segment]
    word_timing: str
    speech_regions: list[tuple[float, float]] = field(default_factory=list)
    vocabulary: list[str] = field(default_factory=list)          # the terms the decoder was given
    vocabulary_dropped: list[str] = field(default_factory=list)  # asked for, but beyond the prompt's room

    @property
    def words(self) -> list[Word]:
        return [w for seg in self.segments for w in seg.words]

    @property
    def text(self) -> str:
        return " ".join(seg.text for seg in self.segments).strip()

    @property
    def speech_found(self) -> bool:
        return bool(self.words)

    def as_dict(self) -> dict:
        data = asdict(self)
        data.pop("speech_regions")
        for key in ("vocabulary", "vocabulary_dropped"):
            if not data[key]:
                data.pop(key)
        data["text"] = self.text
        data["speech_found"] = self.speech_found
        return data


class _RecordingVad:
    """Wraps the pipeline's VAD so the frame scores WhisperX computes are kept, with the chunks
    it will decode (merged as WhisperX merges them: Pyannote.merge_chunks for non-Vad objects),
    and reports progress: pyannote's segmentation calls a hook after each batch of windows."""

    def __init__(self, inner, vad_params: dict, chunk_size: int = 30, progress: Callable[[float], None] | None = None):
        self.inner, self.vad_params, self.chunk_size, self.progress = inner, vad_params, chunk_size, progress
        self.scores = None
        self.chunks: list[dict] = []

    def __call__(self, *args, **kwargs):
        vad_pipeline = getattr(self.inner, "vad_pipeline", None)
        segmentation = getattr(vad_pipeline, "_segmentation", None)
        if self.progress and callable(segmentation):
            vad_pipeline._segmentation = lambda file, **_: segmentation(file, hook=self._hook)
        try:
            self.scores = self.inner(*args, **kwargs)
        finally:
            if segmentation is not None:
                vad_pipeline._segmentation = segmentation
        self.chunks = []
        if self.scores is not None:
            from whisperx.vads.pyannote import Pyannote

            with contextlib.suppress(Exception):  # only an optimisation depends on the chunks
                self.chunks = Pyannote.merge_chunks(self.scores, self.chunk_size, onset=self.vad_params["vad_onset"],
                                                    offset=self.vad_params["vad_offset"])
        return self.scores

    def _hook(self, *_, completed: int = 0, total: int = 0, **__) -> None:
        self.progress(VAD_SHARE * (min(1.0, completed / total) if total else 0.0))


def _per_batch(progress: Callable[[float], None], vad: _RecordingVad, batch_size: int) -> Callable[[float], None]:
    """WhisperX's callback (a percentage per chunk) as a share of the transcription.  A batch's chunks come
    back at once and the job's progress writer keeps the first report a second, so only batch ends count."""
    def report(percent: float) -> None:
        total = len(vad.chunks)
        if not total or round(percent * total / 100) % batch_size == 0 or percent >= 100:
            progress(VAD_SHARE + (1.0 - VAD_SHARE) * percent / 100.0)

    return report


class _AlignWhileDecoding:
    """Aligns each batch WhisperX decodes with the encoder output the decode
    just computed, so word timing costs no second encoder pass.

    It wraps the model's ``generate_segment_batched`` and ``encode`` for the
    duration of one transcription; if anything does not line up, ``words`` is
    None and the caller aligns afterwards instead.
    """

    def __init__(self, model, vad: _RecordingVad):
        self.model, self.vad = model, vad
        self.words: list[Word] | None = []
        self.index = 0

    def __enter__(self):
        model, generate, encode = self.model, self.model.generate_segment_batched, self.model.encode

        def generate_and_align(features, tokenizer, options, *args, **kwargs):
            captured = {}

            def tapped_encode(batch):
                captured["output"] = encode(batch)
                return captured["output"]

            model.encode = tapped_encode
            try:
                result = generate(features, tokenizer, options, *args, **kwargs)
            finally:
                del model.encode
            self._align(result["text"], captured.get("output"), tokenizer, features.shape[0])
            return result

        model.generate_segment_batched = generate_and_align
        return self

    def __exit__(self, *exc):
        del self.model.generate_segment_batched
        return False

    def _align(self, texts, encoder_output, tokenizer, size: int) -> None:
        chunks = self.vad.chunks[self.index:self.index + size]
        self.index += size
        if self.words is None:
            return
        try:
            if encoder_output is None or len(chunks) != size or len(texts) != size:
                raise ValueError("decode batches do not match the VAD chunks")
            rows = [i for i, text in enumerate(texts) if text.strip()]
            if not rows:
                return
            if len(rows) < size:  # align only the chunks that produced text
                import ctranslate2

                encoder_output = ctranslate2.StorageView.from_array(np.ascontiguousarray(np.asarray(encoder_output)[rows]))
            hop = self.model.feature_extractor.hop_length
            tokens = [tokenizer.encode(" " + texts[i].strip()) for i in rows]
            frames = [max(1, min(3000, (int(chunks[i]["end"] * SAMPLE_RATE) - int(chunks[i]["start"] * SAMPLE_RATE)) // hop))
                      for i in rows]
            for i, alignment in zip(rows, self.model.find_alignment(tokenizer, tokens, encoder_output, frames)):
                self.words.extend(_join_pieces(alignment, chunks[i]["start"]))
        except Exception:  # noqa: BLE001 - fall back to aligning after the decode
            log.debug("aligning while decoding failed; aligning afterwards", exc_info=True)
            self.words = None


def speech_regions(scores, onset: float = 0.5, offset: float = 0.363) -> list[tuple[float, float]]:
    """Fine-grained speech regions (before WhisperX merges them into 30 s chunks)."""
    if scores is None:
        return []
    from whisperx.vads.pyannote import Binarize

    timeline = Binarize(onset=onset, offset=offset).__call__(scores).get_timeline()
    return [(float(s.start), float(s.end)) for s in timeline]


def vocabulary_prompt(terms: list[str], count_tokens: Callable[[str], int],
                      limit: int = PROMPT_TOKENS) -> tuple[str, list[str], list[str]]:
    """Whisper's initial prompt for a show's vocabulary: (prompt, terms used, terms dropped).

    The terms are listed as a sentence in the given order (the first ones matter most); a term that
    would take the prompt past ``limit`` tokens is left out, and shorter ones after it still get in."""
    used, dropped = [], []
    for term in terms:
        if count_tokens(_prompt_text([*used, term])) <= limit:
            used.append(term)
        else:
            dropped.append(term)
    return (_prompt_text(used) if used else ""), used, dropped


def _prompt_text(terms: list[str]) -> str:
    return ", ".join(terms) + "."


@contextlib.contextmanager
def _prompted(pipeline, prompt: str):
    """The shared, cached pipeline decodes with ``prompt`` for the duration of one call, then
    with its own options again, whatever happens (the next job must not inherit a vocabulary)."""
    if not prompt:
        yield
        return
    original = pipeline.options
    pipeline.options = dataclasses.replace(original, initial_prompt=prompt)
    try:
        yield
    finally:
        pipeline.options = original


def _show_vocabulary(pipeline, vocabulary: list[str] | None) -> tuple[str, list[str], list[str]]:
    terms = list(vocabulary or [])      # already cleaned (pipeline.clean_vocabulary)
    if not terms:
        return "", [], []
    tokenizer = pipeline.model.hf_tokenizer  # as the decoder encodes it: " " + prompt, no special tokens
    prompt, used, dropped = vocabulary_prompt(
        terms, lambda text: len(tokenizer.encode(" " + text, add_special_tokens=False).ids))
    if dropped:
        log.warning("vocabulary: %d of %d terms fit Whisper's %d-token prompt; left out: %s",
                    len(used), len(terms), PROMPT_TOKENS, ", ".join(dropped))
    return prompt, used, dropped


def transcribe(pipeline, audio: np.ndarray, *, language: str | None, batch_size: int = 8,
               align_model: str = "", device: str = "cpu", vocabulary: list[str] | None = None,
               progress: Callable[[float], None] | None = None) -> Transcript:
    """Transcribe 16 kHz mono audio into sentence segments with word timings.

    ``vocabulary``: a show's names and terms, given to the decoder as its prompt for this call only.
    Word timing is unaffected: the aligners see the decoded text alone, never the prompt."""
    duration = len(audio) / SAMPLE_RATE
    prompt, used, dropped = _show_vocabulary(pipeline, vocabulary)
    vad = _RecordingVad(pipeline.vad_model, pipeline._vad_params, progress=progress)
    pipeline.vad_model = vad
    inline = _AlignWhileDecoding(pipeline.model, vad)
    try:
        with _prompted(pipeline, prompt), inline if not align_model else contextlib.nullcontext():
            result = pipeline.transcribe(audio, batch_size=batch_size, language=language,
                                         progress_callback=_per_batch(progress, vad, batch_size) if progress else None)
    finally:
        pipeline.vad_model = vad.inner
    language = result["language"]
    chunks = [c for c in result["segments"] if c["text"].strip()]
    regions = split_at_pauses(speech_regions(vad.scores), quiet_gaps(audio))
    if not chunks:
        return Transcript(language, duration, [], OFFLINE_ALIGNER, regions, used, dropped)

    words, method = None, OFFLINE_ALIGNER
    if align_model:
        try:
            words = _align_wav2vec2(chunks, audio, language, align_model, device)
            method = f"whisperx.align:{align_model}"
        except Exception as err:  # noqa: BLE001 - the offline aligner is always available
            log.warning("alignment model %s unavailable (%s); using %s", align_model, err, OFFLINE_ALIGNER)
    if words is None:
        words = _monotonic(inline.words) if inline.words else _align_with_whisper(pipeline, chunks, audio, language)
    words = refine_turn_starts(snap_to_speech(words, regions), audio, regions)
    return Transcript(language, duration, split_sentences(words), f"{method}+{LEVEL_ONSETS}", regions, used, dropped)


def _align_with_whisper(pipeline, chunks: list[dict], audio: np.ndarray, language: str) -> list[Word]:
    """Word times for the decoded text from the Whisper model's own alignment heads."""
    from faster_whisper.tokenizer import Tokenizer
    from whisperx.audio import N_SAMPLES, log_mel_spectrogram

    model = pipeline.model
    tokenizer = Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language=language)
    n_mels = model.feat_kwargs.get("feature_size") or 80
    hop = model.feature_extractor.hop_length
    words: list[Word] = []
    batch = 8
    for first in range(0, len(chunks), batch):
        group = chunks[first:first + batch]
        feats, tokens, frames = [], [], []
        for chunk in group:
            piece = audio[int(chunk["start"] * SAMPLE_RATE):int(chunk["end"] * SAMPLE_RATE)][:N_SAMPLES]
            feats.append(log_mel_spectrogram(piece, n_mels=n_mels, padding=N_SAMPLES - piece.shape[0])[:, :N_SAMPLES // hop].numpy())
            tokens.append(tokenizer.encode(" " + chunk["text"].strip()))
            frames.append(max(1, piece.shape[0] // hop))
        encoded = model.encode(np.stack(feats))
        alignments = model.find_alignment(tokenizer, tokens, encoded, frames)
        for chunk, alignment in zip(group, alignments):
            words.extend(_join_pieces(alignment, chunk["start"]))
    return _monotonic(words)


def _join_pieces(alignment: list[dict], offset: float) -> list[Word]:
    """Whisper's aligner splits "o'clock" and "news." into pieces; rejoin them
    into the words of the decoded text (a new word starts at a space)."""
    words: list[Word] = []
    probs: list[list[float]] = []
    for item in alignment:
        piece = item["word"]
        start, end = offset + float(item["start"]), offset + float(item["end"])
        if words and not piece.startswith(" "):
            words[-1].text += piece
            if any(ch.isalnum() for ch in piece):  # a trailing "." soaks up the pause after it
                words[-1].end = end
            probs[-1].append(float(item["probability"]))
        elif piece.strip():
            words.append(Word(piece.strip(), start, end))
            probs.append([float(item["probability"])])
    for w, p in zip(words, probs):
        w.start, w.end, w.probability = round(w.start, 3), round(w.end, 3), round(sum(p) / len(p), 3)
    return words


_align_models: dict[tuple, tuple] = {}


def _align_wav2vec2(chunks, audio, language, model_name, device) -> list[Word]:
    import whisperx

    key = (language, model_name, device)
    if key not in _align_models:
        _align_models[key] = whisperx.load_align_model(language_code=language, device=device, model_name=model_name)
    model, metadata = _align_models[key]
    aligned = whisperx.align(chunks, model, metadata, audio, device, return_char_alignments=False)
    words: list[Word] = []
    for item in aligned.get("word_segments", []):
        text = str(item.get("word", "")).strip()
        if text:
            words.append(Word(text, item.get("start", -1.0), item.get("end", -1.0), round(float(item.get("score", 1.0)), 3)))
    # wav2vec2 cannot time some tokens (digits, symbols): interpolate from neighbours.
    for i, w in enumerate(words):
        if w.start is None or w.start < 0:
            prev_end = words[i - 1].end if i else 0.0
            w.start = prev_end
            w.end = max(prev_end, w.end if w.end and w.end > 0 else prev_end + 0.2)
    return _monotonic(words)


def split_sentences(words: list[Word]) -> list[Segment]:
    """Group words into sentence segments for the transcript."""
    segments: list[Segment] = []
    current: list[Word] = []
    for i, w in enumerate(words):
        current.append(w)
        gap = words[i + 1].start - w.end if i + 1 < len(words) else 0.0
        if SENTENCE_END.search(w.text) or gap > 2.0 or i + 1 == len(words):
            segments.append(Segment(current[0].start, current[-1].end, " ".join(x.text for x in current), current))
            current = []
    return segments
