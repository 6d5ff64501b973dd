"""What an operator does to a job (``core.jobs.actions``): cancel, retry, delete, download, purge, retention.

Fast tier: a temp SQLite store, a FakeQueue, real files in a temp output folder; no Redis, worker or model.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest

from core.db import Job, session_scope, utcnow
from core.jobs import actions, queries, worker
from core.jobs.errors import JobError
from core.jobs.states import CANCELLED, COMPLETED, FAILED, PENDING, PROCESSING
from core.services import artifacts
from tests.fast import add_job, publish_files

SIDECARS = list(artifacts.SIDECAR_KINDS) + ["mov"]      # what the caption stage publishes (MOV when asked)
RESULT = {"text": "good evening", "segments": [], "duration": 30.0, "language": "en", "run": 1,
          "timings": {"transcribing": 1.0}}


def stored(job_id: str) -> Job:
    return queries.get(job_id)


def running_with_captions(settings, name: str = "clip.mp4", **fields) -> tuple[str, list[dict]]:
    """A processing job whose caption files are published and recorded (waiting for its render)."""
    job_id = add_job(settings, name, status=PROCESSING, **fields)
    manifest = publish_files(job_id, SIDECARS)
    assert worker.captions_published(job_id, RESULT, manifest, render_follows=True)
    return job_id, manifest


def completed_with_outputs(settings, name: str = "clip.mp4", **fields) -> tuple[str, list[dict]]:
    job_id, captions = running_with_captions(settings, name, **fields)
    video = publish_files(job_id, ["video"])
    assert worker.video_published(job_id, {"timings": {"rendering": 2.0}}, video)
    return job_id, captions + video


def staging_of(job_id: str) -> Path:
    """An unfinished staging folder of the job (as a running or killed run has it)."""
    job = stored(job_id)
    folder = Path(job.output_dir) / f".{Path(job.source).name}.partial-{job.id}-host-4242-xyz"
    folder.mkdir(parents=True)
    (folder / "out.srt").write_text("half written")
    return folder


def existing(manifest: list[dict]) -> list[str]:
    return [e["path"] for e in manifest if Path(e["path"]).exists()]


def set_created(job_id: str, when) -> None:
    with session_scope() as s:
        s.get(Job, job_id).created_at = when


# --- cancel ---------------------------------------------------------------------------------------------

def test_cancel_pending_revokes_without_terminating(store, settings, queue, published):
    job_id = add_job(settings, task_id="task-7")
    body = actions.cancel(job_id, queue)
    assert queue.revoked == [("task-7", False)]
    assert body["status"] == CANCELLED and body["error"] == "cancelled by operator"
    assert stored(job_id).status == CANCELLED
    assert [d["status"] for _, d in published] == [CANCELLED]


def test_cancel_pending_without_a_task_yet_revokes_nothing(store, settings, queue):
    job_id = add_job(settings)
    actions.cancel(job_id, queue)
    assert queue.revoked == [] and stored(job_id).status == CANCELLED


def test_cancel_processing_terminates_the_running_task(store, settings, queue):
    job_id = add_job(settings, status=PROCESSING, task_id="task-run")
    actions.cancel(job_id, queue)
    assert queue.revoked == [("task-run", True)]
    assert stored(job_id).status == CANCELLED


def test_cancel_removes_only_this_jobs_files_and_staging(store, settings, queue):
    other_id, other_files = completed_with_outputs(settings)          # an earlier job on the same source
    job_id, files = running_with_captions(settings)
    assert Path(files[0]["path"]).name == "clip.mp4.2.scc", "the second run takes the next free names"
    mine, theirs = staging_of(job_id), staging_of(other_id)
    hand_made = Path(files[0]["path"]).parent / "clip.mp4.edl"
    hand_made.write_text("hand made")

    actions.cancel(job_id, queue)

    assert existing(files) == []
    assert not mine.exists()
    assert existing(other_files) == [e["path"] for e in other_files]
    assert theirs.exists() and hand_made.exists()
    assert stored(other_id).status == COMPLETED
    assert stored(job_id).result["outputs"] == {}, "no download is offered for files that are gone"


def test_cancel_keeps_an_output_changed_after_publishing(store, settings, queue):
    job_id, files = running_with_captions(settings)
    edited = Path(next(e["path"] for e in files if e["kind"] == "vtt"))
    edited.write_text("WEBVTT\n\nfixed by hand\n")
    actions.cancel(job_id, queue)
    assert existing(files) == [str(edited)]
    assert edited.read_text() == "WEBVTT\n\nfixed by hand\n"


@pytest.mark.parametrize("status", [COMPLETED, FAILED, CANCELLED])
def test_cancel_of_a_finished_job_is_a_409(store, settings, queue, published, status):
    job_id = add_job(settings, status=status)
    with pytest.raises(JobError) as err:
        actions.cancel(job_id, queue)
    assert err.value.status == 409 and status in str(err.value)
    assert stored(job_id).status == status
    assert queue.revoked == [] and published == []


def test_cancel_of_a_completed_job_keeps_its_outputs(store, settings, queue):
    job_id, files = completed_with_outputs(settings)
    with pytest.raises(JobError):
        actions.cancel(job_id, queue)
    assert existing(files) == [e["path"] for e in files]


def test_cancel_of_an_unknown_job_is_a_404(store, queue):
    with pytest.raises(JobError) as err:
        actions.cancel("f" * 32, queue)
    assert err.value.status == 404


def test_cancel_racing_the_workers_publish_still_removes_what_was_published(store, settings, queue, monkeypatch):
    job_id = add_job(settings, status=PROCESSING)
    manifest = publish_files(job_id, SIDECARS)           # linked into place, about to be recorded
    real_get = queries.get
    raced = []

    def worker_records_its_captions_right_after_the_read(jid):
        job = real_get(jid)
        if not raced:                                     # the operator's read; the worker commits just after
            raced.append(True)
            assert worker.captions_published(jid, RESULT, manifest, render_follows=True)
        return job

    monkeypatch.setattr(queries, "get", worker_records_its_captions_right_after_the_read)
    try:
        actions.cancel(job_id, queue)
    except JobError as err:                               # "changed meanwhile; try again" is a fair answer too
        assert err.status == 409
    monkeypatch.undo()
    recorded = {e["path"] for e in (stored(job_id).result or {}).get("manifest", [])}
    orphans = [path for path in existing(manifest) if path not in recorded]
    assert orphans == [], "files no job owns: the cancel neither removed them nor kept them on the record"


# --- retry ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("status", [FAILED, CANCELLED])
def test_retry_requeues_and_dispatches(store, settings, queue, published, status):
    job_id = add_job(settings, status=status, error="it broke", priority="high",
                     result={"text": "old", "outputs": {}, "manifest": []})
    body = actions.retry(job_id, queue)
    assert queue.sent == [("transcribe", job_id, "high")]
    now = stored(job_id)
    assert (now.status, now.error, now.result, now.task_id) == (PENDING, None, None, "task-1")
    assert now.started_at is None and now.completed_at is None
    assert body["status"] == PENDING and body["task_id"] == "task-1"
    assert [d["status"] for _, d in published] == [PENDING], "one event, with the task id recorded"
    assert published[0][1]["task_id"] == "task-1"


@pytest.mark.parametrize("status", [PENDING, PROCESSING, COMPLETED])
def test_retry_of_a_job_that_is_not_failed_or_cancelled_is_a_409(store, settings, queue, published, status):
    job_id = add_job(settings, status=status)
    before = stored(job_id)
    with pytest.raises(JobError) as err:
        actions.retry(job_id, queue)
    assert err.value.status == 409
    assert stored(job_id).status == status and stored(job_id).task_id == before.task_id
    assert queue.sent == [] and published == []


def test_retried_job_can_be_claimed_again_and_counts_attempts_afresh(store, settings, queue):
    job_id = add_job(settings, status=FAILED, attempts=3)     # e.g. the reaper gave up after 3 lost workers
    actions.retry(job_id, queue)
    assert worker.claim(job_id, "task-1", "w") is not None
    assert stored(job_id).attempts == 1


# --- delete ---------------------------------------------------------------------------------------------

def test_delete_without_outputs_forgets_the_job_and_keeps_its_files(store, settings, queue, published):
    job_id, files = completed_with_outputs(settings)
    published.clear()
    body = actions.delete(job_id, queue)
    assert body == {"job_id": job_id, "deleted": True, "outputs_deleted": [], "outputs_kept": []}
    with pytest.raises(JobError) as err:
        queries.get(job_id)
    assert err.value.status == 404
    assert existing(files) == [e["path"] for e in files]
    assert published == [("job_update", {**published[0][1], "job_id": job_id, "deleted": True})]
    assert queue.revoked == []


def test_delete_with_outputs_removes_unchanged_files_and_reports_changed_ones(store, settings, queue):
    job_id, files = completed_with_outputs(settings)
    edited = Path(next(e["path"] for e in files if e["kind"] == "srt"))
    edited.write_text("1\n00:00:00,000 --> 00:00:01,000\nfixed\n")
    body = actions.delete(job_id, queue, outputs=True)
    assert body["outputs_kept"] == [str(edited)]
    assert sorted(body["outputs_deleted"]) == sorted(e["path"] for e in files if e["path"] != str(edited))
    assert existing(files) == [str(edited)]


def test_delete_with_outputs_never_touches_another_jobs_files_on_the_same_source(store, settings, queue):
    first, first_files = completed_with_outputs(settings)
    second, second_files = completed_with_outputs(settings)
    assert {e["path"] for e in first_files}.isdisjoint(e["path"] for e in second_files)
    other_staging = staging_of(first)
    actions.delete(second, queue, outputs=True)
    assert existing(second_files) == []
    assert existing(first_files) == [e["path"] for e in first_files]
    assert other_staging.exists()
    assert stored(first).status == COMPLETED


def test_delete_of_a_running_job_revokes_it_and_removes_what_it_published(store, settings, queue):
    job_id, files = running_with_captions(settings)
    staging = staging_of(job_id)
    body = actions.delete(job_id, queue)
    assert queue.revoked == [("task-run", True)]
    assert existing(files) == [] and not staging.exists()
    assert sorted(body["outputs_deleted"]) == sorted(e["path"] for e in files)


def test_delete_of_a_pending_job_revokes_its_task(store, settings, queue):
    job_id = add_job(settings, task_id="task-wait")
    actions.delete(job_id, queue)
    assert queue.revoked == [("task-wait", True)]


def test_delete_of_an_unknown_job_is_a_404(store, queue):
    with pytest.raises(JobError) as err:
        actions.delete("0" * 32, queue, outputs=True)
    assert err.value.status == 404


# --- output_file ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", list(artifacts.KINDS))
def test_output_file_serves_the_manifest_path(store, settings, kind):
    job_id, files = completed_with_outputs(settings)
    expected = next(e["path"] for e in files if e["kind"] == kind)
    assert actions.output_file(job_id, kind) == Path(expected)


def test_output_file_serves_this_jobs_file_not_the_first_job_on_the_same_source(store, settings):
    first, _ = completed_with_outputs(settings)
    second, _ = completed_with_outputs(settings)
    path = actions.output_file(second, "scc")
    assert path.name == "clip.mp4.2.scc"
    assert path.read_text() == f"caption scc of {second}\n"
    assert actions.output_file(first, "scc").read_text() == f"caption scc of {first}\n"


@pytest.mark.parametrize("kind", ["exe", "../../etc/passwd", "", "SCC"])
def test_output_file_of_an_unknown_kind_is_a_404(store, settings, kind):
    job_id, _ = completed_with_outputs(settings)
    with pytest.raises(JobError) as err:
        actions.output_file(job_id, kind)
    assert err.value.status == 404


def test_output_file_missing_kind_is_a_404(store, settings):
    job_id, _ = running_with_captions(settings)        # no video yet
    with pytest.raises(JobError) as err:
        actions.output_file(job_id, "video")
    assert err.value.status == 404 and "no video output" in str(err.value)


def test_output_file_of_a_job_without_result_is_a_404(store, settings):
    job_id = add_job(settings)
    with pytest.raises(JobError) as err:
        actions.output_file(job_id, "srt")
    assert err.value.status == 404


def test_output_file_removed_from_disk_is_a_404(store, settings):
    job_id, files = completed_with_outputs(settings)
    Path(next(e["path"] for e in files if e["kind"] == "json")).unlink()
    with pytest.raises(JobError) as err:
        actions.output_file(job_id, "json")
    assert err.value.status == 404 and "gone" in str(err.value)


def test_output_file_changed_after_publishing_is_a_409(store, settings):
    job_id, files = completed_with_outputs(settings)
    path = Path(next(e["path"] for e in files if e["kind"] == "scc"))
    path.write_text("Scenarist_SCC V1.0\n\nsomeone else's captions\n")
    with pytest.raises(JobError) as err:
        actions.output_file(job_id, "scc")
    assert err.value.status == 409 and path.name in str(err.value)


def test_output_file_replaced_by_another_files_content_is_a_409(store, settings):
    """A file of the same name written by another tool (same size, newer time) is not the job's."""
    job_id, files = completed_with_outputs(settings)
    path = Path(next(e["path"] for e in files if e["kind"] == "dfxp"))
    size = path.stat().st_size
    path.unlink()
    path.write_text("x" * size)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 5_000_000_000))
    with pytest.raises(JobError) as err:
        actions.output_file(job_id, "dfxp")
    assert err.value.status == 409


