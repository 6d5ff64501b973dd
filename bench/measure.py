"""Measurements of caption quality that tests and the benchmark share.

* ``wer``: word error rate after normalisation (case, punctuation, numbers).
* ``decode_scc_captions``: pop-on captions as pycaption's SCCReader shows
  them (at the EOC), with drop-frame labels converted to real 29.97 fps time.
* ``ffmpeg_scc_text``: the second, independent decoder (FFmpeg's scc demuxer).
* ``sync_errors`` / ``sync_summary``: caption start versus true speech onset.
* ``ocr_text_at``: tesseract on the lower third of one frame of a video.
* ``run_cli`` / ``raw_whisperx``: the product as a user runs it, and WhisperX
  as a user would call it by hand.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

PROJECT_ROOT = Path(__file__).resolve().parent.parent
FPS = 30000 / 1001
SYNC_WINDOW = 0.6
TIMECODE_RE = re.compile(r"^(\d{2}):(\d{2}):(\d{2})([:;])(\d{2})\s")

# --------------------------------------------------------------------------- text

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
         "fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def number_words(n: int) -> str:
    """English words for 0 <= n < 10**9 ("12" -> "twelve", "2025" -> "two thousand twenty five")."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        return _ONES[n // 100] + " hundred" + ("" if n % 100 == 0 else " " + number_words(n % 100))
    for size, name in ((10**6, "million"), (1000, "thousand")):
        if n >= size:
            rest = n % size
            return number_words(n // size) + " " + name + ("" if rest == 0 else " " + number_words(rest))
    raise ValueError(n)


def normalize_text(text: str) -> str:
    """Lowercase, numbers as words, no punctuation, single spaces."""
    text = text.lower().replace("\xa0", " ")
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)          # 20,000 -> 20000
    text = re.sub(r"\d+", lambda m: f" {number_words(int(m.group()))} "
                  if len(m.group()) <= 9 else m.group(), text)
    text = text.replace("-", " ")
    text = re.sub(r"[^\w\s]", "", text)                       # apostrophes too: don't -> dont
    return re.sub(r"\s+", " ", text).strip()


