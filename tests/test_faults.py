"""Faults with real processes: a worker SIGKILLed mid-job, the dashboard
SIGKILLed, Redis restarted mid-batch, the output volume full.  Each must end
with every job completed (exactly once, whole outputs) or failed with a reason."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from bench.media import make_speech_clip, probe_duration
from core.embedded import RedisServer, free_port
from tests.system import start_system, stop_system, wait_for

pytestmark = pytest.mark.system

ROOT = Path(__file__).resolve().parent.parent
SENTENCES = ["Good evening and welcome to the news.", "The weather will be dry tomorrow.",
             "Roads in the north are closed after heavy rain."]
FAST_REAPER = {"HEARTBEAT_SECONDS": "1", "STALE_JOB_SECONDS": "6", "REAPER_INTERVAL": "3"}


def _status(client, job_id):
    return client.get(f"/api/status/{job_id}").get_json()


def _finished(client, job_id, timeout=300):
    return wait_for(lambda: (lambda j: j if j["status"] in ("completed", "failed", "cancelled") else None)(
        _status(client, job_id)), timeout, what=f"job {job_id} to finish")


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    sys_ = start_system(tmp_path_factory.mktemp("faults"), beat=True, extra_env=FAST_REAPER)
    make_speech_clip(sys_.storage / "news", SENTENCES * 12, gap=0.6, lead=0.5, size="1280x720", name="long.mp4")
    for i in range(4):
        make_speech_clip(sys_.storage / "news", SENTENCES[:2], gap=0.5, lead=0.4, size="320x240", name=f"short{i}.mp4")
    yield sys_
    stop_system(sys_)


def _assert_whole_outputs(system, job):
    source = Path(job["source"])
    out_dir = system.outputs / "mnt" / "news"
    outputs = job["result"]["outputs"]
    assert set(outputs) == {"scc", "srt", "vtt", "dfxp", "json", "video"}
    assert abs(probe_duration(outputs["video"]) - probe_duration(source)) < 0.2
    assert Path(outputs["scc"]).read_text().startswith("Scenarist_SCC V1.0")
    json.loads(Path(outputs["json"]).read_text())
    assert not list(out_dir.glob(f".{source.name}.partial-{job['job_id']}-*")), "staging left behind"
    manifest = job["result"]["manifest"]
    assert sorted(e["path"] for e in manifest) == sorted(outputs.values()), "a killed run's files left in the record"
    for entry in manifest:
        assert hashlib.sha256(Path(entry["path"]).read_bytes()).hexdigest() == entry["sha256"]


@pytest.mark.parametrize("stage", ["transcribing", "rendering"])
def test_worker_killed_mid_job_is_redelivered_and_completes_once(system, stage):
    client = system.app.test_client()
    path = system.storage / "news" / "long.mp4"
    job_id = client.post("/api/transcribe/batch", json={"paths": [str(path)], "force": True}).get_json()["queued"][0]["job_id"]
    wait_for(lambda: _status(client, job_id)["stage"] == stage, 240, interval=0.1, what=f"stage {stage}")
    if stage == "rendering":
        wait_for(lambda: list((system.outputs / "mnt" / "news").glob(".long.mp4.partial-*/*.mp4")), 60, interval=0.1,
                 what="the rendition to be half written")
    system.worker.kill()
    assert _status(client, job_id)["status"] == "processing"
    system.worker.start()
    job = _finished(client, job_id)
    assert job["status"] == "completed", job["error"]
    assert job["attempts"] == 2, job["attempts"]          # redelivered once, run once more
    _assert_whole_outputs(system, job)
    time.sleep(8)                                         # a stray second delivery would show up now
    assert _status(client, job_id)["attempts"] == 2


def test_redis_restart_mid_batch_leaves_no_job_hanging(tmp_path_factory):
    # Append-only persistence, as the embedded setup runs Redis.
    sys_ = start_system(tmp_path_factory.mktemp("redis-restart"), beat=True, extra_env=FAST_REAPER, persist=True)
    try:
        news = sys_.storage / "news"
        for i in range(4):
            make_speech_clip(news, SENTENCES[:2], gap=0.5, lead=0.4, size="320x240", name=f"c{i}.mp4")
        client = sys_.app.test_client()
        body = client.post("/api/transcribe/batch", json={"paths": [str(news / f"c{i}.mp4") for i in range(4)]}).get_json()
        ids = [q["job_id"] for q in body["queued"]]
        wait_for(lambda: any(_status(client, j)["status"] == "processing" for j in ids), 120, interval=0.2,
                 what="the batch to start")
        sys_.redis.stop()
        time.sleep(3)
        sys_.redis.start()
        jobs = [_finished(client, j, timeout=300) for j in ids]
        for job in jobs:
            assert job["status"] == "completed" or (job["status"] == "failed" and job["error"]), job
        assert sum(j["status"] == "completed" for j in jobs) >= 3
    finally:
        stop_system(sys_)


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def test_full_output_volume_fails_the_job_cleanly(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("diskfull")
    full = tmp / "small-volume"
    if not _mount_tmpfs(full, "600k"):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    sys_ = start_system(tmp, extra_env={"OUTPUT_DIR": str(full)})
    try:
        make_speech_clip(sys_.storage / "news", SENTENCES * 3, gap=0.6, lead=0.5, size="1280x720", name="big.mp4")
        client = sys_.app.test_client()
        job_id = client.post("/api/transcribe/batch", json={"paths": [str(sys_.storage / "news" / "big.mp4")]}
                             ).get_json()["queued"][0]["job_id"]
        job = _finished(client, job_id)
        assert job["status"] == "failed"
        assert "No space left on device" in job["error"] and "big.mp4" in job["error"]
        leftovers = [p for p in full.rglob("*") if p.is_file()]
        assert not leftovers, leftovers
        assert job["result"]["outputs"] == {}
        # The worker survives and other jobs are unaffected.
        ok = client.post("/api/transcribe/batch", json={"paths": [str(sys_.storage / "news" / "big.mp4")],
                                                        "options": {"burn_in": False}, "force": True}).get_json()
        assert _finished(client, ok["queued"][0]["job_id"])["status"] == "completed"
    finally:
        stop_system(sys_)
        subprocess.run(["umount", str(full)], capture_output=True)


def _get(url):
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def test_dashboard_killed_and_restarted_keeps_history_and_running_job(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dash-kill")
    redis = RedisServer(tmp / "redis").start()
    storage = tmp / "mnt" / "news"
    make_speech_clip(storage, SENTENCES * 12, gap=0.6, lead=0.5, size="1280x720", name="long.mp4")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "REDIS_URL": redis.url, "DATABASE_URL": f"sqlite:///{tmp / 'jobs.db'}",
           "STORAGE_ROOTS": str(tmp / "mnt"), "OUTPUT_DIR": str(tmp / "out"), "VAR_DIR": str(tmp / "var")}

    def start():
        return subprocess.Popen([sys.executable, "start_dashboard.py", "--no-redis", "--port", str(port),
                                 "--async-mode", "threading"], cwd=ROOT, env=env,
                                stdout=open(tmp / "dashboard.log", "ab"), stderr=subprocess.STDOUT)

    def healthy():
        try:
            return _get(f"{url}/api/health")["workers"]["count"] >= 1
        except OSError:
            return False

    dash = start()
    worker_pid = None
    try:
        wait_for(healthy, 120, interval=1, what="the dashboard")
        req = urllib.request.Request(f"{url}/api/transcribe/batch", json.dumps({"paths": [str(storage / "long.mp4")]}).encode(),
                                     {"Content-Type": "application/json"})
        job_id = json.loads(urllib.request.urlopen(req).read())["queued"][0]["job_id"]
        wait_for(lambda: _get(f"{url}/api/status/{job_id}")["status"] == "processing", 120, interval=0.2,
                 what="the job to start")
        worker_pid = int((tmp / "var" / "run" / "worker.pid").read_text())
        dash.send_signal(signal.SIGKILL)
        dash.wait()
        dash = start()
        wait_for(healthy, 120, interval=1, what="the restarted dashboard")
        assert "adopted the running Celery worker" in (tmp / "dashboard.log").read_text()
        listing = _get(f"{url}/api/jobs")
        assert [j["job_id"] for j in listing["items"]] == [job_id]
        job = wait_for(lambda: (lambda j: j if j["status"] == "completed" else None)(
            _get(f"{url}/api/status/{job_id}")), 300, what="the running job to carry on")
        assert job["attempts"] == 1 and job["worker"]                   # not restarted: it carried on
        assert int((tmp / "var" / "run" / "worker.pid").read_text()) == worker_pid
    finally:
        dash.send_signal(signal.SIGINT)
        dash.wait(timeout=90)
        redis.stop()
    if worker_pid:
        wait_for(lambda: not Path(f"/proc/{worker_pid}").exists() or
                 Path(f"/proc/{worker_pid}/stat").read_text().split()[2] == "Z", 30, what="the worker to stop")
