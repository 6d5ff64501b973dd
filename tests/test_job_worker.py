"""What a running task reports (``core.jobs.worker``) and lost-job recovery (``core.jobs.reaper``).

Fast tier: a temp SQLite store, a FakeQueue, real files in a temp output folder; no Redis, worker or model.
"""

from __future__ import annotations

import itertools
from datetime import timedelta
from pathlib import Path

import pytest

from core.db import Job, new_id, session_scope, utcnow
from core.jobs import queries, reaper, record, worker
from core.jobs.states import CANCELLED, COMPLETED, FAILED, PENDING, PROCESSING, STAGES, overall_progress, stage_span
from core.services import artifacts
from tests.fast import add_job, publish_files

SIDECARS = list(artifacts.SIDECAR_KINDS)


def stored(job_id: str) -> Job:
    return queries.get(job_id)


def leave_staging(job_id: str) -> Path:
    """An unfinished staging folder of the job (as a killed or cancelled run leaves it)."""
    job = stored(job_id)
    folder = Path(job.output_dir) / f".{Path(job.source).name}.partial-{job.id}-somehost-1-abc"
    folder.mkdir(parents=True)
    (folder / "out.scc").write_text("half")
    return folder


def set_heartbeat(job_id: str, when) -> None:
    with session_scope() as s:
        s.get(Job, job_id).heartbeat_at = when


# --- claim ----------------------------------------------------------------------------------------------

def test_claim_starts_a_pending_job(store, settings, published):
    job_id = add_job(settings)
    job = worker.claim(job_id, "task-1", "worker@a")
    assert job is not None
    now = stored(job_id)
    assert (now.status, now.stage, now.progress) == (PROCESSING, "probing", 0.0)
    assert (now.task_id, now.worker, now.attempts) == ("task-1", "worker@a", 1)
    assert now.started_at is not None and now.heartbeat_at is not None
    assert [d["status"] for _, d in published] == [PROCESSING]


def test_a_second_task_for_the_same_job_is_skipped(store, settings, published):
    job_id = add_job(settings)
    assert worker.claim(job_id, "task-1", "worker@a") is not None
    published.clear()
    assert worker.claim(job_id, "task-2", "worker@b") is None
    now = stored(job_id)
    assert (now.task_id, now.worker, now.attempts) == ("task-1", "worker@a", 1)
    assert published == []


def test_the_same_task_redelivered_resumes_and_counts_an_attempt(store, settings):
    job_id = add_job(settings)
    worker.claim(job_id, "task-1", "worker@a")
    worker.report_progress(job_id, "transcribing", 0.5)
    again = worker.claim(job_id, "task-1", "worker@b")
    assert again is not None
    now = stored(job_id)
    assert (now.status, now.stage, now.worker, now.attempts) == (PROCESSING, "probing", "worker@b", 2)


@pytest.mark.parametrize("status", [COMPLETED, FAILED, CANCELLED])
def test_a_finished_job_never_runs_again(store, settings, published, status):
    job_id = add_job(settings, status=status, task_id="task-1", attempts=1, completed_at=utcnow())
    assert worker.claim(job_id, "task-1", "worker@a") is None
    assert worker.claim(job_id, "task-2", "worker@a") is None
    now = stored(job_id)
    assert (now.status, now.attempts) == (status, 1)
    assert published == []


def test_attempts_count_every_claim_across_requeues(store, settings):
    job_id = add_job(settings)
    for n in (1, 2, 3):
        assert worker.claim(job_id, f"task-{n}", "worker@a") is not None
        assert stored(job_id).attempts == n
        record.transition(job_id, PENDING, only_from={PROCESSING})   # lost, requeued


def test_claim_render_takes_only_a_job_waiting_for_its_render(store, settings):
    job_id = add_job(settings, status=PROCESSING)                      # still transcribing
    assert worker.claim_render(job_id, "render-1", "renderer") is None
    record.transition(job_id, PROCESSING, stage="rendering", progress=0.6)
    job = worker.claim_render(job_id, "render-1", "renderer")
    assert job is not None and (job.task_id, job.worker) == ("render-1", "renderer")
    record.transition(job_id, CANCELLED)
    assert worker.claim_render(job_id, "render-2", "renderer") is None


