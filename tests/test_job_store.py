"""The job store's state machine on both backends: SQLite and PostgreSQL (when one runs locally)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, text

from core import db
from core.db import Job, session_scope, utcnow
from core.jobs import actions, queries, worker
from core.jobs.states import COMPLETED, PROCESSING

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def _postgres_url():
    """A fresh database on the local PostgreSQL, dropped afterwards; None when there is none."""
    try:
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            name = f"caption_test_{uuid.uuid4().hex[:8]}"
            conn.execute(text(f"CREATE DATABASE {name}"))
        return admin, name
    except Exception:  # noqa: BLE001 - no server: the PostgreSQL case cannot run here
        return None, None


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, settings, store):
    if request.param == "sqlite":
        yield request.param
        return
    admin, name = _postgres_url()
    if admin is None:
        pytest.skip("no PostgreSQL server on 127.0.0.1:5432")
    url = db.configure({**settings, "DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"})
    yield request.param
    db._engines.pop(url).dispose()
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))


def _add(source: str, **fields) -> str:
    with session_scope() as s:
        job = Job(source=source, output_dir="/tmp/out", options={"burn_in": True}, media_duration=60.0, **fields)
        s.add(job)
        s.flush()
        return job.id


def test_job_runs_through_its_states_once(backend):
    job_id = _add("/mnt/news/a.mp4")
    assert worker.claim(job_id, "task-1", "w1") is not None
    assert worker.claim(job_id, "task-2", "w2") is None          # a second delivery is skipped
    assert worker.claim(job_id, "task-1", "w1") is not None      # the same task redelivered may resume
    worker.report_progress(job_id, "transcribing", 0.5)
    status = queries.job_dict_by_id(job_id)
    assert status["status"] == PROCESSING and status["stage"] == "transcribing"
    assert 2 < status["progress"] < 55 and status["estimated_completion"]
    assert worker.captions_published(job_id, {"text": "hi"}, [], render_follows=True)
    assert queries.job_dict_by_id(job_id)["stage"] == "rendering"
    assert worker.video_published(job_id, {}, [])
    final = queries.job_dict_by_id(job_id)
    assert final["status"] == COMPLETED and final["progress"] == 100.0
    assert worker.claim(job_id, "task-3", "w3") is None          # finished jobs never run again


def test_listing_filters_and_counts(backend):
    ids = [_add(f"/mnt/news/clip_{i}%_x.mp4") for i in range(5)]
    worker.fail(ids[0], "bad input")
    listing = queries.list_jobs(page=1, page_size=2)
    assert listing["total"] == 5 and len(listing["items"]) == 2
    assert queries.list_jobs(status="failed")["items"][0]["error"] == "bad input"
    assert queries.list_jobs(q="clip_3%")["total"] == 1           # LIKE wildcards in names are literal
    assert queries.counts()["pending"] == 4 and queries.counts()["failed"] == 1


def test_retention_deletes_only_old_finished_jobs(backend, queue):
    old_done = _add("/mnt/news/old.mp4", status=COMPLETED, created_at=utcnow() - timedelta(days=40))
    old_pending = _add("/mnt/news/waiting.mp4", created_at=utcnow() - timedelta(days=40))
    recent = _add("/mnt/news/new.mp4", status=COMPLETED)
    assert actions.apply_retention(queue, 0, False)["policy"] == "off"     # off by default
    assert actions.apply_retention(queue, 30, False)["deleted"] == 1
    remaining = {j["job_id"] for j in queries.list_jobs(page_size=500)["items"]}
    assert remaining == {old_pending, recent} and old_done not in remaining


def test_a_database_from_an_earlier_version_gains_the_new_columns(tmp_path, settings, published):
    from sqlalchemy import inspect

    path = tmp_path / "old.db"
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE batches (id VARCHAR(32) PRIMARY KEY, created_at DATETIME, options JSON, "
                          "priority VARCHAR(8), task_id VARCHAR(64))"))
        conn.execute(text("CREATE TABLE jobs (id VARCHAR(32) PRIMARY KEY, batch_id VARCHAR(32), source TEXT, "
                          "output_dir TEXT, options JSON, priority VARCHAR(8), status VARCHAR(16), stage VARCHAR(16), "
                          "progress FLOAT, media_duration FLOAT, task_id VARCHAR(64), worker VARCHAR(255), "
                          "attempts INTEGER, error TEXT, result JSON, created_at DATETIME, started_at DATETIME, "
                          "stage_started_at DATETIME, heartbeat_at DATETIME, completed_at DATETIME)"))
    engine.dispose()
    url = db.configure({**settings, "DATABASE_URL": f"sqlite:///{path}"})
    try:
        assert "source_stat" in {c["name"] for c in inspect(db.get_engine(url)).get_columns("jobs")}
        assert queries.counts()["total"] == 0
    finally:
        db._engines.pop(url).dispose()
        db._configured_url = None


def test_an_earlier_database_gets_each_jobs_timings_and_new_results_keep_them_in_step(tmp_path, settings, published):
    """Metrics and analytics read seconds per stage from the ``timings`` column, not each transcript."""
    path = tmp_path / "old.db"
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE jobs (id VARCHAR(32) PRIMARY KEY, batch_id VARCHAR(32), source TEXT, "
                          "output_dir TEXT, options JSON, priority VARCHAR(8), status VARCHAR(16), stage VARCHAR(16), "
                          "progress FLOAT, media_duration FLOAT, task_id VARCHAR(64), worker VARCHAR(255), "
                          "attempts INTEGER, error TEXT, result JSON, created_at DATETIME, started_at DATETIME, "
                          "heartbeat_at DATETIME, completed_at DATETIME)"))
        conn.execute(text("INSERT INTO jobs (id, source, output_dir, options, status, result) VALUES "
                          "('old', '/a.mp4', '/out', '{}', 'completed', "
                          "'{\"text\": \"hi\", \"timings\": {\"transcribing\": 4.5, \"total\": 5.0}}')"))
    engine.dispose()
    url = db.configure({**settings, "DATABASE_URL": f"sqlite:///{path}"})
    try:
        from sqlalchemy import inspect

        indexed = {tuple(i["column_names"]) for i in inspect(db.get_engine(url)).get_indexes("jobs")}
        assert ("completed_at",) in indexed          # the Analytics tab's periods
        with session_scope() as s:
            assert s.get(Job, "old").timings == {"transcribing": 4.5, "total": 5.0}
        job_id = _add("/b.mp4", result={"timings": {"rendering": 2.0}})
        with session_scope() as s:
            job = s.get(Job, job_id)
            assert job.timings == {"rendering": 2.0}
            job.result = {"text": "no timings"}
        with session_scope() as s:
            assert s.get(Job, job_id).timings is None
    finally:
        db._engines.pop(url).dispose()
        db._configured_url = None
