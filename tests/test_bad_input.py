"""Bad input, awkward names and killed runs, through the real CLI.

Every rejected file must fail on its own with a JSON line naming the file and
a reason an operator understands, leave nothing in --out, and (for inputs that
can be rejected by looking at them) fail before the Whisper model loads: those
runs point WHISPER_MODEL at a model that does not exist, so reaching the model
would change the error.  Only a few runs load the real model (short clips).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from pycaption import SCCReader

from core.services import burnin, media
from core.services.captions import Caption

from .conftest import (PROJECT_ROOT, SHORT_TEXT, WEIRD_NAME, CliRun, cli_command, gray_frame, media_duration,
                       probe, run_cli, sha256)

pytestmark = pytest.mark.system

NO_MODEL = {"WHISPER_MODEL": "/nonexistent/whisper-model-for-tests"}
SIDECARS = ("scc", "srt", "vtt", "dfxp", "json")


def out_entries(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir()) if out.exists() else []


def hidden_entries(out: Path) -> list[str]:
    return [name for name in out_entries(out) if name.startswith(".")]


def assert_rejected(run: CliRun, source: Path, *reason: str):
    assert run.code != 0, f"exit 0 for a bad input {source}\n{run.stdout}"
    rec = run.record_for(source)
    assert "error" in rec and "outputs" not in rec, rec
    error = rec["error"]
    assert str(source) in error, f"error does not name the file: {error!r}"
    for word in reason:
        assert word.lower() in error.lower(), f"expected {word!r} in the reason: {error!r}"
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    return error


def assert_nothing_written(out: Path, keep: tuple[str, ...] = ()):
    left = [name for name in out_entries(out) if name not in keep]
    assert not left, f"--out holds {left} after a rejected input"


# --- inputs rejected before the model loads ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory, ten_second_clips, video_without_audio) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("bad")
    (base / "folder.mp4").mkdir()
    (base / "notes.mp4").write_text("Rundown for the nine o'clock news\n1. storm\n2. council budget\n" * 20)
    (base / "empty.mp4").write_bytes(b"")
    fast = ten_second_clips["faststart"].read_bytes()
    plain = ten_second_clips["plain"].read_bytes()
    (base / "cut faststart.mp4").write_bytes(fast[:int(len(fast) * 0.4)])
    (base / "cut plain.mp4").write_bytes(plain[:len(plain) // 2])
    shutil.copy(video_without_audio, base / "mute.mp4")
    return {
        "missing": base / "missing.mp4",
        "directory": base / "folder.mp4",
        "text": base / "notes.mp4",
        "empty": base / "empty.mp4",
        "truncated-faststart": base / "cut faststart.mp4",
        "truncated-plain": base / "cut plain.mp4",
        "no-audio": base / "mute.mp4",
    }


REASONS = {
    "missing": ("not found",),
    "directory": ("directory",),
    "text": ("not a readable media file",),
    "empty": ("empty",),
    "truncated-faststart": ("truncated or corrupt",),
    "truncated-plain": ("truncated or corrupt",),
    "no-audio": ("no audio",),
}


@pytest.mark.parametrize("case", list(REASONS))
@pytest.mark.parametrize("burn", [True, False], ids=["burn-in", "no-burn-in"])
def test_bad_input_is_rejected_quickly_with_a_reason(case, burn, bad_inputs, tmp_path):
    source = bad_inputs[case]
    out = tmp_path / "out"
    run = run_cli([source], out, *([] if burn else ["--no-burn-in"]), env=NO_MODEL, timeout=120)
    assert_rejected(run, source, *REASONS[case])
    assert "CTranslate2" not in run.stdout, "the model was reached before the input was checked"
    assert_nothing_written(out)
    assert run.seconds < 20, f"rejecting {case} took {run.seconds:.1f}s"


def test_truncated_files_are_told_apart_from_files_that_are_not_media(bad_inputs, tmp_path):
    run = run_cli([bad_inputs["text"], bad_inputs["truncated-plain"]], tmp_path / "out", env=NO_MODEL, timeout=120)
    text_error = run.record_for(bad_inputs["text"])["error"]
    cut_error = run.record_for(bad_inputs["truncated-plain"])["error"]
    assert "truncated" not in text_error.lower(), text_error
    assert "truncated" in cut_error.lower(), (
        f"a half-copied MP4 (no moov index) is reported as {cut_error!r}; an operator cannot tell it "
        "from a file that was never a video")


def test_every_bad_input_in_one_run_gets_its_own_error_line(bad_inputs, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    sources = list(bad_inputs.values())
    run = run_cli(sources, out, env=NO_MODEL, timeout=180)
    assert run.code == 1
    assert len(run.records) == len(sources), run.stdout
    for case, source in bad_inputs.items():
        assert "error" in run.record_for(source)
    assert out_entries(out) == [], out_entries(out)


def test_a_file_in_the_way_of_an_output_is_never_overwritten(short_clip, tmp_path):
    """Captioned into its own folder, where a file (here another video) already holds
    the name ``clip.mp4.vtt``: that file stays byte-identical, the run takes the next free names."""
    folder = tmp_path / "in place"
    folder.mkdir()
    source = folder / "clip.mp4"
    shutil.copy(short_clip, source)
    in_the_way = folder / "clip.mp4.vtt"
    shutil.copy(short_clip, in_the_way)
    before = {p: sha256(p) for p in (source, in_the_way)}
    run = run_cli([source], folder, "--no-burn-in", timeout=300)
    assert run.code == 0, run.stdout + run.stderr[-2000:]
    outputs = run.record_for(source)["outputs"]
    assert outputs["vtt"] == str(folder / "clip.mp4.2.vtt") and outputs["scc"] == str(folder / "clip.mp4.2.scc")
    assert {p: sha256(p) for p in before} == before
    assert Path(outputs["vtt"]).read_text().startswith("WEBVTT")


# --- runs with the real model ---------------------------------------------------------------------------------

@dataclass
class ModelRun:
    run: CliRun
    source: Path
    out: Path
    extra: dict = field(default_factory=dict)

    @property
    def record(self) -> dict:
        return self.run.record_for(self.source)


def weird_copy(short_clip: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / WEIRD_NAME
    shutil.copy(short_clip, target)
    return target


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory, short_clip, bad_inputs) -> ModelRun:
    """One bad file and one good clip with an awkward name, captions only."""
    base = tmp_path_factory.mktemp("mixed")
    source = weird_copy(short_clip, base / "in")
    out = base / "out [1]: 'x'"
    run = run_cli([bad_inputs["text"], source], out, "--no-burn-in", timeout=600)
    return ModelRun(run, source, out, {"bad": bad_inputs["text"]})


def assert_sidecars(record: dict, source: Path, out: Path):
    stem = WEIRD_NAME          # outputs are named after the whole source name
    assert "error" not in record, record
    for kind in SIDECARS:
        path = Path(record["outputs"][kind])
        assert path == out / f"{stem}.{kind}", path
        assert path.is_file() and path.stat().st_size > 0, path
    data = json.loads((out / f"{stem}.json").read_text(encoding="utf-8"))
    assert data["captions"], "no captions in the JSON transcript"
    scc = (out / f"{stem}.scc").read_text()
    decoded = " ".join(c.get_text() for c in SCCReader().read(scc).get_captions("en-US"))
    import jiwer

    norm = lambda s: " ".join("".join(ch.lower() if ch.isalnum() else " " for ch in s).split())  # noqa: E731
    error = jiwer.wer(norm(SHORT_TEXT), norm(decoded))
    assert error <= 0.4, f"SCC text {decoded!r} is far from the script (WER {error:.2f})"


def test_mixed_run_exits_non_zero(mixed_run):
    assert mixed_run.run.code == 1, mixed_run.run.stdout + mixed_run.run.stderr[-2000:]
    assert_rejected(mixed_run.run, mixed_run.extra["bad"], "not a readable media file")


def test_mixed_run_still_captions_the_good_file_with_an_awkward_name(mixed_run):
    assert_sidecars(mixed_run.record, mixed_run.source, mixed_run.out)
    assert "video" not in mixed_run.record["outputs"]
    stem = WEIRD_NAME          # outputs are named after the whole source name
    assert out_entries(mixed_run.out) == sorted(f"{stem}.{k}" for k in SIDECARS)


@pytest.fixture(scope="module")
def burn_run(tmp_path_factory, short_clip) -> ModelRun:
    """The awkward name with burn-in, captioned into the source's own folder."""
    base = tmp_path_factory.mktemp("burn")
    folder = base / "news: [late] 'edition'"
    source = weird_copy(short_clip, folder)
    before = (sha256(source), source.stat().st_mtime_ns, source.stat().st_size)
    run = run_cli([source], folder, timeout=600)
    return ModelRun(run, source, folder, {"before": before})