# --- report_progress ------------------------------------------------------------------------------------

@pytest.mark.parametrize("burn_in", [True, False], ids=["burn-in", "sidecars-only"])
@pytest.mark.parametrize("stage", ["probing", "transcribing", "captioning"])
def test_progress_maps_each_stage_into_its_span(store, settings, burn_in, stage):
    job_id = add_job(settings, burn_in=burn_in)
    worker.claim(job_id, "task-1", "w")
    lo, hi = stage_span(stage, burn_in)
    worker.report_progress(job_id, stage, 0.0)
    assert stored(job_id).progress == pytest.approx(lo)
    worker.report_progress(job_id, stage, 0.5)
    assert stored(job_id).progress == pytest.approx(lo + (hi - lo) / 2, abs=1e-4)
    worker.report_progress(job_id, stage, 1.0)
    assert stored(job_id).progress == pytest.approx(hi)
    assert stored(job_id).stage == stage


def test_sidecars_only_jobs_reach_100_percent_at_the_end_of_captioning(store, settings):
    with_render, without = add_job(settings, burn_in=True), add_job(settings, "other.mp4", burn_in=False)
    for job_id in (with_render, without):
        worker.claim(job_id, "t-" + job_id, "w")
        worker.report_progress(job_id, "captioning", 1.0)
    assert stored(with_render).progress == pytest.approx(0.6)   # the render is still to come
    assert stored(without).progress == pytest.approx(1.0)


def test_progress_spans_cover_zero_to_one_without_gaps():
    for burn_in in (True, False):
        spans = [stage_span(stage, burn_in) for stage in STAGES]
        assert spans[0][0] == 0.0 and spans[-1][1] == 1.0
        for (_, hi), (lo, _) in itertools.pairwise(spans):
            assert hi == lo


def test_progress_reported_out_of_order_does_not_go_backwards(store, settings):
    job_id = add_job(settings)
    worker.claim(job_id, "task-1", "w")
    worker.report_progress(job_id, "transcribing", 0.8)
    worker.report_progress(job_id, "transcribing", 0.2)
    assert stored(job_id).progress == pytest.approx(overall_progress("transcribing", 0.8, True))


def test_progress_after_a_cancel_does_not_bring_the_job_back(store, settings, published):
    job_id = add_job(settings, status=PROCESSING)
    record.transition(job_id, CANCELLED)
    published.clear()
    worker.report_progress(job_id, "transcribing", 0.9)
    assert stored(job_id).status == CANCELLED
    assert published == []


def test_each_progress_report_is_published(store, settings, published):
    job_id = add_job(settings)
    worker.claim(job_id, "task-1", "w")
    worker.report_progress(job_id, "transcribing", 0.5)
    _, data = published[-1]
    assert data["stage"] == "transcribing" and data["progress"] == pytest.approx(28.5)


# --- captions_published / video_published --------------------------------------------------------------

CAPTION_RESULT = {"text": "good evening", "segments": [{"start": 0, "end": 1, "text": "good evening"}],
                  "duration": 30.0, "language": "en", "run": 1,
                  "timings": {"probing": 0.1, "transcribing": 3.0, "captioning": 0.2}}


def test_captions_published_hands_a_burn_in_job_to_the_render(store, settings, published):
    job_id = add_job(settings, status=PROCESSING)
    manifest = publish_files(job_id, SIDECARS)
    assert worker.captions_published(job_id, CAPTION_RESULT, manifest, render_follows=True) is True
    now = stored(job_id)
    assert (now.status, now.stage) == (PROCESSING, "rendering")
    assert now.progress == pytest.approx(overall_progress("rendering", 0.0, True))
    assert now.completed_at is None
    assert now.result["outputs"] == {e["kind"]: e["path"] for e in manifest}
    assert now.result["manifest"] == manifest
    assert published[-1][1]["stage"] == "rendering"