def wer(reference: str, hypothesis: str) -> float:
    import jiwer

    ref, hyp = normalize_text(reference), normalize_text(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    return float(jiwer.wer(ref, hyp or "<empty>"))


def word_coverage(expected: str, found: str) -> float:
    """Share of ``expected``'s words (normalised) that occur in ``found``."""
    want = normalize_text(expected).split()
    have = set(normalize_text(found).split())
    return sum(w in have for w in want) / len(want) if want else 1.0


# --------------------------------------------------------------------------- SCC


@dataclass
class DecodedCaption:
    start: float
    end: float
    lines: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return " ".join(self.lines)


def dropframe_label_to_frame(label_frames: int) -> int:
    """Frame count for a 29.97 drop-frame label counted as HH*108000+MM*1800+SS*30+FF."""
    tens, rest = divmod(label_frames, 18000)
    return label_frames - 18 * tens - (2 * ((rest - 2) // 1800) if rest >= 2 else 0)


def _reader_time_to_seconds(microseconds: float, drop_frame: bool) -> float:
    """pycaption's SCCReader reads ';' labels as label/30 s; convert to the frame's real time."""
    if not drop_frame:
        return microseconds / 1e6
    label = round(microseconds * 30 / 1e6)
    return dropframe_label_to_frame(label) / FPS


def read_text(path_or_text: str | Path) -> str:
    if isinstance(path_or_text, Path) or (isinstance(path_or_text, str) and "\n" not in path_or_text
                                          and Path(path_or_text).is_file()):
        return Path(path_or_text).read_text(encoding="utf-8")
    return str(path_or_text)


def scc_timecodes(path_or_text: str | Path) -> list[str]:
    """The timecode label of every caption line, in file order."""
    return [m.group(0).strip() for line in read_text(path_or_text).splitlines()
            if (m := TIMECODE_RE.match(line))]


def timecode_to_frame(label: str) -> int:
    m = re.fullmatch(r"(\d{2}):(\d{2}):(\d{2})([:;])(\d{2})", label)
    if not m:
        raise ValueError(label)
    hh, mm, ss, sep, ff = m.groups()
    count = int(hh) * 108000 + int(mm) * 1800 + int(ss) * 30 + int(ff)
    return dropframe_label_to_frame(count) if sep == ";" else count


def decode_scc_captions(path_or_text: str | Path) -> list[DecodedCaption]:
    """Pop-on captions as pycaption's SCCReader decodes them (shown at EOC).

    Times are seconds on the 29.97 fps timeline; rows lose the non-breaking
    spaces the reader keeps for indentation.  An SCC with no captions gives [].
    """
    from pycaption import SCCReader
    from pycaption.exceptions import CaptionReadNoCaptions

    text = read_text(path_or_text)
    drop_frame = any(";" in tc for tc in scc_timecodes(text))
    try:
        caption_set = SCCReader().read(text)
    except CaptionReadNoCaptions:
        return []
    out = []
    for lang in caption_set.get_languages():
        for cap in caption_set.get_captions(lang):
            lines = [re.sub(r"\s+", " ", ln.replace("\xa0", " ")).strip() for ln in cap.get_text().split("\n")]
            out.append(DecodedCaption(_reader_time_to_seconds(cap.start, drop_frame),
                                      _reader_time_to_seconds(cap.end, drop_frame),
                                      [ln for ln in lines if ln]))
    return sorted(out, key=lambda c: c.start)


def ffmpeg_scc_text(path: str | Path) -> tuple[int, str, str]:
    """Decode an SCC with FFmpeg's scc demuxer + cc_dec to SRT.

    Returns (exit code, plain caption text with ASS markup removed, stderr).
    FFmpeg stamps cues with the line timecode, not the EOC, so use it for
    text and decodability only.
    """
    proc = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-f", "srt", "-"],
                          capture_output=True, text=True)
    body = []
    for line in proc.stdout.splitlines():
        if not line.strip() or line.strip().isdigit() or "-->" in line:
            continue
        line = re.sub(r"<[^>]*>|\{[^}]*\}", "", line).replace("\\h", " ").replace("\\N", " ")
        body.append(line.strip())
    return proc.returncode, " ".join(body), proc.stderr


def caption_set_from_json(captions: Sequence[dict], lang: str = "en"):
    """A pycaption CaptionSet from the pipeline's JSON ``captions`` (start/end/lines)."""
    from pycaption import Caption, CaptionNode, CaptionSet
    from pycaption.base import CaptionList

    items = []
    for cap in captions:
        nodes = []
        for index, line in enumerate(cap["lines"]):
            if index:
                nodes.append(CaptionNode.create_break())
            nodes.append(CaptionNode.create_text(line))
        items.append(Caption(round(float(cap["start"]) * 1e6), round(float(cap["end"]) * 1e6), nodes))
    return CaptionSet({lang: CaptionList(items)})


def pycaption_scc(captions: Sequence[dict]) -> str:
    """The same captions written by pycaption's own SCCWriter (drop-frame)."""
    from pycaption import SCCWriter

    return SCCWriter(drop_frame=True).write(caption_set_from_json(captions))


# --------------------------------------------------------------------------- sync


def sync_errors(onsets: Iterable[float], caption_starts: Sequence[float]) -> list[float]:
    """For each true onset, (start of the nearest caption) - onset, in seconds."""
    starts = list(caption_starts)
    if not starts:
        return [float("inf") for _ in onsets]
    return [min((s - t for s in starts), key=abs) for t in onsets]


def sync_summary(errors: Sequence[float], window: float = SYNC_WINDOW) -> dict:
    absolute = [abs(e) for e in errors]
    if not errors:
        return {"median_abs": None, "worst_abs": None, "mean_signed": None, "within": 0, "onsets": 0}
    return {
        "median_abs": round(statistics.median(absolute), 3),
        "worst_abs": round(max(absolute), 3),
        "mean_signed": round(statistics.fmean(errors), 3),
        "within": sum(a <= window for a in absolute),
        "onsets": len(errors),
    }


# --------------------------------------------------------------------------- video


def probe_streams(path: str | Path) -> dict:
    proc = subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


def frame_png(video: str | Path, t: float, out: str | Path, lower_fraction: float = 1 / 3,
              scale: int = 2) -> Path:
    """The frame at ``t`` s, cropped to the lower part, upscaled, grey."""
    crop = f"crop=iw:ih*{lower_fraction:.4f}:0:ih*{1 - lower_fraction:.4f}"
    subprocess.run(["ffmpeg", "-nostdin", "-y", "-v", "error", "-ss", f"{t:.3f}", "-i", str(video),
                    "-frames:v", "1", "-vf", f"{crop},scale=iw*{scale}:ih*{scale}:flags=lanczos,format=gray",
                    str(out)], check=True, capture_output=True)
    return Path(out)


def ocr_text_at(video: str | Path, t: float, lower_fraction: float = 1 / 3) -> str:
    """Tesseract's reading of the burned-in caption at ``t`` s.

    The caption is white text on a black box over a busy test pattern: keep
    only near-white pixels (the glyphs), invert to black on white, and read
    with tesseract's single-block mode.
    """
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        png = frame_png(video, t, Path(tmp) / "frame.png", lower_fraction)
        image = Image.open(png).convert("L")
        image = image.point(lambda v: 0 if v >= 200 else 255)
        clean = Path(tmp) / "clean.png"
        image.save(clean)
        proc = subprocess.run(["tesseract", str(clean), "-", "--psm", "6"], capture_output=True, text=True)
    return proc.stdout.strip()


# --------------------------------------------------------------------------- runs


def run_cli(videos: Sequence[str | Path], out_dir: str | Path, model: str = "tiny.en",
            extra: Sequence[str] = (), timeout: float = 1800) -> tuple[int, list[dict], str, float]:
    """``python -m core.cli caption`` as a user runs it: (exit code, JSON lines, stderr, seconds)."""
    cmd = [sys.executable, "-m", "core.cli", "caption", *map(str, videos), "--out", str(out_dir),
           "--model", model, *extra]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    records = [json.loads(line) for line in proc.stdout.splitlines() if line.strip().startswith("{")]
    return proc.returncode, records, proc.stderr, time.monotonic() - t0


def raw_whisperx(media_path: str | Path, model: str = "tiny.en", batch_size: int = 8) -> dict:
    """WhisperX called by hand, the way its README shows: text, segments, seconds."""
    import whisperx

    from core.services.models import resolve_model

    t0 = time.monotonic()
    pipeline = whisperx.load_model(resolve_model(model), "cpu", compute_type="int8", language="en")
    loaded = time.monotonic()
    audio = whisperx.load_audio(str(media_path))
    result = pipeline.transcribe(audio, batch_size=batch_size)
    done = time.monotonic()
    segments = [{"start": s["start"], "end": s["end"], "text": s["text"].strip()} for s in result["segments"]]
    return {
        "text": " ".join(s["text"] for s in segments),
        "segments": segments,
        "load_seconds": round(loaded - t0, 3),
        "transcribe_seconds": round(done - loaded, 3),
    }


def raw_whisperx_subprocess(media_path: str | Path, model: str = "tiny.en", timeout: float = 1800) -> dict:
    """``raw_whisperx`` in a child process, so its model does not stay in the caller's memory."""
    code = ("import json, sys; from bench.measure import raw_whisperx; "
            "print('RESULT ' + json.dumps(raw_whisperx(sys.argv[1], sys.argv[2])))")
    proc = subprocess.run([sys.executable, "-c", code, str(media_path), model], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=timeout)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"raw WhisperX failed ({proc.returncode}): {proc.stderr[-1500:]}")


def audio_md5(path: str | Path) -> str:
    """MD5 of the first audio stream's packets (equal when a stream was copied, not re-encoded)."""
    proc = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", "0:a:0", "-c", "copy",
                           "-f", "md5", "-"], capture_output=True, text=True, check=True)
    return proc.stdout.strip()


