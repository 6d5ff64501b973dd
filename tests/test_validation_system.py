"""Issue 13 with a real worker: a job the worker cannot run fails at once with its real reason.

The submission refuses such options (tests/test_submission_validation.py); here the job row is written
directly, as an older release or a hand-edited record would leave it, and dispatched to a real Celery
worker on a private Redis.  Each job must end ``failed`` within seconds, with the reason, after one
attempt: never "worker lost 3 times", never a model download.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from core.db import Job, new_id, utcnow
from core.jobs import queries, record, sources, submission
from core.queue import QueueClient
from core.services import storage
from tests.fast import write_wav
from tests.system import start_system, stop_system, wait_for

pytestmark = pytest.mark.system

OPTIONS = {"model": "tiny.en", "language": "en", "burn_in": False, "rows": 2}


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    sys_ = start_system(tmp_path_factory.mktemp("validation"))
    yield sys_
    stop_system(sys_)


def _record(system, path: Path, **options) -> str:
    """A pending job on ``path`` with ``options`` as given, bypassing submission's checks."""
    job = Job(id=new_id(), source=str(path), source_stat=sources.source_stat(path),
              output_dir=str(storage.output_dir_for(path, system.settings)), options={**OPTIONS, **options},
              priority="normal", media_duration=2.0, status="pending", progress=0.0, attempts=0,
              created_at=utcnow())
    record.create([job])
    return job.id


def _finished(job_id: str, timeout: float):
    """The job once it has finished (completed, failed or cancelled)."""
    def done():
        job = queries.get(job_id)
        return job if job.status in ("completed", "failed", "cancelled") else None

    return wait_for(done, timeout, interval=0.2, what=f"job {job_id} to finish")


def _run(system, job_id: str, timeout: float = 60) -> tuple[Job, float]:
    """Dispatch the job and wait until it finishes: (the job, seconds it took)."""
    started = time.monotonic()
    submission.dispatch(job_id, QueueClient(system.celery, system.settings))
    return _finished(job_id, timeout), time.monotonic() - started


@pytest.mark.parametrize("options, words", [
    ({"model": "large-v3"}, ["large-v3", "not available"]),
    ({"model": "/srv/models/missing"}, ["/srv/models/missing", "model.bin"]),
    ({"model": "base", "language": "'; DROP TABLE jobs;--"}, ["'; DROP TABLE jobs;--", "language"]),
    ({"model": "tiny.en", "language": "fr"}, ["English-only"]),
], ids=["large-v3", "missing-dir", "sql-language", "english-model-french"])
def test_job_with_options_the_worker_cannot_honour_fails_at_once_with_the_reason(system, options, words):
    clip = write_wav(system.storage / "news" / f"clip-{new_id()[:8]}.wav", 2.0)
    job, seconds = _run(system, _record(system, clip, **options))
    assert job.status == "failed", (job.status, job.error)
    assert job.error.startswith(str(clip)), job.error
    for word in words:
        assert word in job.error, job.error
    assert "worker lost" not in job.error and job.attempts == 1
    assert seconds < 20, f"took {seconds:.1f} s"


def test_source_replaced_after_queueing_fails_at_once_with_the_reason(system):
    clip = write_wav(system.storage / "news" / "replaced.wav", 2.0)
    job_id = _record(system, clip)
    clip.write_bytes(b"not a media file any more\n")
    job, seconds = _run(system, job_id)
    assert job.status == "failed" and "source changed since it was queued" in job.error, job.error
    assert job.attempts == 1 and seconds < 20


def test_a_valid_job_on_the_same_worker_still_completes(system):
    """The worker that refused the jobs above is alive and runs a good one."""
    clip = write_wav(system.storage / "news" / "good.wav", 2.0)
    job, _ = _run(system, _record(system, clip), timeout=180)
    assert job.status == "completed", job.error


def _huge_source(folder: Path) -> Path:
    """A real 10,000×10,000 source (one black PNG frame, 1 s of silence): 0.3 MB, made in about a second."""
    out = folder / "huge-10000.mkv"
    subprocess.run(["ffmpeg", "-nostdin", "-y", "-v", "error", "-f", "lavfi", "-i",
                    "color=c=black:s=10000x10000:r=1:d=1", "-f", "lavfi", "-i",
                    "anullsrc=channel_layout=mono:sample_rate=16000", "-t", "1", "-map", "0:v", "-map", "1:a",
                    "-c:v", "png", "-c:a", "pcm_s16le", str(out)], check=True)
    return out


def test_source_over_max_render_pixels_is_refused_for_burn_in_and_captioned_without(system):
    client = system.app.test_client()
    huge = _huge_source(system.storage / "news")
    refused = client.post("/api/transcribe/batch", json={"paths": [str(huge)], "options": {"burn_in": True}})
    assert refused.status_code == 400
    reason = refused.get_json()["rejected"][0]["error"]
    assert "is 10000×10000" in reason and "MAX_RENDER_PIXELS" in reason and "burn_in false" in reason, reason
    accepted = client.post("/api/transcribe/batch", json={"paths": [str(huge)], "options": {"burn_in": False}})
    assert accepted.status_code == 202, accepted.get_json()
    job = _finished(accepted.get_json()["queued"][0]["job_id"], 120)
    assert job.status == "completed", job.error
    assert "video" not in job.result["outputs"] and "scc" in job.result["outputs"]
