"""The batch REST API and Celery jobs against real processes: redis-server on a
free port, a real Celery worker, the real tiny.en model on espeak-ng speech."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.media import make_speech_clip, make_video_without_audio
from tests.system import start_system, stop_system, wait_for

pytestmark = pytest.mark.system

SHORT = ["Good evening and welcome to the news.", "The weather will be dry tomorrow."]
FINISHED = ("completed", "failed", "cancelled")


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    sys_ = start_system(tmp_path_factory.mktemp("system"))
    news = sys_.storage / "news"
    for name in ("one.mp4", "two.mp4", "three.mp4"):
        make_speech_clip(news, SHORT, gap=0.8, lead=0.5, size="320x240", name=name)
    make_speech_clip(news, SHORT * 8, gap=0.8, lead=0.5, size="1280x720", name="long.mp4")
    make_video_without_audio(news, name="mute.mp4")
    (news / "notes.mp4").write_text("this is not a video\n")
    yield sys_
    stop_system(sys_)
    print("worker log tail:\n" + "\n".join((sys_.root / "worker.log").read_text().splitlines()[-20:]))


@pytest.fixture
def client(system):
    return system.app.test_client()


def submit(client, paths, **body):
    return client.post("/api/transcribe/batch", json={"paths": [str(p) for p in paths], **body})


def wait_finished(client, job_id, timeout=240):
    return wait_for(lambda: (lambda j: j if j["status"] in FINISHED else None)(
        client.get(f"/api/status/{job_id}").get_json()), timeout, what=f"job {job_id} to finish")


def test_worker_registers_tasks_and_both_queues(system):
    registered = system.celery.control.inspect(timeout=2).registered()
    names = {task for tasks in registered.values() for task in tasks}
    for task in ("core.tasks.transcription.batch_transcription", "core.tasks.transcription.transcribe_video",
                 "core.tasks.transcription.generate_captioned_video"):
        assert task in names
    queues = system.celery.control.inspect(timeout=2).active_queues()
    assert {q["name"] for qs in queues.values() for q in qs} == {"transcribe", "render"}


def test_celery_cli_inspect_works(system):
    env = {**system.env, "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-m", "celery", "-A", "core.tasks", "inspect", "registered"],
                         capture_output=True, text=True, env=env, cwd=Path(__file__).parent.parent, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "core.tasks.transcription.transcribe_video" in out.stdout


def test_batch_partial_success_runs_to_completion(system, client):
    news = system.storage / "news"
    paths = [news / "one.mp4", news / "two.mp4", "/etc/passwd", news / "missing.mp4", news / "one.mp4",
             news / "mute.mp4", news / "notes.mp4", news, f"{news}/../news/../../../etc/hosts"]
    resp = submit(client, paths, options={"rows": 2})
    assert resp.status_code == 202
    body = resp.get_json()
    assert set(body) >= {"message", "batch_id", "batch_task_id", "total_files", "valid_paths", "queued", "rejected"}
    assert body["total_files"] == len(paths) and body["valid_paths"] == 2
    assert [q["path"] for q in body["queued"]] == [str(news / "one.mp4"), str(news / "two.mp4")]
    reasons = {r["path"]: r["error"] for r in body["rejected"]}
    assert "outside the storage roots" in reasons["/etc/passwd"]
    assert "not found" in reasons[str(news / "missing.mp4")]
    assert "more than once" in reasons[str(news / "one.mp4")]
    assert "no audio stream" in reasons[str(news / "mute.mp4")]
    assert "not a readable media file" in reasons[str(news / "notes.mp4")]
    assert "directory" in reasons[str(news)]
    assert "outside the storage roots" in reasons[f"{news}/../news/../../../etc/hosts"]

    for queued in body["queued"]:
        job = wait_finished(client, queued["job_id"])
        assert job["status"] == "completed", job["error"]
        assert job["batch_id"] == body["batch_id"] and job["progress"] == 100.0
        result = job["result"]
        assert result["language"] == "en" and result["duration"] > 3
        assert "weather" in result["text"].lower()
        assert result["segments"] and result["segments"][0]["words"]
        for kind in ("scc", "srt", "vtt", "dfxp", "json", "video"):
            assert Path(result["outputs"][kind]).is_file(), kind
        # Outputs mirror the source's place under its root.
        assert Path(result["outputs"]["scc"]).parent == system.outputs / "mnt" / "news"
        scc = client.get(f"/api/jobs/{queued['job_id']}/outputs/scc")
        assert scc.status_code == 200 and scc.data.startswith(b"Scenarist_SCC V1.0")
        assert set(job) >= {"job_id", "status", "stage", "progress", "created_at", "started_at", "completed_at",
                            "estimated_completion", "worker", "error", "source", "batch_id", "result"}
        assert job["worker"] and job["started_at"] and job["completed_at"]
    batch = client.get(f"/api/batches/{body['batch_id']}").get_json()
    assert batch["total"] == 2 and batch["counts"]["completed"] == 2 and batch["done"] is True


def test_batch_with_no_valid_path_is_400_with_reasons(client, system):
    resp = submit(client, ["/etc/passwd", "relative/clip.mp4"])
    assert resp.status_code == 400
    body = resp.get_json()
    assert "error" in body and len(body["rejected"]) == 2
    assert "absolute" in body["rejected"][1]["error"]


@pytest.mark.parametrize("send, code", [
    (lambda c: c.post("/api/transcribe/batch", data="{not json", content_type="application/json"), 400),
    (lambda c: c.post("/api/transcribe/batch", data="paths=x", content_type="text/plain"), 415),
    (lambda c: c.post("/api/transcribe/batch", json={"paths": "not-a-list"}), 400),
    (lambda c: c.post("/api/transcribe/batch", json={"paths": ["/x"] * 1001}), 400),
    (lambda c: c.post("/api/transcribe/batch", json={"paths": ["/x"], "options": {"rows": 9}}), 400),
    (lambda c: c.post("/api/transcribe/batch", json={"paths": ["/x"], "priority": "urgent"}), 400),
    (lambda c: c.get("/api/status/nope"), 404),
    (lambda c: c.post("/api/jobs/nope/cancel"), 404),
    (lambda c: c.get("/api/jobs?page=zero"), 400),
    (lambda c: c.get("/api/jobs?status=weird"), 400),
    (lambda c: c.get("/api/batches/nope"), 404),
    (lambda c: c.get("/api/no-such-route"), 404),
])
def test_bad_requests_get_json_errors(client, send, code):
    resp = send(client)
    assert resp.status_code == code
    assert isinstance(resp.get_json()["error"], str) and resp.get_json()["error"]


def test_duplicate_submission_returns_existing_unless_forced(system, client):
    news = system.storage / "news"
    # The worker (one process) is busy with long.mp4 first, so three.mp4 is still waiting when sent again.
    body = submit(client, [news / "long.mp4", news / "three.mp4"], options={"burn_in": False}, force=True).get_json()
    first = body["queued"][1]
    again = submit(client, [news / "three.mp4"], options={"burn_in": False}).get_json()["queued"][0]
    assert again["job_id"] == first["job_id"] and again["existing"] is True
    forced = submit(client, [news / "three.mp4"], options={"burn_in": False}, force=True).get_json()["queued"][0]
    assert forced["job_id"] != first["job_id"] and "existing" not in forced
    jobs = [wait_finished(client, q["job_id"]) for q in (*body["queued"], forced)]
    assert [j["status"] for j in jobs] == ["completed"] * 3
    # Two runs on one file: each keeps its own caption files.
    assert jobs[1]["result"]["outputs"]["scc"] != jobs[2]["result"]["outputs"]["scc"]


def test_cancel_running_job_stops_it_and_removes_its_outputs(system, client):
    path = system.storage / "news" / "long.mp4"
    out_dir = system.outputs / "mnt" / "news"
    job_id = submit(client, [path], force=True).get_json()["queued"][0]["job_id"]
    wait_for(lambda: client.get(f"/api/status/{job_id}").get_json()["stage"] == "rendering", 180,
             interval=0.2, what="rendering to start")
    wait_for(lambda: list(out_dir.glob(f".long.mp4.partial-{job_id}-*/*.mp4")), 60, interval=0.2,
             what="the rendition to be written")
    captions = [Path(p) for p in client.get(f"/api/status/{job_id}").get_json()["result"]["outputs"].values()]
    assert captions and all(p.is_file() for p in captions)
    resp = client.post(f"/api/jobs/{job_id}/cancel")
    assert resp.status_code == 200 and resp.get_json()["status"] == "cancelled"

    def ffmpeg_gone():
        out = subprocess.run(["pgrep", "-f", f"long.mp4.partial-{job_id}"], capture_output=True, text=True)
        return out.returncode != 0

    wait_for(ffmpeg_gone, 30, what="ffmpeg to stop")
    wait_for(lambda: not any(p.exists() for p in captions) and not list(out_dir.glob(f".long.mp4.partial-{job_id}-*")),
             30, what="the job's caption files and staging to be removed")
    assert client.post(f"/api/jobs/{job_id}/cancel").status_code == 409
    # The worker survives and takes the next job.
    again = submit(client, [system.storage / "news" / "two.mp4"], options={"burn_in": False}, force=True)
    assert wait_finished(client, again.get_json()["queued"][0]["job_id"])["status"] == "completed"


def test_retry_and_delete(system, client):
    path = system.storage / "news" / "one.mp4"
    job_id = submit(client, [path], options={"burn_in": False}, force=True).get_json()["queued"][0]["job_id"]
    client.post(f"/api/jobs/{job_id}/cancel")
    assert client.post(f"/api/jobs/{job_id}/retry").status_code == 202
    job = wait_finished(client, job_id)
    assert job["status"] == "completed" and job["attempts"] >= 1
    assert client.post(f"/api/jobs/{job_id}/retry").status_code == 409  # completed jobs are not retried
    outputs = [Path(p) for p in job["result"]["outputs"].values()]
    assert all(p.exists() for p in outputs)
    resp = client.delete(f"/api/jobs/{job_id}?outputs=true")
    assert resp.status_code == 200 and resp.get_json()["deleted"] is True
    assert not any(p.exists() for p in outputs)
    assert client.get(f"/api/status/{job_id}").status_code == 404


def test_failed_job_keeps_reason_and_worker_survives(system, client):
    news = system.storage / "news"
    broken = news / "broken.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(news / "long.mp4"), "-c", "copy",
                    "-movflags", "+faststart", str(broken)], check=True)
    data = broken.read_bytes()
    broken.write_bytes(data[: len(data) // 3])  # index at the front: it probes, but the audio is cut short
    body = submit(client, [broken]).get_json()
    job = wait_finished(client, body["queued"][0]["job_id"])
    assert job["status"] == "failed" and "truncated or corrupt" in job["error"]
    ok = submit(client, [news / "two.mp4"], options={"burn_in": False}, force=True).get_json()
    assert wait_finished(client, ok["queued"][0]["job_id"])["status"] == "completed"


def test_jobs_listing_pages_and_filters(system, client):
    news = system.storage / "news"
    body = submit(client, [news / "one.mp4", news / "two.mp4"], options={"burn_in": False}, force=True).get_json()
    for queued in body["queued"]:
        wait_finished(client, queued["job_id"])
    batch = f"batch_id={body['batch_id']}"
    listing = client.get(f"/api/jobs?{batch}&page=1&page_size=1").get_json()
    assert set(listing) == {"items", "page", "page_size", "total"}
    assert listing["total"] == 2 and len(listing["items"]) == 1
    page2 = client.get(f"/api/jobs?{batch}&page=2&page_size=1").get_json()
    assert {listing["items"][0]["job_id"], page2["items"][0]["job_id"]} == {q["job_id"] for q in body["queued"]}
    completed = client.get(f"/api/jobs?{batch}&status=completed").get_json()
    assert completed["total"] == 2
    named = client.get(f"/api/jobs?{batch}&q=two.mp4").get_json()
    assert [j["source"] for j in named["items"]] == [str(news / "two.mp4")]


def test_high_priority_jumps_the_queue(system, client):
    news = system.storage / "news"
    normal = [submit(client, [news / name], options={"burn_in": False}, force=True).get_json()["queued"][0]["job_id"]
              for name in ("one.mp4", "two.mp4", "three.mp4", "one.mp4")]
    urgent = submit(client, [news / "two.mp4"], options={"burn_in": False}, force=True,
                    priority="high").get_json()["queued"][0]["job_id"]
    jobs = {job_id: wait_finished(client, job_id) for job_id in normal + [urgent]}
    started = sorted(jobs, key=lambda j: (jobs[j]["started_at"], j))
    # The worker was busy with at most the first normal job when the urgent one arrived.
    assert started.index(urgent) <= 1, [jobs[j]["started_at"] for j in started]


def test_queue_and_health_report_workers_and_jobs(system, client):
    job_id = submit(client, [system.storage / "news" / "long.mp4"], force=True).get_json()["queued"][0]["job_id"]
    snapshot = wait_for(lambda: (lambda q: q if any(t.get("job_id") == job_id for t in q["active"]) else None)(
        client.get("/api/queue").get_json()), 120, interval=0.3, what="the job to be active")
    assert set(snapshot) >= {"active", "reserved", "scheduled", "workers", "counts"}
    task = next(t for t in snapshot["active"] if t["job_id"] == job_id)
    assert task["file"].endswith("long.mp4") and task["stage"] in ("probing", "transcribing", "captioning",
                                                                    "rendering")
    assert snapshot["workers"][0]["queues"] and snapshot["counts"]["processing"] >= 1
    health = client.get("/api/health")
    assert health.status_code == 200
    assert health.get_json()["redis"]["ok"] and health.get_json()["database"]["ok"]
    assert health.get_json()["workers"]["count"] == 1
    client.post(f"/api/jobs/{job_id}/cancel")


def test_job_that_finished_during_the_inspect_window_is_not_shown_running(system, client):
    """Workers reply to inspect at once; the job store is read after the reply
    window.  A job finished in between is gone from active and reserved."""
    from types import SimpleNamespace

    from core.services import queue_inspect

    done = submit(client, [system.storage / "news" / "one.mp4"], options={"burn_in": False},
                  force=True).get_json()["queued"][0]["job_id"]
    assert wait_finished(client, done)["status"] == "completed"
    running = submit(client, [system.storage / "news" / "long.mp4"], force=True).get_json()["queued"][0]["job_id"]
    task = lambda job_id: {"id": f"task-{job_id}", "name": "core.tasks.transcription.transcribe_video",  # noqa: E731
                           "args": [job_id], "delivery_info": {"routing_key": "transcribe"}}
    replies = {"active": {"w@host": [task(done), task(running)]}, "reserved": {"w@host": [task(done)]},
               "scheduled": {}, "stats": {}, "active_queues": {}}
    queue = SimpleNamespace(inspect=lambda method, timeout=1.0: replies[method])
    with system.app.app_context():
        snap = queue_inspect.snapshot(queue)
    assert [t["job_id"] for t in snap["active"]] == [running] and snap["reserved"] == []
    assert snap["active"][0]["file"].endswith("long.mp4")
    client.post(f"/api/jobs/{running}/cancel")
    wait_finished(client, running)


def test_upload_is_probed_and_size_limited(system, client, tmp_path):
    clip = make_speech_clip(tmp_path, SHORT, gap=0.5, lead=0.5, size="320x240", name="up load.mp4")
    resp = client.post("/api/transcribe", data={"file": (open(clip.path, "rb"), "up load.mp4"),
                                                "burn_in": "false", "language": "en"},
                       content_type="multipart/form-data")
    assert resp.status_code == 202, resp.get_json()
    body = resp.get_json()
    assert body["status"] == "pending" and body["status_url"].endswith(body["job_id"]) and body["estimated_time"]
    assert wait_finished(client, body["job_id"])["status"] == "completed"
    bad = client.post("/api/transcribe", data={"file": (io.BytesIO(b"hello"), "x.mp4")},
                      content_type="multipart/form-data")
    assert bad.status_code == 400 and "not a readable media file" in bad.get_json()["error"]
    small = system.app.config["MAX_CONTENT_LENGTH"]
    system.app.config["MAX_CONTENT_LENGTH"] = 1024
    try:
        big = client.post("/api/transcribe", data={"file": (io.BytesIO(b"0" * 4096), "big.mp4")},
                          content_type="multipart/form-data")
        assert big.status_code == 413 and "limit" in big.get_json()["error"]
    finally:
        system.app.config["MAX_CONTENT_LENGTH"] = small
    assert shutil.which("ffmpeg")


def _cli(system, *args):
    return subprocess.run([sys.executable, "-m", "core.cli", *args], capture_output=True, text=True,
                          env={**__import__("os").environ, **system.env}, cwd=Path(__file__).parent.parent, timeout=120)


def test_cli_check_reports_each_component(system):
    out = _cli(system, "check")
    assert out.returncode == 0, out.stdout + out.stderr
    for name in ("redis", "workers", "recovery", "database", "ffmpeg", "model", "storage"):
        assert any(line.startswith("OK") and f" {name} " in line + " " for line in out.stdout.splitlines()), name
    assert "transcribe" in out.stdout and "render" in out.stdout
    broken = subprocess.run([sys.executable, "-m", "core.cli", "check"], capture_output=True, text=True,
                            env={**__import__("os").environ, **system.env, "REDIS_URL": "redis://127.0.0.1:1/0"},
                            cwd=Path(__file__).parent.parent, timeout=120)
    assert broken.returncode == 1
    assert "FAIL redis" in broken.stdout and "fix:" in broken.stdout


def test_cli_purge_cancels_waiting_jobs_only(system, client):
    news = system.storage / "news"
    running = submit(client, [news / "long.mp4"], force=True).get_json()["queued"][0]["job_id"]
    wait_for(lambda: client.get(f"/api/status/{running}").get_json()["status"] == "processing", 120, interval=0.2,
             what="the long job to start")
    waiting = [submit(client, [news / n], options={"burn_in": False}, force=True).get_json()["queued"][0]["job_id"]
               for n in ("one.mp4", "two.mp4")]
    out = _cli(system, "purge")
    assert out.returncode == 0, out.stderr
    report = __import__("json").loads(out.stdout.strip().splitlines()[-1])
    assert set(waiting) <= set(report["job_ids"]) and running not in report["job_ids"]
    for job_id in waiting:
        job = client.get(f"/api/status/{job_id}").get_json()
        assert job["status"] == "cancelled" and "purged" in job["error"]
    assert wait_finished(client, running)["status"] == "completed"
    for job_id in waiting:  # a purged job never runs
        assert client.get(f"/api/status/{job_id}").get_json()["started_at"] is None


def test_odd_names_silence_and_empty_files_through_the_api(system, client):
    from bench.media import make_silent_clip

    news = system.storage / "news"
    odd = news / "-lead 'q' \"dq\" [x]: ünï.mp4"
    odd.write_bytes((news / "one.mp4").read_bytes())
    silent = make_silent_clip(news, seconds=3, name="silence.mp4")
    empty = news / "empty.mp4"
    empty.touch()
    body = submit(client, [odd, silent, empty], options={"burn_in": True}, force=True).get_json()
    assert [q["path"] for q in body["queued"]] == [str(odd), str(silent)]
    assert "empty" in body["rejected"][0]["error"]
    odd_job, silent_job = (wait_finished(client, q["job_id"]) for q in body["queued"])
    assert odd_job["status"] == "completed" and Path(odd_job["result"]["outputs"]["video"]).is_file()
    assert Path(odd_job["result"]["outputs"]["scc"]).name == "-lead 'q' \"dq\" [x]: ünï.mp4.scc"
    assert silent_job["status"] == "completed" and silent_job["result"]["speech_found"] is False
    assert "no speech" in silent_job["result"]["message"]
    assert Path(silent_job["result"]["outputs"]["scc"]).read_text().startswith("Scenarist_SCC V1.0")


def test_model_loads_once_per_worker_process(system, client):
    """Five jobs in a row, yet no process loads the model twice (a cancel replaces
    the process, whose successor loads it again), and each loads it as it starts,
    not inside somebody's job."""
    log_file = system.root / "worker.log"

    def processes(marker):
        return [line.split("/", 1)[1].split("]", 1)[0] for line in log_file.read_text().splitlines() if marker in line]

    before = processes("loading Whisper model")
    news = system.storage / "news"
    body = submit(client, [news / "one.mp4", news / "two.mp4", news / "three.mp4"], options={"burn_in": False},
                  force=True).get_json()
    more = submit(client, [news / "one.mp4", news / "two.mp4"], options={"burn_in": False}, force=True).get_json()
    for queued in body["queued"] + more["queued"]:
        assert wait_finished(client, queued["job_id"])["status"] == "completed"
    loads = processes("loading Whisper model")
    assert loads and len(loads) == len(set(loads)), loads
    assert len(loads) - len(before) <= 1, f"five jobs loaded the model {len(loads) - len(before)} times"
    assert sorted(processes("loaded ahead of the first job")) == sorted(loads)


def test_render_only_worker_does_not_load_the_model():
    from core.celery_app import create_celery
    from core.config import load_settings
    from core.tasks.warmup import consumes_transcriptions

    app = create_celery(load_settings())
    assert consumes_transcriptions(app)
    app.amqp.queues.select(["render"])
    assert not consumes_transcriptions(app)