def test_burn_in_with_an_awkward_name_succeeds(burn_run):
    assert burn_run.run.code == 0, burn_run.run.stdout + burn_run.run.stderr[-3000:]
    assert_sidecars(burn_run.record, burn_run.source, burn_run.out)
    stem = WEIRD_NAME          # outputs are named after the whole source name
    video = burn_run.out / f"{stem}.captioned.mp4"
    assert Path(burn_run.record["outputs"]["video"]) == video
    expected = [WEIRD_NAME, f"{stem}.captioned.mp4"] + [f"{stem}.{k}" for k in SIDECARS]
    assert out_entries(burn_run.out) == sorted(expected)


def test_source_in_the_output_folder_is_left_byte_identical(burn_run):
    sha, mtime, size = burn_run.extra["before"]
    assert burn_run.source.stat().st_size == size
    assert sha256(burn_run.source) == sha
    assert burn_run.source.stat().st_mtime_ns == mtime


def test_captioned_rendition_is_a_full_length_video_with_captions_drawn(burn_run):
    stem = WEIRD_NAME          # outputs are named after the whole source name
    video = burn_run.out / f"{stem}.captioned.mp4"
    info = probe(video)
    kinds = {s["codec_type"]: s for s in info["streams"]}
    assert kinds["video"]["codec_name"] == "h264" and kinds["video"]["width"] == 320 and kinds["video"]["height"] == 240
    assert "audio" in kinds
    assert abs(media_duration(video) - media_duration(burn_run.source)) < 0.25
    data = json.loads((burn_run.out / f"{stem}.json").read_text(encoding="utf-8"))
    first = data["captions"][0]
    middle = (first["start"] + first["end"]) / 2
    lower, top = band_difference(video, burn_run.source, middle, 320, 240)
    assert lower > 8 and top < 3, f"no caption drawn at {middle:.2f}s (lower-third diff {lower:.1f}, top {top:.1f})"


