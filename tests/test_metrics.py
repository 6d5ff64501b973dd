"""Fast tier: ``GET /metrics`` scraped with the test client and read with Prometheus's own text parser;
every figure must equal what the job store (read here row by row, not through the collector's SQL), the
broker and the workers say.  The broker is kombu's in-memory transport (real queue declares and
publishes), the workers are canned inspect replies on the FakeQueue.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from celery import Celery
from celery.exceptions import SoftTimeLimitExceeded
from prometheus_client.parser import text_string_to_metric_families
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import select

from core.api import create_app
from core.api.live import monitor
from core.db import Job, session_scope
from core.jobs import queries, reaper
from core.jobs.states import STATUSES
from core.queue import RENDER_QUEUE, RENDER_TASK, TRANSCRIBE_QUEUE, TRANSCRIBE_TASK
from core.services import metrics, source_guard
from core.services.errors import InputError, ProcessingError
from core.tasks.runtime import failure_message
from tests.fast import add_job


@pytest.fixture(autouse=True)
def quiet_monitor():
    """The process-wide Socket.IO monitor starts and ends each test empty."""
    monitor.count, monitor.last_snapshot, monitor.taken_at = 0, None, 0.0
    yield
    monitor.count, monitor.last_snapshot, monitor.taken_at = 0, None, 0.0


@pytest.fixture
def broker(queue):
    """An in-memory broker behind the FakeQueue (kombu's memory transport), emptied before and after."""
    celery = Celery("metrics-test", broker="memory://")
    queue.celery = celery

    def purge():
        with celery.connection_for_write() as conn:
            for name in (TRANSCRIBE_QUEUE, RENDER_QUEUE):
                conn.default_channel.queue_declare(queue=name)
                conn.default_channel.queue_purge(name)

    purge()
    yield celery
    purge()


def scrape(client, **headers) -> dict:
    """{family name: {sample name + sorted labels: value}} from one scrape."""
    resp = client.get("/metrics", headers=headers)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    families = {}
    for family in text_string_to_metric_families(resp.get_data(as_text=True)):
        families[family.name] = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples}
    return families


def sample(families, family: str, name: str | None = None, **labels) -> float:
    return families[family][(name or family, tuple(sorted(labels.items())))]


def source_of(settings, name: str) -> str:
    return str(Path(settings["STORAGE_ROOTS"][0]) / "news" / name)


def failing_messages(settings, queue) -> dict[str, str]:
    """Reason label -> a message as the code that writes it words it."""
    path = source_of(settings, "bad.mp4")
    job = queries.get(add_job(settings, "timeout.mp4", "processing", media_duration=600.0))
    return {
        "time_limit": failure_message(job, SoftTimeLimitExceeded(), 3),
        "source_changed": str(InputError(path, f"{source_guard.CHANGED} (it was modified after it was queued)")),
        "source_missing": str(InputError(path, "file not found")),
        "no_audio": str(InputError(path, "has no audio stream, so there is nothing to transcribe")),
        "no_video": str(InputError(path, "has no video stream to burn captions into (use --no-burn-in)")),
        "unreadable_media": str(InputError(path, "media file is truncated or corrupt (Invalid data)")),
        "model_unavailable": str(InputError(path, 'tiny.en is an English-only model: language must be "en" or '
                                                  '"auto", not "de"')),
        "render_failed": str(ProcessingError(path, "ffmpeg burn-in failed: Conversion failed!")),
        "storage_error": str(ProcessingError(path, "cannot write outputs to /out: No space left on device")),
        "output_conflict": str(ProcessingError(path, "no free output name after 1000 runs")),
        "infrastructure": failure_message(job, RedisConnectionError("Error 111 connecting to localhost:6379"), 3),
        "internal_error": f"{path}: ValueError: something nobody expected",
        "other": f"{path}: something odd happened",
    }


