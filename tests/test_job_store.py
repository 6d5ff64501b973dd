"""The job store's state machine on both backends: SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import create_engine, text

from core.db import COMPLETED, PROCESSING, Job, session_scope
from core.services import jobs

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
def store(request, tmp_path, monkeypatch):
    if request.param == "sqlite":
        monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'jobs.db'}")
        yield request.param
        return
    admin, name = _postgres_url()
    if admin is None:
        pytest.skip("no PostgreSQL server on 127.0.0.1:5432")
    monkeypatch.setenv("DATABASE_URL", f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}")
    yield request.param
    from core.db import _engines

    for url in [u for u in _engines if name in u]:
        _engines.pop(url).dispose()
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))


def _add(source: str, **fields) -> str:
    with session_scope() as s:
        job = Job(source=source, output_dir="/tmp/out", options={"burn_in": True}, media_duration=60.0, **fields)
        s.add(job)
        s.flush()
        return job.id


def test_job_runs_through_its_states_once(store):
    job_id = _add("/mnt/news/a.mp4")
    assert jobs.claim(job_id, "task-1", "w1") is not None
    assert jobs.claim(job_id, "task-2", "w2") is None          # a second delivery is skipped
    assert jobs.claim(job_id, "task-1", "w1") is not None      # the same task redelivered may resume
    jobs.report_progress(job_id, "transcribing", 0.5)
    status = jobs.job_dict_by_id(job_id)
    assert status["status"] == PROCESSING and status["stage"] == "transcribing"
    assert 2 < status["progress"] < 55 and status["estimated_completion"]
    assert jobs.store_result(job_id, {"outputs": {"scc": "/tmp/out/a.scc"}, "text": "hi"}, done=False)
    assert jobs.job_dict_by_id(job_id)["stage"] == "rendering"
    assert jobs.store_result(job_id, {"outputs": {"video": "/tmp/out/a_captioned.mp4"}}, done=True)
    final = jobs.job_dict_by_id(job_id)
    assert final["status"] == COMPLETED and final["progress"] == 100.0
    assert set(final["result"]["outputs"]) == {"scc", "video"}
    assert jobs.claim(job_id, "task-3", "w3") is None          # finished jobs never run again


def test_listing_filters_and_counts(store):
    ids = [_add(f"/mnt/news/clip_{i}%_x.mp4") for i in range(5)]
    jobs.fail(ids[0], "bad input")
    listing = jobs.list_jobs(page=1, page_size=2)
    assert listing["total"] == 5 and len(listing["items"]) == 2
    assert jobs.list_jobs(status="failed")["items"][0]["error"] == "bad input"
    assert jobs.list_jobs(q="clip_3%")["total"] == 1           # LIKE wildcards in names are literal
    assert jobs.counts()["pending"] == 4 and jobs.counts()["failed"] == 1


def test_retention_deletes_only_old_finished_jobs(store, monkeypatch, tmp_path):
    from datetime import timedelta

    from core.db import utcnow
    from core.tasks.maintenance import apply_retention

    old_done = _add("/mnt/news/old.mp4", status=COMPLETED, created_at=utcnow() - timedelta(days=40))
    old_pending = _add("/mnt/news/waiting.mp4", created_at=utcnow() - timedelta(days=40))
    recent = _add("/mnt/news/new.mp4", status=COMPLETED)
    assert apply_retention()["policy"] == "off"                 # off by default
    monkeypatch.setenv("RETENTION_DAYS", "30")
    assert apply_retention()["deleted"] == 1
    remaining = {j["job_id"] for j in jobs.list_jobs(page_size=500)["items"]}
    assert remaining == {old_pending, recent} and old_done not in remaining