def test_captions_published_completes_a_sidecars_only_job(store, settings, published):
    job_id = add_job(settings, status=PROCESSING, burn_in=False)
    manifest = publish_files(job_id, SIDECARS)
    assert worker.captions_published(job_id, CAPTION_RESULT, manifest, render_follows=False) is True
    now = stored(job_id)
    assert (now.status, now.stage, now.progress) == (COMPLETED, None, 1.0)
    assert now.completed_at is not None
    assert set(now.result["outputs"]) == set(SIDECARS)
    assert now.result["text"] == "good evening"
    assert now.result["timings"]["total"] == pytest.approx(3.3)
    assert published[-1][1]["status"] == COMPLETED and published[-1][1]["progress"] == 100.0


@pytest.mark.parametrize("render_follows", [True, False])
def test_captions_published_after_a_cancel_is_refused(store, settings, published, render_follows):
    job_id = add_job(settings, status=PROCESSING)
    manifest = publish_files(job_id, SIDECARS)
    record.transition(job_id, CANCELLED)
    published.clear()
    assert worker.captions_published(job_id, CAPTION_RESULT, manifest, render_follows) is False
    now = stored(job_id)
    assert now.status == CANCELLED and now.result is None
    assert published == []


def test_video_published_completes_the_job_with_every_output(store, settings):
    job_id = add_job(settings, status=PROCESSING)
    captions = publish_files(job_id, SIDECARS)
    worker.captions_published(job_id, CAPTION_RESULT, captions, render_follows=True)
    video = publish_files(job_id, ["video"])
    assert video[0]["path"].endswith("clip.mp4.captioned.mp4")
    assert worker.video_published(job_id, {"render": {"crf": 20}, "timings": {"rendering": 5.0}}, video) is True
    now = stored(job_id)
    assert (now.status, now.progress, now.stage) == (COMPLETED, 1.0, None)
    assert set(now.result["outputs"]) == set(SIDECARS) | {"video"}
    assert [e["kind"] for e in now.result["manifest"]] == SIDECARS + ["video"]
    assert now.result["text"] == "good evening", "the render keeps the transcript"
    assert now.result["timings"]["total"] == pytest.approx(8.3)


def test_video_published_after_a_cancel_is_refused(store, settings):
    job_id = add_job(settings, status=PROCESSING, stage="rendering", progress=0.7)
    video = publish_files(job_id, ["video"])
    record.transition(job_id, CANCELLED)
    assert worker.video_published(job_id, {"timings": {}}, video) is False
    assert stored(job_id).status == CANCELLED


@pytest.mark.parametrize("step", ["captions", "video"])
def test_publishing_for_a_job_deleted_meanwhile_reports_false_so_the_caller_cleans_up(store, settings, step):
    job_id = add_job(settings, status=PROCESSING, stage="rendering" if step == "video" else "captioning")
    manifest = publish_files(job_id, SIDECARS if step == "captions" else ["video"])
    record.delete(job_id)                                   # the operator deleted the running job
    if step == "captions":
        assert worker.captions_published(job_id, CAPTION_RESULT, manifest, render_follows=True) is False
    else:
        assert worker.video_published(job_id, {"timings": {}}, manifest) is False


def test_hand_to_render_records_the_render_task_silently(store, settings, published):
    job_id = add_job(settings, status=PROCESSING, stage="rendering")
    worker.hand_to_render(job_id, "render-7")
    assert stored(job_id).task_id == "render-7"
    assert published == []


# --- fail ----------------------------------------------------------------------------------------------

def test_fail_records_the_reason(store, settings, published):
    job_id = add_job(settings, status=PROCESSING)
    worker.fail(job_id, "clip.mp4: has no audio stream")
    now = stored(job_id)
    assert (now.status, now.error) == (FAILED, "clip.mp4: has no audio stream")
    assert now.completed_at is not None
    assert published[-1][1]["status"] == FAILED and published[-1][1]["error"] == "clip.mp4: has no audio stream"


