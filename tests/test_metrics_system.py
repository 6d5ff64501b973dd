"""System tier: ``/metrics`` over HTTP on a real system (Redis, a Celery worker, WhisperX, FFmpeg).

One short clip runs to completion (captions and burn-in) and one job fails in the real worker; Prometheus's
own text parser reads the scrape, whose figures must equal what ``/api/jobs``, ``/api/health`` and the job
records say.  Then, with the worker stopped, tasks sent to Redis at two priorities show as waiting.
"""

from __future__ import annotations

import shutil
import threading

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from werkzeug.serving import make_server

from core.db import Job, new_id, utcnow
from core.jobs import queries, record, sources, submission
from core.jobs.states import STATUSES
from core.queue import TRANSCRIBE_QUEUE, TRANSCRIBE_TASK, QueueClient
from core.services import storage
from tests.system import start_system, stop_system, wait_for

pytestmark = pytest.mark.system

API, SCRAPE = "api-secret", "scrape-secret"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The system, its dashboard app served over HTTP on a free port: (system, base URL)."""
    system = start_system(tmp_path_factory.mktemp("metrics"), extra_env={"API_TOKEN": API, "METRICS_TOKEN": SCRAPE})
    server = make_server("127.0.0.1", 0, system.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield system, f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        stop_system(system)


def api(base: str, path: str, **params) -> dict:
    resp = requests.get(base + path, params=params, headers={"X-API-Token": API}, timeout=30)
    assert resp.status_code in (200, 503), resp.text
    return resp.json()


def scrape(base: str) -> dict:
    resp = requests.get(base + "/metrics", headers={"Authorization": f"Bearer {SCRAPE}"}, timeout=30)
    assert resp.status_code == 200, resp.text
    out = {}
    for family in text_string_to_metric_families(resp.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: dict, name: str, **labels) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def finished(base: str, job_id: str, timeout: float = 240) -> dict:
    return wait_for(lambda: (lambda j: j if j["status"] in ("completed", "failed", "cancelled") else None)(
        api(base, f"/api/status/{job_id}")), timeout, interval=0.5, what=f"job {job_id} to finish")


def test_a_scrape_over_http_matches_the_jobs_api_and_health(served, short_clip):
    system, base = served
    # The token: Prometheus's bearer credential opens /metrics; nothing else does.
    assert requests.get(base + "/metrics", timeout=10).status_code == 401
    assert requests.get(base + "/metrics", headers={"Authorization": f"Bearer {API}"}, timeout=10).status_code == 401

    clip = system.storage / "news" / "metrics clip.mp4"
    shutil.copy(short_clip, clip)
    resp = requests.post(base + "/api/transcribe/batch", headers={"X-API-Token": API}, timeout=30,
                         json={"paths": [str(clip)], "options": {"burn_in": True, "model": "tiny.en"}})
    assert resp.status_code == 202, resp.text
    good = resp.json()["queued"][0]["job_id"]

    # A job the worker must refuse (German on an English-only model), written as an older release left it.
    bad_path = system.storage / "news" / "german.mp4"
    shutil.copy(short_clip, bad_path)
    bad = Job(id=new_id(), source=str(bad_path), source_stat=sources.source_stat(bad_path),
              output_dir=str(storage.output_dir_for(bad_path, system.settings)),
              options={"model": "tiny.en", "language": "de", "burn_in": False, "rows": 2}, priority="normal",
              media_duration=4.0, status="pending", progress=0.0, attempts=0, created_at=utcnow())
    record.create([bad])
    submission.dispatch(bad.id, QueueClient(system.celery, system.settings))

    assert finished(base, good)["status"] == "completed"
    failed = finished(base, bad.id)
    assert failed["status"] == "failed" and "English-only" in failed["error"]

    samples = scrape(base)
    for status in STATUSES:
        assert value(samples, "captioning_jobs", status=status) == api(base, "/api/jobs", status=status)["total"]
    assert value(samples, "captioning_failed_jobs", reason="model_unavailable") == 1
    assert sum(v for (name, _), v in samples.items() if name == "captioning_failed_jobs") == 1

    done = queries.get(good)
    assert value(samples, "captioning_media_seconds_processed_total") == pytest.approx(done.media_duration)
    timings = done.result["timings"]
    for stage in ("probing", "transcribing", "captioning", "rendering"):
        assert value(samples, "captioning_stage_seconds_count", stage=stage) == 1, stage
        assert value(samples, "captioning_stage_seconds_sum", stage=stage) == pytest.approx(timings[stage]), stage

    health = api(base, "/api/health")
    assert value(samples, "captioning_workers_online") == health["workers"]["count"] == 1
    assert value(samples, "captioning_queue_workers", queue=TRANSCRIBE_QUEUE) == 1
    assert value(samples, "captioning_broker_up") == 1
    assert value(samples, "captioning_queue_waiting", queue=TRANSCRIBE_QUEUE) == 0
    assert value(samples, "captioning_socketio_clients") == 0


def test_tasks_waiting_in_redis_at_every_priority_are_counted(served):
    system, base = served
    system.worker.stop()          # nothing takes them now (stop_system stops it again harmlessly)
    try:
        for priority in (0, 5, 5):
            system.celery.send_task(TRANSCRIBE_TASK, args=["no-such-job"], queue=TRANSCRIBE_QUEUE, priority=priority)
        samples = wait_for(lambda: (lambda s: s if value(s, "captioning_workers_online") == 0 else None)(
            scrape(base)), 30, interval=1.0, what="the stopped worker to leave the figures")
        assert value(samples, "captioning_queue_waiting", queue=TRANSCRIBE_QUEUE) == 3
    finally:
        system.celery.control.purge()