STAGES = ("probing", "decode_audio", "load_model", "transcribing", "captioning", "rendering", "total")


def evaluate(script: str, onsets: Sequence[float], record: dict, raw_text: str | None = None) -> dict:
    """Every figure of one CLI run on a clip whose script and sentence onsets are known."""
    scc_path = Path(record["outputs"]["scc"])
    transcript = json.loads(Path(record["outputs"]["json"]).read_text(encoding="utf-8"))
    ours = decode_scc_captions(scc_path)
    theirs = decode_scc_captions(pycaption_scc(transcript["captions"]))
    ours_err = sync_errors(onsets, [c.start for c in ours])
    theirs_err = sync_errors(onsets, [c.start for c in theirs])
    return {
        "wer_raw_whisperx": None if raw_text is None else round(wer(script, raw_text), 4),
        "wer_pipeline": round(wer(script, " ".join(c.text for c in ours)), 4),
        "sync": sync_summary(ours_err),
        "sync_pycaption_writer": sync_summary(theirs_err),
        "sync_errors": [round(e, 3) for e in ours_err],
        "sync_errors_pycaption_writer": [round(e, 3) for e in theirs_err],
        "captions": len(ours),
        "stage_seconds": {k: record.get("timings", {}).get(k) for k in STAGES},
        "duration": record.get("duration"),
    }


@contextmanager
def work_dir(keep: Path | None, prefix: str):
    """A bench's working folder: ``keep`` (left in place) or a temporary one, removed afterwards."""
    work = keep or Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield work
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)