def band_difference(rendered: Path, source: Path, at: float, width: int, height: int) -> tuple[float, float]:
    """(largest mean difference of a 10-row band in the lower third, mean difference of the top half)."""
    diff = np.abs(gray_frame(rendered, at, width, height) - gray_frame(source, at, width, height))
    bands = [diff[r:r + 10].mean() for r in range(height * 2 // 3, height - 9, 10)]
    return max(bands), diff[: height // 2].mean()


# --- the subtitles filter gets an escaped path --------------------------------------------------------------------

def test_burn_in_escapes_the_subtitles_path(short_clip, tmp_path):
    folder = tmp_path / "it's [a]: b,c;d=e\\f"
    folder.mkdir()
    ass = folder / "caps [1]: it's.ass"
    ass.write_text(burnin.ass_document([Caption(0.5, 2.5, ["HELLO WORLD"])], 320, 240), encoding="utf-8")
    output = folder / "out put.mp4"
    info = media.probe(short_clip)
    burnin.burn_in(info, ass, output, preset="ultrafast")
    assert output.is_file()
    lower, top = band_difference(output, short_clip, 1.5, 320, 240)
    assert lower > 8 and top < 3, f"caption not drawn (lower-third diff {lower:.1f}, top {top:.1f})"
    lower, top = band_difference(output, short_clip, 3.5, 320, 240)
    assert lower < 3, f"caption still drawn after its end (lower-third diff {lower:.1f})"


# --- staging folders ------------------------------------------------------------------------------------------

# --- a run killed while rendering -------------------------------------------------------------------------------

@dataclass
class KillResult:
    source: Path
    out: Path
    staging: Path | None
    sizes: list
    published_after_kill: list
    staging_after_kill: list
    orphans: list
    rerun: CliRun | None = field(repr=False)
    log: str = field(repr=False)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def processes_mentioning(text: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid() and text in _cmdline(int(entry.name)):
            if _alive(int(entry.name)):
                pids.append(int(entry.name))
    return pids


@pytest.fixture(scope="module")
def killed(tmp_path_factory, long_720p_clip) -> KillResult:
    base = tmp_path_factory.mktemp("killed")
    source = base / "in" / long_720p_clip.name
    source.parent.mkdir()
    shutil.copy(long_720p_clip, source)
    out = base / "out"
    stem = source.name
    log = base / "cli.log"
    env = {**os.environ, "RENDER_PRESET": "medium"}   # a slower encode leaves time to catch it mid-way
    with open(log, "wb") as sink:
        proc = subprocess.Popen(cli_command([source], out), cwd=PROJECT_ROOT, stdout=sink, stderr=subprocess.STDOUT,
                                env=env)
    staging, sizes = None, []
    deadline = time.monotonic() + 500
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            dirs = [p for p in (out.iterdir() if out.exists() else []) if p.is_dir()
                    and p.name.startswith(f".{stem}.partial-")]
            if dirs:
                staging = dirs[0]
                mp4 = staging / "out.captioned.mp4"
                size = mp4.stat().st_size if mp4.exists() else 0
                if size > 0 and (not sizes or size != sizes[-1]):
                    sizes.append(size)
                if len(sizes) >= 2 and sizes[-1] > sizes[-2]:
                    break
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    time.sleep(0.5)
    orphans = processes_mentioning(str(staging)) if staging else []
    published = [p.name for p in out.iterdir() if not p.name.startswith(".")] if out.exists() else []
    staging_left = hidden_entries(out)
    for pid in orphans:   # encoders this test's run left behind: stop them before going on
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for _ in range(100):
        if not any(_alive(pid) for pid in orphans):
            break
        time.sleep(0.05)
    rerun = run_cli([source], out, timeout=600) if staging and len(sizes) >= 2 else None
    return KillResult(source, out, staging, sizes, published, staging_left, orphans, rerun,
                      log.read_text(errors="replace"))


def require_killed_mid_render(k: KillResult):
    assert k.staging is not None and len(k.sizes) >= 2, (
        f"never saw the captioned MP4 growing in a staging folder (sizes {k.sizes}); CLI output:\n{k.log[-3000:]}")


def test_run_killed_while_rendering_publishes_nothing(killed):
    require_killed_mid_render(killed)
    assert killed.published_after_kill == [], f"a killed run left outputs: {killed.published_after_kill}"
    assert killed.staging_after_kill, "the staging folder should still hold the partial work"


def test_run_killed_while_rendering_leaves_no_encoder_running(killed):
    require_killed_mid_render(killed)
    assert killed.orphans == [], (
        f"ffmpeg {killed.orphans} kept encoding into {killed.staging.name} after its job was killed")


def test_rerun_after_a_kill_succeeds_and_sweeps_the_stale_staging(killed):
    require_killed_mid_render(killed)
    rerun = killed.rerun
    assert rerun.code == 0, rerun.stdout + rerun.stderr[-3000:]
    record = rerun.record_for(killed.source)
    for kind, path in record["outputs"].items():
        assert Path(path).is_file() and Path(path).stat().st_size > 0, (kind, path)
    stem = killed.source.name
    assert hidden_entries(killed.out) == [], f"stale staging left behind: {hidden_entries(killed.out)}"
    assert out_entries(killed.out) == sorted([f"{stem}.captioned.mp4"] + [f"{stem}.{k}" for k in SIDECARS])
    assert abs(media_duration(killed.out / f"{stem}.captioned.mp4") - media_duration(killed.source)) < 0.25