def test_output_file_of_a_job_from_before_manifests_serves_its_outputs_map(store, settings, tmp_path):
    legacy = tmp_path / "legacy.srt"
    legacy.write_text("old")
    job_id = add_job(settings, status=COMPLETED, result={"outputs": {"srt": str(legacy)}})
    assert actions.output_file(job_id, "srt") == legacy
    with pytest.raises(JobError) as err:
        actions.output_file(job_id, "scc")
    assert err.value.status == 404


def test_output_file_of_a_failed_job_offers_nothing(store, settings):
    job_id, _ = running_with_captions(settings)
    worker.fail(job_id, "render crashed")
    with pytest.raises(JobError) as err:
        actions.output_file(job_id, "srt")
    assert err.value.status == 404


# --- purge_waiting --------------------------------------------------------------------------------------

def test_purge_cancels_only_pending_jobs_and_purges_their_tasks(store, settings, queue, published):
    waiting_with_task = add_job(settings, "a.mp4", task_id="task-a")
    waiting_without = add_job(settings, "b.mp4")
    running = add_job(settings, "c.mp4", status=PROCESSING, task_id="task-c")
    done = add_job(settings, "d.mp4", status=COMPLETED)
    body = actions.purge_waiting(queue)
    assert body["cancelled_jobs"] == 2
    assert sorted(body["job_ids"]) == sorted([waiting_with_task, waiting_without])
    assert body["purged_messages"] == 1
    assert queue.purged == [["task-a"]]
    assert stored(waiting_with_task).status == CANCELLED and stored(waiting_without).status == CANCELLED
    assert stored(waiting_with_task).error == "purged from the queue by operator"
    assert stored(running).status == PROCESSING and stored(done).status == COMPLETED
    assert sorted(d["job_id"] for _, d in published) == sorted([waiting_with_task, waiting_without])
    assert {d["status"] for _, d in published} == {CANCELLED}
    assert queue.revoked == []


