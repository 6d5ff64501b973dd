"""Watch folders, fast tier: configuration, what is ignored, the content fingerprint, and the scanner's
decisions (settle, exactly once across rescans, restarts, renames and copies; rejections remembered;
removed files forgotten; one file's error never stops the others) driven with a fake clock and a fake
submit; the watcher loop with real inotify events and with rescans only; the dashboard's route."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from core.jobs.errors import JobError, RejectedBatch
from core.watch import files, folders, memory
from core.watch.runner import Watcher
from core.watch.scanner import Scanner
from tests.fast import write_wav


class Clock:
    def __init__(self, now: float | None = None):
        self.now = now if now is not None else time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Submit:
    """Stands in for submit_batch: records (path, folder options) and answers like it."""

    def __init__(self):
        self.calls: list[tuple[str, dict, str]] = []
        self.fail: dict[str, Exception] = {}
        self.lock = threading.Lock()

    def __call__(self, path: str, folder) -> dict:
        from core.db import Job, session_scope, utcnow

        with self.lock:
            if path in self.fail:
                raise self.fail[path]
            self.calls.append((path, folder.options, folder.priority))
            job_id = f"job{len(self.calls)}"
            with session_scope() as s:      # a pending job row, as submit_batch leaves
                s.add(Job(id=job_id, source=path, output_dir="/tmp", options=folder.options, status="pending",
                          created_at=utcnow()))
            return {"queued": [{"path": path, "job_id": job_id}]}

    @property
    def paths(self) -> list[str]:
        return [c[0] for c in self.calls]


@pytest.fixture
def drop(news) -> Path:
    folder = news / "drop"
    folder.mkdir()
    return folder


@pytest.fixture
def watch_settings(settings, drop, store) -> dict:
    return {**settings, "WATCH_FOLDERS": [{"path": str(drop), "rows": 3, "burn_in": False, "priority": "high"}],
            "SETTLE_SECONDS": 10, "WATCH_SCAN_SECONDS": 10, "WATCH_EVENTS": True}


def scanner_for(watch_settings, submit, clock) -> Scanner:
    return Scanner(watch_settings, folders.load(watch_settings), submit, clock=clock)


def set_mtime(path: Path, epoch: float) -> None:
    os.utime(path, (epoch, epoch))


def dropped(folder: Path, name: str, clock: Clock, content: bytes = b"media " * 1000) -> Path:
    path = folder / name
    path.write_bytes(content)
    set_mtime(path, clock.now)
    return path


# --- configuration -------------------------------------------------------------------------------------

def test_each_folder_gets_its_own_checked_options(watch_settings, drop):
    (only,) = folders.load(watch_settings)
    assert only.path == drop.resolve()
    assert (only.options["rows"], only.options["burn_in"], only.priority) == (3, False, "high")
    assert only.options["model"] == watch_settings["WHISPER_MODEL"]        # the rest from the settings


def test_the_environment_gives_colon_separated_folders_with_default_options(settings, news, store):
    from core.config import load_settings

    (news / "a").mkdir()
    (news / "b").mkdir()
    env = {k: str(v) if not isinstance(v, list) else ":".join(v) for k, v in settings.items()
           if k in ("STORAGE_ROOTS", "DATABASE_URL", "OUTPUT_DIR", "UPLOAD_DIR", "CAPTION_CONFIG")}
    loaded = load_settings({**env, "WATCH_FOLDERS": f"{news / 'a'}:{news / 'b'}"})
    found = folders.load(loaded)
    assert [f.path.name for f in found] == ["a", "b"]
    assert all(f.options["rows"] == loaded["CAPTION_ROWS"] and f.priority == "normal" for f in found)


def test_bad_entries_are_named_with_their_reason(settings, tmp_path, news, store):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    bad = {**settings, "WATCH_FOLDERS": [str(outside), {"path": str(news), "rows": 9},
                                         {"path": str(news), "colour": "red"}, "relative/folder",
                                         settings["OUTPUT_DIR"]]}
    Path(settings["OUTPUT_DIR"]).mkdir(parents=True, exist_ok=True)
    found, problems = folders.parse(bad)
    assert found == []
    assert "outside the storage roots" in problems[0] and str(outside) in problems[0]
    assert "rows must be an integer" in problems[1]
    assert "unknown option(s) colour" in problems[2]
    assert "must be absolute" in problems[3]
    assert "outside the storage roots" in problems[4] or "OUTPUT_DIR" in problems[4]
    with pytest.raises(folders.WatchConfigError, match="outside the storage roots"):
        folders.load(bad)


def test_start_dashboard_refuses_a_folder_outside_the_roots(settings, tmp_path):
    import subprocess
    import sys

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {**os.environ, "STORAGE_ROOTS": settings["STORAGE_ROOTS"][0], "WATCH_FOLDERS": str(outside),
           "DATABASE_URL": settings["DATABASE_URL"], "REDIS_URL": "redis://127.0.0.1:1/0",
           "CAPTION_CONFIG": str(tmp_path / "none.py"), "SOCKETIO_ASYNC_MODE": "threading"}
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run([sys.executable, "start_dashboard.py", "--no-redis", "--no-worker"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "WATCH_FOLDERS" in proc.stderr and str(outside) in proc.stderr and "outside the storage roots" in proc.stderr


# --- what is a source ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", [".hidden.mp4", "clip.mp4.scc", "clip.mp4.2.srt", "clip.mp4.vtt", "clip.mp4.dfxp",
                                  "clip.mp4.json", "clip.mp4.captioned.mp4", "clip.mp4.r2.captioned.mp4",
                                  "clip.mp4.608.mov", "clip.mxf.part", "clip.mp4.tmp", "~$clip.mp4"])
def test_our_outputs_hidden_and_partial_files_are_not_sources(name):
    assert files.ignored(name)


@pytest.mark.parametrize("name", ["clip.mp4", "news at 6.mxf", "promo.mov", "notes.txt"])
def test_other_files_are_looked_at(name):
    assert not files.ignored(name)


def test_listing_skips_hidden_folders_symlinks_and_skipped_trees(drop, tmp_path):
    (drop / "sub").mkdir()
    (drop / ".clip.mp4.partial-x").mkdir()
    (drop / ".clip.mp4.partial-x" / "clip.mp4.scc").write_text("x")
    (drop / "skip").mkdir()
    (drop / "skip" / "b.mp4").write_text("x")
    (drop / "sub" / "a.mp4").write_text("x")
    (drop / "link.mp4").symlink_to(drop / "sub" / "a.mp4")
    found = files.list_files(drop, frozenset({drop / "skip"}))
    assert sorted(found) == [str(drop / "sub" / "a.mp4")]


def test_fingerprint_follows_content_not_name(tmp_path, monkeypatch):
    a = tmp_path / "a.bin"
    a.write_bytes(os.urandom(300_000))
    b = tmp_path / "b.bin"
    shutil.copyfile(a, b)
    assert files.fingerprint(a) == files.fingerprint(b)
    assert files.fingerprint(a).startswith("full:")
    monkeypatch.setattr(files, "FULL_HASH_LIMIT", 100_000)      # large files: size and spread samples
    monkeypatch.setattr(files, "SAMPLE_BYTES", 4096)
    sampled = files.fingerprint(a)
    assert sampled.startswith("sampled:") and sampled == files.fingerprint(b)
    with open(b, "r+b") as fh:                                  # one changed byte in the middle, in a sample
        fh.seek(2 * ((300_000 - 4096) // 7) + 10)
        fh.write(b"\xff" if fh.read(1) != b"\xff" else b"\x00")
    assert files.fingerprint(b) != sampled


# --- the scanner -----------------------------------------------------------------------------------------

def test_a_file_is_queued_once_after_it_settles_with_the_folders_options(watch_settings, drop):
    clock, submit = Clock(), Submit()
    scanner = scanner_for(watch_settings, submit, clock)
    clip = dropped(drop, "clip.mp4", clock)
    report = scanner.scan_all()[str(drop)]
    assert submit.calls == [] and report.due == pytest.approx(clock.now + 10)
    clock.advance(9.5)
    scanner.scan_all()
    assert submit.calls == []
    clock.advance(0.6)
    scanner.scan_all()
    assert submit.calls == [(str(clip), folders.load(watch_settings)[0].options, "high")]
    for _ in range(3):
        clock.advance(30)
        scanner.scan_all()
    assert len(submit.calls) == 1


def test_a_growing_file_waits_until_it_stops_changing(watch_settings, drop):
    clock, submit = Clock(), Submit()
    scanner = scanner_for(watch_settings, submit, clock)
    clip = dropped(drop, "growing.mxf", clock, b"x" * 100)
    for step in range(5):
        clock.advance(8)
        with open(clip, "ab") as fh:
            fh.write(b"y" * 100)
        set_mtime(clip, clock.now)
        scanner.scan_all()
    assert submit.calls == []
    clock.advance(10)
    scanner.scan_all()
    assert submit.paths == [str(clip)]


def test_a_restart_in_the_middle_neither_loses_nor_repeats_the_file(watch_settings, drop):
    clock, submit = Clock(), Submit()
    clip = dropped(drop, "clip.mp4", clock)
    scanner_for(watch_settings, submit, clock).scan_all()
    clock.advance(6)
    after_restart = scanner_for(watch_settings, submit, clock)     # a new process: only the job store remembers
    after_restart.scan_all()
    clock.advance(5)
    after_restart.scan_all()
    assert submit.paths == [str(clip)]
    clock.advance(60)
    scanner_for(watch_settings, submit, clock).scan_all()
    assert submit.paths == [str(clip)]


def test_a_rename_or_a_copy_of_the_same_content_is_not_queued_again(watch_settings, drop):
    clock, submit = Clock(), Submit()
    scanner = scanner_for(watch_settings, submit, clock)
    clip = dropped(drop, "clip.mp4", clock, os.urandom(50_000))
    clock.advance(11)
    scanner.scan_all()
    assert len(submit.calls) == 1
    renamed = clip.rename(drop / "renamed.mp4")
    (drop / "sub").mkdir()
    copy = drop / "sub" / "copy of clip.mp4"
    shutil.copyfile(renamed, copy)
    set_mtime(copy, clock.now)
    clock.advance(11)
    report = scanner.scan_all()[str(drop)]
    clock.advance(11)
    scanner.scan_all()
    assert len(submit.calls) == 1
    assert sorted(report.duplicates) == sorted([str(renamed), str(copy)])
    rows = memory.latest_by_path(str(drop))
    assert rows[str(copy)].state == memory.DUPLICATE and rows[str(copy)].job_id == "job1"
    assert "same content as" in rows[str(copy)].reason


def test_new_content_under_a_known_name_is_a_new_file(watch_settings, drop):
    """Playout drops tomorrow's programme under today's name: it is captioned too."""
    clock, submit = Clock(), Submit()
    scanner = scanner_for(watch_settings, submit, clock)
    clip = dropped(drop, "news.mxf", clock, b"monday" * 1000)
    clock.advance(11)
    scanner.scan_all()
    clock.advance(3600)
    dropped(drop, "news.mxf", clock, b"tuesday" * 1000)
    scanner.scan_all()
    clock.advance(11)
    scanner.scan_all()
    assert submit.paths == [str(clip), str(clip)]
    os.utime(clip, (clock.now + 5, clock.now + 5))          # touched only: same content, not queued again
    clock.advance(20)
    scanner.scan_all()
    clock.advance(20)
    scanner.scan_all()
    assert len(submit.calls) == 2


def test_a_file_removed_before_it_settles_is_forgotten(watch_settings, drop):
    clock, submit = Clock(), Submit()
    scanner = scanner_for(watch_settings, submit, clock)
    clip = dropped(drop, "oops.mp4", clock)
    scanner.scan_all()
    assert memory.latest_by_path(str(drop))[str(clip)].state == memory.SETTLING
    clip.unlink()
    clock.advance(11)
    scanner.scan_all()
    assert memory.latest_by_path(str(drop)) == {} and submit.calls == []


def test_a_rejection_is_remembered_and_not_retried(watch_settings, drop):
    clock, submit = Clock(), Submit()
    scanner = scanner_for(watch_settings, submit, clock)
    notes = dropped(drop, "notes.txt", clock, b"not media")
    submit.fail[str(notes)] = RejectedBatch([{"path": str(notes), "error": f"{notes}: not a media file"}], 1)
    clock.advance(11)
    scanner.scan_all()
    del submit.fail[str(notes)]
    for _ in range(3):
        clock.advance(30)
        scanner.scan_all()
    assert submit.calls == []
    row = memory.latest_by_path(str(drop))[str(notes)]
    assert row.state == memory.REJECTED and "not a media file" in row.reason


def test_an_error_on_one_file_never_stops_the_others_and_is_retried(watch_settings, drop):
    clock, submit = Clock(), Submit()
    scanner = scanner_for(watch_settings, submit, clock)
    first = dropped(drop, "a.mp4", clock, b"a" * 100)
    second = dropped(drop, "b.mp4", clock, b"b" * 100)
    submit.fail[str(first)] = ConnectionError("Redis is unreachable")
    clock.advance(11)
    report = scanner.scan_all()[str(drop)]
    assert submit.paths == [str(second)]
    assert "Redis is unreachable" in report.errors[0]
    assert "trying again" in memory.latest_by_path(str(drop))[str(first)].reason
    del submit.fail[str(first)]
    clock.advance(10)
    scanner.scan_all()
    assert submit.paths == [str(second), str(first)]


def test_our_outputs_next_to_the_source_are_never_queued(watch_settings, drop):
    clock, submit = Clock(), Submit()
    scanner = scanner_for(watch_settings, submit, clock)
    clip = dropped(drop, "clip.mp4", clock)
    for name in ("clip.mp4.scc", "clip.mp4.srt", "clip.mp4.captioned.mp4", "clip.mp4.608.mov", "clip.mp4.json"):
        dropped(drop, name, clock, name.encode())
    (drop / ".clip.mp4.partial-abc").mkdir()
    dropped(drop / ".clip.mp4.partial-abc", "video.mp4", clock)
    clock.advance(11)
    scanner.scan_all()
    assert submit.paths == [str(clip)]


def test_a_claim_left_by_a_stopped_watcher_is_taken_back(watch_settings, drop):
    import socket
    import subprocess

    clock, submit = Clock(), Submit()
    a = dropped(drop, "a.mp4", clock, b"a" * 100)
    b = dropped(drop, "b.mp4", clock, b"b" * 100)
    scanner_for(watch_settings, submit, clock).scan_all()
    rows = memory.latest_by_path(str(drop))
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert memory.claim(rows[str(a)].id, f"{socket.gethostname()}:{gone.pid}", memory.now())   # died here
    assert memory.claim(rows[str(b)].id, "other-host:1", memory.now())      # elsewhere: maybe still at work
    clock.advance(11)
    later = scanner_for(watch_settings, submit, clock)
    assert later.recover_claims() == 1
    later.scan_all()
    assert submit.paths == [str(a)]
    clock.advance(11 * 60)                                                  # past CLAIM_TIMEOUT
    assert later.recover_claims() == 1
    later.scan_all()
    assert submit.paths == [str(a), str(b)]


def test_the_real_submission_queues_the_dropped_path_in_place(watch_settings, drop, queue):
    from core.jobs import queries
    from core.watch.runner import queue_submitter
    import core.jobs.submission as submission

    clock = Clock()
    wav = write_wav(drop / "take 1.wav", seconds=1.0)
    set_mtime(wav, clock.now - 60)
    real = lambda path, folder: submission.submit_batch([path], folder.options, watch_settings, queue,  # noqa: E731
                                                        priority=folder.priority)
    assert callable(queue_submitter)
    dropped(drop, "readme.txt", clock, b"hello")
    scanner = scanner_for(watch_settings, real, clock)
    clock.advance(11)
    scanner.scan_all()
    rows = memory.latest_by_path(str(drop))
    job = queries.get(rows[str(wav)].job_id)
    assert job.source == str(wav) and wav.exists()
    assert (job.options["rows"], job.options["burn_in"], job.priority) == (3, False, "high")
    assert rows[str(drop / "readme.txt")].state == memory.REJECTED
    assert rows[str(drop / "readme.txt")].reason


# --- the watcher loop: events and rescans ----------------------------------------------------------------

def run_watcher(watch_settings, submit, **overrides):
    memory.latest_by_path(str(folders.load(watch_settings)[0].path))    # the store exists before two threads use it
    watcher = Watcher({**watch_settings, **overrides}, folders.load({**watch_settings, **overrides}), submit)
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    return watcher, thread


def wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_inotify_events_queue_a_file_long_before_the_next_rescan(watch_settings, drop):
    submit = Submit()
    watcher, thread = run_watcher(watch_settings, submit, SETTLE_SECONDS=1, WATCH_SCAN_SECONDS=600, WATCH_EVENTS=True)
    try:
        assert wait_until(lambda: memory.latest_by_path(str(drop)) == {} and str(drop) in watcher.watched, 10)
        time.sleep(0.3)
        started = time.monotonic()
        clip = drop / "clip.mp4"
        clip.write_bytes(b"x" * 10_000)
        assert wait_until(lambda: submit.paths == [str(clip)], 6), "the event did not lead to the file being queued"
        assert time.monotonic() - started < 4          # settle 1 s, not the 600 s rescan
        assert "events" in watcher.scanner.modes[str(drop)]
    finally:
        watcher.stop()
        thread.join(10)
    assert not thread.is_alive()


def test_without_events_the_periodic_rescan_finds_the_file(watch_settings, drop):
    submit = Submit()
    watcher, thread = run_watcher(watch_settings, submit, SETTLE_SECONDS=1, WATCH_SCAN_SECONDS=2, WATCH_EVENTS=False)
    try:
        time.sleep(0.5)
        clip = drop / "clip.mp4"
        clip.write_bytes(b"x" * 10_000)
        assert wait_until(lambda: submit.paths == [str(clip)], 8)
        assert watcher.observer is None and "WATCH_EVENTS off" in watcher.scanner.modes[str(drop)]
        time.sleep(2.5)
        assert submit.paths == [str(clip)]
    finally:
        watcher.stop()
        thread.join(10)


def test_events_off_means_nothing_happens_until_the_rescan(watch_settings, drop):
    submit = Submit()
    watcher, thread = run_watcher(watch_settings, submit, SETTLE_SECONDS=0, WATCH_SCAN_SECONDS=600, WATCH_EVENTS=False)
    try:
        time.sleep(0.5)
        (drop / "clip.mp4").write_bytes(b"x" * 10_000)
        time.sleep(2)
        assert submit.calls == []       # so the events test above really measured events
    finally:
        watcher.stop()
        thread.join(10)


# --- the dashboard's view --------------------------------------------------------------------------------

def test_the_route_shows_folders_options_last_scan_and_files(watch_settings, drop, queue):
    from core.api import create_app
    from core.api import openapi
    from tests.openapi_check import Checker

    clock, submit = Clock(), Submit()
    scanner = scanner_for(watch_settings, submit, clock)
    dropped(drop, "clip.mp4", clock, b"1" * 100)
    bad = dropped(drop, "notes.txt", clock, b"2" * 100)
    submit.fail[str(bad)] = RejectedBatch([{"path": str(bad), "error": f"{bad}: not a media file"}], 1)
    clock.advance(11)
    scanner.scan_all()
    dropped(drop, "later.mp4", clock, b"3" * 100)
    scanner.scan_all()
    client = create_app(watch_settings, queue=queue).test_client()
    answer = client.get("/api/watch")
    assert answer.status_code == 200
    body = answer.get_json()
    (folder,) = body["folders"]
    assert folder["path"] == str(drop) and folder["options"]["rows"] == 3 and folder["priority"] == "high"
    assert folder["last_scan_at"] and folder["watcher_running"] and folder["files"] == 3
    assert folder["counts"]["queued"] == 1 and folder["counts"]["rejected"] == 1 and folder["counts"]["settling"] == 1
    assert folder["queued"][0]["job_id"] == "job1"
    assert "not a media file" in folder["rejected"][0]["reason"]
    assert [f["path"] for f in folder["waiting"]] == [str(drop / "later.mp4")]
    checker = Checker(openapi.build())
    checker.check("GET", "/api/watch", answer.status_code, body)
    page = client.get("/api/watch/files", query_string={"folder": str(drop), "state": "queued"})
    assert page.status_code == 200 and page.get_json()["total"] == 1
    checker.check("GET", "/api/watch/files", 200, page.get_json())
    for query, code in (({"folder": "/nope"}, 404), ({"folder": str(drop), "state": "odd"}, 400),
                        ({"folder": str(drop), "page": "0"}, 400)):
        wrong = client.get("/api/watch/files", query_string=query)
        assert wrong.status_code == code, query
        checker.check("GET", "/api/watch/files", code, wrong.get_json())


# --- python -m core.cli check ------------------------------------------------------------------------

def test_check_names_a_bad_folder_a_stale_watcher_and_a_working_one(watch_settings, drop, tmp_path):
    from core.services.checks import _watch

    assert _watch({**watch_settings, "WATCH_FOLDERS": []}) is None
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    bad = _watch({**watch_settings, "WATCH_FOLDERS": [str(outside)]})
    assert not bad.ok and "outside the storage roots" in bad.detail and "WATCH_FOLDERS" in bad.fix
    stale = _watch(watch_settings)
    assert not stale.ok and str(drop) in stale.detail and "start_dashboard.py" in stale.fix
    memory.record_scan(str(drop.resolve()), mode="events", now=memory.now(), seconds=0.01, files=0, error=None,
                       watcher="test")
    working = _watch(watch_settings)
    assert working.ok and str(drop.resolve()) in working.detail


# --- issue 18: what a hostile tester found -----------------------------------------------------------------

def set_job_status(job_id: str, status: str | None) -> None:
    """An operator's doing: the job cancelled, failed, completed, or deleted (None)."""
    from core.db import Job, session_scope

    with session_scope() as s:
        job = s.get(Job, job_id)
        if status is None:
            s.delete(job)
        else:
            job.status = status


