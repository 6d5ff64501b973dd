"""Speaker-change marks on generated speech: recall on two voices, false marks on one voice, speed.

    .venv/bin/python -m bench.speakers [--set heldout|calibration|all] [--cache DIR] [--sweep]

Two-voice conversations (alternating turns of one to three sentences, some
one-word turns, 0.2-0.8 s pauses) and single voices reading sentences are
made with espeak-ng voice variants and the piper neural voice, transcribed
with tiny.en through the real pipeline (so Whisper's word timings are what
speakers.py works with) and cached.  The calibration set tuned the
thresholds in core/services/speakers.py; the held-out set uses other
sentences (another seed) and other voice pairs.

A true change is marked when the word that starts the new turn, or one
within one word of it, starts a new speaker id.  Every speaker-id change on a
single voice is a false mark.  Ends with one JSON line.

Measured (2 cores shared, tiny.en), clustering alone: calibration recall 0.83
(70/84; the close pair cal-m1-m3 added later gets 0/21), held out 0.58 (49/84:
19/21, 19/21, 11/21 where tiny.en dropped much of the text, 0/21 for two espeak
male variants 0.13 apart, inside one voice's spread).  With the close-voice
split: calibration 0.80 (84/105; cal-m1-m3 14/21), 4 false marks in 10.6 min
of conversation, 0 in 14.6 min of one voice; held out 0.81 (68/84; ho-m6-m5
19/21), 5 false marks in 8.9 min of conversation, 0 in 25.4 min of one voice
(piper, espeak en-gb+m3), and no false speaker in any 15-, 30- or 60-unit
excerpt (0.8-4 min) of the single voices.  0.2-1 s a minute of audio.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .conversation import PIPER, _tokens, first_word_index, piper_model
from .media import SAMPLE_RATE, _read_wav, _run, _write_wav, speech_bounds

CACHE = Path.home() / ".cache" / "caption-bench" / "speakers"

_SUBJECTS = ("The council", "A spokesperson for the airport", "The minister", "Our reporter", "The company",
             "Local residents", "The head teacher", "Police", "The weather service", "Doctors at the hospital",
             "The mayor", "Fans of the club", "Farmers in the valley", "The museum", "Engineers",
             "The union", "A group of students", "The fire brigade", "Shop owners", "The coach")
_VERBS = ("said on Monday that", "announced this morning that", "warned that", "confirmed late last night that",
          "told us that", "believe that", "have asked whether", "expect that", "reported that", "explained why")
_CLAUSES = ("the new bridge will open in the spring", "prices are likely to rise again next month",
            "the road along the river will stay closed until Friday", "more volunteers are needed this winter",
            "the old library is going to be repaired", "the match was postponed because of heavy rain",
            "the trains will run every ten minutes", "the budget must be cut by a fifth",
            "nobody was hurt in the fire", "the festival drew a record crowd this year",
            "the new rules apply from the first of June", "the water is safe to drink again",
            "two hundred jobs could be at risk", "the school will stay open during the repairs",
            "the storm is moving slowly towards the north", "tickets sold out within an hour",
            "the hospital needs another forty nurses", "the harbour will be dredged in August",
            "the results will be published next week", "the park will get a new playground")
_QUESTIONS = ("What happens next?", "Do you think that will work?", "How long will it take?",
              "Who is going to pay for it?", "Is that the whole story?", "Why now?", "Can you tell us more?",
              "What do the residents think?", "Where does the money come from?", "Are people worried?")
_SHORT = ("Yes.", "No.", "Right.", "Exactly.", "Okay.", "Of course.", "I see.", "Really?", "Thank you.",
          "Absolutely.", "Not yet.", "Good point.")
_EXTRA = ("It is not the first time this has happened.", "We will keep you updated throughout the evening.",
          "That is a question many people are asking.", "The details are still unclear at this stage.",
          "It has been a long and difficult year for everyone here.", "Nobody expected it to happen so quickly.",
          "There will be a public meeting on Thursday evening.", "The numbers speak for themselves.",
          "Let me be very clear about that.", "We have heard this kind of promise before.")


def sentences(rng: random.Random, count: int, part: int) -> list[str]:
    """Varied news-style sentences; ``part`` 0 (calibration) and 1 (held out) draw on disjoint halves
    of every word list, so the two sets share no sentence."""
    subjects, verbs, clauses = _SUBJECTS[part::2], _VERBS[part::2], _CLAUSES[part::2]
    extra, questions = _EXTRA[part::2], _QUESTIONS[part::2]
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < count:
        kind = rng.random()
        if kind < 0.6:
            text = f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(clauses)}."
        elif kind < 0.8:
            text = rng.choice(extra)
        else:
            text = rng.choice(questions)
        if text not in seen or len(seen) > 200:
            seen.add(text)
            out.append(text)
    return out


@dataclass
class Turn:
    voice: str
    text: str
    onset: float = 0.0


@dataclass
class Clip:
    name: str
    wav: Path
    turns: list[Turn] = field(default_factory=list)

    @property
    def voices(self) -> set[str]:
        return {t.voice for t in self.turns}


# (name, voice A, voice B, seed): the held-out set shares no pair and no seed with the calibration set.
CALIBRATION = (("cal-piper-f3", PIPER, "en-us+f3", 11), ("cal-m3-f2", "en-gb+m3", "en-us+f2", 12),
               ("cal-piper-m7", "en-us+m7", PIPER, 13), ("cal-f4-m1", "en-gb-x-rp+f4", "en-us+m1", 14),
               ("cal-m1-m3", "en-us+m1", "en-gb+m3", 17))  # two close male voices, 0.12 apart
HELDOUT = (("ho-piper-f5", PIPER, "en-gb+f5", 21), ("ho-m2-f1", "en-us+m2", "en-029+f1", 22),
           ("ho-scot-piper", "en-gb-scotland+m4", PIPER, 23), ("ho-m6-m5", "en-us+m6", "en-gb+m5", 24))
SINGLE_CALIBRATION = (("cal-single-piper", PIPER, 15, 4.0), ("cal-single-us", "en-us", 16, 4.0),
                      ("cal-single-m7", "en-us+m7", 18, 4.0))
SINGLE_HELDOUT = (("ho-single-piper", PIPER, 25, 10.0), ("ho-single-gb-m3", "en-gb+m3", 26, 10.0))


def _part(seed: int) -> int:
    return 0 if seed < 20 else 1  # calibration seeds are 1x, held-out seeds 2x


class Speaker:
    """Synthesises one sentence at 22.05 kHz with espeak-ng or piper (model loaded once)."""

    def __init__(self, tmp: Path):
        self.tmp, self._piper = tmp, None

    def __call__(self, voice: str, text: str) -> np.ndarray:
        out = self.tmp / "say.wav"
        if voice == PIPER and piper_model():
            import wave

            from piper import PiperVoice, SynthesisConfig

            if self._piper is None:
                self._piper = PiperVoice.load(piper_model())
            with wave.open(str(out), "wb") as w:
                self._piper.synthesize_wav(text, w, syn_config=SynthesisConfig(noise_scale=0.667, noise_w_scale=0.8))
        else:
            _run(["espeak-ng", "-v", "en-us+m3" if voice == PIPER else voice, "-s", "165", "-w", str(out), text])
        samples, rate = _read_wav(out)
        if rate != SAMPLE_RATE:
            raise RuntimeError(f"{voice} wrote {rate} Hz, expected {SAMPLE_RATE}")
        first, last = speech_bounds(samples) or (0, len(samples))
        return samples[first:last].astype(np.float64)


def _mix(path: Path, turns: list[Turn], audio: list[np.ndarray], rng: random.Random) -> None:
    position = SAMPLE_RATE
    pieces = []
    for turn, speech in zip(turns, audio):
        turn.onset = round(position / SAMPLE_RATE, 3)
        pieces.append((position, speech))
        position += len(speech) + int(rng.uniform(0.2, 0.8) * SAMPLE_RATE)
    mix = np.zeros(position + SAMPLE_RATE)
    for start, speech in pieces:
        mix[start:start + len(speech)] += speech
    peak = float(np.max(np.abs(mix))) or 1.0
    _write_wav(path, np.round(mix * min(1.0, 30000 / peak)), SAMPLE_RATE)


def make_conversation(dir: Path, name: str, voice_a: str, voice_b: str, seed: int, turns: int = 22) -> Clip:
    rng = random.Random(seed)
    pool = iter(sentences(rng, turns * 3, _part(seed)))
    script: list[Turn] = []
    for index in range(turns):
        voice = voice_a if index % 2 == 0 else voice_b
        if index and rng.random() < 0.2:
            text = rng.choice(_SHORT[_part(seed)::2])
        else:
            text = " ".join(next(pool) for _ in range(rng.choice((1, 1, 2, 2, 3))))
        script.append(Turn(voice, text))
    return _render(dir, name, script, rng)


def make_single(dir: Path, name: str, voice: str, seed: int, minutes: float) -> Clip:
    rng = random.Random(seed)
    script = [Turn(voice, s) for s in sentences(rng, int(minutes * 60 / 3.2), _part(seed))]
    return _render(dir, name, script, rng)


def make_scripted(dir: Path, name: str, turns: list[tuple[str, str]], seed: int = 0) -> Clip:
    """A clip of the given (voice, text) turns, 0.2-0.8 s apart."""
    return _render(dir, name, [Turn(voice, text) for voice, text in turns], random.Random(seed))


def _render(dir: Path, name: str, script: list[Turn], rng: random.Random) -> Clip:
    key = hashlib.sha1(json.dumps([asdict(t) for t in script]).encode()).hexdigest()[:10]
    wav, meta = dir / f"{name}-{key}.wav", dir / f"{name}-{key}.json"
    if wav.exists() and meta.exists():
        return Clip(name, wav, [Turn(**t) for t in json.loads(meta.read_text())])
    dir.mkdir(parents=True, exist_ok=True)
    speak = Speaker(dir)
    _mix(wav, script, [speak(t.voice, t.text) for t in script], rng)
    meta.write_text(json.dumps([asdict(t) for t in script]))
    return Clip(name, wav, script)


# --------------------------------------------------------------------------- transcription (cached)


def transcribe(clip: Clip, model: str = "tiny.en"):
    """(transcript without speakers, 16 kHz audio) through the real pipeline; the words are cached."""
    from core.services import media, pipeline
    from core.services.transcription import Segment, Transcript, Word

    info = pipeline.prepare(clip.wav, burn_in=False)
    audio = media.load_audio(info)
    cached = clip.wav.with_suffix(f".{model}.words.json")
    if cached.exists():
        data = json.loads(cached.read_text())
        segments = [Segment(s["start"], s["end"], s["text"], [Word(**w) for w in s["words"]]) for s in data["segments"]]
        return Transcript("en", data["duration"], segments, data["word_timing"]), audio
    options = pipeline.CaptionOptions(model=model, burn_in=False, speaker_changes=False)
    transcript, _ = pipeline.transcribe_media(info, options, lambda *_: None, {})
    cached.write_text(json.dumps(transcript.as_dict()))
    return transcript, audio


# --------------------------------------------------------------------------- measurement


def change_points(labels: list[int]) -> list[int]:
    return [i for i in range(1, len(labels)) if labels[i] != labels[i - 1]]


def score_conversation(clip: Clip, words: list[str], labels: list[int]) -> dict:
    """Recall of the true changes (±1 word) and marks that match no true change."""
    script, owner = _tokens([t.text for t in clip.turns])
    hyp, hyp_owner = _tokens(words)
    mapping = first_word_index(script, hyp)
    marks = set(change_points(labels))
    found, missed, matched = 0, [], set()
    true = 0
    for k in range(1, len(clip.turns)):
        if clip.turns[k].voice == clip.turns[k - 1].voice:
            continue
        true += 1
        first = owner.index(k)
        # the first script token of the turn that the hypothesis has (a dropped "Yes." maps to nothing)
        h = next((mapping[s] for s in range(first, len(owner)) if owner[s] == k and s in mapping), None)
        word = hyp_owner[h] if h is not None else None
        near = {word - 1, word, word + 1} & marks if word is not None else set()
        if near:
            found += 1
            matched |= near
        else:
            missed.append(clip.turns[k].text[:30])
    return {"true": true, "found": found, "false": len(marks - matched), "missed": missed}


def run_clip(clip: Clip, model: str, params=None) -> dict:
    from core.services import speakers

    transcript, audio = transcribe(clip, model)
    params = params or speakers.DEFAULTS
    words = transcript.words
    started = time.monotonic()
    units = speakers.speech_units(words, params.unit_pause)
    embeddings = speakers.embed_units(audio, units)
    labels = speakers.speakers_by_word(words, units, speakers.assign_speakers(units, embeddings, params))
    seconds = time.monotonic() - started
    minutes = len(audio) / 16000 / 60
    result = {"clip": clip.name, "minutes": round(minutes, 2), "seconds": round(seconds, 3), "words": len(words),
              "units": len(units), "speakers": len(set(labels))}
    if len(clip.voices) > 1:
        result.update(score_conversation(clip, [w.text for w in words], labels))
    else:
        result["false"] = len(change_points(labels))
    result["_cache"] = (units, embeddings, [w.text for w in words])
    return result


def sweep(results: list[dict], clips: dict[str, Clip]) -> None:
    """Recall and false marks over a grid of thresholds, on the cached embeddings."""
    from core.services import speakers

    print(f"{'dist':>5} {'rel':>4} {'minspk':>6} {'margin':>6} {'recall':>7} {'conv_false':>10} {'single_false':>12}")
    for distance in (0.15, 0.2, 0.25, 0.3, 0.35, 0.4):
        for reliable in (0.8, 1.0, 1.5):
            for min_spk in (2.0, 3.0, 5.0):
                for margin in (0.05, 0.1, 0.15, 0.25):
                    p = speakers.Params(reliable_seconds=reliable, cluster_distance=distance,
                                        min_speaker_seconds=min_spk, short_margin=margin)
                    true = found = conv_false = single_false = 0
                    for r in results:
                        units, emb, words = r["_cache"]
                        labels = speakers.speakers_by_word(list(range(len(words))), units,
                                                           speakers.assign_speakers(units, emb, p))
                        clip = clips[r["clip"]]
                        if len(clip.voices) > 1:
                            s = score_conversation(clip, words, labels)
                            true, found, conv_false = true + s["true"], found + s["found"], conv_false + s["false"]
                        else:
                            single_false += len(change_points(labels))
                    print(f"{distance:5.2f} {reliable:4.1f} {min_spk:6.1f} {margin:6.2f} {found / max(1, true):7.3f} "
                          f"{conv_false:10d} {single_false:12d}")


def excerpt_false_speakers(results: list[dict], lengths=(15, 30, 60)) -> tuple[int, int]:
    """(excerpts given a second speaker, excerpts) over runs of units from the single voices: a short
    single-voice item has fewer units to average out, which is where a false split is likeliest."""
    from core.services import speakers

    bad = total = 0
    for r in results:
        if "true" in r:
            continue
        units, emb, _ = r["_cache"]
        for n in lengths:
            for s in range(0, len(units) - n + 1, 3):
                total += 1
                bad += len(set(speakers.assign_speakers(units[s:s + n], emb[s:s + n]))) > 1
    return bad, total


def build(sets: list[str], cache: Path) -> list[Clip]:
    clips: list[Clip] = []
    if "calibration" in sets:
        clips += [make_conversation(cache, *c) for c in CALIBRATION]
        clips += [make_single(cache, *c) for c in SINGLE_CALIBRATION]
    if "heldout" in sets:
        clips += [make_conversation(cache, *c) for c in HELDOUT]
        clips += [make_single(cache, *c) for c in SINGLE_HELDOUT]
    return clips


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.speakers", description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", default="heldout", choices=("heldout", "calibration", "all"))
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--sweep", action="store_true", help="print recall/false marks over a threshold grid")
    args = parser.parse_args(argv)
    sets = ["calibration", "heldout"] if args.set == "all" else [args.set]
    clips = build(sets, args.cache)
    from core.services import speakers

    speakers.embed_units(np.zeros(16000 * 3, np.float32) + 0.01, [speakers.Unit(0, 0, 0.0, 2.5)])  # warm up
    results = [run_clip(clip, args.model) for clip in clips]
    for r in results:
        print({k: v for k, v in r.items() if k != "_cache"})
    if args.sweep:
        sweep(results, {c.name: c for c in clips})
    conv = [r for r in results if "true" in r]
    single = [r for r in results if "true" not in r]
    true, found = sum(r["true"] for r in conv), sum(r["found"] for r in conv)
    single_minutes = sum(r["minutes"] for r in single)
    total_minutes = sum(r["minutes"] for r in results)
    summary = {
        "set": args.set, "model": args.model,
        "recall": round(found / true, 3) if true else None, "true_changes": true, "marked": found,
        "false_marks_in_conversations": sum(r["false"] for r in conv),
        "single_voice_minutes": round(single_minutes, 2),
        "false_marks_single": sum(r["false"] for r in single),
        "false_marks_per_10min_single": round(10 * sum(r["false"] for r in single) / single_minutes, 3)
        if single_minutes else None,
        "single_voice_excerpts_with_false_speaker": "{}/{}".format(*excerpt_false_speakers(single)),
        "seconds_per_audio_minute": round(sum(r["seconds"] for r in results) / total_minutes, 3),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
