"""Shared helpers for the caption tests: synthetic media made at run time with
espeak-ng and FFmpeg (argument lists, no shell), and a runner for the real CLI.

Media fixtures are session-scoped: each clip is made once per test session.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent

SHORT_TEXT = "Good evening. This is a short test of the captioning system."
TEN_SECOND_TEXT = ("This clip is used to test truncated files. It keeps talking for a while, "
                   "so that the audio lasts about ten seconds in total.")
LONG_TEXT = ("Good evening and welcome to the late news. A storm moved along the coast this afternoon "
             "and closed several roads. Officials say repairs will take about two weeks. Schools will "
             "stay open tomorrow, and the trains are running on time again. The council meets on Tuesday "
             "to discuss the budget for next year. That is all for tonight. Thank you for watching.")
WEIRD_NAME = "-lead 'q' [x]: ünï.mp4"


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, **kwargs)
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace") if isinstance(proc.stderr, bytes) else proc.stderr
        raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}): {err[-2000:]}")
    return proc


def require_tools() -> None:
    missing = [tool for tool in ("ffmpeg", "ffprobe", "espeak-ng") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"test media needs {', '.join(missing)} (scripts/setup.sh --test installs them)")


def speak(text: str, wav: Path, rate: int = 150) -> Path:
    """espeak-ng speech for ``text`` as a WAV file."""
    require_tools()
    wav.parent.mkdir(parents=True, exist_ok=True)
    _run(["espeak-ng", "-v", "en-us", "-s", str(rate), "-w", str(wav), text])
    return wav


def make_video(path: Path, wav: Path | None, *, size: str = "320x240", duration: float | None = None,
               faststart: bool = False, preset: str = "ultrafast") -> Path:
    """testsrc2 at 29.97 fps around ``wav`` (or silent video of ``duration`` when wav is None)."""
    require_tools()
    path.parent.mkdir(parents=True, exist_ok=True)
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi",
           "-i", f"testsrc2=size={size}:rate=30000/1001"]
    if wav is not None:
        cmd += ["-i", str(wav)]
    if duration is not None:
        cmd += ["-t", f"{duration:.3f}"]
    if wav is not None:
        cmd += ["-shortest"]
    cmd += ["-c:v", "libx264", "-preset", preset, "-pix_fmt", "yuv420p"]
    if wav is not None:
        cmd += ["-c:a", "aac"]
    if faststart:
        cmd += ["-movflags", "+faststart"]
    # file: keeps names with ':' or a leading '-' as file names
    cmd += ["file:" + str(path.absolute())]
    _run(cmd)
    return path


def probe(path: Path) -> dict:
    proc = _run(["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json",
                 "file:" + str(Path(path).absolute())], text=True)
    return json.loads(proc.stdout)


def media_duration(path: Path) -> float:
    return float(probe(path)["format"]["duration"])


def gray_frame(path: Path, at: float, width: int, height: int):
    """One decoded frame at ``at`` seconds as a (height, width) uint8 array."""
    import numpy as np

    proc = _run(["ffmpeg", "-nostdin", "-v", "error", "-ss", f"{at:.3f}", "-i", "file:" + str(Path(path).absolute()),
                 "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray", "-"])
    data = np.frombuffer(proc.stdout, np.uint8)
    assert data.size == width * height, f"expected one {width}x{height} frame, got {data.size} bytes"
    return data.reshape(height, width).astype(np.int16)


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass
class CliRun:
    code: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def records(self) -> list[dict]:
        out = []
        for line in self.stdout.splitlines():
            line = line.strip()
            if line.startswith("{"):
                out.append(json.loads(line))
        return out

    def record_for(self, source: Path | str) -> dict:
        for rec in self.records:
            if Path(rec.get("source", "")) == Path(source):
                return rec
        raise AssertionError(f"no JSON line for {source}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr[-3000:]}")


def cli_command(videos: list, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "core.cli", "caption", *map(str, videos), "--out", str(out), *extra]


def run_cli(videos: list, out: Path, *extra: str, env: dict | None = None, timeout: float = 600) -> CliRun:
    """The real CLI, from the project root, as an operator runs it."""
    import time

    full_env = {**os.environ, **(env or {})}
    t0 = time.monotonic()
    proc = subprocess.run(cli_command(videos, out, *extra), cwd=PROJECT_ROOT, capture_output=True, text=True,
                          env=full_env, timeout=timeout)
    return CliRun(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - t0)


# --- session-scoped media -------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def short_wav(media_dir) -> Path:
    return speak(SHORT_TEXT, media_dir / "short.wav")


@pytest.fixture(scope="session")
def short_clip(media_dir, short_wav) -> Path:
    """~4-5 s of espeak speech in a 320x240 29.97 fps H.264/AAC MP4."""
    return make_video(media_dir / "short clip.mp4", short_wav, size="320x240")


@pytest.fixture(scope="session")
def ten_second_clips(media_dir) -> dict[str, Path]:
    """The same ~10 s clip with and without ``-movflags +faststart``."""
    wav = speak(TEN_SECOND_TEXT, media_dir / "ten.wav")
    return {
        "faststart": make_video(media_dir / "ten_faststart.mp4", wav, duration=10.0, faststart=True),
        "plain": make_video(media_dir / "ten_plain.mp4", wav, duration=10.0, faststart=False),
    }


@pytest.fixture(scope="session")
def video_without_audio(media_dir) -> Path:
    return make_video(media_dir / "no audio.mp4", None, duration=3.0)


@pytest.fixture(scope="session")
def long_720p_clip(media_dir) -> Path:
    """~20 s of speech at 1280x720, long enough to catch its burn-in in progress."""
    wav = speak(LONG_TEXT, media_dir / "long.wav")
    return make_video(media_dir / "long 720p.mp4", wav, size="1280x720", duration=20.0)


# The fast tier's fixtures (store, queue fake, app, client) live in tests/fast.py.
from tests.fast import app, client, news, published, queue, settings, store  # noqa: E402,F401
