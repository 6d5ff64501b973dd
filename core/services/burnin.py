"""Burn captions into an H.264 rendition with FFmpeg's libass ``subtitles`` filter."""

from __future__ import annotations

import subprocess
import threading
from collections import deque
from pathlib import Path
from typing import Callable, Sequence

import ffmpeg

from .captions import Caption
from .errors import ProcessingError
from .media import MediaInfo, ffmpeg_url

# Interlaced sources stay interlaced, in their field order (x264 takes it only from its own
# parameters); "tb"/"bt" are coded one way and shown the other: the order shown counts.
_X264_FIELDS = {"tt": "tff=1", "bt": "tff=1", "bb": "bff=1", "tb": "bff=1"}

# Audio codecs an MP4 can carry as they are; anything else is encoded to AAC.
_MP4_AUDIO = {"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"}


def _ass_time(seconds: float) -> str:
    cs = max(0, round(seconds * 100))
    return f"{cs // 360000}:{cs // 6000 % 60:02d}:{cs // 100 % 60:02d}.{cs % 100:02d}"


def _ass_text(line: str) -> str:
    return line.replace("\\", "\\\\").replace("{", "\\{").replace("}", "\\}")


def ass_document(captions: Sequence[Caption], width: int, height: int) -> str:
    """An ASS script that draws captions like a 608 decoder: white monospace
    text on a black box per row, centred at the bottom of the title-safe area."""
    width, height = width or 1280, height or 720
    font = max(12, round(height * 0.8 / 15 * 0.85))   # 608: 15 rows in the safe area
    margin_v = round(height * 0.1)
    pad = max(2, round(font * 0.12))
    header = (
        "[Script Info]\nScriptType: v4.00+\nWrapStyle: 2\nScaledBorderAndShadow: yes\n"
        f"PlayResX: {width}\nPlayResY: {height}\n\n"
        "[V4+ Styles]\n"
        "Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, "
        "Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, "
        "Shadow, Alignment, MarginL, MarginR, MarginV, Encoding\n"
        f"Style: CC,DejaVu Sans Mono,{font},&H00FFFFFF,&H00FFFFFF,&H00000000,&H00000000,"
        f"0,0,0,0,100,100,0,0,3,{pad},0,2,10,10,{margin_v},1\n\n"
        "[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n"
    )
    newline = "\\N"
    events = [
        f"Dialogue: 0,{_ass_time(c.start)},{_ass_time(c.end)},CC,,0,0,0,,{newline.join(map(_ass_text, c.lines))}"
        for c in captions
    ]
    return header + "\n".join(events) + "\n"


def _die_with_parent() -> None:
    """In the ffmpeg child: get SIGKILL when the process that started it dies, so a
    killed job (kill -9, OOM killer, a lost Celery child) stops its encoder too."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the encoder may outlive a killed job


def burn_in(media: MediaInfo, ass_path: Path, output: Path, *, preset: str = "veryfast", crf: int = 20,
            progress: Callable[[float], None] | None = None) -> dict:
    """Encode ``media`` with the ASS captions drawn in; audio is copied when MP4 can hold it.

    Runs ffmpeg without a shell and reports progress from ``-progress``.
    """
    if not media.has_video:
        raise ProcessingError(media.shown, "has no video stream to burn captions into (use --no-burn-in)")
    source = ffmpeg.input(ffmpeg_url(media.path))
    video = source.video.filter("subtitles", filename=str(ass_path), charenc="UTF-8")
    interlaced = _X264_FIELDS.get(media.field_order)
    if interlaced:  # keep it interlaced: scale (4:2:0 chroma) field by field, encode fields in the source's order
        video = video.filter("scale", "trunc(iw/2)*2", "trunc(ih/2)*2", interl=1).filter("format", "yuv420p")
    elif media.width % 2 or media.height % 2:  # yuv420p needs even dimensions
        video = video.filter("scale", "trunc(iw/2)*2", "trunc(ih/2)*2")
    copy_audio = media.audio_codec in _MP4_AUDIO
    out = ffmpeg.output(
        video, source.audio, ffmpeg_url(output), format="mp4",
        vcodec="libx264", preset=preset, crf=crf, pix_fmt="yuv420p",
        acodec="copy" if copy_audio else "aac", movflags="+faststart",
        **({} if copy_audio else {"audio_bitrate": "192k"}),
        **({"flags": "+ildct+ilme", "x264-params": interlaced} if interlaced else {}),
    ).global_args("-nostdin", "-y", "-v", "error", "-nostats", "-progress", "pipe:1")
    proc = subprocess.Popen(out.compile(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=_die_with_parent)
    errors: deque[str] = deque(maxlen=20)
    drain = threading.Thread(target=lambda: errors.extend(
        ln.decode("utf-8", "replace").rstrip() for ln in proc.stderr), daemon=True)
    drain.start()
    try:
        for raw in proc.stdout:
            key, _, value = raw.decode("ascii", "replace").strip().partition("=")
            if key == "out_time_us" and progress and media.duration > 0 and value.isdigit():
                progress(min(1.0, int(value) / 1e6 / media.duration))
        code = proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    drain.join(timeout=5)
    if code != 0:
        detail = next((e for e in reversed(errors) if e), f"exit code {code}")
        raise ProcessingError(media.shown, f"ffmpeg burn-in failed: {detail}")
    if progress:
        progress(1.0)
    return {"audio": "copied" if copy_audio else f"{media.audio_codec} encoded to aac",
            "video": f"libx264 {preset} crf {crf}"}
