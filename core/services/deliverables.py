"""Broadcast deliverables beyond the sidecars: the programme's start timecode and a MOV with a CEA-608 track."""

from __future__ import annotations

import subprocess
from pathlib import Path

import av
import ffmpeg

from . import timecode
from .errors import InputError, ProcessingError
from .media import MediaInfo, _last_error_line, ffmpeg_url

_NOMINAL = {23.976: 24, 24.0: 24, 25.0: 25, 29.97: 30, 30.0: 30, 50.0: 50, 59.94: 60, 60.0: 60}


def source_timecode(path: str | Path) -> str | None:
    """The source's own start timecode (a MOV/MXF timecode track or a ``timecode`` tag), if it has one."""
    try:
        with av.open(ffmpeg_url(path), metadata_errors="ignore") as container:
            tags = [container.metadata, *(stream.metadata for stream in container.streams)]
            fps = next((float(s.average_rate) for s in container.streams.video if s.average_rate), 0.0)
    except av.error.FFmpegError:
        return None
    label = next((t["timecode"] for t in tags if t.get("timecode")), None)
    return _on_scc_clock(label, fps) if label else None


def _on_scc_clock(label: str, fps: float) -> str | None:
    """A source label (frames at its own rate) as an SCC label: the same HH:MM:SS, frames scaled to 30."""
    try:
        hh, mm, rest = label.replace(";", ":").replace(".", ":").split(":", 2)
        ss, ff = rest.split(":")
        nominal = _NOMINAL.get(round(fps, 3), round(fps) or 30)
        frame = min(29, round(int(ff) * 30 / nominal))
    except ValueError:
        return None
    separator = ";" if (";" in label or nominal in (30, 60)) else ":"
    return f"{int(hh):02d}:{int(mm):02d}:{int(ss):02d}{separator}{frame:02d}"


def start_timecode(value: str, mode: str | None, media_path: str | Path) -> tuple[timecode.Timecode, str | None]:
    """The start timecode a job asked for (``source`` reads the file's own); (timecode, a note or None)."""
    note = None
    if value == "source":
        found = source_timecode(media_path)
        if found is None:
            note = "the source has no timecode; captions start at 00:00:00;00"
            value = "00:00:00;00"
        else:
            value = found
    try:
        start = timecode.parse(value, mode)
    except timecode.TimecodeError as err:
        if note is None and value != "00:00:00;00":
            note = f"the source's timecode {value!r} cannot be used ({err}); captions start at 00:00:00;00"
        start = timecode.parse("00:00:00;00", mode)
    return start, note


def mux_mov(info: MediaInfo, scc_path: Path, out: Path, start_label: str) -> dict:
    """A QuickTime file: the source's video and audio stream-copied, plus a CEA-608 (``c608``) track
    made from ``scc_path`` (zero-based, one code word a line), and a timecode track at ``start_label``."""
    if not info.has_video:
        raise InputError(info.shown, "has no video stream for a MOV deliverable")
    video = ffmpeg.input(ffmpeg_url(info.path))
    captions = ffmpeg.input(ffmpeg_url(scc_path), f="scc")
    streams = [video["v:0"], captions["0"]] + ([video["a:0"]] if info.has_audio else [])
    cmd = (ffmpeg.output(*streams, ffmpeg_url(out), c="copy", f="mov", timecode=start_label)
           .global_args("-nostdin", "-v", "error", "-y").compile())
    proc = subprocess.run(cmd, capture_output=True)
    if proc.returncode != 0:
        raise ProcessingError(info.shown, f"ffmpeg could not make the MOV: {_last_error_line(proc.stderr)}")
    return {"mov": "video and audio copied; CEA-608 track c608", "timecode": start_label}