def test_a_broker_outage_is_retried_on_the_next_scan_never_rejected(watch_settings, drop):
    clock, submit = Clock(), Submit()
    scanner = scanner_for(watch_settings, submit, clock)
    clip = dropped(drop, "clip.mp4", clock)
    submit.fail[str(clip)] = JobError("the job queue (Redis) cannot be reached; try again", status=503)
    clock.advance(11)
    report = scanner.scan_all()[str(drop)]
    row = memory.latest_by_path(str(drop))[str(clip)]
    assert row.state == memory.SETTLING and "Redis" in row.reason and report.rejected == []
    assert "Redis" in report.errors[0]
    del submit.fail[str(clip)]
    clock.advance(10)
    scanner.scan_all()
    assert submit.paths == [str(clip)]
    assert memory.latest_by_path(str(drop))[str(clip)].state == memory.QUEUED


def test_new_content_under_an_old_name_gets_its_own_job_while_the_first_is_still_pending(watch_settings, drop,
                                                                                           queue):
    from core.jobs import queries
    from core.watch.runner import submitter

    clock = Clock()
    scanner = scanner_for(watch_settings, submitter(watch_settings, queue), clock)
    clip = write_wav(drop / "news.wav", seconds=1.0)
    set_mtime(clip, clock.now)
    clock.advance(11)
    scanner.scan_all()
    first = memory.latest_by_path(str(drop))[str(clip)].job_id
    assert queries.get(first).status == "pending"
    write_wav(clip, seconds=1.5)                       # the next edition, under the same name, before the first ran
    set_mtime(clip, clock.now)
    scanner.scan_all()
    clock.advance(11)
    scanner.scan_all()
    row = memory.latest_by_path(str(drop))[str(clip)]
    assert row.state == memory.QUEUED and row.job_id not in (None, first)
    assert queries.get(row.job_id).media_duration == pytest.approx(1.5, abs=0.05)
    assert [kind for kind, *_ in queue.sent].count("batch") == 2


