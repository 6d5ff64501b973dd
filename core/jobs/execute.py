"""The worker's side of a job, one stage per function (the tasks are thin adapters over these).

``run_captions``: reopen and check the source, wait for it to settle,
transcribe, publish the caption files.  ``run_render``: burn the published
captions into the rendition.  Both publish nothing when the job was cancelled
or its source changed meanwhile.
"""

from __future__ import annotations

import calendar
import logging
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from ..db import Job, utcnow
from ..services import artifacts, pipeline, source_guard, writers
from ..services.errors import CaptionError
from . import record, worker
from .serialize import iso
from .states import PROCESSING, Stage

log = logging.getLogger(__name__)


class Reporter:
    """Progress callback: writes the job record (at most once a second per stage) and calls ``also``."""

    def __init__(self, job_id: str, also: Callable[[str, float], None] | None = None, interval: float = 1.0):
        self.job_id, self.also, self.interval = job_id, also, interval
        self.last_stage, self.last_time = None, 0.0

    def __call__(self, stage: str, fraction: float) -> None:
        now = time.monotonic()
        if stage == self.last_stage and fraction < 1.0 and now - self.last_time < self.interval:
            return
        self.last_stage, self.last_time = stage, now
        worker.report_progress(self.job_id, stage, fraction)
        if self.also:
            self.also(stage, fraction)


@contextmanager
def heartbeat(job_id: str, interval: float):
    """Keep the job's heartbeat fresh while the block runs (the reaper watches it)."""
    stop = threading.Event()

    def beat():
        while not stop.wait(interval):
            try:
                record.heartbeat(job_id)
            except Exception:  # noqa: BLE001 - a missed beat is harmless; the next one retries
                log.warning("heartbeat for job %s failed", job_id, exc_info=True)

    threading.Thread(target=beat, name=f"heartbeat-{job_id}", daemon=True).start()
    try:
        yield
    finally:
        stop.set()


def _options(job: Job, settings: dict) -> pipeline.CaptionOptions:
    return pipeline.CaptionOptions(**job.options, settings=settings)


def run_captions(job: Job, settings: dict, report: Reporter) -> dict | None:
    """Transcribe and publish the caption files; the result, or None if the job was cancelled meanwhile."""
    options = _options(job, settings)
    timings: dict[str, float] = {}
    queued_at = calendar.timegm(job.created_at.timetuple()) + job.created_at.microsecond / 1e6
    with source_guard.open_queued(job.source, job.source_stat, settings) as source, \
            heartbeat(job.id, settings["HEARTBEAT_SECONDS"]):
        settled = source_guard.wait_until_settled(source, job.source_stat, queued_at, settings["SETTLE_SECONDS"],
                                             on_wait=lambda: report(Stage.SETTLING.value, 0.0))
        started = time.monotonic()
        report(Stage.PROBING.value, 0.0)
        info = pipeline.prepare(source.read_path, options.burn_in, label=job.source)
        timings["probing"] = round(time.monotonic() - started, 3)
        transcript, captions = pipeline.transcribe_media(info, options, report, timings)
        with artifacts.writing(Path(job.output_dir), Path(job.source).name, job.id) as staging:
            facts = pipeline.stage_sidecars(staging, info, transcript, captions, options)
            source_guard.check_unchanged(source, settled)
            if not worker.is_processing(job.id):
                return None
            run, manifest = staging.publish(pipeline.kinds(options, with_video=False), settings["OUTPUT_CONFLICT"])
    result = {**pipeline.result_record(info, transcript, captions, options), **facts, "run": run,
              "source_settled": settled, "timings": timings, "text": transcript.text,
              "segments": transcript.as_dict()["segments"]}
    if not worker.captions_published(job.id, result, manifest, render_follows=options.burn_in):
        artifacts.remove(manifest)
        return None
    return result


def run_render(job: Job, settings: dict, report: Reporter) -> dict | None:
    """Burn the job's published captions into an H.264 rendition; the result, or None if cancelled."""
    result = job.result or {}
    timings: dict[str, float] = {}
    settled = result.get("source_settled")
    with source_guard.open_queued(job.source, job.source_stat, settings) as source, \
            heartbeat(job.id, settings["HEARTBEAT_SECONDS"]):
        if settled:
            source_guard.check_unchanged(source, settled)
        info = pipeline.prepare(source.read_path, True, label=job.source)
        revision, caption_json, run = worker.render_input(result)   # the machine's captions or an edited revision
        try:
            captions = writers.captions_from_json(caption_json)
        except (OSError, ValueError, KeyError) as err:
            raise CaptionError(caption_json, f"caption file is missing or unreadable ({err})") from err
        # The ETA measures the render's speed from here (not from when the captions were queued for it).
        record.transition(job.id, PROCESSING, only_from={PROCESSING}, publish=False,
                          when=lambda j: (j.result or {}) == result,   # not over a revision saved meanwhile
                          result={**result, "render_started_at": iso(utcnow())})
        with artifacts.writing(Path(job.output_dir), Path(job.source).name, job.id) as staging:
            try:   # a newer revision saved meanwhile stops this render: the newest revision's render wins
                render = pipeline.stage_video(staging, info, captions, settings,
                                              worker.unless_superseded(job.id, revision, report), timings)
            except worker.Superseded:
                return None
            if settled:
                source_guard.check_unchanged(source, settled)
            if not worker.is_processing(job.id):
                return None
            _, manifest = staging.publish(["video"], settings["OUTPUT_CONFLICT"], run=run, revision=revision)
    if not worker.video_published(job.id, {"render": render, "timings": timings}, manifest, revision):
        artifacts.remove(manifest)
        return None
    return {"video": manifest[0]["path"], "render": render}