def test_fail_of_a_pending_job_refused_before_it_ran(store, settings):
    job_id = add_job(settings)
    worker.fail(job_id, "source changed since it was queued")
    assert stored(job_id).status == FAILED


def test_fail_removes_exactly_the_jobs_own_unchanged_files(store, settings):
    job_id = add_job(settings, status=PROCESSING)
    manifest = publish_files(job_id, SIDECARS)
    worker.captions_published(job_id, CAPTION_RESULT, manifest, render_follows=True)
    paths = {e["kind"]: Path(e["path"]) for e in manifest}
    edited = paths["srt"]
    edited.write_text("an editor fixed a typo\n")                 # changed after publishing
    out_dir = edited.parent
    beside = out_dir / "clip.mp4.notes.txt"                       # made by hand next to the outputs
    beside.write_text("notes")
    hand_scc = out_dir / "clip.mp4.2.scc"
    hand_scc.write_text("hand made")
    staging = leave_staging(job_id)

    worker.fail(job_id, "render crashed")

    assert stored(job_id).status == FAILED
    for kind, path in paths.items():
        if kind == "srt":
            assert path.read_text() == "an editor fixed a typo\n", "an edited output must be kept"
        else:
            assert not path.exists(), f"{kind} output should be removed"
    assert beside.read_text() == "notes" and hand_scc.read_text() == "hand made"
    assert not staging.exists(), "the job's unfinished staging goes too"


def test_fail_never_touches_another_jobs_files_on_the_same_source(store, settings):
    first = add_job(settings, status=PROCESSING)
    second = add_job(settings, status=PROCESSING, task_id="task-other")
    mine = publish_files(first, SIDECARS)
    theirs = publish_files(second, SIDECARS)
    assert {e["path"] for e in mine}.isdisjoint(e["path"] for e in theirs)
    worker.captions_published(first, CAPTION_RESULT, mine, render_follows=True)
    worker.captions_published(second, CAPTION_RESULT, theirs, render_follows=True)
    other_staging = leave_staging(second)

    worker.fail(first, "boom")

    assert all(not Path(e["path"]).exists() for e in mine)
    assert all(Path(e["path"]).exists() for e in theirs)
    assert other_staging.exists()
    assert stored(second).status == PROCESSING


def test_a_late_failure_of_a_completed_job_keeps_its_outputs(store, settings, published):
    job_id = add_job(settings, status=PROCESSING, burn_in=False)
    manifest = publish_files(job_id, SIDECARS)
    worker.captions_published(job_id, CAPTION_RESULT, manifest, render_follows=False)
    published.clear()
    worker.fail(job_id, "late error")
    assert stored(job_id).status == COMPLETED and stored(job_id).error is None
    assert all(Path(e["path"]).exists() for e in manifest)
    assert published == []


# --- reaper.decide (pure) -------------------------------------------------------------------------------

def lost(task_id: str, attempts: int) -> Job:
    return Job(id=new_id(), source=f"/mnt/news/{task_id}.mp4", task_id=task_id, attempts=attempts,
               status=PROCESSING)


@pytest.mark.parametrize("running", [None, set()], ids=["no-worker-answered", "nothing-running"])
def test_decide_requeues_lost_jobs_and_fails_those_lost_too_often(running):
    jobs = [lost("a", 1), lost("b", reaper.MAX_ATTEMPTS - 1), lost("c", reaper.MAX_ATTEMPTS),
            lost("d", reaper.MAX_ATTEMPTS + 2)]
    decision = reaper.decide(jobs, running)
    assert [j.task_id for j in decision.requeue] == ["a", "b"]
    assert [j.task_id for j in decision.fail] == ["c", "d"]


def test_decide_leaves_a_job_whose_task_a_worker_still_runs():
    jobs = [lost("a", 1), lost("b", 1), lost("c", reaper.MAX_ATTEMPTS)]
    decision = reaper.decide(jobs, {"a", "c", "unrelated"})
    assert [j.task_id for j in decision.requeue] == ["b"]
    assert decision.fail == []