def test_purge_with_nothing_waiting_still_empties_the_queue(store, settings, queue):
    running = add_job(settings, status=PROCESSING)
    body = actions.purge_waiting(queue)
    assert body == {"purged_messages": 0, "cancelled_jobs": 0, "job_ids": []}
    assert queue.purged == [[]]
    assert stored(running).status == PROCESSING


# --- apply_retention ------------------------------------------------------------------------------------

def test_retention_off_keeps_everything(store, settings, queue):
    job_id = add_job(settings, status=COMPLETED)
    set_created(job_id, utcnow() - timedelta(days=400))
    assert actions.apply_retention(queue, 0, delete_outputs=True) == {"deleted": 0, "policy": "off"}
    assert stored(job_id).status == COMPLETED


def test_retention_deletes_old_finished_jobs_only(store, settings, queue):
    old = {status: add_job(settings, f"old-{status}.mp4", status=status)
           for status in (COMPLETED, FAILED, CANCELLED, PENDING, PROCESSING)}
    for job_id in old.values():
        set_created(job_id, utcnow() - timedelta(days=10))
    recent = add_job(settings, "recent.mp4", status=COMPLETED)
    set_created(recent, utcnow() - timedelta(days=2))
    body = actions.apply_retention(queue, 7, delete_outputs=False)
    assert body == {"deleted": 3, "policy": "7 days"}
    for status in (COMPLETED, FAILED, CANCELLED):
        with pytest.raises(JobError):
            queries.get(old[status])
    assert stored(old[PENDING]).status == PENDING and stored(old[PROCESSING]).status == PROCESSING
    assert stored(recent).status == COMPLETED
    assert queue.revoked == []


@pytest.mark.parametrize("delete_outputs", [True, False])
def test_retention_removes_files_only_when_asked(store, settings, queue, delete_outputs):
    job_id, files = completed_with_outputs(settings)
    set_created(job_id, utcnow() - timedelta(days=30))
    actions.apply_retention(queue, 7, delete_outputs=delete_outputs)
    assert existing(files) == ([] if delete_outputs else [e["path"] for e in files])
