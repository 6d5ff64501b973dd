"""Start the captioning dashboard.

The web dashboard and its embedded Redis/Celery worker are not built yet; until
they are, this captions the files you pass (or a generated sample clip) with
the same pipeline the workers will run, so a new machine can be checked end
to end:

    python start_dashboard.py [VIDEO ...] [--out DIR]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from core.cli import main as cli_main
from core.config import PROJECT_ROOT

SAMPLE_TEXT = ("Good evening. This is a test of the captioning pipeline. "
               "Captions appear on screen as each sentence is spoken.")


def make_sample(folder: Path) -> Path:
    """A short clip with synthetic speech over a test pattern."""
    clip = folder / "sample.mp4"
    if clip.exists():
        return clip
    if not shutil.which("espeak-ng"):
        sys.exit("espeak-ng is needed to make the sample clip: apt-get install espeak-ng, or pass a VIDEO")
    folder.mkdir(parents=True, exist_ok=True)
    wav = folder / "sample.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(wav), SAMPLE_TEXT], check=True)
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=1280x720:rate=30000/1001", "-i", str(wav), "-shortest",
                    "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac",
                    str(clip)], check=True)
    wav.unlink()
    return clip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("videos", nargs="*", metavar="VIDEO")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "var" / "sample" / "out")
    args = parser.parse_args()
    videos = args.videos or [str(make_sample(PROJECT_ROOT / "var" / "sample"))]
    print(f"captioning {len(videos)} file(s) into {args.out} ...", flush=True)
    return cli_main(["caption", *videos, "--out", str(args.out)])


if __name__ == "__main__":
    sys.exit(main())
