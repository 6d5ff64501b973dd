"""A show's vocabulary: names it teaches the decoder, and what it costs elsewhere.

    .venv/bin/python -m bench.vocabulary [--models tiny.en,base] [--repeat 3] [--keep DIR]

Name clips: news sentences full of names Whisper does not know (Siobhan O'Neill, Kyiv, Nkechi
Okafor, ...), read by the piper neural voice and by espeak-ng.  Held-out clips: the news script
(no name from the vocabulary in it), read by both voices.  Each clip is transcribed by our
transcription step without and with ``VOCABULARY`` (the same loaded pipeline, alternating), and
the table gives: names spelt right, WER against the script, decode seconds (median of
``--repeat``), and how far the words both runs share moved in time.  One JSON line at the end.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from difflib import SequenceMatcher
from pathlib import Path

import numpy as np

from .conversation import PIPER, _speak
from .measure import normalize_text, wer, work_dir
from .media import NEWS_SCRIPT, SAMPLE_RATE, _write_wav

NAME_SENTENCES: tuple[str, ...] = (
    "Our reporter Siobhan O'Neill is in Kyiv tonight.",
    "The finance minister, Nkechi Okafor, spoke to reporters this morning.",
    "Llywelyn Davies has won the seat for the second time.",
    "Joining us from Kharkiv is our correspondent Oleksandr Tkachenko.",
    "Saoirse Keogh scored twice for the home side.",
)
VOCABULARY: tuple[str, ...] = ("Siobhan O'Neill", "Kyiv", "Nkechi Okafor", "Llywelyn", "Kharkiv",
                               "Oleksandr Tkachenko", "Saoirse Keogh")
VOICES = (PIPER, "en-us")


def make_voiced_clip(dir: str | Path, sentences: tuple[str, ...] | list[str], voice: str = PIPER,
                     name: str = "clip.wav", lead: float = 1.0, gap: float = 0.8, tail: float = 1.0) -> Path:
    """``sentences`` spoken one by one by ``voice`` (piper, or an espeak-ng voice), joined by ``gap`` s
    of silence, as a 22.05 kHz mono wav."""
    dir = Path(dir)
    dir.mkdir(parents=True, exist_ok=True)
    pieces = [np.zeros(round(lead * SAMPLE_RATE))]
    with tempfile.TemporaryDirectory(dir=dir, prefix=".tts-") as tmp:
        for index, text in enumerate(sentences):
            if index:
                pieces.append(np.zeros(round(gap * SAMPLE_RATE)))
            pieces.append(_speak(voice, text, Path(tmp) / f"s{index}.wav"))
    pieces.append(np.zeros(round(tail * SAMPLE_RATE)))
    out = dir / name
    _write_wav(out, np.round(np.concatenate(pieces)), SAMPLE_RATE)
    return out


def spelt(text: str) -> str:
    """Text for spotting a term: lower case, straight apostrophes, single spaces."""
    return " ".join(text.lower().replace("\u2019", "'").replace("\u2018", "'").split())


def names_found(text: str, terms=VOCABULARY) -> list[str]:
    return [term for term in terms if spelt(term) in spelt(text)]


def timing_shift(plain: list, prompted: list) -> dict:
    """Start-time differences (s) of the words both runs recognised identically, in order."""
    a, b = [normalize_text(w.text) for w in plain], [normalize_text(w.text) for w in prompted]
    matcher = SequenceMatcher(a=a, b=b, autojunk=False)
    moves = [abs(plain[m.a + k].start - prompted[m.b + k].start)
             for m in matcher.get_matching_blocks() for k in range(m.size)]
    if not moves:
        return {"words": 0, "median": None, "max": None}
    return {"words": len(moves), "median": round(statistics.median(moves), 3), "max": round(max(moves), 3)}


def _timed(pipeline, audio, vocabulary):
    from core.services import transcription

    t0 = time.monotonic()
    transcript = transcription.transcribe(pipeline, audio, language="en", vocabulary=vocabulary)
    return transcript, time.monotonic() - t0


def _both(pipeline, audio, repeat: int):
    """Without and with the vocabulary, alternating (so load from other processes hits both alike)."""
    runs: dict[bool, list] = {False: [], True: []}
    for _ in range(repeat):
        for taught in (False, True):
            runs[taught].append(_timed(pipeline, audio, list(VOCABULARY) if taught else None))
    return [(runs[t][-1][0], statistics.median(s for _, s in runs[t])) for t in (False, True)]


def measure(model: str, clips: dict[str, tuple[Path, str, bool]], repeat: int) -> dict:
    from core.services import media, models

    pipeline = models.load_pipeline(model, "cpu", "int8", 0)
    _timed(pipeline, np.zeros(SAMPLE_RATE, np.float32), None)  # warm up
    rows = {}
    for label, (path, script, has_names) in clips.items():
        audio = media.load_audio(media.probe(path))
        (plain, t_plain), (prompted, t_prompted) = _both(pipeline, audio, repeat)
        expected = names_found(script)
        rows[label] = {
            "names_without": len(names_found(plain.text, expected)) if has_names else None,
            "names_with": len(names_found(prompted.text, expected)) if has_names else None,
            "names_expected": len(expected) if has_names else None,
            "names_outside_script_with": [t for t in names_found(prompted.text) if t not in expected],
            "wer_without": round(wer(script, plain.text), 4),
            "wer_with": round(wer(script, prompted.text), 4),
            "seconds_without": round(t_plain, 3),
            "seconds_with": round(t_prompted, 3),
            "time_ratio": round(t_prompted / t_plain, 3),
            "timing_shift": timing_shift(plain.words, prompted.words),
            "text_without": plain.text,
            "text_with": prompted.text,
        }
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.vocabulary", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="tiny.en,base")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="keep the clips in this directory")
    args = parser.parse_args(argv)

    with work_dir(args.keep, "vocabulary-bench-") as work:
        print(f"making clips in {work} ...", file=sys.stderr, flush=True)
        clips: dict[str, tuple[Path, str, bool]] = {}
        for voice in VOICES:
            tag = "piper" if voice == PIPER else "espeak"
            clips[f"names-{tag}"] = (make_voiced_clip(work, NAME_SENTENCES, voice, f"names-{tag}.wav"),
                                     " ".join(NAME_SENTENCES), True)
            clips[f"heldout-{tag}"] = (make_voiced_clip(work, NEWS_SCRIPT, voice, f"heldout-{tag}.wav"),
                                       " ".join(NEWS_SCRIPT), False)
        figures = {"vocabulary": list(VOCABULARY), "repeat": args.repeat, "models": {}}
        for model in [m for m in args.models.split(",") if m]:
            print(f"transcribing with {model} ...", file=sys.stderr, flush=True)
            figures["models"][model] = measure(model, clips, args.repeat)

        print(f"\nVocabulary: {', '.join(VOCABULARY)}")
        head = f"{'model':8} {'clip':15} {'names w/o':>9} {'names w/':>8} {'WER w/o':>8} {'WER w/':>7} " \
               f"{'s w/o':>6} {'s w/':>6} {'ratio':>6} {'shift med/max s':>16}"
        print(head)
        print("-" * len(head))
        for model, rows in figures["models"].items():
            for label, r in rows.items():
                names = (f"{r['names_without']}/{r['names_expected']}", f"{r['names_with']}/{r['names_expected']}") \
                    if r["names_expected"] is not None else ("-", "-")
                shift = r["timing_shift"]
                print(f"{model:8} {label:15} {names[0]:>9} {names[1]:>8} {r['wer_without']:8.3f} {r['wer_with']:7.3f} "
                      f"{r['seconds_without']:6.2f} {r['seconds_with']:6.2f} {r['time_ratio']:6.2f} "
                      f"{shift['median']!s:>7}/{shift['max']!s:<8}")
        for model, rows in figures["models"].items():
            for label, r in rows.items():
                print(f"\n[{model} {label}]\n  without: {r['text_without']}\n  with:    {r['text_with']}")
        print(json.dumps(figures, ensure_ascii=False))
        return 0


if __name__ == "__main__":
    sys.exit(main())
