"""End to end: the real CLI with the real tiny.en model on a synthetic news clip.

One module-scoped run captions a ~40 s espeak-ng clip (sentence onsets known
to the sample) and a silent clip; WhisperX is also run by hand on the news
clip for a WER baseline.  Each test checks one property a user sees.  Run with
``-s`` to see the measured figures.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.measure import (FPS, audio_md5, decode_scc_captions, evaluate, ffmpeg_scc_text, normalize_text,
                           ocr_text_at, probe_streams, raw_whisperx_subprocess, run_cli, scc_timecodes,
                           timecode_to_frame, word_coverage)
from bench.media import NEWS_SCRIPT, ClipInfo, make_silent_clip, make_speech_clip, probe_duration

pytestmark = pytest.mark.system

MODEL = os.environ.get("CAPTION_TEST_MODEL", "tiny.en")
SCC_HEADER = "Scenarist_SCC V1.0"


@dataclass
class Run:
    clip: ClipInfo
    silent: Path
    code: int
    records: list
    stderr: str
    raw: dict

    def record(self, source: Path) -> dict:
        for rec in self.records:
            if Path(rec.get("source", "")) == Path(source):
                return rec
        raise AssertionError(f"no JSON line for {source}: {self.records}\n{self.stderr[-2000:]}")

    @property
    def news(self) -> dict:
        return self.record(self.clip.path)

    def outputs(self, kind: str) -> Path:
        return Path(self.news["outputs"][kind])

    @property
    def transcript(self) -> dict:
        return json.loads(self.outputs("json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Run:
    base = tmp_path_factory.mktemp("cli")
    clip = make_speech_clip(base / "media", NEWS_SCRIPT)
    silent = make_silent_clip(base / "media", 4.0)
    code, records, stderr, seconds = run_cli([clip.path, silent], base / "out", MODEL)
    print(f"\nCLI exit {code} in {seconds:.1f} s for a {clip.duration:.1f} s clip and a silent clip")
    raw = raw_whisperx_subprocess(clip.path, MODEL)
    return Run(clip, silent, code, records, stderr, raw)


@pytest.fixture(scope="module")
def figures(run: Run) -> dict:
    figs = evaluate(run.clip.script, run.clip.onsets, run.news, run.raw["text"])
    print("\nmeasured: " + json.dumps({k: figs[k] for k in ("wer_raw_whisperx", "wer_pipeline", "sync",
                                                            "sync_pycaption_writer", "stage_seconds")}))
    return figs


@pytest.fixture(scope="module")
def decoded(run: Run):
    return decode_scc_captions(run.outputs("scc"))


# --------------------------------------------------------------------------- the run


def test_cli_exits_zero_with_one_json_line_per_input(run: Run):
    assert run.code == 0, run.stderr[-3000:]
    assert len(run.records) == 2, run.records
    rec = run.news
    assert "error" not in rec, rec
    assert set(rec["outputs"]) == {"scc", "srt", "vtt", "dfxp", "json", "video"}
    for kind, path in rec["outputs"].items():
        assert Path(path).is_file() and Path(path).stat().st_size > 0, (kind, path)
        assert Path(path).parent == Path(run.silent).parent.parent / "out"
    assert rec["outputs"]["video"].endswith("clip.mp4.captioned.mp4")
    assert abs(rec["duration"] - run.clip.duration) <= 0.1
    assert rec["language"] == "en"
    assert rec["speech_found"] is True
    assert rec["captions"] == len(run.transcript["captions"]) > 0
    assert rec["model"] == MODEL
    timings = rec["timings"]
    for stage in ("probing", "decode_audio", "load_model", "transcribing", "captioning", "rendering", "total"):
        assert isinstance(timings.get(stage), (int, float)) and timings[stage] >= 0, (stage, timings)
    assert timings["total"] >= timings["transcribing"] + timings["rendering"]
    print(f"\nstage seconds: {timings}")


def test_transcript_json_has_timed_words(run: Run):
    data = run.transcript
    words = [w for seg in data["segments"] for w in seg["words"]]
    assert words, data
    for w in words:
        assert w["text"].strip() and 0 <= w["start"] <= w["end"] <= run.clip.duration + 0.05, w
    starts = [w["start"] for w in words]
    assert starts == sorted(starts)
    for cap in data["captions"]:
        assert 0 <= cap["start"] < cap["end"] <= run.clip.duration + 0.05, cap


# --------------------------------------------------------------------------- text quality


def test_caption_wer_matches_raw_whisperx(run: Run, figures: dict):
    print(f"\nscript:   {run.clip.script}\nwhisperx: {run.raw['text']}\n"
          f"captions: {' '.join(' '.join(c['lines']) for c in run.transcript['captions'])}")
    print(f"WER raw WhisperX {figures['wer_raw_whisperx']:.3f}, pipeline captions {figures['wer_pipeline']:.3f}")
    assert figures["wer_pipeline"] <= figures["wer_raw_whisperx"] + 0.02
    assert figures["wer_pipeline"] <= 0.25


# --------------------------------------------------------------------------- sync


def test_captions_start_at_sentence_onsets(run: Run, figures: dict):
    sync, theirs = figures["sync"], figures["sync_pycaption_writer"]
    print("\nsentence onset -> nearest SCC caption start (ours | pycaption SCCWriter):")
    for s, e1, e2 in zip(run.clip.sentences, figures["sync_errors"], figures["sync_errors_pycaption_writer"]):
        print(f"  {s.onset:7.3f}  {e1:+.3f} | {e2:+.3f}  {s.text}")
    print(f"ours: {sync}\npycaption SCCWriter: {theirs}")
    assert sync["median_abs"] <= 0.3, sync
    assert sync["worst_abs"] <= 0.6, sync


# --------------------------------------------------------------------------- 608 shape


def test_captions_fit_two_rows_of_32(run: Run, decoded):
    assert decoded
    for cap in decoded:
        assert 1 <= len(cap.lines) <= 2, cap
        assert all(len(line) <= 32 for line in cap.lines), cap
    for cap in run.transcript["captions"]:
        assert 1 <= len(cap["lines"]) <= 2, cap
        assert all(0 < len(line) <= 32 for line in cap["lines"]), cap


def test_scc_decodes_with_ffmpeg(run: Run):
    code, text, stderr = ffmpeg_scc_text(run.outputs("scc"))
    assert code == 0, stderr
    want = normalize_text(" ".join(" ".join(c["lines"]) for c in run.transcript["captions"]))
    assert normalize_text(text) == want, (text, want)


def test_scc_decodes_with_pycaption_to_the_json_captions(run: Run, decoded):
    captions = run.transcript["captions"]
    assert [c.lines for c in decoded] == [[ln.strip() for ln in c["lines"]] for c in captions]


def test_scc_shows_captions_when_the_json_says(run: Run, decoded):
    """The SCC (EOC time) and the sidecars/burn-in (JSON times) agree within 3 frames."""
    captions = run.transcript["captions"]
    assert len(decoded) == len(captions)
    worst = max(abs(d.start - c["start"]) for d, c in zip(decoded, captions))
    print(f"\nworst SCC vs JSON start difference: {worst:.3f} s; "
          f"reported late_max {run.transcript['scc']['late_max_seconds']} s")
    assert worst <= 3 / FPS


def test_scc_timecodes_drop_frame_and_increasing(run: Run):
    text = run.outputs("scc").read_text(encoding="utf-8")
    assert text.splitlines()[0] == SCC_HEADER
    labels = scc_timecodes(text)
    assert labels
    for label in labels:
        assert re.fullmatch(r"\d{2}:[0-5]\d:[0-5]\d;([0-2]\d)", label), label
    frames = [timecode_to_frame(tc) for tc in labels]
    assert all(b > a for a, b in zip(frames, frames[1:])), labels
    # 608 carries one code word per frame: a line must not start before the previous one is sent.
    lines = [ln for ln in text.splitlines() if re.match(r"\d{2}:\d{2}:\d{2}[;:]\d{2}\s", ln)]
    for (f0, line0), f1 in zip(zip(frames, lines), frames[1:]):
        assert f1 >= f0 + len(line0.split()[1:]), (line0, f1)


# --------------------------------------------------------------------------- captioned video


def test_captioned_video_streams(run: Run):
    video = run.outputs("video")
    info = probe_streams(video)
    kinds = [(s["codec_type"], s["codec_name"]) for s in info["streams"]]
    assert kinds.count(("video", "h264")) == 1 and len([k for k in kinds if k[0] == "video"]) == 1, kinds
    assert [k for k in kinds if k[0] == "audio"] == [("audio", "aac")], kinds
    assert audio_md5(video) == audio_md5(run.clip.path), "audio is not the source's stream"
    assert abs(probe_duration(video) - probe_duration(run.clip.path)) <= 0.1


def test_burned_in_text_is_readable(run: Run):
    captions = [c for c in run.transcript["captions"] if c["end"] - c["start"] >= 0.8]
    assert len(captions) >= 3
    picks = [captions[0], captions[len(captions) // 2], max(captions, key=lambda c: len(" ".join(c["lines"])))]
    for cap in picks:
        t = (cap["start"] + cap["end"]) / 2
        seen = ocr_text_at(run.outputs("video"), t)
        cover = word_coverage(" ".join(cap["lines"]), seen)
        print(f"\nOCR at {t:.2f}s: {seen!r} vs {cap['lines']}: {cover:.0%}")
        assert cover >= 0.6, (t, cap["lines"], seen)


# --------------------------------------------------------------------------- sidecars


def test_srt_and_vtt_have_the_scc_cues(run: Run, decoded):
    from pycaption import SRTReader, WebVTTReader

    srt = SRTReader().read(run.outputs("srt").read_text(encoding="utf-8"))
    vtt_text = run.outputs("vtt").read_text(encoding="utf-8")
    assert vtt_text.startswith("WEBVTT")
    vtt = WebVTTReader().read(vtt_text)
    srt_cues = srt.get_captions(srt.get_languages()[0])
    vtt_cues = vtt.get_captions(vtt.get_languages()[0])
    assert len(srt_cues) == len(vtt_cues) == len(decoded) > 0
    for cue, cap in zip(srt_cues, decoded):
        assert normalize_text(cue.get_text()) == normalize_text(cap.text)


# --------------------------------------------------------------------------- silence


def test_silent_clip_gives_empty_captions(run: Run):
    rec = run.record(run.silent)
    assert "error" not in rec, rec
    assert rec["speech_found"] is False
    assert rec["captions"] == 0
    scc = Path(rec["outputs"]["scc"]).read_text(encoding="utf-8")
    assert scc.splitlines()[0] == SCC_HEADER
    assert scc_timecodes(scc) == []
    assert decode_scc_captions(scc) == []
    data = json.loads(Path(rec["outputs"]["json"]).read_text(encoding="utf-8"))
    assert data["captions"] == [] and data["speech_found"] is False