def build_store(settings, queue) -> dict[str, int]:
    """Jobs in every status, with timings, media lengths and failures; the expected failures per reason."""
    for i, seconds in enumerate((0.05, 0.4, 3.0, 45.0, 700.0, 9000.0)):
        add_job(settings, f"done{i}.mp4", "completed", media_duration=10.0 * (i + 1), result={"timings": {
            "probing": 0.02 * (i + 1), "transcribing": seconds, "captioning": seconds / 10,
            "rendering": seconds * 2, "total": seconds * 3.1}})
    add_job(settings, "nolength.mp4", "completed", media_duration=None, result={"timings": {"transcribing": 1.0}})
    # A re-render of an edited revision: processing again, its media still counts as processed.
    add_job(settings, "rerender.mp4", "processing", stage="rendering", media_duration=25.0,
            result={"rerender": {"revision": 2}, "timings": {"transcribing": 5.0, "rendering": 2.5}})
    add_job(settings, "running.mp4", "processing", result={"timings": {"transcribing": 8.0}})   # not yet processed
    for i in range(3):
        add_job(settings, f"wait{i}.mp4", "pending")
    add_job(settings, "gone.mp4", "cancelled", error="cancelled by operator")
    expected = {name: 0 for name in metrics.REASONS}
    for reason, message in failing_messages(settings, queue).items():
        add_job(settings, f"{reason}.mp4", "failed", error=message)
        expected[reason] += 1
    # The real reaper's words for a job whose worker died three times.
    add_job(settings, "lost.mp4", "processing", worker="w-dead", attempts=reaper.MAX_ATTEMPTS)
    assert reaper.reclaim("w-dead", queue)["failed"]
    expected["worker_lost"] += 1
    # A file whose name reads like another reason is classified by its message, not its name.
    tricky = source_of(settings, "file not found; worker lost 3 times; giving up.mp4")
    add_job(settings, Path(tricky).name, "failed", error=f"{tricky}: has no video stream for a MOV deliverable")
    expected["no_video"] += 1
    return expected


def rows() -> list[Job]:
    with session_scope() as s:
        return list(s.scalars(select(Job)).all())


def processed(job: Job) -> bool:
    return job.status == "completed" or bool((job.result or {}).get("rerender"))


def test_every_figure_equals_the_job_store(client, settings, queue, broker):
    expected_failures = build_store(settings, queue)
    families = scrape(client)
    jobs = rows()

    for status in STATUSES:
        assert sample(families, "captioning_jobs", status=status) == sum(j.status == status for j in jobs)
    assert sample(families, "captioning_jobs", status="failed") == sum(expected_failures.values())

    done = [j for j in jobs if processed(j)]
    assert len(done) == 8
    assert sample(families, "captioning_media_seconds_processed", "captioning_media_seconds_processed_total") \
        == pytest.approx(sum(j.media_duration or 0.0 for j in done))
    assert sample(families, "captioning_jobs_processed", "captioning_jobs_processed_total") == len(done)

    for stage in metrics.TIMED_STAGES:
        spent = [j.result["timings"][stage] for j in done if stage in (j.result or {}).get("timings", {})]
        h = "captioning_stage_seconds"
        assert sample(families, h, f"{h}_count", stage=stage) == len(spent), stage
        assert sample(families, h, f"{h}_sum", stage=stage) == pytest.approx(sum(spent)), stage
        for bound in metrics.STAGE_BUCKETS:
            assert sample(families, h, f"{h}_bucket", stage=stage, le=repr(float(bound))) \
                == sum(v <= bound for v in spent), (stage, bound)
        assert sample(families, h, f"{h}_bucket", stage=stage, le="+Inf") == len(spent)
    # The +Inf bucket holds the two-and-a-half-hour render that no finite bucket does.
    assert sample(families, "captioning_stage_seconds", "captioning_stage_seconds_bucket", stage="rendering",
                  le="7200.0") == 6

    for reason in metrics.REASONS:
        assert sample(families, "captioning_failed_jobs", reason=reason) == expected_failures[reason], reason
    assert set(dict(k[1])["reason"] for k in families["captioning_failed_jobs"]) == set(metrics.REASONS)