def test_a_failed_queueing_never_leaves_a_queued_record(watch_settings, drop, queue):
    """The broker fails the first attempt after the job row was written (before the lead's clean-up, or if it
    fails): the retry must make a job of its own, not record the one that never reached the broker."""
    from core.jobs import queries
    from core.watch.runner import submitter

    clock = Clock()
    clip = write_wav(drop / "take.wav", seconds=1.0)
    set_mtime(clip, clock.now)
    failing = {"on": True}
    original = queue.enqueue_batch

    def enqueue(batch_id):
        if failing["on"]:
            raise JobError("the job queue (Redis) cannot be reached", status=503)
        return original(batch_id)

    queue.enqueue_batch = enqueue
    scanner = scanner_for(watch_settings, submitter(watch_settings, queue), clock)
    clock.advance(11)
    scanner.scan_all()
    assert memory.latest_by_path(str(drop))[str(clip)].state == memory.SETTLING
    failing["on"] = False
    clock.advance(10)
    scanner.scan_all()
    row = memory.latest_by_path(str(drop))[str(clip)]
    assert row.state == memory.QUEUED
    assert queue.sent and queue.sent[-1][1] == queries.get(row.job_id).batch_id     # this job reached the broker


@pytest.mark.parametrize("outcome", ["cancelled", "failed", None])
def test_a_redrop_after_the_job_was_cancelled_failed_or_deleted_is_queued_again(watch_settings, drop, outcome):
    clock, submit = Clock(), Submit()
    scanner = scanner_for(watch_settings, submit, clock)
    content = os.urandom(20_000)
    clip = dropped(drop, "clip.mp4", clock, content)
    clock.advance(11)
    scanner.scan_all()
    set_job_status("job1", outcome)
    clip.unlink()
    clock.advance(60)
    again = dropped(drop, "clip again.mp4", clock, content)        # the operator drops it once more
    clock.advance(11)
    scanner.scan_all()
    assert submit.paths == [str(clip), str(again)]
    assert memory.latest_by_path(str(drop))[str(again)].state == memory.QUEUED


