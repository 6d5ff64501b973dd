"""Issue #12, "Outputs that belong to their job": each test reproduces one
report and asserts the correct behaviour, against real processes (redis-server,
a Celery worker with concurrency 1 and no beat, tiny.en on espeak-ng speech).

Black box only: the REST API through the Flask test client and files on disk.
Sources live under ``storage/news`` (``storage/toctou`` for the symlink case),
so a job writes into ``outputs/mnt/news``; every test uses its own file names.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from bench.media import NEWS_SCRIPT, make_speech_clip, probe_duration
from core.embedded import wait_for_worker
from tests.system import start_system, stop_system, wait_for

pytestmark = pytest.mark.system

FINISHED = ("completed", "failed", "cancelled")
SIDECARS = ("scc", "srt", "vtt", "dfxp", "json")
NO_BURN = {"burn_in": False}

WEATHER = ["Good evening, here is the weather.", "Heavy rain is expected tomorrow in the north.",
           "Temperatures will fall overnight."]
SPORT = ["In football tonight, the home team won the final.", "The captain scored twice in the second half.",
         "Fans celebrated outside the stadium."]
WEATHER_WORDS, SPORT_WORDS = ("weather", "rain", "temperature"), ("captain", "scored", "stadium")
LONG = list(NEWS_SCRIPT) + WEATHER + SPORT          # about 60 s: long enough to catch "transcribing"
GROWING = ["Good evening, and welcome to the evening news.",
           "Heavy rain moved across the north of the country today.",
           "Emergency crews worked through the night to clear fallen trees.",
           "The city council approved a plan to expand public transport.",
           "Schools will stay open tomorrow, and the trains are running on time again.",
           "Finally, the old bridge over the river will reopen on Friday.",
           "Thank you for watching, and good night."]
LAST_PART_WORDS = ("bridge", "river", "friday")


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    sys_ = start_system(tmp_path_factory.mktemp("ownership"), beat=False, extra_env={"SETTLE_SECONDS": "3"})
    yield sys_
    stop_system(sys_)
    print("worker log tail:\n" + "\n".join((sys_.root / "worker.log").read_text().splitlines()[-30:]))


@pytest.fixture(scope="module")
def clip(system):
    """``clip(dest, sentences)``: a 320x240 speech clip copied to ``dest`` (each script is made once)."""
    made: dict[tuple, object] = {}
    media = system.root / "media"

    def make(dest: Path, sentences: list[str], suffix: str = ".mp4"):
        key = (tuple(sentences), suffix)
        if key not in made:
            made[key] = make_speech_clip(media, sentences, gap=0.8, lead=0.5, size="320x240",
                                         name=f"clip{len(made)}{suffix}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(made[key].path, dest)
        return made[key]

    return make


@pytest.fixture
def client(system):
    return system.app.test_client()


@pytest.fixture
def out_dir(system) -> Path:
    """Where jobs on ``storage/news/*`` write their outputs."""
    path = system.outputs / "mnt" / "news"
    path.mkdir(parents=True, exist_ok=True)
    return path


# --- helpers ---------------------------------------------------------------------------------------------

def submit(client, paths, **body) -> dict:
    resp = client.post("/api/transcribe/batch", json={"paths": [str(p) for p in paths], **body})
    assert resp.status_code == 202, resp.get_json()
    assert not resp.get_json()["rejected"], resp.get_json()["rejected"]
    return resp.get_json()


def queue(client, path, **body) -> str:
    return submit(client, [path], **body)["queued"][0]["job_id"]


def status(client, job_id) -> dict:
    return client.get(f"/api/status/{job_id}").get_json()


def wait_finished(client, job_id, timeout=240) -> dict:
    return wait_for(lambda: (lambda j: j if j["status"] in FINISHED else None)(status(client, job_id)),
                    timeout, what=f"job {job_id} to finish")


def wait_completed(client, job_id, timeout=240) -> dict:
    job = wait_finished(client, job_id, timeout)
    assert job["status"] == "completed", f"precondition: job on {job['source']} is {job['status']}: {job['error']}"
    return job


def wait_running(client, job_id, stages=("transcribing", "captioning", "rendering"), timeout=240) -> dict:
    def running():
        job = status(client, job_id)
        assert job["status"] in ("pending", "processing"), f"job finished before it could be caught: {job}"
        return job if job["stage"] in stages else None
    return wait_for(running, timeout, interval=0.1, what=f"job {job_id} to reach {stages}")


def download(client, job_id, kind) -> tuple[int, bytes]:
    resp = client.get(f"/api/jobs/{job_id}/outputs/{kind}")
    return resp.status_code, resp.data


def srt_text(client, job_id) -> str:
    code, data = download(client, job_id, "srt")
    return data.decode("utf-8", "replace").lower() if code == 200 else f"<HTTP {code}>"


def words_in(text: str, words) -> list[str]:
    return [w for w in words if w in text.lower()]


def hand_made(path: Path, text: str) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode())
    return path.read_bytes()


# --- 1. two sources with the same stem ----------------------------------------------------------------

def test_same_stem_sources_each_download_their_own_captions(system, client, clip):
    news = system.storage / "news"
    clip(news / "clip.mp4", WEATHER)
    clip(news / "clip.mov", SPORT, suffix=".mov")
    body = submit(client, [news / "clip.mp4", news / "clip.mov"], options=NO_BURN)
    expected = {"clip.mp4": (WEATHER_WORDS, SPORT_WORDS), "clip.mov": (SPORT_WORDS, WEATHER_WORDS)}
    for queued in body["queued"]:
        wait_completed(client, queued["job_id"])
    for queued in body["queued"]:
        name = Path(queued["path"]).name
        own, other = expected[name]
        text = srt_text(client, queued["job_id"])
        assert words_in(text, own) and not words_in(text, other), f"srt of the job on {name}: {text!r}"


# --- 2. cancel and delete remove only what the job wrote ------------------------------------------------

def test_cancelling_a_rerun_keeps_the_finished_jobs_outputs(system, client, clip):
    source = system.storage / "news" / "cancelled_rerun.mp4"
    clip(source, LONG)
    first = queue(client, source, options=NO_BURN)
    job_a = wait_completed(client, first)
    before = {kind: download(client, first, kind) for kind in SIDECARS}
    files = {kind: Path(path).read_bytes() for kind, path in job_a["result"]["outputs"].items()}
    second = queue(client, source, options=NO_BURN)
    assert second != first, "precondition: a finished job's file gets a new job"
    wait_running(client, second)
    assert client.post(f"/api/jobs/{second}/cancel").status_code == 200
    wait_finished(client, second, 60)
    assert status(client, first)["status"] == "completed"
    after = {kind: download(client, first, kind) for kind in SIDECARS}
    changed = {kind: f"HTTP {after[kind][0]}" for kind in SIDECARS if after[kind] != before[kind]}
    assert not changed, f"job A's downloads after cancelling job B: {changed}"
    gone = {kind: path for kind, path in job_a["result"]["outputs"].items()
            if not Path(path).is_file() or Path(path).read_bytes() != files[kind]}
    assert not gone, f"job A's files deleted or changed: {gone}"


def test_deleting_a_failed_job_keeps_files_it_did_not_write(system, client, clip, out_dir):
    source = system.storage / "news" / "failing.mp4"
    clip(source, LONG)
    data = source.read_bytes()
    source.write_bytes(data[: len(data) // 3])   # moov up front: it probes, but the audio is cut short
    scc = out_dir / "failing.scc"
    original = hand_made(scc, "Scenarist_SCC V1.0\n\nmade by hand, not by any job\n")
    job_id = queue(client, source, options=NO_BURN)
    job = wait_finished(client, job_id)
    assert job["status"] == "failed", f"precondition: the job on a truncated file fails, it is {job['status']}"
    resp = client.delete(f"/api/jobs/{job_id}?outputs=true")
    assert resp.status_code == 200
    assert scc.is_file(), f"hand-made {scc.name} deleted with the failed job: {resp.get_json()}"
    assert scc.read_bytes() == original


def test_cancel_keeps_files_the_job_did_not_write(system, client, clip, out_dir):
    source = system.storage / "news" / "cancel_handmade.mp4"
    clip(source, LONG)
    vtt = out_dir / "cancel_handmade.vtt"
    original = hand_made(vtt, "WEBVTT\n\n00:00.000 --> 00:02.000\nmade by hand, not by any job\n")
    job_id = queue(client, source, options=NO_BURN)
    wait_running(client, job_id)
    resp = client.post(f"/api/jobs/{job_id}/cancel")
    assert resp.status_code == 200
    wait_finished(client, job_id, 60)
    assert vtt.is_file(), f"hand-made {vtt.name} deleted by the cancel"
    assert vtt.read_bytes() == original


# --- 3. a re-run on changed content -------------------------------------------------------------------

def test_rerun_does_not_take_over_the_first_jobs_outputs(system, client, clip):
    source = system.storage / "news" / "rerun.mp4"
    clip(source, WEATHER)
    first = queue(client, source, options=NO_BURN)
    wait_completed(client, first)
    clip(source, SPORT)                              # the file is replaced with different speech
    second = queue(client, source, options=NO_BURN)
    assert second != first, "precondition: a finished job's file gets a new job"
    wait_completed(client, second)
    a_text, b_text = srt_text(client, first), srt_text(client, second)
    assert client.delete(f"/api/jobs/{first}?outputs=true").status_code == 200
    b_after = {kind: download(client, second, kind)[0] for kind in SIDECARS}
    problems = []
    if not words_in(a_text, WEATHER_WORDS) or words_in(a_text, SPORT_WORDS):
        problems.append(f"job A's srt is not A's captions: {a_text!r}")
    if not words_in(b_text, SPORT_WORDS):
        problems.append(f"job B's srt is not B's captions: {b_text!r}")
    if any(code != 200 for code in b_after.values()):
        problems.append(f"job B's downloads after deleting job A with outputs: {b_after}")
    assert not problems, "\n".join(problems)


# --- 4. a hand-made file where the job would write ----------------------------------------------------

def test_hand_made_file_in_the_output_folder_is_not_overwritten(system, client, clip, out_dir):
    source = system.storage / "news" / "other.mp4"
    clip(source, WEATHER)
    scc = out_dir / "other.scc"
    original = hand_made(scc, "Scenarist_SCC V1.0\n\nmade by hand, not by any job\n")
    job = wait_completed(client, queue(client, source, options=NO_BURN))
    assert scc.read_bytes() == original, f"hand-made {scc.name} overwritten by the job"
    written = Path(job["result"]["outputs"]["scc"])
    assert written != scc and written.is_file(), written


# --- 5. the source swapped for a symlink after it was queued ------------------------------------------

def test_source_replaced_by_a_symlink_after_queueing_fails_the_job(system, client, clip):
    busy = system.storage / "news" / "busy.mp4"
    victim = system.storage / "toctou" / "victim.mp4"
    outside = system.root / "outside" / "secret.mp4"
    clip(busy, LONG)
    clip(victim, WEATHER)
    clip(outside, SPORT)
    busy_id = queue(client, busy, options=NO_BURN, priority="high")
    wait_for(lambda: status(client, busy_id)["status"] == "processing", 240, interval=0.1, what="the busy job")
    job_id = queue(client, victim)
    link = victim.with_name(".victim.link")
    link.symlink_to(outside)
    os.replace(link, victim)                         # victim.mp4 now points outside the storage roots
    assert status(client, job_id)["status"] == "pending", "precondition: the swap happened before the job ran"
    job = wait_finished(client, job_id, 360)
    wait_finished(client, busy_id)
    published = sorted(p.name for p in (system.outputs / "mnt" / "toctou").glob("victim*"))
    assert job["status"] == "failed", (f"job {job['status']} on the swapped file; its srt says "
                                       f"{srt_text(client, job_id)!r}; published {published}")
    assert "source changed since it was queued" in job["error"], job["error"]
    assert not (job["result"] or {}).get("outputs"), job["result"]
    assert not published, published


# --- 6. a file still being written when queued --------------------------------------------------------

def _ts_offsets(ts: Path, seconds: list[float]) -> list[int]:
    """Byte offset of the first video packet at or after each of ``seconds`` into the stream."""
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "packet=pts_time,pos", "-of", "csv=p=0", str(ts)],
                         capture_output=True, text=True, check=True).stdout
    packets = [(float(t), int(p)) for t, p, *_ in (line.split(",") for line in out.split())
               if t != "N/A" and p != "N/A"]
    start = packets[0][0]
    return [next(pos for t, pos in packets if t - start >= s) // 188 * 188 for s in seconds]


def _append_slowly(path: Path, chunks: list[bytes], interval: float) -> threading.Thread:
    def run():
        for chunk in chunks:
            time.sleep(interval)
            with open(path, "ab") as f:
                f.write(chunk)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_file_still_growing_when_queued_is_captioned_in_full(system, client, clip):
    info = clip(system.root / "growing-src" / "growing.mp4", GROWING)
    assert info.sentences[-2].onset > 20, "precondition: the last part's words come after 20 s"
    full = system.root / "growing-src" / "growing.ts"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(info.path), "-c", "copy",
                    "-f", "mpegts", str(full)], check=True)
    data = full.read_bytes()
    cuts = _ts_offsets(full, list(range(10, int(info.duration) - 1, 2))) + [len(data)]
    target = system.storage / "news" / "growing.ts"
    target.write_bytes(data[:cuts[0]])              # the first 10 s
    job_id = queue(client, target, options=NO_BURN)
    writer = _append_slowly(target, [data[a:b] for a, b in zip(cuts, cuts[1:])], 0.5)
    job = wait_finished(client, job_id)
    writer.join(30)
    assert target.read_bytes() == data
    final = probe_duration(target)
    assert job["status"] == "completed", f"job {job['status']}: {job['error']}"
    assert abs(job["result"]["duration"] - final) <= 0.5, \
        f"job captioned {job['result']['duration']} s of a {final:.3f} s file"
    assert words_in(job["result"]["text"], LAST_PART_WORDS), job["result"]["text"]


# --- 7. a worker killed mid-job, no beat anywhere -----------------------------------------------------

def test_job_of_a_killed_worker_completes_after_restart_without_beat(system, client, clip):
    source = system.storage / "news" / "killed.mp4"
    clip(source, LONG)
    job_id = queue(client, source, options=NO_BURN)
    wait_running(client, job_id, stages=("transcribing",))
    system.worker.kill()
    assert status(client, job_id)["status"] == "processing"
    system.worker.start()
    wait_for_worker(system.celery)
    restarted = time.monotonic()
    try:
        job = wait_finished(client, job_id, 120)
    except AssertionError:
        job = status(client, job_id)
        raise AssertionError(f"{time.monotonic() - restarted:.0f} s after the worker restarted the job is still "
                             f"{job['status']} (stage {job['stage']}, attempts {job['attempts']})") from None
    assert job["status"] == "completed", job["error"]
    assert job["attempts"] == 2, job["attempts"]