def test_an_empty_store_reports_zeros_for_every_status_stage_and_reason(client, broker):
    families = scrape(client)
    assert {dict(k[1])["status"]: v for k, v in families["captioning_jobs"].items()} == dict.fromkeys(STATUSES, 0)
    assert set(families["captioning_failed_jobs"].values()) == {0}
    assert len(families["captioning_failed_jobs"]) == len(metrics.REASONS)
    assert sample(families, "captioning_media_seconds_processed", "captioning_media_seconds_processed_total") == 0
    counts = {dict(k[1])["stage"] for k in families["captioning_stage_seconds"]}
    assert counts == set(metrics.TIMED_STAGES)


def test_figures_follow_the_store_between_scrapes(client, settings, broker):
    """Each scrape reads the store afresh: nothing is remembered from the one before."""
    job_id = add_job(settings, "a.mp4", "failed", error=f"{source_of(settings, 'a.mp4')}: file not found")
    before = scrape(client)
    assert sample(before, "captioning_failed_jobs", reason="source_missing") == 1
    with session_scope() as s:
        s.get(Job, job_id).status = "pending"         # what an operator's retry leaves
    after = scrape(client)
    assert sample(after, "captioning_failed_jobs", reason="source_missing") == 0
    assert sample(after, "captioning_jobs", status="pending") == 1


def test_waiting_tasks_per_queue_come_from_the_broker(client, broker):
    for _ in range(3):
        broker.send_task(TRANSCRIBE_TASK, args=["x"], queue=TRANSCRIBE_QUEUE, priority=5)
    broker.send_task(RENDER_TASK, args=["y"], queue=RENDER_QUEUE, priority=0)
    families = scrape(client)
    assert sample(families, "captioning_broker_up") == 1
    assert sample(families, "captioning_queue_waiting", queue=TRANSCRIBE_QUEUE) == 3
    assert sample(families, "captioning_queue_waiting", queue=RENDER_QUEUE) == 1


def test_a_broker_that_does_not_answer_is_reported_not_raised(client, queue):
    queue.celery = Celery("down", broker="redis://127.0.0.1:1/0")      # nothing listens there
    queue.replies["active_queues"] = {"w1@gpu": [{"name": TRANSCRIBE_QUEUE}]}
    families = scrape(client)
    assert sample(families, "captioning_broker_up") == 0
    assert families["captioning_queue_waiting"] == {}                 # unknown, not a false zero
    assert sample(families, "captioning_workers_online") == 0
    assert "captioning_jobs" in families                              # the store's figures still come


def test_workers_online_and_per_queue_from_the_workers_answer(client, queue, broker):
    queue.replies["active_queues"] = {
        "gpu@a": [{"name": TRANSCRIBE_QUEUE}],
        "cpu@b": [{"name": RENDER_QUEUE}],
        "both@c": [{"name": TRANSCRIBE_QUEUE}, {"name": RENDER_QUEUE}],
    }
    families = scrape(client)
    assert sample(families, "captioning_workers_online") == 3
    assert sample(families, "captioning_queue_workers", queue=TRANSCRIBE_QUEUE) == 2
    assert sample(families, "captioning_queue_workers", queue=RENDER_QUEUE) == 2


def test_a_fresh_queue_snapshot_is_used_instead_of_a_broadcast(client, queue, broker):
    import time

    queue.replies["active_queues"] = {"stale@x": [{"name": TRANSCRIBE_QUEUE}]}
    monitor.last_snapshot = {"workers": [{"name": "live@y", "queues": [RENDER_QUEUE]}]}
    monitor.taken_at = time.monotonic()
    families = scrape(client)
    assert sample(families, "captioning_workers_online") == 1
    assert sample(families, "captioning_queue_workers", queue=RENDER_QUEUE) == 1
    assert sample(families, "captioning_queue_workers", queue=TRANSCRIBE_QUEUE) == 0


def test_worker_presence_is_cached_for_its_ttl(queue):
    clock = [100.0]
    presence = metrics.WorkerPresence(queue, ttl=10.0, clock=lambda: clock[0])
    queue.replies["active_queues"] = {"a@1": [{"name": TRANSCRIBE_QUEUE}]}
    assert list(presence.current()) == ["a@1"]
    queue.replies["active_queues"] = None                              # every worker gone
    clock[0] += 9.0
    assert list(presence.current()) == ["a@1"]
    clock[0] += 1.0
    assert presence.current() == {}