@pytest.mark.parametrize("outcome", ["pending", "processing", "completed"])
def test_a_redrop_while_the_job_is_pending_processing_or_completed_is_a_duplicate(watch_settings, drop, outcome):
    clock, submit = Clock(), Submit()
    scanner = scanner_for(watch_settings, submit, clock)
    content = os.urandom(20_000)
    dropped(drop, "clip.mp4", clock, content)
    clock.advance(11)
    scanner.scan_all()
    set_job_status("job1", outcome)
    again = dropped(drop, "clip again.mp4", clock, content)
    clock.advance(11)
    scanner.scan_all()
    assert len(submit.calls) == 1
    row = memory.latest_by_path(str(drop))[str(again)]
    assert row.state == memory.DUPLICATE and row.job_id == "job1" and outcome in row.reason


def test_a_scan_reads_only_the_rows_of_the_files_on_disk_and_keeps_exactly_once(watch_settings, drop):
    from sqlalchemy import text

    from core import db

    clock, submit = Clock(), Submit()
    content = os.urandom(20_000)
    gone = dropped(drop, "yesterday.mp4", clock, content)
    scanner = scanner_for(watch_settings, submit, clock)
    clock.advance(11)
    scanner.scan_all()
    gone.unlink()
    now = memory.now()
    with db.get_engine().begin() as conn:          # a long-running folder's memory
        conn.execute(db.WatchFile.__table__.insert(), [
            {"folder": str(drop), "path": f"{drop}/old{i}.mxf", "size": i, "mtime_ns": i, "stable_since": now,
             "first_seen_at": now, "state": memory.REJECTED, "fingerprint": f"full:{i}", "decided_at": now}
            for i in range(5000)])
    on_disk = dropped(drop, "today.mp4", clock, b"today" * 100)
    assert list(memory.latest_by_path(str(drop), [str(on_disk)])) == []
    copy = dropped(drop, "copy of yesterday.mp4", clock, content)
    scanner.scan_all()
    assert set(memory.latest_by_path(str(drop), [str(on_disk), str(copy)])) == {str(on_disk), str(copy)}
    clock.advance(11)
    scanner.scan_all()
    assert submit.paths == [str(gone), str(on_disk)]                  # the copy of gone content: not again
    assert memory.latest_by_path(str(drop))[str(copy)].state == memory.DUPLICATE
    with db.get_engine().connect() as conn:
        plans = [" ".join(str(r[-1]) for r in conn.execute(text(f"EXPLAIN QUERY PLAN {sql}"), params))
                 for sql, params in (
                     ("SELECT id FROM watch_files WHERE folder = :f AND path IN (:p)", {"f": str(drop), "p": "x"}),
                     ("SELECT id FROM watch_files WHERE folder = :f AND fingerprint = :h", {"f": str(drop), "h": "x"}))]
    assert "ix_watch_files_folder_path" in plans[0] and "ix_watch_files_folder_fingerprint" in plans[1]


