"""Fixtures for the fast tier: a job store in a temp SQLite file, events caught in a list,
an in-memory stand-in for the Celery queue, and the Flask app on top.  No Redis, worker or model."""

from __future__ import annotations

import itertools
import wave
from pathlib import Path

import pytest

from core import db, events
from core.config import load_settings


class FakeQueue:
    """What ``core.queue.QueueClient`` offers, in memory: sends, revokes and purges are recorded."""

    def __init__(self, settings: dict):
        self.settings = settings
        self.sent: list[tuple[str, str, str | None]] = []     # (kind, id, priority)
        self.revoked: list[tuple[str, bool]] = []
        self.purged: list[list[str]] = []
        self.replies: dict[str, object] = {}                  # inspect method -> replies
        self._ids = itertools.count(1)
        self.celery = None

    def _task(self, kind: str, target: str, priority: str | None) -> str:
        task_id = f"task-{next(self._ids)}"
        self.sent.append((kind, target, priority))
        return task_id

    def enqueue_batch(self, batch_id: str) -> str:
        return self._task("batch", batch_id, None)

    def enqueue_transcription(self, job_id: str, priority: str, duration: float) -> str:
        return self._task("transcribe", job_id, priority)

    def enqueue_render(self, job_id: str, priority: str, duration: float) -> str:
        return self._task("render", job_id, priority)

    def revoke(self, task_id: str, terminate: bool) -> None:
        self.revoked.append((task_id, terminate))

    def purge(self, task_ids: list[str]) -> int:
        self.purged.append(list(task_ids))
        return len(task_ids)

    def inspect(self, method: str, timeout: float = 1.0):
        return self.replies.get(method)

    def active_task_ids(self, timeout: float = 2.0):
        replies = self.inspect("active")
        if replies is None:
            return None
        return {task["id"] for tasks in replies.values() for task in tasks}


def write_wav(path: Path, seconds: float = 2.0, rate: int = 16000) -> Path:
    """A silent mono WAV: real media that PyAV probes, made without FFmpeg."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\0\0" * int(seconds * rate))
    return path


@pytest.fixture
def settings(tmp_path) -> dict:
    storage = tmp_path / "mnt"
    (storage / "news").mkdir(parents=True)
    return load_settings({
        "DATABASE_URL": f"sqlite:///{tmp_path / 'jobs.db'}",
        "STORAGE_ROOTS": str(storage),
        "OUTPUT_DIR": str(tmp_path / "outputs"),
        "UPLOAD_DIR": str(tmp_path / "uploads"),
        "REDIS_URL": "redis://127.0.0.1:1/0",     # nothing listens: a test that reached Redis would fail
        "CAPTION_CONFIG": str(tmp_path / "no-config.py"),
        "SETTLE_SECONDS": "0",
    })


@pytest.fixture
def published() -> list[tuple[str, dict]]:
    """Every event published while the test runs."""
    caught: list[tuple[str, dict]] = []
    events.configure(sink=lambda event, data: caught.append((event, data)))
    yield caught
    events.configure()


@pytest.fixture
def store(settings, published):
    """The job store for this test (a fresh SQLite file)."""
    url = db.configure(settings)
    yield url
    engine = db._engines.pop(url, None)
    if engine is not None:
        engine.dispose()
    db._configured_url = None


@pytest.fixture
def queue(settings) -> FakeQueue:
    return FakeQueue(settings)


@pytest.fixture
def app(settings, store, queue):
    from core.api import create_app

    return create_app(settings, queue=queue)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def news(settings) -> Path:
    """The storage folder sources live in."""
    return Path(settings["STORAGE_ROOTS"][0]) / "news"


# --- job rows and published files, for tests of the job core ---------------------------------------------

def add_job(settings, name: str = "clip.mp4", status: str = "pending", burn_in: bool = True, **fields) -> str:
    """A job row on ``<storage>/news/<name>`` (inserted directly: nothing is published)."""
    from core.db import Job, new_id, session_scope, utcnow
    from core.services import storage

    source = Path(settings["STORAGE_ROOTS"][0]) / "news" / name
    base = {"id": new_id(), "source": str(source), "output_dir": str(storage.output_dir_for(source, settings)),
            "options": {"burn_in": burn_in, "model": "tiny.en", "language": "en", "rows": 2}, "priority": "normal",
            "media_duration": 30.0, "status": status, "progress": 0.0, "attempts": 0, "created_at": utcnow()}
    if status == "processing":
        base.update(stage="transcribing", progress=0.3, task_id="task-run", worker="w1", attempts=1,
                    started_at=utcnow(), heartbeat_at=utcnow())
    elif status in ("completed", "failed", "cancelled"):
        base.update(task_id="task-done", attempts=1, started_at=utcnow(), completed_at=utcnow(),
                    progress=1.0 if status == "completed" else 0.2)
    base.update(fields)
    with session_scope() as s:
        s.add(Job(**base))
    return base["id"]


def publish_files(job_id: str, kinds: list[str], text: str = "caption") -> list[dict]:
    """Publish files of ``kinds`` for the job the way the worker does; their manifest entries."""
    from core.jobs import queries
    from core.services import artifacts

    job = queries.get(job_id)
    with artifacts.writing(Path(job.output_dir), Path(job.source).name, job.id) as staging:
        for kind in kinds:
            staging.path(kind).write_text(f"{text} {kind} of {job.id}\n")
        _, manifest = staging.publish(kinds)
    return manifest
