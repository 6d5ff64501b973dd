"""Test media made at run time from espeak-ng speech and FFmpeg test patterns.

Nothing is downloaded: every clip is synthesised sentence by sentence, so
each sentence's text and its true onset in the final timeline are known.
All tools are run through ``subprocess`` with argument lists (no shell).
"""

from __future__ import annotations

import subprocess
import tempfile
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

FPS = "30000/1001"
SAMPLE_RATE = 22050          # espeak-ng's native rate; kept so onsets stay sample-exact
ONSET_THRESHOLD = 0.01       # of full scale: the first sample above it is the speech onset
TAIL = 1.5                   # silence after the last sentence, seconds

# Broadcast-news style script: varied lengths, commas, a number (12), two
# short sign-offs.  Words chosen so espeak-ng says them clearly.
NEWS_SCRIPT: tuple[str, ...] = (
    "Good evening, and welcome to the evening news.",
    "Heavy rain moved across the north of the country today, closing roads and schools.",
    "Emergency crews worked through the night to clear fallen trees.",
    "In the capital, the city council approved a plan to expand public transport.",
    "The project will add 12 new bus routes over the next two years.",
    "Turning to sport, the national team won its final match of the season.",
    "Tomorrow will be dry and bright.",
    "Thank you for watching.",
    "Good night.",
)


@dataclass
class Sentence:
    text: str
    onset: float   # seconds from the start of the clip to the first speech sample
    end: float     # seconds to the last speech sample


@dataclass
class ClipInfo:
    path: Path
    script: str
    sentences: list[Sentence] = field(default_factory=list)
    duration: float = 0.0
    wav: Path | None = None

    @property
    def onsets(self) -> list[float]:
        return [s.onset for s in self.sentences]


def _run(cmd: Sequence[str]) -> None:
    proc = subprocess.run(list(cmd), capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}): {proc.stderr.strip()[-800:]}")


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise RuntimeError(f"{path}: expected 16-bit PCM")
        data = np.frombuffer(w.readframes(w.getnframes()), np.int16)
        if w.getnchannels() > 1:
            data = data.reshape(-1, w.getnchannels())[:, 0]
        return data.copy(), w.getframerate()


def _write_wav(path: Path, samples: np.ndarray, rate: int) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype(np.int16).tobytes())


def speech_bounds(samples: np.ndarray, threshold: float = ONSET_THRESHOLD) -> tuple[int, int] | None:
    """(first, last + 1) sample index whose amplitude exceeds ``threshold`` of full scale."""
    loud = np.flatnonzero(np.abs(samples.astype(np.float64)) > threshold * 32768)
    if loud.size == 0:
        return None
    return int(loud[0]), int(loud[-1]) + 1


def synthesize(text: str, out: Path, voice: str = "en-us", speed: int = 150) -> Path:
    _run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(out), text])
    return out


def _mux(wav: Path, out: Path, duration: float, size: str) -> None:
    """testsrc2 at 29.97 fps plus the wav as AAC, both ``duration`` long."""
    frames = max(1, round(duration * 30000 / 1001))
    _run([
        "ffmpeg", "-nostdin", "-y", "-v", "error",
        "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={FPS}:duration={frames * 1001 / 30000:.6f}",
        "-i", str(wav),
        "-map", "0:v:0", "-map", "1:a:0",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "60",
        "-c:a", "aac", "-b:a", "128k", "-ar", "48000",
        "-movflags", "+faststart",
        str(out),
    ])


def probe_duration(path: str | Path) -> float:
    proc = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration",
                           "-of", "default=nw=1:nk=1", str(path)], capture_output=True, text=True)
    return float(proc.stdout.strip())


def decode_audio(path: str | Path, rate: int = 16000) -> np.ndarray:
    """First audio stream as mono int16 at ``rate``."""
    proc = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", "0:a:0",
                           "-ac", "1", "-ar", str(rate), "-f", "s16le", "-"], capture_output=True)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.decode(errors="replace")[-800:])
    return np.frombuffer(proc.stdout, np.int16)


