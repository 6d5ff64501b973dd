"""The job store: one record per file is the single source of truth for its state.

SQLite under var/ by default (WAL, so workers and the dashboard share it on
one machine); PostgreSQL through DATABASE_URL when workers run on several.
"""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Iterator

from sqlalchemy import JSON, BigInteger, DateTime, Float, ForeignKey, Index, Integer, String, Text, create_engine, event, inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.schema import CreateIndex
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, sessionmaker

from .config import process_settings, project_path
from .jobs.states import PENDING


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def new_id() -> str:
    return uuid.uuid4().hex


class Base(DeclarativeBase):
    pass


class Batch(Base):
    __tablename__ = "batches"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    options: Mapped[dict] = mapped_column(JSON, default=dict)
    priority: Mapped[str] = mapped_column(String(8), default="normal")
    task_id: Mapped[str | None] = mapped_column(String(64))
    jobs: Mapped[list["Job"]] = relationship(back_populates="batch")


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    batch_id: Mapped[str | None] = mapped_column(ForeignKey("batches.id"), index=True)
    source: Mapped[str] = mapped_column(Text, index=True)
    output_dir: Mapped[str] = mapped_column(Text)
    options: Mapped[dict] = mapped_column(JSON, default=dict)
    priority: Mapped[str] = mapped_column(String(8), default="normal")
    status: Mapped[str] = mapped_column(String(16), default=PENDING, index=True)
    stage: Mapped[str | None] = mapped_column(String(16))
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    media_duration: Mapped[float | None] = mapped_column(Float)
    task_id: Mapped[str | None] = mapped_column(String(64), index=True)
    worker: Mapped[str | None] = mapped_column(String(255))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict | None] = mapped_column(JSON)
    # result["timings"], kept in step with result (below): metrics and analytics read seconds per stage
    # without parsing each job's transcript.
    timings: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Device, inode, size and mtime of the source when it was queued: the worker refuses a swapped file.
    source_stat: Mapped[dict | None] = mapped_column(JSON)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime, index=True)   # analytics by period
    batch: Mapped[Batch | None] = relationship(back_populates="jobs")


@event.listens_for(Job.result, "set")
def _timings_follow_result(job: Job, value, _old, _initiator) -> None:
    job.timings = value.get("timings") if isinstance(value, dict) else None


class QueueSample(Base):
    """Queue depth and workers at one moment, sampled by the dashboard for the Analytics tab (pruned by age)."""
    __tablename__ = "queue_samples"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    taken_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    waiting: Mapped[int] = mapped_column(Integer, default=0)        # jobs pending in the store
    running: Mapped[int] = mapped_column(Integer, default=0)        # jobs processing
    workers: Mapped[int] = mapped_column(Integer, default=0)        # workers that answered inspect
    busy_workers: Mapped[int] = mapped_column(Integer, default=0)   # of those, the ones running a task


class WatchFolderScan(Base):
    """A watch folder's latest scan, written by the watcher (core/watch), read by the dashboard."""
    __tablename__ = "watch_folders"

    path: Mapped[str] = mapped_column(Text, primary_key=True)
    mode: Mapped[str | None] = mapped_column(Text)
    scanned_at: Mapped[datetime | None] = mapped_column(DateTime)
    scan_seconds: Mapped[float | None] = mapped_column(Float)
    files: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    watcher: Mapped[str | None] = mapped_column(String(255))


class WatchFile(Base):
    """A file the watcher saw in a watch folder: one row per path and content, never forgotten once decided,
    so a restart, a rescan, a rename or a copy of the same content does not queue it again."""
    __tablename__ = "watch_files"
    # A scan reads only the rows of the paths on disk, a settled file looks up its content: both by folder.
    __table_args__ = (Index("ix_watch_files_folder_path", "folder", "path"),
                      Index("ix_watch_files_folder_fingerprint", "folder", "fingerprint"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    folder: Mapped[str] = mapped_column(Text)
    path: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    stable_since: Mapped[datetime] = mapped_column(DateTime)      # when this size and mtime were first seen
    first_seen_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    state: Mapped[str] = mapped_column(String(16), index=True)
    fingerprint: Mapped[str | None] = mapped_column(String(80))
    reason: Mapped[str | None] = mapped_column(Text)
    job_id: Mapped[str | None] = mapped_column(String(32))
    claimed_by: Mapped[str | None] = mapped_column(String(255))
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime, index=True)


_engines: dict[str, Engine] = {}
_configured_url: str | None = None


def _sqlite_pragmas(dbapi_conn, _record):
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def database_url(settings: dict | None = None) -> str:
    url = (settings or process_settings())["DATABASE_URL"]
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        path = project_path(url[len("sqlite:///"):])  # relative to the project, not the cwd
        path.parent.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{path}"
    return url


def configure(settings: dict) -> str:
    """Make ``settings``' database this process's default (the app factory and the worker call it)."""
    global _configured_url
    _configured_url = database_url(settings)
    return _configured_url


_COPY_TIMINGS = {"sqlite": "UPDATE jobs SET timings = json_extract(result, '$.timings')",
                 "postgresql": "UPDATE jobs SET timings = result -> 'timings'"}


def _add_missing_columns(engine: Engine) -> None:
    """A database made by an earlier version gains the columns added since (new columns are nullable)."""
    existing = {c["name"] for c in inspect(engine).get_columns(Job.__tablename__)}
    with engine.begin() as conn:
        for column in Job.__table__.columns:
            if column.name not in existing:
                kind = column.type.compile(engine.dialect)
                conn.execute(text(f"ALTER TABLE {Job.__tablename__} ADD COLUMN {column.name} {kind}"))
                if column.name == "timings":
                    conn.execute(text(_COPY_TIMINGS[engine.dialect.name]))
    with engine.begin() as conn:    # indexes added since (create_all makes only missing tables); IF NOT EXISTS:
        for index in [*Job.__table__.indexes, *WatchFile.__table__.indexes]:   # processes start side by side
            conn.execute(CreateIndex(index, if_not_exists=True))


def get_engine(url: str | None = None) -> Engine:
    url = url or _configured_url or database_url()
    engine = _engines.get(url)
    if engine is None:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(url, pool_pre_ping=True)
        Base.metadata.create_all(engine)
        _add_missing_columns(engine)
        _engines[url] = engine
    return engine


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """A transaction: committed on success, rolled back on error."""
    session = sessionmaker(get_engine(url), expire_on_commit=False)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