def test_decide_changes_nothing_it_is_given():
    jobs = [lost("a", 1), lost("b", 5)]
    reaper.decide(jobs, None)
    assert [(j.status, j.attempts, j.task_id) for j in jobs] == [(PROCESSING, 1, "a"), (PROCESSING, 5, "b")]


# --- reaper.reap ----------------------------------------------------------------------------------------

STALE = 120.0


def test_reap_requeues_a_job_whose_heartbeat_stopped_and_dispatches_it(store, settings, queue, published):
    job_id = add_job(settings, status=PROCESSING, priority="high")
    set_heartbeat(job_id, utcnow() - timedelta(seconds=STALE * 2))
    queue.replies["active"] = {"worker@a": []}
    summary = reaper.reap(queue, STALE)
    assert summary == {"requeued": [job_id], "failed": []}
    now = stored(job_id)
    assert now.status == PENDING and now.worker is None
    assert queue.sent == [("transcribe", job_id, "high")]
    assert now.task_id == "task-1", "the new task id is recorded, so a cancel can revoke it"
    assert PENDING in [d["status"] for _, d in published]


def test_reap_leaves_a_job_with_a_fresh_heartbeat(store, settings, queue):
    job_id = add_job(settings, status=PROCESSING)
    set_heartbeat(job_id, utcnow() - timedelta(seconds=STALE / 4))
    assert reaper.reap(queue, STALE) == {"requeued": [], "failed": []}
    assert stored(job_id).status == PROCESSING and queue.sent == []


def test_reap_leaves_a_job_whose_task_is_still_active(store, settings, queue):
    busy = add_job(settings, status=PROCESSING, task_id="task-busy")
    dead = add_job(settings, "other.mp4", status=PROCESSING, task_id="task-dead")
    for job_id in (busy, dead):
        set_heartbeat(job_id, utcnow() - timedelta(hours=1))
    queue.replies["active"] = {"worker@a": [{"id": "task-busy", "name": "transcribe_video"}]}
    summary = reaper.reap(queue, STALE)
    assert summary == {"requeued": [dead], "failed": []}
    assert (stored(busy).status, stored(busy).task_id) == (PROCESSING, "task-busy")
    assert [sent[1] for sent in queue.sent] == [dead]


def test_reap_fails_a_job_lost_too_often_with_the_reason(store, settings, queue):
    job_id = add_job(settings, status=PROCESSING, attempts=reaper.MAX_ATTEMPTS)
    set_heartbeat(job_id, utcnow() - timedelta(hours=1))
    summary = reaper.reap(queue, STALE)
    assert summary == {"requeued": [], "failed": [job_id]}
    now = stored(job_id)
    assert now.status == FAILED
    assert now.error == f"{now.source}: worker lost {reaper.MAX_ATTEMPTS} times; giving up"
    assert queue.sent == []


def test_reap_giving_up_removes_what_the_job_published(store, settings, queue):
    job_id = add_job(settings, status=PROCESSING, attempts=reaper.MAX_ATTEMPTS)
    manifest = publish_files(job_id, SIDECARS)
    worker.captions_published(job_id, CAPTION_RESULT, manifest, render_follows=True)   # lost while rendering
    set_heartbeat(job_id, utcnow() - timedelta(hours=1))
    assert reaper.reap(queue, STALE)["failed"] == [job_id]
    assert stored(job_id).status == FAILED
    left = [e["path"] for e in manifest if Path(e["path"]).exists()]
    assert left == [], "a failed job must not leave an incomplete set of outputs"
    assert stored(job_id).result["outputs"] == {}, "no download is offered for files that are gone"


