"""Benchmarks: our pipeline against the raw tools, measured in one run.

    .venv/bin/python -m bench [--quick] [--keep DIR] [--only SECTION ...]

Sections (each prints a table; a final JSON line has every figure):
  transcription   our transcription step vs raw `whisperx` (same model, compute type, batch size)
                  on a 5-minute clip, tiny.en and base, alternated in one process; peak RSS of each
                  pipeline in a process of its own
  reuse           ten 20-second jobs through one process: per-job overhead vs raw transcription
  burnin          our render step vs the raw `ffmpeg` command (same encoder settings, same ASS)
                  on 2-minute 720p and 1080p clips
  presets         each libx264 preset: time, bitrate, SSIM of the picture and the caption band,
                  words tesseract reads; names the fastest that stays clean
  endtoend        eight 1-minute files through the batch API to one worker, submit to last
                  completion, vs raw WhisperX plus raw FFmpeg (burning the same captions) run one
                  after another; two rounds, ours-raw then raw-ours
  dashboard       10,000-file folder listing, a /api/jobs page over 10,000 jobs, the cost of
                  one inspect poll, job_update push latency
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.media import NEWS_SCRIPT, make_speech_clip
from bench.system import get_json, post_json, running_dashboard

ROOT = Path(__file__).resolve().parent.parent
FIGURES: dict = {}


def _clip(folder: Path, seconds: float, size: str, name: str) -> Path:
    """A speech clip of about ``seconds``: the news script, repeated."""
    sentences, script = [], list(NEWS_SCRIPT)
    while len(sentences) * 4.2 < seconds:
        sentences.extend(script)
    sentences = sentences[:max(1, round(seconds / 4.2))]
    return make_speech_clip(folder, sentences, gap=0.6, lead=0.5, size=size, name=name).path


def _run_probe(mode: str, model: str, path: Path, repeats: int) -> dict:
    out = subprocess.run([sys.executable, "-m", "bench.run", "--probe", mode, model, str(path), str(repeats)],
                         cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def _raw_pipeline(model: str, settings: dict):
    """The WhisperX pipeline exactly as a user loads it."""
    import whisperx

    from core.services import models

    return whisperx.load_model(models.resolve_model(model), "cpu", compute_type=settings["WHISPER_COMPUTE_TYPE"],
                               language="en" if model.endswith(".en") else None,
                               threads=settings["WHISPER_THREADS"] or os.cpu_count())


def probe(mode: str, model: str, path: str, repeats: int) -> None:
    """Child process.  ``raw`` or ``ours``: load, transcribe once, report load
    time and peak RSS.  ``both``: load both pipelines, then alternate raw and
    ours ``repeats`` times (so drift in machine speed hits both alike) and
    report every time."""
    import warnings

    warnings.filterwarnings("ignore")
    from core.config import load_settings
    from core.services import media, models, transcription

    settings = load_settings()
    batch = settings["WHISPER_BATCH_SIZE"]
    loads = {}
    if mode in ("raw", "both"):
        t0 = time.perf_counter()
        raw_pipe = _raw_pipeline(model, settings)
        loads["raw"] = time.perf_counter() - t0
    if mode in ("ours", "both"):
        t0 = time.perf_counter()
        our_pipe = models.load_configured(model, settings)
        loads["ours"] = time.perf_counter() - t0
    times: dict[str, list[float]] = {"raw": [], "ours": []}
    decode: dict[str, list[float]] = {"raw": [], "ours": []}
    for _ in range(repeats if mode == "both" else 1):
        for which in ("raw", "ours"):
            if which not in loads:
                continue
            if which == "raw":
                import whisperx

                t0 = time.perf_counter()
                audio = whisperx.load_audio(path)
                decode[which].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                raw_pipe.transcribe(audio, batch_size=batch, language="en")
            else:
                t0 = time.perf_counter()
                audio = media.load_audio(media.probe(path))
                decode[which].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                transcription.transcribe(our_pipe, audio, language="en", batch_size=batch)
            times[which].append(time.perf_counter() - t0)
    print(json.dumps({"load": loads, "times": times, "decode": decode,
                      "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def section_transcription(tmp: Path, quick: bool) -> None:
    clip = _clip(tmp / "media", 60 if quick else 300, "640x360", "five-minutes.mp4")
    from bench.media import probe_duration

    duration = probe_duration(clip)
    rows = {}
    for model in ("tiny.en", "base"):
        raw_alone, ours_alone = _run_probe("raw", model, clip, 1), _run_probe("ours", model, clip, 1)
        both = _run_probe("both", model, clip, 2 if quick else 4)["times"]
        raw, ours = min(both["raw"]), min(both["ours"])
        rows[model] = {
            "media_seconds": round(duration, 1),
            "raw_transcribe_s": round(raw, 2), "ours_transcribe_s": round(ours, 2),
            "ratio": round(ours / raw, 3),
            "median_ratio": round(statistics.median(o / r for o, r in zip(both["ours"], both["raw"])), 3),
            "raw_runs_s": [round(t, 2) for t in both["raw"]], "ours_runs_s": [round(t, 2) for t in both["ours"]],
            "raw_rtf": round(duration / raw, 1), "ours_rtf": round(duration / ours, 1),
            "raw_load_s": round(raw_alone["load"]["raw"], 1), "ours_load_s": round(ours_alone["load"]["ours"], 1),
            "raw_peak_rss_mb": round(raw_alone["rss_mb"]), "ours_peak_rss_mb": round(ours_alone["rss_mb"]),
        }
    FIGURES["transcription"] = rows
    print(f"\n== Transcription (raw and ours alternated {len(both['raw'])} times in one process; best run each) ==")
    print(f"{'model':8} {'media s':>8} {'raw s':>7} {'ours s':>7} {'ratio':>6} {'median':>6} {'raw RTF':>8} "
          f"{'our RTF':>8} {'raw RSS':>8} {'our RSS':>8}")
    for model, r in rows.items():
        print(f"{model:8} {r['media_seconds']:8.1f} {r['raw_transcribe_s']:7.2f} {r['ours_transcribe_s']:7.2f} "
              f"{r['ratio']:6.3f} {r['median_ratio']:6.3f} {r['raw_rtf']:8.1f} {r['ours_rtf']:8.1f} "
              f"{r['raw_peak_rss_mb']:7d}M {r['ours_peak_rss_mb']:7d}M")
        print(f"{'':8} runs: raw {r['raw_runs_s']}  ours {r['ours_runs_s']}")


def section_reuse(tmp: Path, quick: bool) -> None:
    import warnings

    warnings.filterwarnings("ignore")
    import whisperx

    from core.config import load_settings
    from core.services.pipeline import CaptionOptions, caption_file

    folder = tmp / "media" / "short"
    clips = [_clip(folder, 20, "320x240", f"short-{i}.mp4") for i in range(10)]
    settings = load_settings()
    pipe = _raw_pipeline("tiny.en", settings)
    raw = []
    for clip in clips:
        audio = whisperx.load_audio(str(clip))
        t0 = time.perf_counter()
        pipe.transcribe(audio, batch_size=settings["WHISPER_BATCH_SIZE"], language="en")
        raw.append(time.perf_counter() - t0)
    ours = []
    options = CaptionOptions(model="tiny.en", language="en", burn_in=False)
    for clip in clips:
        t0 = time.perf_counter()
        caption_file(clip, tmp / "reuse-out", options)
        ours.append(time.perf_counter() - t0)
    overhead = [o - r for o, r in zip(ours, raw)]
    FIGURES["reuse"] = {"jobs": len(clips), "raw_transcribe_mean_s": round(statistics.mean(raw), 3),
                        "ours_job_mean_s": round(statistics.mean(ours), 3),
                        "overhead_per_job_s": round(statistics.mean(overhead), 3),
                        "overhead_ratio": round(statistics.mean(ours) / statistics.mean(raw), 3),
                        "first_job_s": round(ours[0], 3)}
    r = FIGURES["reuse"]
    print("\n== Model reuse: ten 20 s jobs in one process (model loaded once) ==")
    print(f"raw transcribe {r['raw_transcribe_mean_s']:.3f} s/job; our whole job (probe, decode, transcribe, align, "
          f"captions, 5 files) {r['ours_job_mean_s']:.3f} s/job; overhead {r['overhead_per_job_s']:.3f} s/job "
          f"({r['overhead_ratio']:.2f}x)")


def _raw_ffmpeg(src: Path, ass: Path, out: Path, preset: str, crf: int) -> float:
    t0 = time.perf_counter()
    subprocess.run(["ffmpeg", "-nostdin", "-y", "-v", "error", "-i", str(src), "-map", "0:v:0", "-map", "0:a",
                    "-vf", f"subtitles=filename={ass}:charenc=UTF-8", "-c:v", "libx264", "-preset", preset,
                    "-crf", str(crf), "-pix_fmt", "yuv420p", "-c:a", "copy", "-movflags", "+faststart", str(out)],
                   check=True)
    return time.perf_counter() - t0


def section_burnin(tmp: Path, quick: bool) -> None:
    from core.config import load_settings
    from core.services import burnin, media
    from core.services.captions import Caption

    settings = load_settings()
    preset, crf = settings["RENDER_PRESET"], settings["RENDER_CRF"]
    rows = {}
    for size in ("1280x720", "1920x1080"):
        clip = _clip(tmp / "media", 30 if quick else 120, size, f"burn-{size}.mp4")
        info = media.probe(clip)
        captions = [Caption(t, t + 3.5, ["Captions drawn like a 608 decoder", f"line two at {t:.0f} s"])
                    for t in range(1, int(info.duration) - 4, 4)]
        ass = tmp / f"burn-{size}.ass"
        ass.write_text(burnin.ass_document(captions, info.width, info.height))
        raw_s, ours_s = [], []
        # Raw first, then ours first, and so on: neither always gets the warm cache.
        for n in range(3):
            for which in (("raw", "ours") if n % 2 == 0 else ("ours", "raw")):
                t0 = time.perf_counter()
                if which == "raw":
                    _raw_ffmpeg(clip, ass, tmp / f"raw-{size}.mp4", preset, crf)
                    raw_s.append(time.perf_counter() - t0)
                else:
                    burnin.burn_in(info, ass, tmp / f"ours-{size}.mp4", preset=preset, crf=crf, progress=lambda f: None)
                    ours_s.append(time.perf_counter() - t0)
        rows[size] = {"media_seconds": round(info.duration, 1), "raw_s": round(min(raw_s), 2),
                      "ours_s": round(min(ours_s), 2), "ratio": round(min(ours_s) / min(raw_s), 3),
                      "median_paired_ratio": round(statistics.median(o / r for o, r in zip(ours_s, raw_s)), 3),
                      "runs": {"raw": [round(x, 2) for x in raw_s], "ours": [round(x, 2) for x in ours_s]},
                      "raw_rtf": round(info.duration / min(raw_s), 1), "ours_rtf": round(info.duration / min(ours_s), 1)}
    FIGURES["burnin"] = {"preset": preset, "crf": crf, **rows}
    print(f"\n== Burn-in (libx264 {preset} crf {crf}, 3 runs each, order alternated; best run each) ==")
    for size, r in rows.items():
        print(f"{size:10} media {r['media_seconds']:6.1f} s  raw {r['raw_s']:6.2f} s ({r['raw_rtf']:.1f}x)  "
              f"ours {r['ours_s']:6.2f} s ({r['ours_rtf']:.1f}x)  ratio {r['ratio']:.3f} "
              f"(median of paired runs {r['median_paired_ratio']:.3f})")
        print(f"{'':10} runs: raw {r['runs']['raw']}  ours {r['runs']['ours']}")


PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium")
# At a fixed CRF the picture quality is set mostly by the CRF; a faster preset
# pays in bits or in detail.  "Clean" against libx264's default preset (medium):
# SSIM of the whole picture and of the caption band (lower third), each against
# the uncompressed render, within SSIM_SLACK of medium's; a bitrate at most
# BITRATE_SLACK times medium's; tesseract reads as many caption words as in a
# lossless render.
SSIM_SLACK = 0.005
BITRATE_SLACK = 1.25


def _grain_clip(folder: Path, seconds: float, size: str) -> Path:
    """A moving test pattern with light film-like grain (harder to encode than
    the flat pattern, as camera footage is), plus a tone."""
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"grain-{size}.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-y", "-v", "error",
                    "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30000/1001:duration={seconds},"
                                         "noise=alls=3:allf=t",
                    "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
                    "-c:v", "libx264", "-preset", "veryfast", "-crf", "12", "-pix_fmt", "yuv420p",
                    "-c:a", "aac", "-b:a", "128k", "-shortest", str(out)], check=True)
    return out


def _ssim(encoded: Path, source: Path, ass: Path) -> tuple[float, float]:
    """SSIM (All) of the whole frame and of the lower third, against the source
    with the captions drawn in the same filter graph."""
    band = "crop=iw:ih/3:0:ih*2/3"
    graph = (f"[1:v]subtitles=filename={ass}:charenc=UTF-8,format=yuv420p,split[r1][r2];"
             f"[0:v]format=yuv420p,split[e1][e2];[e1][r1]ssim[whole];[e2]{band}[eb];[r2]{band}[rb];[eb][rb]ssim[band]")
    out = subprocess.run(["ffmpeg", "-nostdin", "-v", "info", "-i", str(encoded), "-i", str(source),
                          "-filter_complex", graph, "-map", "[whole]", "-map", "[band]", "-f", "null", "-"],
                         capture_output=True, text=True, check=True).stderr
    found = sorted((int(n), float(v)) for n, v in re.findall(r"Parsed_ssim_(\d+) .*? All:([0-9.]+)", out))
    if len(found) != 2:
        raise RuntimeError(f"no SSIM figures in ffmpeg's output: {out[-1000:]}")
    return found[0][1], found[1][1]


def section_presets(tmp: Path, quick: bool) -> None:
    """Which libx264 preset to burn in with: time against picture and caption quality."""
    from bench.measure import normalize_text, ocr_text_at
    from core.config import load_settings
    from core.services import burnin, media
    from core.services.captions import Caption

    crf = load_settings()["RENDER_CRF"]
    clip = _grain_clip(tmp / "media", 20 if quick else 60, "1280x720")
    info = media.probe(clip)
    captions = [Caption(t, t + 3.5, ["Captions drawn like a 608 decoder", f"line two at {t} seconds"])
                for t in range(1, int(info.duration) - 4, 4)]
    ass = tmp / "presets.ass"
    ass.write_text(burnin.ass_document(captions, info.width, info.height))

    def words_read(video: Path) -> float:
        read = expected = 0
        for cap in captions[::3]:
            want = normalize_text(" ".join(cap.lines)).split()
            got = set(normalize_text(ocr_text_at(video, cap.start + 1.5)).split())
            expected += len(want)
            read += sum(w in got for w in want)
        return read / expected

    lossless = tmp / "preset-lossless.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-y", "-v", "error", "-i", str(clip), "-vf", f"subtitles=filename={ass}",
                    "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-an", str(lossless)], check=True)
    reference_ocr = round(words_read(lossless), 3)  # rows keep 3 decimals too
    rows = {}
    for preset in PRESETS:
        out = tmp / f"preset-{preset}.mp4"
        t0 = time.perf_counter()
        burnin.burn_in(info, ass, out, preset=preset, crf=crf, progress=lambda f: None)
        seconds = time.perf_counter() - t0
        whole, band = _ssim(out, clip, ass)
        rows[preset] = {"seconds": round(seconds, 2), "rtf": round(info.duration / seconds, 1),
                        "mbps": round(out.stat().st_size * 8 / info.duration / 1e6, 2),
                        "ssim": round(whole, 4), "ssim_captions": round(band, 4),
                        "ocr_words": round(words_read(out), 3)}
    medium = rows["medium"]
    clean = [p for p, r in rows.items()
             if r["ssim"] >= medium["ssim"] - SSIM_SLACK and r["ssim_captions"] >= medium["ssim_captions"] - SSIM_SLACK
             and r["mbps"] <= medium["mbps"] * BITRATE_SLACK and r["ocr_words"] >= reference_ocr]
    chosen = min(clean, key=lambda p: rows[p]["seconds"]) if clean else None
    FIGURES["presets"] = {"crf": crf, "media_seconds": round(info.duration, 1), "rows": rows,
                          "lossless_ocr_words": round(reference_ocr, 3),
                          "fastest_clean": chosen}
    print(f"\n== Burn-in presets (libx264 crf {crf}, {info.duration:.0f} s 720p with grain) ==")
    print(f"{'preset':10} {'s':>6} {'RTF':>5} {'Mb/s':>6} {'SSIM':>7} {'captions':>8} {'OCR':>5}")
    for preset, r in rows.items():
        print(f"{preset:10} {r['seconds']:6.2f} {r['rtf']:5.1f} {r['mbps']:6.2f} {r['ssim']:7.4f} "
              f"{r['ssim_captions']:8.4f} {r['ocr_words']:5.2f}")
    print(f"lossless render: OCR {reference_ocr:.2f}.  Clean: SSIM (whole and caption band) within {SSIM_SLACK} of "
          f"medium's, bitrate <= {BITRATE_SLACK}x medium's, OCR as lossless: {', '.join(clean) or 'none'}.  "
          f"Fastest clean: {chosen}")


def _raw_by_hand(tmp: Path, clips: list[Path], ass: dict[Path, Path]) -> dict:
    """What a user does without the dashboard: whisperx per file (its own process), then
    ffmpeg burning the same captions our render burns, one file after another."""
    whisperx_runs, ffmpeg_runs = [], []
    for clip in clips:
        r = _run_probe("raw", "tiny.en", clip, 1)
        whisperx_runs.append({"load": r["load"]["raw"], "transcribe": r["times"]["raw"][0] + r["decode"]["raw"][0]})
    for clip in clips:
        ffmpeg_runs.append(_raw_ffmpeg(clip, ass[clip], tmp / "e2e-raw.mp4", "veryfast", 20))
    transcribe = sum(r["transcribe"] for r in whisperx_runs)
    return {"transcribe_s": transcribe, "ffmpeg_s": sum(ffmpeg_runs),
            "model_once_s": whisperx_runs[0]["load"] + transcribe + sum(ffmpeg_runs),
            "per_file_s": sum(r["load"] for r in whisperx_runs) + transcribe + sum(ffmpeg_runs)}


def _ass_files(tmp: Path, jobs: list[dict]) -> dict[Path, Path]:
    """The ASS document our render burned for each source, rebuilt from its caption JSON."""
    from core.services import burnin, media, writers

    files = {}
    for job in jobs:
        source = Path(job["source"])
        info = media.probe(source)
        captions = writers.captions_from_json(job["result"]["outputs"]["json"])
        files[source] = tmp / f"{source.stem}.ass"
        files[source].write_text(burnin.ass_document(captions, info.width, info.height), encoding="utf-8")
    return files


def _ours_through_api(folder: Path, storage: Path, clips: list[Path]) -> dict:
    """Wall time from one batch submit to the last job_update saying completed, on a
    dashboard whose worker has already run one job (as a running dashboard would)."""
    import socketio

    latencies: list[float] = []
    folder.mkdir(parents=True, exist_ok=True)
    with running_dashboard(folder, storage) as url:
        client = socketio.Client()
        done: dict[str, float] = {}
        client.on("job_update", lambda d: (latencies.append(time.time() - d["emitted_at"]),
                                           d["status"] in ("completed", "failed") and done.setdefault(d["job_id"], time.time())))
        client.connect(url, transports=["websocket"])
        warm = post_json(f"{url}/api/transcribe/batch", {"paths": [str(clips[0])], "options": {"burn_in": False}})[1]
        _wait_done(url, [q["job_id"] for q in warm["queued"]])
        latencies.clear()
        t0 = time.time()
        body = post_json(f"{url}/api/transcribe/batch", {"paths": [str(c) for c in clips], "force": True})[1]
        ids = [q["job_id"] for q in body["queued"]]
        jobs = _wait_done(url, ids)
        wall = max(done.get(j, time.time()) for j in ids) - t0
        client.disconnect()
    return {"wall_s": wall, "statuses": sorted({j["status"] for j in jobs}), "latencies": latencies, "jobs": jobs}


def section_endtoend(tmp: Path, quick: bool) -> None:
    folder = tmp / "mnt" / "e2e"
    count, seconds, rounds = (3, 30, 1) if quick else (8, 60, 2)
    clips = [_clip(folder, seconds, "1280x720", f"file-{i}.mp4") for i in range(count)]
    # Ours, raw, raw, ours: a steady drift in machine speed hits both alike.  The raw
    # ffmpeg burns the captions our first run made, so both draw the same text.
    runs, ass = [], {}
    for n in range(rounds):
        if n % 2 == 0:
            ours = _ours_through_api(tmp / f"e2e-{n}", tmp / "mnt", clips)
            ass = ass or _ass_files(tmp, ours["jobs"])
            raw = _raw_by_hand(tmp, clips, ass)
        else:
            raw = _raw_by_hand(tmp, clips, ass)
            ours = _ours_through_api(tmp / f"e2e-{n}", tmp / "mnt", clips)
        runs.append({"ours_wall_s": round(ours["wall_s"], 1), "statuses": ours["statuses"],
                     "raw_sum_model_loaded_once_s": round(raw["model_once_s"], 1),
                     "raw_sum_whisperx_per_file_s": round(raw["per_file_s"], 1),
                     "raw_transcribe_s": round(raw["transcribe_s"], 1), "raw_ffmpeg_s": round(raw["ffmpeg_s"], 1),
                     "ratio_vs_model_once": round(ours["wall_s"] / raw["model_once_s"], 3),
                     "ratio_vs_per_file": round(ours["wall_s"] / raw["per_file_s"], 3)})
        latencies = sorted(ours["latencies"])
    FIGURES["endtoend"] = {
        "files": count, "seconds_each": seconds, "rounds": runs,
        "ratio_vs_model_once": round(sum(r["ours_wall_s"] for r in runs)
                                     / sum(r["raw_sum_model_loaded_once_s"] for r in runs), 3),
        "ratio_vs_per_file": round(sum(r["ours_wall_s"] for r in runs)
                                   / sum(r["raw_sum_whisperx_per_file_s"] for r in runs), 3),
        "push_latency_ms": {"p50": round(latencies[len(latencies) // 2] * 1000, 1),
                            "p95": round(latencies[int(len(latencies) * 0.95) - 1] * 1000, 1),
                            "events": len(latencies)} if latencies else None,
    }
    e = FIGURES["endtoend"]
    print(f"\n== End to end: {count} x {seconds} s 720p files, batch API, one worker (concurrency 2) ==")
    print(f"{'round':<6} {'ours s':>7} {'raw, model once s':>18} {'ratio':>6} {'raw, whisperx per file s':>25} {'ratio':>6}")
    for n, r in enumerate(runs, 1):
        print(f"{n:<6} {r['ours_wall_s']:>7} {r['raw_sum_model_loaded_once_s']:>18} {r['ratio_vs_model_once']:>6} "
              f"{r['raw_sum_whisperx_per_file_s']:>25} {r['ratio_vs_per_file']:>6}   ({', '.join(r['statuses'])})")
    print(f"all rounds: {e['ratio_vs_model_once']} against whisperx with the model loaded once, "
          f"{e['ratio_vs_per_file']} against whisperx run per file")
    if e["push_latency_ms"]:
        print(f"job_update push latency: p50 {e['push_latency_ms']['p50']} ms, p95 {e['push_latency_ms']['p95']} ms "
              f"over {e['push_latency_ms']['events']} events")


def _wait_done(url: str, ids: list[str], timeout: float = 1800) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = [get_json(f"{url}/api/status/{j}")[1] for j in ids]
        if all(j["status"] in ("completed", "failed", "cancelled") for j in jobs):
            return jobs
        time.sleep(0.5)
    raise RuntimeError("jobs did not finish")


def section_dashboard(tmp: Path, quick: bool) -> None:
    big = tmp / "mnt" / "big"
    big.mkdir(parents=True, exist_ok=True)
    for i in range(10_000):
        (big / f"clip_{i:05d}.mp4").touch()
    os.environ.update({"STORAGE_ROOTS": str(tmp / "mnt"), "DATABASE_URL": f"sqlite:///{tmp / 'dash.db'}",
                       "OUTPUT_DIR": str(tmp / "dash-out")})
    from core import db
    from core.config import load_settings
    from core.db import Job, get_engine, new_id, utcnow
    from core.jobs import queries
    from core.services import browser

    settings = load_settings()
    db.configure(settings)
    listing = []
    for _ in range(5):
        t0 = time.perf_counter()
        browser.listing(str(big), settings, page_size=200)
        listing.append((time.perf_counter() - t0) * 1000)
    engine = get_engine()
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(Job.__table__.insert(), [
            {"id": new_id(), "source": f"/mnt/news/clip_{i:05d}.mp4", "output_dir": "/out", "options": {},
             "priority": "normal", "status": ("completed", "failed", "pending")[i % 3], "progress": 1.0,
             "attempts": 1, "created_at": now, "media_duration": 60.0} for i in range(10_000)])
    pages = []
    for page in (1, 50, 150):
        t0 = time.perf_counter()
        queries.list_jobs(page=page, page_size=50)
        pages.append((time.perf_counter() - t0) * 1000)
    filtered = []
    for _ in range(3):
        t0 = time.perf_counter()
        queries.list_jobs(status="failed", q="clip_09", page=1, page_size=50)
        filtered.append((time.perf_counter() - t0) * 1000)
    FIGURES["dashboard"] = {"folder_10000_listing_ms": round(statistics.median(listing), 1),
                            "jobs_page_over_10000_ms": round(statistics.median(pages), 1),
                            "jobs_filtered_over_10000_ms": round(statistics.median(filtered), 1)}
    d = FIGURES["dashboard"]
    print("\n== Dashboard (server side, median) ==")
    print(f"10,000-file folder, first page of 200: {d['folder_10000_listing_ms']} ms; /api/jobs page over 10,000 "
          f"jobs: {d['jobs_page_over_10000_ms']} ms; filtered by status and name: {d['jobs_filtered_over_10000_ms']} ms")


def section_inspect(tmp: Path, quick: bool) -> None:
    from core.embedded import RedisServer, Worker, wait_for_worker

    redis = RedisServer(tmp / "insp-redis", persist=False).start()
    from core.celery_app import create_celery
    from core.config import load_settings
    from core.queue import QueueClient
    from core.services import queue_inspect

    settings = {**load_settings(), "REDIS_URL": redis.url}
    app = create_celery(settings, include_tasks=False)
    queue = QueueClient(app, settings)
    worker = Worker({"REDIS_URL": redis.url}, tmp / "insp-worker.log").start()
    try:
        wait_for_worker(app)
        costs = []
        for _ in range(5):
            t0 = time.perf_counter()
            queue_inspect.snapshot(queue, timeout=1.0)
            costs.append((time.perf_counter() - t0) * 1000)
    finally:
        worker.stop()
        redis.stop()
    FIGURES["inspect_poll_ms"] = round(statistics.median(costs), 1)
    print(f"\n== One inspect poll (5 calls in parallel, 1 s reply window, 1 worker): "
          f"{FIGURES['inspect_poll_ms']} ms; made once per 2 s for all browsers ==")


SECTIONS = {"transcription": section_transcription, "reuse": section_reuse, "burnin": section_burnin,
            "presets": section_presets,
            "endtoend": section_endtoend, "dashboard": section_dashboard, "inspect": section_inspect}


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--probe":
        probe(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short clips (a smoke run, not figures to quote)")
    parser.add_argument("--keep", type=Path)
    parser.add_argument("--only", nargs="*", choices=sorted(SECTIONS))
    args = parser.parse_args()
    tmp = args.keep or Path(tempfile.mkdtemp(prefix="bench-"))
    tmp.mkdir(parents=True, exist_ok=True)
    FIGURES["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                          "ffmpeg": subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True
                                                   ).stdout.split("\n")[0]}
    for name, fn in SECTIONS.items():
        if args.only and name not in args.only:
            continue
        fn(tmp, args.quick)
    print(json.dumps(FIGURES))
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
