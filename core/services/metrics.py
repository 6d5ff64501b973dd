"""Prometheus metrics, read from the sources of truth at scrape time.

Nothing is counted in the dashboard's memory: every scrape aggregates the job store in SQL (GROUP BY,
one pass per figure), asks the broker how many tasks wait in each queue, and takes the workers from a
short-lived cache, so any dashboard process answers the same figures, and they match the store.
See docs/METRICS.md for the names, and the PromQL that reads them.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Iterable

from kombu.exceptions import ChannelError
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry
from sqlalchemy import case, func, or_, select

from ..db import Job, session_scope
from ..jobs import queries
from ..jobs.states import COMPLETED, FAILED, STATUSES
from ..queue import RENDER_QUEUE, TRANSCRIBE_QUEUE
from . import failure_reasons

log = logging.getLogger(__name__)

PREFIX = "captioning"
QUEUES = (TRANSCRIBE_QUEUE, RENDER_QUEUE)
# The timings a run records (core/services/pipeline.py, core/jobs/execute.py), one label value each.
TIMED_STAGES = ("probing", "decode_audio", "load_model", "transcribing", "speakers", "captioning", "rendering")
# From a probe of a short clip to the render of a two-hour programme.
STAGE_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0)

# Failed jobs by reason: the labels of ``failure_reasons`` (shared with the Analytics tab), never the error
# text itself (one series per file would follow).
REASONS = failure_reasons.REASONS


def _processed():
    """Jobs whose media was processed: completed, or re-rendering an edited revision (which leaves the
    completed status for a while; counting it out then would look like a counter reset to Prometheus)."""
    return or_(Job.status == COMPLETED, Job.result["rerender"].as_string().is_not(None))


def _reason_text():
    """A failed job's message without the leading "<source>: " (so a file's name never decides its reason)."""
    text = func.coalesce(Job.error, "")
    prefix = func.length(Job.source) + 2
    return case((func.substr(text, 1, prefix) == Job.source + ": ", func.substr(text, prefix + 1)), else_=text)


def store_figures() -> dict:
    """What the job store says, aggregated in SQL: counts by status, processed media, stage timings
    (per stage: per-bucket counts, count and sum) and failed jobs by reason."""
    figures = {"status": queries.counts()}
    # One pass over the processed jobs takes each stage's seconds out of their timings once per job; the
    # buckets are then counted on those numbers (MATERIALIZED: not re-read per bucket).
    processed = (select(Job.media_duration.label("media"),
                        *[Job.timings[stage].as_float().label(stage) for stage in TIMED_STAGES])
                 .where(_processed()).cte("processed").prefix_with("MATERIALIZED"))
    columns = [func.count(), func.coalesce(func.sum(processed.c.media), 0.0)]
    for stage in TIMED_STAGES:
        seconds = processed.c[stage]
        columns += [func.count(seconds), func.coalesce(func.sum(seconds), 0.0)]
        columns += [func.count(case((seconds <= bound, 1))) for bound in STAGE_BUCKETS]
    with session_scope() as s:
        row = list(s.execute(select(*columns).select_from(processed)).one())
        # Grouped by message in SQL: as many rows as distinct reasons, not as failed jobs (paths are cut off).
        text = func.substr(_reason_text(), 1, failure_reasons.HEAD).label("text")
        failed = s.execute(select(text, func.count()).where(Job.status == FAILED).group_by(text)).all()
    figures["processed"] = {"jobs": row[0], "media_seconds": float(row[1])}
    figures["stages"], at = {}, 2
    for stage in TIMED_STAGES:
        count, total, cumulative = row[at], row[at + 1], row[at + 2:at + 2 + len(STAGE_BUCKETS)]
        figures["stages"][stage] = {"count": count, "sum": float(total), "cumulative": [*cumulative, count]}
        at += 2 + len(STAGE_BUCKETS)
    figures["failures"] = {name: 0 for name in REASONS}
    for message, n in failed:
        figures["failures"][failure_reasons.reason_of(message)] += n
    return figures


def queue_lengths(celery_app, timeout: float = 0.5) -> dict[str, int] | None:
    """Tasks waiting in each broker queue (all priorities; not those a worker has taken); None when the
    broker cannot be reached."""
    if celery_app is None:
        return None
    try:
        with celery_app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout)
            channel = conn.default_channel
            return {name: _waiting(channel, name) for name in QUEUES}
    except Exception as err:  # noqa: BLE001 - a broker outage is a figure (broker_up 0), not a failed scrape
        log.warning("metrics: broker unreachable: %s", err)
        return None


def _waiting(channel, name: str) -> int:
    try:
        return channel.queue_declare(queue=name, passive=True).message_count
    except ChannelError:        # Redis drops an empty queue's list: nothing waits
        return 0


class WorkerPresence:
    """The workers that answer, and the queues each consumes: one ``active_queues`` broadcast with a
    short timeout, its answer kept ``ttl`` seconds and shared by concurrent scrapes (one broadcast at a
    time), so a scrape never waits on more than one short broadcast."""

    def __init__(self, queue, ttl: float = 10.0, timeout: float = 0.5, clock=time.monotonic):
        self.queue, self.ttl, self.timeout, self.clock = queue, ttl, timeout, clock
        self._lock = threading.Lock()
        self._seen: dict[str, list[str]] | None = None
        self._at = float("-inf")

    def current(self) -> dict[str, list[str]]:
        with self._lock:
            if self._seen is None or self.clock() - self._at >= self.ttl:
                replies = self.queue.inspect("active_queues", self.timeout) or {}
                self._seen = {name: sorted(q.get("name") for q in queues or [] if q.get("name"))
                              for name, queues in replies.items()}
                self._at = self.clock()
            return self._seen


class CaptioningCollector(Collector):
    """Yields every ``captioning_`` family from the store, the broker and the workers at each scrape.

    ``queue``: the app's QueueClient (its Celery app reaches the broker);
    ``cached_workers``: the dashboard's own recent inspect snapshot ({name: queues}) or None;
    ``socketio_clients``: how many browsers this process serves over Socket.IO."""

    def __init__(self, queue, presence: WorkerPresence, cached_workers: Callable[[], dict | None],
                 socketio_clients: Callable[[], int]):
        self.queue, self.presence = queue, presence
        self.cached_workers, self.socketio_clients = cached_workers, socketio_clients

    def collect(self) -> Iterable:
        yield from self._store(store_figures())
        lengths = queue_lengths(getattr(self.queue, "celery", None))
        yield _gauge("broker_up", "1 if the broker (Redis) answered this scrape, else 0.", lengths is not None)
        waiting = GaugeMetricFamily(f"{PREFIX}_queue_waiting", "Tasks waiting in each broker queue, not yet "
                                    "taken by a worker (absent while the broker is down).", labels=["queue"])
        for name, n in (lengths or {}).items():
            waiting.add_metric([name], n)
        yield waiting
        workers = self._workers() if lengths is not None else {}
        yield _gauge("workers_online", "Celery workers that answered (a cached snapshot at most a few seconds "
                     "old).", len(workers))
        per_queue = GaugeMetricFamily(f"{PREFIX}_queue_workers", "Online workers consuming each queue.",
                                      labels=["queue"])
        for name in QUEUES:
            per_queue.add_metric([name], sum(1 for queues in workers.values() if name in queues))
        yield per_queue
        yield _gauge("socketio_clients", "Browsers connected over Socket.IO to this dashboard process.",
                     self.socketio_clients())

    def _workers(self) -> dict[str, list[str]]:
        cached = self.cached_workers()
        if cached is not None:
            return cached
        try:
            return self.presence.current()
        except Exception as err:  # noqa: BLE001 - no answer is no worker
            log.warning("metrics: worker inspect failed: %s", err)
            return {}

    def _store(self, figures: dict) -> Iterable:
        jobs = GaugeMetricFamily(f"{PREFIX}_jobs", "Jobs in the store by status.", labels=["status"])
        for status in STATUSES:
            jobs.add_metric([status], figures["status"][status])
        yield jobs
        yield CounterMetricFamily(f"{PREFIX}_media_seconds_processed", "Seconds of media of the jobs processed "
                                  "(completed, or re-rendering an edited revision) in the store.",
                                  value=figures["processed"]["media_seconds"])
        yield CounterMetricFamily(f"{PREFIX}_jobs_processed", "Jobs processed (completed, or re-rendering an "
                                  "edited revision) in the store.", value=figures["processed"]["jobs"])
        stages = HistogramMetricFamily(f"{PREFIX}_stage_seconds", "Seconds each stage of a processed job took "
                                       "(the job's recorded timings).", labels=["stage"])
        for stage, h in figures["stages"].items():
            stages.add_metric([stage], list(zip([*map(_bound, STAGE_BUCKETS), "+Inf"], h["cumulative"])),
                              sum_value=h["sum"])
        yield stages
        failures = GaugeMetricFamily(f"{PREFIX}_failed_jobs", "Failed jobs in the store by reason (a retried "
                                     "job leaves it).", labels=["reason"])
        for reason in REASONS:
            failures.add_metric([reason], figures["failures"][reason])
        yield failures


def _bound(value: float) -> str:
    return repr(float(value))


def _gauge(name: str, doc: str, value) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{PREFIX}_{name}", doc, value=float(value))


def registry_for(collector: Collector) -> CollectorRegistry:
    """A private registry with only this collector (no process or platform metrics of one process)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry
