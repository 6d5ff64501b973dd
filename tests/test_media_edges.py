"""Media edge cases with real FFmpeg: audio shorter than its video, the same file cut
short, and interlaced sources through burn-in (field order kept)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from core.services import burnin, media
from core.services.captions import Caption

from .conftest import probe

pytestmark = pytest.mark.system

VIDEO_SECONDS, AUDIO_SECONDS = 5.88, 3.96      # the file in issue 13


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True, capture_output=True)


def stream(path: Path, kind: str) -> dict:
    return next(s for s in probe(path)["streams"] if s["codec_type"] == kind)


@pytest.fixture(scope="module")
def short_audio(tmp_path_factory, short_wav) -> Path:
    """5.88 s of video whose speech track ends at 3.96 s (faststart, so a cut copy keeps its index)."""
    out = tmp_path_factory.mktemp("edges") / "audio shorter.mp4"
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=size=320x240:rate=30000/1001:duration={VIDEO_SECONDS}",
           "-t", str(AUDIO_SECONDS), "-i", str(short_wav), "-map", "0:v", "-map", "1:a",
           "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac",
           "-movflags", "+faststart", str(out))
    assert float(stream(out, "audio")["duration"]) < 4.1 < float(stream(out, "video")["duration"])
    return out


def test_audio_shorter_than_video_decodes_the_whole_audio(short_audio):
    info = media.probe(short_audio)
    assert info.duration == pytest.approx(VIDEO_SECONDS, abs=0.1)
    assert info.audio_duration == pytest.approx(AUDIO_SECONDS, abs=0.1)
    audio = media.load_audio(info)
    assert len(audio) / media.SAMPLE_RATE == pytest.approx(AUDIO_SECONDS, abs=0.1)


def test_audio_shorter_than_video_is_captioned_and_rendered_whole(short_audio, tmp_path):
    """Through the dashboard's API and a real worker, as the issue's operator ran it."""
    from tests.system import start_system, stop_system, wait_for

    system = start_system(tmp_path)
    try:
        source = system.storage / "news" / short_audio.name
        shutil.copy(short_audio, source)
        client = system.app.test_client()
        job_id = client.post("/api/transcribe/batch", json={"paths": [str(source)]}).get_json()["queued"][0]["job_id"]
        job = wait_for(lambda: (lambda j: j if j["status"] in ("completed", "failed") else None)(
            client.get(f"/api/status/{job_id}").get_json()), 300, what="the job")
    finally:
        stop_system(system)
    assert job["status"] == "completed", job["error"]
    outputs = job["result"]["outputs"]
    transcript = json.loads(Path(outputs["json"]).read_text())
    assert transcript["speech_found"] and "evening" in transcript["text"].lower(), transcript["text"]
    rendition = Path(outputs["video"])
    assert float(stream(rendition, "video")["duration"]) == pytest.approx(VIDEO_SECONDS, abs=0.15)
    assert float(stream(rendition, "audio")["duration"]) == pytest.approx(AUDIO_SECONDS, abs=0.15)


def test_a_cut_copy_of_it_still_fails_as_truncated(short_audio, tmp_path):
    cut = tmp_path / "cut.mp4"
    data = short_audio.read_bytes()
    cut.write_bytes(data[:int(len(data) * 0.4)])
    with pytest.raises(media.InputError, match="truncated or corrupt"):
        media.load_audio(media.probe(cut))


# --- interlaced sources -------------------------------------------------------------------------------

def make_interlaced(path: Path, order: str) -> Path:
    """720x480 29.97i made the way broadcast encoders do: two 59.94p pictures woven into
    one frame, flagged ``tff``/``bff`` and encoded as interlaced H.264."""
    first = "top" if order == "tff" else "bottom"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=720x480:rate=60000/1001", "-f", "lavfi",
           "-i", "sine=frequency=440:sample_rate=48000", "-t", "2",
           "-vf", f"tinterlace=mode=interleave_{first},setfield={order}",
           "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-flags", "+ildct+ilme",
           "-x264-params", f"{order}=1", "-c:a", "aac", str(path))
    return path


@pytest.mark.parametrize("order,field_order", [("tff", "tt"), ("bff", "bb"), ("progressive", "progressive")])
def test_burn_in_keeps_the_field_order(order, field_order, tmp_path):
    if order == "progressive":
        source = tmp_path / "progressive.mp4"
        ffmpeg("-f", "lavfi", "-i", "testsrc2=size=720x480:rate=30000/1001", "-f", "lavfi",
               "-i", "sine=frequency=440:sample_rate=48000", "-t", "2", "-c:v", "libx264", "-preset",
               "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", str(source))
    else:
        source = make_interlaced(tmp_path / f"{order}.mp4", order)
    assert stream(source, "video")["field_order"] == field_order, "precondition: the source's own flag"
    info = media.probe(source)
    assert info.field_order == field_order
    ass = tmp_path / "captions.ass"
    ass.write_text(burnin.ass_document([Caption(0.2, 1.8, ["GOOD EVENING"])], info.width, info.height))
    out = tmp_path / "rendition.mp4"
    burnin.burn_in(info, ass, out, preset="ultrafast")
    assert stream(out, "video")["field_order"] == field_order