def test_reap_requeue_removes_the_lost_runs_files_so_the_next_run_writes_a_whole_set(store, settings, queue):
    job_id = add_job(settings, status=PROCESSING)
    manifest = publish_files(job_id, SIDECARS)
    worker.captions_published(job_id, CAPTION_RESULT, manifest, render_follows=True)   # lost while rendering
    staging = leave_staging(job_id)
    set_heartbeat(job_id, utcnow() - timedelta(hours=1))
    assert reaper.reap(queue, STALE)["requeued"] == [job_id]
    now = stored(job_id)
    assert now.status == PENDING and now.result is None
    assert [e["path"] for e in manifest if Path(e["path"]).exists()] == []
    assert not staging.exists()
    # the next run takes the first names again, not clip.mp4.2.*
    worker.claim(job_id, "task-again", "w2")
    again = publish_files(job_id, SIDECARS)
    assert [e["path"] for e in again] == [e["path"] for e in manifest]


def test_reap_does_not_requeue_a_job_whose_heartbeat_moved_meanwhile(store, settings, queue, monkeypatch):
    job_id = add_job(settings, status=PROCESSING)
    set_heartbeat(job_id, utcnow() - timedelta(hours=1))

    def active_while_the_worker_beats(timeout=2.0):
        record.heartbeat(job_id)            # the worker was only slow: its beat lands while the reaper asks
        return set()

    monkeypatch.setattr(queue, "active_task_ids", active_while_the_worker_beats)
    assert reaper.reap(queue, STALE) == {"requeued": [], "failed": []}
    assert stored(job_id).status == PROCESSING and queue.sent == []


def test_reap_does_not_fail_a_job_whose_heartbeat_moved_meanwhile(store, settings, queue, monkeypatch):
    job_id = add_job(settings, status=PROCESSING, attempts=reaper.MAX_ATTEMPTS)
    set_heartbeat(job_id, utcnow() - timedelta(hours=1))

    def active_while_the_worker_beats(timeout=2.0):
        record.heartbeat(job_id)
        return set()

    monkeypatch.setattr(queue, "active_task_ids", active_while_the_worker_beats)
    assert reaper.reap(queue, STALE)["failed"] == []
    assert stored(job_id).status == PROCESSING


def test_reap_ignores_jobs_that_are_not_processing(store, settings, queue):
    old = utcnow() - timedelta(hours=1)
    ids = [add_job(settings, f"{status}.mp4", status=status, heartbeat_at=old)
           for status in (PENDING, COMPLETED, FAILED, CANCELLED)]
    assert reaper.reap(queue, STALE) == {"requeued": [], "failed": []}
    assert [stored(i).status for i in ids] == [PENDING, COMPLETED, FAILED, CANCELLED]


# --- reaper.reclaim -------------------------------------------------------------------------------------

def test_reclaim_requeues_the_starting_workers_own_jobs_even_with_a_fresh_heartbeat(store, settings, queue):
    mine = add_job(settings, status=PROCESSING, worker="worker@a")
    theirs = add_job(settings, "other.mp4", status=PROCESSING, worker="worker@b")
    waiting = add_job(settings, "waiting.mp4", worker="worker@a")
    summary = reaper.reclaim("worker@a", queue)
    assert summary == {"requeued": [mine], "failed": []}
    assert stored(mine).status == PENDING
    assert stored(theirs).status == PROCESSING and stored(theirs).worker == "worker@b"
    assert stored(waiting).status == PENDING and stored(waiting).task_id is None
    assert [sent[1] for sent in queue.sent] == [mine]


def test_reclaim_fails_its_own_job_lost_too_often(store, settings, queue):
    job_id = add_job(settings, status=PROCESSING, worker="worker@a", attempts=reaper.MAX_ATTEMPTS)
    assert reaper.reclaim("worker@a", queue) == {"requeued": [], "failed": [job_id]}
    assert "giving up" in stored(job_id).error


def test_reclaim_with_nothing_of_its_own_does_nothing(store, settings, queue):
    other = add_job(settings, status=PROCESSING, worker="worker@b")
    assert reaper.reclaim("worker@a", queue) == {"requeued": [], "failed": []}
    assert stored(other).status == PROCESSING and queue.sent == []
