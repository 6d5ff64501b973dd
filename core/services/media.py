"""Probe media files and decode their audio with FFmpeg (no shell involved)."""

from __future__ import annotations

import subprocess
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import av
import ffmpeg
import numpy as np

from .errors import InputError

SAMPLE_RATE = 16000
_CHUNK_BYTES = 1 << 18        # 8.2 s of decoded audio: progress moves at least every 5% of a file over 3 min


def ffmpeg_url(path: str | Path) -> str:
    """Absolute ``file:`` URL, so names with ':' or a leading '-' stay file names."""
    return "file:" + str(Path(path).absolute())


@dataclass(frozen=True)
class MediaInfo:
    path: str
    duration: float
    has_audio: bool
    has_video: bool
    width: int = 0
    height: int = 0
    fps: float = 0.0
    audio_codec: str = ""
    video_codec: str = ""
    audio_duration: float = 0.0  # the audio stream's own length when known (it may end before the video)
    field_order: str = ""        # "progressive", "tt" (top field first), "bb", "tb", "bt"; "" unknown or no video
    label: str = ""          # the name operators know, when ``path`` is an open descriptor of it

    @property
    def shown(self) -> str:
        return self.label or self.path

    def as_dict(self) -> dict:
        data = dict(self.__dict__)
        data["path"] = data.pop("label") or self.path
        return data


def _last_error_line(stderr: bytes | str | None) -> str:
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else (stderr or "")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else "unknown error"


def _has_container_signature(path: Path) -> bool:
    """Whether the file starts like a media container (so a failed probe means damage).

    An MP4/MOV copied only in part keeps its ``ftyp`` box but loses the ``moov``
    index written at the end; Matroska/WebM, AVI/WAV, Ogg, FLAC and MP3 have magic bytes.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return False
    return (head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide")
            or head.startswith((b"\x1aE\xdf\xa3", b"RIFF", b"OggS", b"fLaC", b"ID3")))


def probe(path: str | Path, label: str | None = None) -> MediaInfo:
    """Validate ``path`` as a media file with an audio stream and describe it.

    ``label`` names the file in errors and results when ``path`` is a
    ``/proc/<pid>/fd/<n>`` of it.  Raises InputError with a plain reason for
    every unusable input.
    """
    p = Path(path)
    if label is not None:
        try:
            return replace(_probe(p), label=str(label))
        except InputError as err:
            raise InputError(label, err.reason) from None
    return _probe(p)


def _probe(p: Path) -> MediaInfo:
    if not p.exists():
        raise InputError(p, "file not found")
    if p.is_dir():
        raise InputError(p, "is a directory, not a media file")
    if not p.is_file():
        raise InputError(p, "is not a regular file")
    if p.stat().st_size == 0:
        raise InputError(p, "file is empty (0 bytes)")
    try:
        with av.open(ffmpeg_url(p), metadata_errors="ignore") as container:
            return _describe(p, container)
    except av.error.FFmpegError as err:
        detail = err.strerror or str(err)
        if _has_container_signature(p):
            raise InputError(p, f"media file is truncated or corrupt ({detail})") from None
        raise InputError(p, f"not a readable media file ({detail})") from None


# libavcodec's AVFieldOrder, as ffprobe names it.
_FIELD_ORDERS = {1: "progressive", 2: "tt", 3: "bb", 4: "tb", 5: "bt"}


def _describe(p: Path, container) -> MediaInfo:
    """MediaInfo from an open container (PyAV: libavformat in-process, ~1 ms a file)."""
    audio = next(iter(container.streams.audio), None)
    video = next((v for v in container.streams.video
                  if not v.disposition & av.stream.Disposition.attached_pic), None)
    if audio is None and video is None:
        raise InputError(p, "not a media file (no audio or video streams)")
    if audio is None:
        raise InputError(p, "has no audio stream, so there is nothing to transcribe")
    duration = 0.0
    if container.duration:
        duration = container.duration / av.time_base
    elif audio.duration and audio.time_base:
        duration = float(audio.duration * audio.time_base)
    if duration <= 0:
        raise InputError(p, "media has no duration (truncated or corrupt)")
    audio_duration = float(audio.duration * audio.time_base) if audio.duration and audio.time_base else 0.0
    return MediaInfo(
        path=str(p),
        duration=duration,
        has_audio=True,
        has_video=video is not None,
        width=video.codec_context.width if video else 0,
        height=video.codec_context.height if video else 0,
        fps=float(video.average_rate or 0) if video else 0.0,
        audio_codec=audio.codec_context.name,
        video_codec=video.codec_context.name if video else "",
        audio_duration=audio_duration,
        field_order=_FIELD_ORDERS.get(video.codec_context.field_order, "") if video else "",
    )


def load_audio(media: MediaInfo, progress: Callable[[float], None] | None = None) -> np.ndarray:
    """Decode the first audio stream to 16 kHz mono float32; ``progress`` gets the share decoded.

    Decoding errors (a truncated or corrupt file) are errors, not warnings:
    captions made from half a file would silently lose speech.  The audio must
    last as long as its own stream says (the file's duration when the stream
    does not say): a track that ends before the video is fine, a file cut short
    is not, even when it decodes "cleanly" up to the cut.
    """
    cmd = (
        ffmpeg.input(ffmpeg_url(media.path))
        .output("pipe:", format="s16le", acodec="pcm_s16le", ac=1, ar=SAMPLE_RATE, map="0:a:0")
        .global_args("-nostdin", "-v", "error", "-xerror")
        .compile()
    )
    expected = media.audio_duration or media.duration
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stderr: list[bytes] = []
    drain = threading.Thread(target=lambda: stderr.append(proc.stderr.read()), daemon=True)
    drain.start()
    pcm = bytearray()
    try:
        for chunk in iter(lambda: proc.stdout.read(_CHUNK_BYTES), b""):
            pcm += chunk
            if progress and expected > 0:
                progress(min(1.0, len(pcm) / 2 / SAMPLE_RATE / expected))
        code = proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    drain.join()
    errors = b"".join(stderr)
    if code != 0 or errors.strip():
        raise InputError(media.shown, f"audio cannot be decoded, the file is truncated or corrupt "
                                     f"({_last_error_line(errors)})")
    audio = np.frombuffer(pcm, np.int16).astype(np.float32) / 32768.0
    decoded = len(audio) / SAMPLE_RATE
    if expected > 2.0 and decoded < expected * 0.9 - 0.5:
        of = "its audio track" if media.audio_duration else "the file"
        raise InputError(media.shown, f"audio ends at {decoded:.1f}s of {of}'s {expected:.1f}s "
                                     "(truncated or corrupt)")
    return audio