def test_socketio_clients_of_this_process(client, broker):
    monitor.count = 4
    assert sample(scrape(client), "captioning_socketio_clients") == 4


# --- the token -------------------------------------------------------------------------------------------

def app_with(settings, queue, **tokens):
    return create_app({**settings, **tokens}, queue=queue).test_client()


def test_open_when_no_token_is_set(client, broker):
    assert client.get("/metrics").status_code == 200


def test_api_token_guards_metrics_when_no_metrics_token(settings, store, queue, broker):
    c = app_with(settings, queue, API_TOKEN="api-secret")
    refused = c.get("/metrics")
    assert refused.status_code == 401 and "token" in refused.get_json()["error"]
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert c.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert c.get("/metrics", headers={"Authorization": "Bearer api-secret"}).status_code == 200
    assert c.get("/metrics", headers={"X-API-Token": "api-secret"}).status_code == 200
    assert c.post("/login", data={"token": "api-secret"}).status_code in (302, 303)
    assert c.get("/metrics").status_code == 200                      # a logged-in browser


def test_metrics_token_alone_opens_metrics_when_set(settings, store, queue, broker):
    c = app_with(settings, queue, API_TOKEN="api-secret", METRICS_TOKEN="scrape-only")
    assert c.get("/metrics", headers={"Authorization": "Bearer scrape-only"}).status_code == 200
    assert c.get("/metrics", headers={"X-API-Token": "scrape-only"}).status_code == 200
    assert c.get("/metrics", headers={"Authorization": "Bearer api-secret"}).status_code == 401
    # The metrics token opens nothing else.
    assert c.get("/api/jobs", headers={"Authorization": "Bearer scrape-only"}).status_code == 401
    assert c.post("/login", data={"token": "api-secret"}).status_code in (302, 303)
    assert c.get("/metrics").status_code == 401                      # a session is not a scrape credential


def test_metrics_token_guards_metrics_even_without_api_token(settings, store, queue, broker):
    c = app_with(settings, queue, METRICS_TOKEN="scrape-only")
    assert c.get("/metrics").status_code == 401
    assert c.get("/metrics", headers={"Authorization": "Bearer scrape-only"}).status_code == 200


def test_guessing_the_metrics_token_is_slowed_down(settings, store, queue, broker):
    c = app_with(settings, queue, METRICS_TOKEN="scrape-only")
    for i in range(10):
        assert c.get("/metrics", headers={"Authorization": f"Bearer guess{i}"}).status_code == 401
    limited = c.get("/metrics", headers={"Authorization": "Bearer scrape-only"})
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1


def test_a_scraper_with_a_stale_token_does_not_lock_people_out_of_the_dashboard(settings, store, queue, broker):
    """Found by a hostile test: wrong metrics tokens used the API's limit, so everyone at the scraper's address
    (behind a reverse proxy: everyone) got 429 from the API with the right token."""
    c = app_with(settings, queue, API_TOKEN="api-secret", METRICS_TOKEN="scrape-only")
    for i in range(30):
        assert c.get("/metrics", headers={"Authorization": "Bearer stale"}).status_code in (401, 429)
    assert c.get("/api/jobs", headers={"X-API-Token": "api-secret"}).status_code == 200


def test_a_foreign_host_is_refused(client, broker):
    assert client.get("/metrics", headers={"Host": "evil.example"}).status_code == 400


def test_histogram_buckets_are_cumulative_and_end_at_the_count(client, settings, broker):
    for i, seconds in enumerate((0.2, 0.2, 4.0, 100.0)):
        add_job(settings, f"c{i}.mp4", "completed", result={"timings": {"transcribing": seconds}})
    families = scrape(client)
    buckets = sorted(((float(dict(k[1])["le"]), v) for k, v in families["captioning_stage_seconds"].items()
                      if k[0].endswith("_bucket") and dict(k[1])["stage"] == "transcribing"))
    values = [v for _, v in buckets]
    assert values == sorted(values) and buckets[-1] == (math.inf, 4)
    assert dict(buckets)[0.5] == 2 and dict(buckets)[5.0] == 3 and dict(buckets)[120.0] == 4
