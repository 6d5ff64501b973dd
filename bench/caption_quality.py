"""Caption quality benchmark on a synthetic news clip (no downloads).

    .venv/bin/python -m bench.caption_quality [--model tiny.en] [--keep DIR]

Makes a ~40 s espeak-ng news clip whose sentence onsets are known, runs
(a) WhisperX by hand on it and (b) the real CLI, then prints a table and one
final JSON line: WER of raw WhisperX and of the pipeline's SCC captions
against the script, caption sync against the sentence onsets (ours, and
pycaption's SCCWriter on the same captions), and seconds per stage.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .measure import (work_dir, SYNC_WINDOW, decode_scc_captions, evaluate, pycaption_scc, raw_whisperx_subprocess,
                      run_cli)
from .media import NEWS_SCRIPT, make_speech_clip


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.caption_quality", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--keep", type=Path, help="keep the clip and outputs in this directory")
    args = parser.parse_args(argv)

    with work_dir(args.keep, "caption-bench-") as work:
        work.mkdir(parents=True, exist_ok=True)
        print(f"making the news clip in {work} ...", file=sys.stderr, flush=True)
        clip = make_speech_clip(work / "media", NEWS_SCRIPT)
        print(f"clip: {clip.duration:.2f} s, {len(clip.sentences)} sentences; running WhisperX by hand ...",
              file=sys.stderr, flush=True)
        raw = raw_whisperx_subprocess(clip.path, args.model)
        print("running the CLI ...", file=sys.stderr, flush=True)
        code, records, stderr, wall = run_cli([clip.path], work / "out", args.model)
        if code != 0 or not records or "error" in records[0]:
            print(f"CLI failed ({code}): {records} {stderr[-2000:]}", file=sys.stderr)
            print(json.dumps({"error": "cli failed", "exit_code": code}))
            return 1
        record = records[0]
        figures = evaluate(clip.script, clip.onsets, record, raw["text"])
        transcript = json.loads(Path(record["outputs"]["json"]).read_text(encoding="utf-8"))
        ours = decode_scc_captions(record["outputs"]["scc"])
        theirs = decode_scc_captions(pycaption_scc(transcript["captions"]))

        print(f"\nScript:    {clip.script}")
        print(f"WhisperX:  {raw['text']}")
        print(f"Pipeline:  {' '.join(c.text for c in ours)}\n")
        print(f"{'sentence':<44} {'onset':>7} {'ours':>7} {'err':>7} {'pycap':>7} {'err':>7}")
        for sentence, e1, e2 in zip(clip.sentences, figures["sync_errors"], figures["sync_errors_pycaption_writer"]):
            print(f"{sentence.text[:44]:<44} {sentence.onset:7.3f} {sentence.onset + e1:7.3f} {e1:+7.3f} "
                  f"{sentence.onset + e2:7.3f} {e2:+7.3f}")
        print(f"\ncaptions as decoded by pycaption's SCCReader ({len(ours)}):")
        for cap in ours:
            print(f"  {cap.start:7.3f} {cap.end:7.3f}  {' / '.join(cap.lines)}")
        if len(theirs) != len(ours):
            print(f"  (pycaption's writer gave {len(theirs)} captions)")
        rows = [
            ("WER raw WhisperX", figures["wer_raw_whisperx"]),
            ("WER pipeline (SCC)", figures["wer_pipeline"]),
            ("sync median |err| s (ours)", figures["sync"]["median_abs"]),
            ("sync worst |err| s (ours)", figures["sync"]["worst_abs"]),
            ("sync mean signed s (ours)", figures["sync"]["mean_signed"]),
            (f"onsets within {SYNC_WINDOW}s (ours)", f"{figures['sync']['within']}/{figures['sync']['onsets']}"),
            ("sync median |err| s (pycaption)", figures["sync_pycaption_writer"]["median_abs"]),
            ("sync worst |err| s (pycaption)", figures["sync_pycaption_writer"]["worst_abs"]),
            ("sync mean signed s (pycaption)", figures["sync_pycaption_writer"]["mean_signed"]),
            (f"onsets within {SYNC_WINDOW}s (pycaption)",
             f"{figures['sync_pycaption_writer']['within']}/{figures['sync_pycaption_writer']['onsets']}"),
            ("raw WhisperX load / transcribe s", f"{raw['load_seconds']:.2f} / {raw['transcribe_seconds']:.2f}"),
        ]
        rows += [(f"stage {k} s", v) for k, v in figures["stage_seconds"].items()]
        rows.append(("CLI wall clock s", round(wall, 2)))
        print()
        width = max(len(r[0]) for r in rows)
        for name, value in rows:
            print(f"{name:<{width}}  {_fmt(value)}")
        figures.update({
            "model": args.model,
            "clip_seconds": round(clip.duration, 3),
            "sentences": len(clip.sentences),
            "raw_whisperx_seconds": {"load": raw["load_seconds"], "transcribe": raw["transcribe_seconds"]},
            "cli_wall_seconds": round(wall, 2),
        })
        print(json.dumps(figures))
        return 0


if __name__ == "__main__":
    sys.exit(main())