def make_speech_clip(dir: str | Path, sentences: Sequence[str] = NEWS_SCRIPT, gap: float = 1.2,
                     lead: float = 1.5, size: str = "1280x720", name: str = "clip.mp4",
                     tail: float = TAIL) -> ClipInfo:
    """Speak each sentence with espeak-ng, join them with ``gap`` s of silence
    after ``lead`` s of silence, and mux with a 29.97 fps test pattern.

    Each sentence's onset is its first sample above ONSET_THRESHOLD, so
    espeak's own leading silence is trimmed exactly; gaps run from the last
    loud sample of one sentence to the first of the next.
    """
    dir = Path(dir)
    dir.mkdir(parents=True, exist_ok=True)
    out = dir / name
    pieces: list[np.ndarray] = [np.zeros(round(lead * SAMPLE_RATE), np.int16)]
    info = ClipInfo(path=out, script=" ".join(sentences))
    position = len(pieces[0])
    with tempfile.TemporaryDirectory(dir=dir, prefix=".espeak-") as tmp:
        for index, text in enumerate(sentences):
            samples, rate = _read_wav(synthesize(text, Path(tmp) / f"s{index}.wav"))
            if rate != SAMPLE_RATE:
                raise RuntimeError(f"espeak-ng wrote {rate} Hz, expected {SAMPLE_RATE}")
            bounds = speech_bounds(samples)
            if bounds is None:
                raise RuntimeError(f"espeak-ng produced silence for {text!r}")
            speech = samples[bounds[0]:bounds[1]]
            if index:
                silence = np.zeros(round(gap * SAMPLE_RATE), np.int16)
                pieces.append(silence)
                position += len(silence)
            info.sentences.append(Sentence(text, round(position / SAMPLE_RATE, 4),
                                           round((position + len(speech)) / SAMPLE_RATE, 4)))
            pieces.append(speech)
            position += len(speech)
    pieces.append(np.zeros(round(tail * SAMPLE_RATE), np.int16))
    audio = np.concatenate(pieces)
    wav = dir / (Path(name).stem + ".wav")
    _write_wav(wav, audio, SAMPLE_RATE)
    info.wav = wav
    duration = len(audio) / SAMPLE_RATE
    _mux(wav, out, duration, size)
    info.duration = probe_duration(out)
    _check_onsets(out, info)
    return info


def _check_onsets(path: Path, info: ClipInfo, tolerance: float = 0.02) -> None:
    """The muxed file's audio must start speaking where we say (AAC priming is compensated)."""
    if not info.sentences:
        return
    rate = 16000
    decoded = decode_audio(path, rate)
    first = info.sentences[0]
    window = decoded[: int((first.end + 0.1) * rate)]
    bounds = speech_bounds(window, ONSET_THRESHOLD * 2)
    if bounds is None or abs(bounds[0] / rate - first.onset) > tolerance:
        got = None if bounds is None else bounds[0] / rate
        raise RuntimeError(f"{path}: decoded speech onset {got} != expected {first.onset}")


def make_silent_clip(dir: str | Path, seconds: float = 4.0, name: str = "silent.mp4",
                     size: str = "640x360") -> Path:
    """A test-pattern video with a silent AAC audio track."""
    out = Path(dir) / name
    Path(dir).mkdir(parents=True, exist_ok=True)
    _run([
        "ffmpeg", "-nostdin", "-y", "-v", "error",
        "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={FPS}",
        "-f", "lavfi", "-i", "anullsrc=channel_layout=mono:sample_rate=48000",
        "-map", "0:v:0", "-map", "1:a:0", "-t", f"{seconds:.3f}",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "64k", str(out),
    ])
    return out


def make_video_without_audio(dir: str | Path, seconds: float = 3.0, name: str = "noaudio.mp4",
                             size: str = "640x360") -> Path:
    """A test-pattern video with no audio stream at all."""
    out = Path(dir) / name
    Path(dir).mkdir(parents=True, exist_ok=True)
    _run([
        "ffmpeg", "-nostdin", "-y", "-v", "error",
        "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={FPS}", "-t", f"{seconds:.3f}",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-an", str(out),
    ])
    return out


__all__ = ["NEWS_SCRIPT", "ClipInfo", "Sentence", "make_speech_clip", "make_silent_clip",
           "make_video_without_audio", "speech_bounds", "probe_duration", "decode_audio"]
