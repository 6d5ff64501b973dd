"""Deliverables end to end through the CLI: programme timecode (drop-frame and non-drop) and a MOV
with a CEA-608 track, for 29.97, 25 and 23.976 fps sources (real model, FFmpeg reads the track back)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from bench.media import make_speech_clip
from core.services.captions import FPS
from core.services.scc import eoc_frames, write_scc
from core.services.timecode import Timecode
from core.services.writers import captions_from_dicts
from tests.conftest import probe, run_cli

pytestmark = pytest.mark.system

SENTENCES = ["Good evening and welcome to the late news.", "Heavy rain is expected in the north tomorrow.",
             "The council meets on Tuesday."]
RATES = {"29.97": "30000/1001", "25": "25", "23.976": "24000/1001"}


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rates")
    base = make_speech_clip(folder, SENTENCES, gap=0.6, lead=0.05, size="320x240", name="base.mp4").path
    made = {}
    for label, rate in RATES.items():
        out = folder / f"news {label}.mov"
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(base), "-r", rate, "-c:v", "libx264", "-preset",
                        "ultrafast", "-c:a", "copy", "-timecode", "10:00:00:00", str(out)], check=True)
        made[label] = out
    return made


def _srt_cues(text: str) -> list[tuple[float, str]]:
    cues = []
    for block in text.strip().split("\n\n"):
        lines = block.splitlines()
        if len(lines) >= 3:
            h, m, s, ms = map(int, re.split(r"[:,]", lines[1].split(" --> ")[0]))
            words = re.sub(r"<[^>]+>|\{[^}]+\}", "", " ".join(lines[2:]))
            cues.append((h * 3600 + m * 60 + s + ms / 1000, " ".join(words.split())))
    return cues


@pytest.mark.parametrize("rate", list(RATES))
def test_programme_timecode_and_mov_with_a_608_track(clips, tmp_path, rate):
    source = clips[rate]
    run = run_cli([source], tmp_path, "--no-burn-in", "--mov", "--start-timecode", "01:00:00;00")
    assert run.code == 0, run.stdout + run.stderr[-2000:]
    record = run.record_for(source)
    assert set(record["outputs"]) == {"scc", "srt", "vtt", "dfxp", "json", "mov"}
    data = json.loads(Path(record["outputs"]["json"]).read_text())
    assert data["timecode"]["start_timecode"] == "01:00:00;00" and data["timecode"]["timecode_mode"] == "df"
    captions = captions_from_dicts(data["captions"])
    targets = [round(c.start * FPS) for c in captions]
    scc = Path(record["outputs"]["scc"]).read_text()
    # Every EOC exactly 107,892 frames after its zero-based frame; the first load sits in the pre-roll.
    assert eoc_frames(scc, Timecode(0, "df")) == [t + 107892 for t in targets]
    assert scc.splitlines()[2] < "01:00:00;00"
    assert [round(c["shown_start"] * FPS) for c in data["captions"]] == targets

    mov = Path(record["outputs"]["mov"])
    streams = {s["codec_type"]: s for s in probe(mov)["streams"] if s["codec_type"] in ("video", "audio", "subtitle")}
    original = {s["codec_type"]: s for s in probe(source)["streams"] if s["codec_type"] in ("video", "audio")}
    assert streams["subtitle"]["codec_tag_string"] == "c608"
    for kind in ("video", "audio"):                                  # stream-copied, not re-encoded
        assert streams[kind]["codec_name"] == original[kind]["codec_name"]
        assert streams[kind]["nb_frames"] == original[kind]["nb_frames"]
    read_back = subprocess.run(["ffmpeg", "-v", "error", "-i", str(mov), "-map", "0:s:0", "-f", "srt", "-"],
                               capture_output=True, text=True).stdout
    cues = _srt_cues(read_back)
    shown = write_scc(captions)[1].eoc_frames                        # the MOV's track is zero-based
    assert [text for _, text in cues] == [" ".join(c.lines) for c in captions]
    for (start, _), frame in zip(cues, shown):
        assert abs(start - frame / FPS) <= 1 / FPS + 0.001, (start, frame / FPS)


def test_non_drop_frame_labels_count_30_a_second(clips, tmp_path):
    source = clips["29.97"]
    run = run_cli([source], tmp_path, "--no-burn-in", "--start-timecode", "01:00:00:00", "--non-drop-frame")
    assert run.code == 0, run.stderr[-2000:]
    record = run.record_for(source)
    scc = Path(record["outputs"]["scc"]).read_text()
    labels = [line.split("\t")[0] for line in scc.splitlines() if "\t" in line]
    assert labels and all(re.fullmatch(r"\d\d:\d\d:\d\d:\d\d", label) for label in labels)
    data = json.loads(Path(record["outputs"]["json"]).read_text())
    targets = [round(c["start"] * FPS) for c in data["captions"]]
    assert eoc_frames(scc, Timecode(0, "ndf")) == [t + 108000 for t in targets]


def test_source_timecode_is_read_from_the_file(clips, tmp_path):
    source = clips["25"]                          # its timecode track says 10:00:00:00 (25 fps)
    run = run_cli([source], tmp_path, "--no-burn-in", "--start-timecode", "source")
    assert run.code == 0, run.stderr[-2000:]
    data = json.loads(Path(run.record_for(source)["outputs"]["json"]).read_text())
    assert data["timecode"]["start_timecode"] == "10:00:00;00" and "note" not in data["timecode"]