def test_the_observer_is_stopped_by_the_loop_not_by_the_signal_handler(watch_settings, drop):
    """watchdog's observer.stop() from a signal handler races its own emitter set (RuntimeError on Ctrl-C)."""
    submit = Submit()
    watcher, thread = run_watcher(watch_settings, submit, SETTLE_SECONDS=1, WATCH_SCAN_SECONDS=600, WATCH_EVENTS=True)
    assert wait_until(lambda: str(drop) in watcher.watched, 10)
    stopped_from = []
    real_stop = watcher.observer.stop
    watcher.observer.stop = lambda: (stopped_from.append(threading.current_thread()), real_stop())
    watcher.stop()                                      # what the SIGINT/SIGTERM handler calls
    assert stopped_from == []
    thread.join(10)
    assert not thread.is_alive() and stopped_from == [thread]
    assert not watcher.observer.is_alive()


def test_a_missing_folder_is_logged_once_when_it_goes_and_once_when_it_comes_back(watch_settings, drop, caplog):
    import logging

    clock, submit = Clock(), Submit()
    scanner = scanner_for(watch_settings, submit, clock)
    shutil.rmtree(drop)                                 # the share is unmounted
    caplog.set_level(logging.INFO, logger="core.watch.scanner")
    for _ in range(4):
        clock.advance(10)
        scanner.scan_all()
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "does not exist" in warnings[0].getMessage()
    from core.watch import status

    assert "does not exist" in status.overview(watch_settings)["folders"][0]["error"]   # the tab keeps showing it
    drop.mkdir()
    for _ in range(3):
        clock.advance(10)
        scanner.scan_all()
    back = [r for r in caplog.records if "readable again" in r.getMessage()]
    assert len(back) == 1 and len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 1
    assert status.overview(watch_settings)["folders"][0]["error"] is None
