"""Fast tier: the REST API through Flask's test client, on a temp SQLite store and an in-memory queue.

No Redis, Celery worker, model, FFmpeg binary or browser: sources are silent WAV files that PyAV
probes (audio only, so batches go in with ``"burn_in": false``), a finished job is simulated by
writing its files and recording them in the job's manifest, and Celery inspect replies are canned
on the FakeQueue.  Each test builds its own store and files, so any order works.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from core.api.live import monitor
from core.jobs import queries, record, submission
from core.queue import TRANSCRIBE_TASK
from core.services import artifacts
from tests.fast import write_wav

NO_BURN = {"burn_in": False}
JOB_KEYS = {"job_id", "status", "stage", "progress", "created_at", "started_at", "completed_at",
            "estimated_completion", "worker", "error", "source", "batch_id", "priority", "options", "attempts",
            "task_id", "stage_label", "result"}


@pytest.fixture(autouse=True)
def fresh_queue_monitor():
    """The queue monitor is module-level: no snapshot may leak between tests."""
    monitor.last_snapshot, monitor.taken_at = None, 0.0
    yield
    monitor.last_snapshot, monitor.taken_at = None, 0.0


# --- helpers -------------------------------------------------------------------------------------------

def submit(client, *paths, options=NO_BURN, **body):
    return client.post("/api/transcribe/batch",
                       json={"paths": [p if not isinstance(p, Path) else str(p) for p in paths],
                             "options": options, **body})


def queued_ids(resp) -> list[str]:
    return [entry["job_id"] for entry in resp.get_json()["queued"]]


def new_job(client, path: Path, **body) -> str:
    resp = submit(client, path, **body)
    assert resp.status_code == 202, resp.get_json()
    (job_id,) = queued_ids(resp)
    return job_id


def jobs_total(client) -> int:
    return client.get("/api/jobs").get_json()["total"]


def complete(job_id: str, contents: dict[str, bytes]) -> list[dict]:
    """Simulate a worker that published ``contents`` (kind -> bytes) and completed the job."""
    job = queries.get(job_id)
    out_dir = Path(job.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = []
    for kind, data in contents.items():
        path = out_dir / artifacts.file_name(Path(job.source).name, kind)
        path.write_bytes(data)
        manifest.append(artifacts.manifest_entry(kind, path, artifacts.sha256(path)))
    record.transition(job_id, "processing", task_id="task-worker", worker="w1@host", stage="probing")
    record.transition(job_id, "completed", only_from={"processing"}, stage=None, progress=1.0, result={
        "text": "good evening", "segments": [], "language": "en", "duration": 2.0,
        "manifest": manifest, "outputs": {e["kind"]: e["path"] for e in manifest}})
    return manifest


def assert_json_error(resp, code: int, *words: str) -> str:
    assert resp.status_code == code, (resp.status_code, resp.get_data(as_text=True)[:500])
    assert resp.is_json, resp.headers.get("Content-Type")
    body = resp.get_json()
    assert isinstance(body.get("error"), str) and body["error"]
    for word in words:
        assert word in body["error"], body["error"]
    return body["error"]


def upload_files(settings) -> list[Path]:
    folder = Path(settings["UPLOAD_DIR"])
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


# --- POST /api/transcribe/batch: success ---------------------------------------------------------------

def test_batch_is_accepted_with_batch_id_and_one_queue_send(client, news, queue):
    one, two = write_wav(news / "one.wav"), write_wav(news / "two.wav", 3.0)
    resp = submit(client, one, two, priority="high")
    assert resp.status_code == 202
    body = resp.get_json()
    assert body["batch_id"] and body["total_files"] == 2 and body["valid_paths"] == 2
    assert [q["path"] for q in body["queued"]] == [str(one), str(two)]
    assert len(set(queued_ids(resp))) == 2 and body["rejected"] == []
    assert queue.sent == [("batch", body["batch_id"], None)]
    assert body["batch_task_id"] == "task-1"
    for job_id in queued_ids(resp):
        status = client.get(f"/api/status/{job_id}").get_json()
        assert status["status"] == "pending" and status["batch_id"] == body["batch_id"]
        assert status["priority"] == "high"
        assert status["options"] == {"model": "tiny.en", "language": "en", "burn_in": False, "rows": 2,
                                     "start_timecode": "00:00:00;00", "timecode_mode": "df", "mov": False,
                                     "qc_profile": "broadcast-608", "speaker_changes": True, "vocabulary": []}


def test_batch_publishes_job_update_for_each_created_job(client, news, published):
    paths = [write_wav(news / f"clip{i}.wav") for i in range(3)]
    resp = submit(client, *paths)
    updates = [data for event, data in published if event == "job_update"]
    assert sorted(u["job_id"] for u in updates) == sorted(queued_ids(resp))
    assert {u["status"] for u in updates} == {"pending"}
    assert {u["source"] for u in updates} == {str(p) for p in paths}


def test_job_record_keeps_the_real_path_and_its_stat(client, news):
    clip = write_wav(news / "deep" / "clip.wav")
    roundabout = f"{news}/deep/../deep/./clip.wav"
    job_id = new_job(client, roundabout)
    job = queries.get(job_id)
    st = os.stat(clip)
    assert job.source == str(clip) == os.path.realpath(roundabout)
    assert job.source_stat == {"dev": st.st_dev, "ino": st.st_ino, "size": st.st_size,
                               "mtime_ns": st.st_mtime_ns}
    assert client.get(f"/api/status/{job_id}").get_json()["source"] == str(clip)


def test_symlinked_source_is_recorded_as_its_target(client, news):
    clip = write_wav(news / "clip.wav")
    (news / "alias.wav").symlink_to(clip)
    job_id = new_job(client, news / "alias.wav")
    assert queries.get(job_id).source == str(clip)


# --- POST /api/transcribe/batch: rejected paths (partial success) -------------------------------------

def _outside(news: Path) -> Path:
    return write_wav(news.parent.parent / "outside" / "secret.wav")


def _text_file(news: Path) -> Path:
    (news / "notes.mp4").write_text("this is not a video\n")
    return news / "notes.mp4"


def _empty_file(news: Path) -> Path:
    (news / "empty.mp4").touch()
    return news / "empty.mp4"


def _escape_link(news: Path) -> Path:
    (news / "escape.wav").symlink_to(_outside(news))
    return news / "escape.wav"


def _dotdot(news: Path, via: str) -> str:
    _outside(news)
    return f"{news}/{via}/outside/secret.wav"


def _fifo(news: Path) -> Path:
    os.mkfifo(news / "pipe.wav")
    return news / "pipe.wav"


@pytest.mark.parametrize("make_path, reason", [
    (lambda news: "/etc/passwd", "outside the storage roots"),
    (lambda news: str(_outside(news)), "outside the storage roots"),
    (lambda news: "mnt/news/good.wav", "must be absolute"),
    (lambda news: str(news / "missing.mp4"), "file not found"),
    (lambda news: str(_text_file(news)), "not a readable media file"),
    (lambda news: str(_empty_file(news)), "empty"),
    (lambda news: str(news), "is a directory"),
    (lambda news: _dotdot(news, "../.."), "outside the storage roots"),
    (lambda news: _dotdot(news, "../news/../.."), "outside the storage roots"),
    (lambda news: str(_escape_link(news)), "outside the storage roots"),
    (lambda news: f"{news}/good\x00.wav", "NUL byte"),
    (lambda news: 42, "non-empty string"),
    (lambda news: "", "non-empty string"),
    (lambda news: str(_fifo(news)), "not a regular file"),
], ids=["etc-passwd", "outside-root", "relative", "missing", "text-file", "empty-file", "directory",
        "dotdot-escape", "dotdot-zigzag", "symlink-escape", "nul-byte", "not-a-string", "empty-string",
        "fifo"])
def test_bad_path_is_rejected_with_its_reason_while_good_one_queues(client, news, queue, make_path, reason):
    good = write_wav(news / "good.wav")
    bad = make_path(news)
    resp = submit(client, good, bad)
    assert resp.status_code == 202
    body = resp.get_json()
    assert [q["path"] for q in body["queued"]] == [str(good)]
    assert len(body["rejected"]) == 1
    assert body["rejected"][0]["path"] == bad
    assert reason in body["rejected"][0]["error"]
    assert body["total_files"] == 2 and body["valid_paths"] == 1
    assert jobs_total(client) == 1 and len(queue.sent) == 1


def test_same_path_twice_is_rejected_as_duplicate(client, news):
    clip = write_wav(news / "clip.wav")
    resp = submit(client, clip, clip)
    body = resp.get_json()
    assert resp.status_code == 202 and len(body["queued"]) == 1
    assert "listed more than once" in body["rejected"][0]["error"]
    assert jobs_total(client) == 1


def test_same_file_through_a_symlink_is_rejected(client, news):
    clip = write_wav(news / "clip.wav")
    (news / "link.wav").symlink_to(clip)
    resp = submit(client, clip, news / "link.wav", f"{news}/../news/clip.wav")
    body = resp.get_json()
    assert resp.status_code == 202 and [q["path"] for q in body["queued"]] == [str(clip)]
    assert [r["path"] for r in body["rejected"]] == [str(news / "link.wav"), f"{news}/../news/clip.wav"]
    assert all("same file as an earlier path" in r["error"] for r in body["rejected"])


def test_rejections_keep_the_order_of_the_request(client, news):
    good = write_wav(news / "good.wav")
    paths = [str(news / "z-missing.wav"), "relative.wav", str(good), str(good), "/etc/hosts"]
    body = submit(client, *paths).get_json()
    assert [r["path"] for r in body["rejected"]] == [paths[0], paths[1], paths[3], paths[4]]


def test_audio_only_file_with_burn_in_is_rejected(client, news, queue):
    clip = write_wav(news / "radio.wav")
    resp = submit(client, clip, options={"burn_in": True})
    assert_json_error(resp, 400)
    assert "has no video stream" in resp.get_json()["rejected"][0]["error"]
    assert queue.sent == [] and jobs_total(client) == 0


def test_default_burn_in_also_rejects_audio_only(client, news):
    clip = write_wav(news / "radio.wav")
    resp = submit(client, clip, options=None)
    assert resp.status_code == 400 and "burn_in false" in resp.get_json()["rejected"][0]["error"]


def test_batch_with_no_valid_path_is_400_with_every_reason(client, news, queue, published):
    paths = [str(news / "missing.wav"), "/etc/passwd", "rel.wav"]
    resp = submit(client, *paths)
    assert_json_error(resp, 400, "none of the paths")
    body = resp.get_json()
    assert body["total_files"] == 3 and body["valid_paths"] == 0 and body["queued"] == []
    assert [r["path"] for r in body["rejected"]] == paths
    assert all(r["error"] for r in body["rejected"])
    assert queue.sent == [] and jobs_total(client) == 0
    assert not [e for e, _ in published if e == "job_update"]


# --- POST /api/transcribe/batch: malformed requests ---------------------------------------------------

@pytest.mark.parametrize("send", [
    {"data": '{"paths": []}'},                                     # no Content-Type
    {"data": '{"paths": []}', "content_type": "text/plain"},
    {"data": "paths=x", "content_type": "application/x-www-form-urlencoded"},
])
def test_batch_needs_a_json_content_type(client, queue, send):
    assert_json_error(client.post("/api/transcribe/batch", **send), 415, "JSON")
    assert queue.sent == []


@pytest.mark.parametrize("data", ['{"paths": [', "[]", '"paths"', "null", ""])
def test_batch_body_must_be_a_json_object(client, queue, data):
    resp = client.post("/api/transcribe/batch", data=data, content_type="application/json")
    assert_json_error(resp, 400, "JSON object")
    assert queue.sent == []


DROP = object()


@pytest.mark.parametrize("body, words", [
    ({"paths": DROP}, "paths"),
    ({"paths": "/mnt/news/clip.wav"}, "paths"),
    ({"paths": []}, "paths"),
    ({"paths": {"a": 1}}, "paths"),
    ({"paths": ["/x.wav"] * 1001}, "at most 1000"),
    ({"options": {"speed": 2}}, "unknown option"),
    ({"options": "fast"}, "options must be an object"),
    ({"options": {"burn_in": False, "rows": 0}}, "rows"),
    ({"options": {"burn_in": False, "rows": 5}}, "rows"),
    ({"options": {"burn_in": False, "rows": True}}, "rows"),
    ({"options": {"burn_in": False, "rows": "2"}}, "rows"),
    ({"options": {"burn_in": False, "rows": 2.0}}, "rows"),
    ({"options": {"burn_in": "false"}}, "burn_in"),
    ({"options": {"burn_in": 0}}, "burn_in"),
    ({"options": {"burn_in": False, "model": "../../models/evil"}}, "model"),
    ({"options": {"burn_in": False, "model": 5}}, "model"),
    ({"options": {"burn_in": False, "language": ["en"]}}, "language"),
    ({"priority": "urgent"}, "priority"),
    ({"priority": "HIGH"}, "priority"),
    ({"priority": 0}, "priority"),
    ({"force": "yes"}, "force"),
    ({"force": 1}, "force"),
    ({"force": None}, "force"),
])
def test_batch_validation_errors_are_400_and_queue_nothing(client, news, queue, body, words):
    clip = write_wav(news / "clip.wav")
    request = {k: v for k, v in {"paths": [str(clip)], "options": NO_BURN, **body}.items() if v is not DROP}
    resp = client.post("/api/transcribe/batch", json=request)
    assert_json_error(resp, 400, words)
    assert queue.sent == [] and jobs_total(client) == 0


def test_batch_of_exactly_1000_paths_is_accepted(client, news):
    clip = write_wav(news / "clip.wav")
    paths = [str(clip)] + [str(news / f"missing-{i}.wav") for i in range(999)]
    resp = client.post("/api/transcribe/batch", json={"paths": paths, "options": NO_BURN})
    body = resp.get_json()
    assert resp.status_code == 202 and body["total_files"] == 1000
    assert len(body["queued"]) == 1 and len(body["rejected"]) == 999


# --- duplicates against the store and force -----------------------------------------------------------

def test_pending_job_on_the_same_file_is_returned_instead_of_a_new_one(client, news, queue):
    clip = write_wav(news / "clip.wav")
    first = new_job(client, clip)
    (news / "again.wav").symlink_to(clip)
    resp = submit(client, clip, news / "again.wav")     # second: same file, rejected within the batch
    body = resp.get_json()
    assert resp.status_code == 202
    assert body["queued"] == [{"path": str(clip), "job_id": first, "existing": True, "status": "pending"}]
    assert body["batch_task_id"] is None and "already queued" in body["message"]
    assert len(queue.sent) == 1 and jobs_total(client) == 1


def test_processing_job_through_a_symlink_is_returned_as_existing(client, news):
    clip = write_wav(news / "clip.wav")
    first = new_job(client, clip)
    record.transition(first, "processing", task_id="t1", worker="w1")
    (news / "alias.wav").symlink_to(clip)
    body = submit(client, news / "alias.wav").get_json()
    assert body["queued"] == [{"path": str(news / "alias.wav"), "job_id": first, "existing": True,
                               "status": "processing"}]


def test_force_queues_a_new_job_beside_the_pending_one(client, news, queue):
    clip = write_wav(news / "clip.wav")
    first = new_job(client, clip)
    resp = submit(client, clip, force=True)
    assert resp.status_code == 202
    (second,) = queued_ids(resp)
    assert second != first and "existing" not in resp.get_json()["queued"][0]
    assert [kind for kind, _, _ in queue.sent] == ["batch", "batch"]
    assert jobs_total(client) == 2


def test_finished_job_does_not_block_a_new_submission(client, news):
    clip = write_wav(news / "clip.wav")
    first = new_job(client, clip)
    client.post(f"/api/jobs/{first}/cancel")
    (second,) = queued_ids(submit(client, clip))
    assert second != first


def test_batch_of_only_already_queued_files_makes_no_batch_that_looks_done(client, news, queue):
    clip = write_wav(news / "clip.wav")
    new_job(client, clip)
    sends = len(queue.sent)
    again = submit(client, clip).get_json()
    assert again["queued"][0]["existing"] is True
    assert again["batch_id"] is None and again["batch_task_id"] is None
    assert len(queue.sent) == sends


# --- POST /api/transcribe (upload) --------------------------------------------------------------------

def test_upload_is_queued_and_dispatched(client, tmp_path, settings, queue):
    wav = write_wav(tmp_path / "src.wav").read_bytes()
    resp = client.post("/api/transcribe", content_type="multipart/form-data", data={
        "file": (io.BytesIO(wav), "../../Evening News.wav"), "burn_in": "false", "rows": "3",
        "priority": "high", "language": "en"})
    assert resp.status_code == 202, resp.get_json()
    body = resp.get_json()
    job_id = body["job_id"]
    assert body["status"] == "pending"
    assert body["status_url"] == f"http://localhost/api/status/{job_id}"
    assert isinstance(body["estimated_time"], str) and body["estimated_time"].endswith("Z")
    assert queue.sent == [("transcribe", job_id, "high")]
    status = client.get(f"/api/status/{job_id}").get_json()
    assert status["task_id"] == "task-1" and status["priority"] == "high"
    assert status["options"]["burn_in"] is False and status["options"]["rows"] == 3
    saved = Path(status["source"])
    assert saved.is_file() and saved.read_bytes() == wav
    assert Path(settings["UPLOAD_DIR"]).resolve() in saved.parents
    assert saved.name.endswith("Evening_News.wav") and ".." not in saved.name


@pytest.mark.parametrize("content, form, words", [
    (b"not a video at all\n", {"burn_in": "false"}, "not a readable media file"),
    (b"", {"burn_in": "false"}, "empty"),
    ("wav", {}, "no video stream"),
    ("wav", {"burn_in": "true"}, "no video stream"),
    ("wav", {"burn_in": "false", "rows": "9"}, "rows"),
    ("wav", {"burn_in": "false", "priority": "urgent"}, "priority"),
    ("wav", {"burn_in": "false", "model": "../evil"}, "model"),
], ids=["text", "empty", "default-burn-in", "burn-in", "rows", "priority", "model"])
def test_unusable_upload_is_400_and_its_file_removed(client, tmp_path, settings, queue, content, form, words):
    if content == "wav":
        content = write_wav(tmp_path / "src.wav").read_bytes()
    resp = client.post("/api/transcribe", content_type="multipart/form-data",
                       data={"file": (io.BytesIO(content), "clip.wav"), **form})
    assert_json_error(resp, 400, words)
    assert upload_files(settings) == []
    assert queue.sent == [] and jobs_total(client) == 0


@pytest.mark.parametrize("send", [
    lambda: {"content_type": "multipart/form-data", "data": {"language": "en"}},
    lambda: {"content_type": "multipart/form-data", "data": {"upload": (io.BytesIO(b"x"), "clip.wav")}},
    lambda: {"content_type": "multipart/form-data", "data": {"file": (io.BytesIO(b"x"), "")}},
    lambda: {"json": {"file": "clip.wav"}},
], ids=["no-file", "wrong-field", "no-filename", "json"])
def test_upload_without_a_file_field_is_400(client, settings, send):
    assert_json_error(client.post("/api/transcribe", **send()), 400, "file")
    assert upload_files(settings) == []


def test_upload_with_non_integer_rows_is_400(client, tmp_path, settings):
    wav = write_wav(tmp_path / "src.wav").read_bytes()
    resp = client.post("/api/transcribe", content_type="multipart/form-data",
                       data={"file": (io.BytesIO(wav), "clip.wav"), "burn_in": "false", "rows": "two"})
    assert_json_error(resp, 400, "rows")
    assert upload_files(settings) == []


def test_upload_with_unicode_digit_rows_is_400_not_500(client, tmp_path, settings):
    wav = write_wav(tmp_path / "src.wav").read_bytes()
    resp = client.post("/api/transcribe", content_type="multipart/form-data",
                       data={"file": (io.BytesIO(wav), "clip.wav"), "burn_in": "false", "rows": "²"})
    assert_json_error(resp, 400, "rows")


def test_upload_over_the_size_limit_is_413_json(settings, store, queue):
    from core.api import create_app

    client = create_app({**settings, "MAX_UPLOAD_MB": 1}, queue=queue).test_client()
    resp = client.post("/api/transcribe", content_type="multipart/form-data",
                       data={"file": (io.BytesIO(b"\0" * (2 * 1024 * 1024)), "big.wav"), "burn_in": "false"})
    assert_json_error(resp, 413, "1 MB")
    assert upload_files(settings) == [] and queue.sent == []


# --- GET /api/status, /api/jobs, /api/batches ---------------------------------------------------------

def test_status_of_a_pending_job(client, news):
    clip = write_wav(news / "clip.wav", 3.0)
    job_id = new_job(client, clip)
    resp = client.get(f"/api/status/{job_id}")
    assert resp.status_code == 200
    status = resp.get_json()
    assert set(status) == JOB_KEYS
    assert list(status)[:5] == ["job_id", "status", "stage", "progress", "created_at"]
    assert status["job_id"] == job_id and status["status"] == "pending"
    assert status["stage"] is None and status["progress"] == 0.0 and status["result"] is None
    assert status["created_at"].endswith("Z") and status["started_at"] is None
    assert status["estimated_completion"] is not None and status["error"] is None
    assert status["attempts"] == 0 and status["source"] == str(clip)


def test_status_of_a_completed_job_has_the_result(client, news):
    job_id = new_job(client, write_wav(news / "clip.wav"))
    manifest = complete(job_id, {"srt": b"1\n00:00:00,000 --> 00:00:01,000\nGood evening\n"})
    status = client.get(f"/api/status/{job_id}").get_json()
    assert status["status"] == "completed" and status["progress"] == 100.0
    assert status["completed_at"] and status["estimated_completion"] is None
    assert status["result"]["text"] == "good evening"
    assert status["result"]["outputs"] == {"srt": manifest[0]["path"]}


@pytest.mark.parametrize("job_id", ["nope", "0" * 32, "x" * 100], ids=["word", "hex", "long"])
def test_status_of_an_unknown_job_is_404(client, job_id):
    assert_json_error(client.get(f"/api/status/{job_id}"), 404, "not found")


@pytest.fixture
def four_jobs(client, news):
    """Three jobs in one batch (one cancelled) and one in another; names with LIKE wildcards."""
    names = ["a_b.wav", "axb.wav", "100%.wav"]
    first = submit(client, *[write_wav(news / n) for n in names])
    ids = dict(zip(names, queued_ids(first)))
    ids["other.wav"] = new_job(client, write_wav(news / "other.wav"))
    assert client.post(f"/api/jobs/{ids['axb.wav']}/cancel").status_code == 200
    return first.get_json()["batch_id"], ids


def test_jobs_list_pages_through_every_job(client, four_jobs):
    _, ids = four_jobs
    seen = []
    for page in (1, 2, 3):
        body = client.get(f"/api/jobs?page={page}&page_size=3").get_json()
        assert body["total"] == 4 and body["page"] == page and body["page_size"] == 3
        seen += [row["job_id"] for row in body["items"]]
    assert sorted(seen) == sorted(ids.values())       # every job once, none twice
    assert client.get("/api/jobs?page=9").get_json()["items"] == []


def test_jobs_list_filters(client, four_jobs):
    batch_id, ids = four_jobs

    def found(**query):
        body = client.get("/api/jobs", query_string=query).get_json()
        assert body["total"] == len(body["items"])
        return {row["job_id"] for row in body["items"]}

    assert found(status="cancelled") == {ids["axb.wav"]}
    assert found(status="pending") == {ids["a_b.wav"], ids["100%.wav"], ids["other.wav"]}
    assert found(status="completed") == set()
    assert found(batch_id=batch_id) == {ids["a_b.wav"], ids["axb.wav"], ids["100%.wav"]}
    assert found(batch_id=batch_id, status="pending") == {ids["a_b.wav"], ids["100%.wav"]}
    assert found(q="OTHER") == {ids["other.wav"]}            # case-insensitive
    assert found(q="a_b") == {ids["a_b.wav"]}                 # '_' is literal, not "any character"
    assert found(q="100%") == {ids["100%.wav"]}               # '%' is literal, not "anything"
    assert found(q="%") == {ids["100%.wav"]}
    assert found(q="nothing-like-this") == set()
    assert found(status="", q="") == set(ids.values())         # empty filters mean no filter


def test_jobs_list_rows_carry_no_transcript(client, news):
    job_id = new_job(client, write_wav(news / "clip.wav"))
    complete(job_id, {"srt": b"x"})
    (row,) = client.get("/api/jobs").get_json()["items"]
    assert row["job_id"] == job_id and row["status"] == "completed"
    assert "text" not in row["result"] and "segments" not in row["result"]
    assert row["result"]["outputs"]["srt"]


@pytest.mark.parametrize("query, words", [
    ("page=0", "page"), ("page=-1", "page"), ("page=abc", "page"), ("page=1.5", "page"),
    ("page_size=0", "page_size"), ("page_size=501", "page_size"), ("page_size=ten", "page_size"),
    ("status=done", "status"), ("status=PENDING", "status"),
])
def test_jobs_list_bad_arguments_are_400(client, query, words):
    assert_json_error(client.get(f"/api/jobs?{query}"), 400, words)


def test_batch_aggregate_follows_its_jobs(client, news):
    resp = submit(client, write_wav(news / "one.wav"), write_wav(news / "two.wav"))
    batch_id, (one, two) = resp.get_json()["batch_id"], queued_ids(resp)
    body = client.get(f"/api/batches/{batch_id}").get_json()
    assert body["batch_id"] == batch_id and body["batch_task_id"] == "task-1"
    assert body["total"] == 2 and body["counts"]["pending"] == 2
    assert body["progress"] == 0.0 and body["done"] is False
    assert body["options"]["burn_in"] is False and body["priority"] == "normal"
    client.post(f"/api/jobs/{one}/cancel")
    body = client.get(f"/api/batches/{batch_id}").get_json()
    assert body["counts"]["cancelled"] == 1 and body["counts"]["pending"] == 1
    assert body["progress"] == 50.0 and body["done"] is False
    complete(two, {"srt": b"x"})
    body = client.get(f"/api/batches/{batch_id}").get_json()
    assert body["counts"]["completed"] == 1 and body["progress"] == 100.0 and body["done"] is True


@pytest.mark.parametrize("batch_id", ["nope", "x" * 100], ids=["word", "long"])
def test_unknown_batch_is_404(client, batch_id):
    assert_json_error(client.get(f"/api/batches/{batch_id}"), 404, "not found")


# --- cancel / retry / delete --------------------------------------------------------------------------

def test_cancel_pending_upload_revokes_its_task(client, tmp_path, queue, published):
    wav = write_wav(tmp_path / "src.wav").read_bytes()
    job_id = client.post("/api/transcribe", content_type="multipart/form-data", data={
        "file": (io.BytesIO(wav), "clip.wav"), "burn_in": "false"}).get_json()["job_id"]
    resp = client.post(f"/api/jobs/{job_id}/cancel")
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["status"] == "cancelled" and body["error"] == "cancelled by operator"
    assert queue.revoked == [("task-1", False)]                  # a pending task is not terminated
    assert client.get(f"/api/status/{job_id}").get_json()["status"] == "cancelled"
    assert ("job_update", "cancelled") in [(e, d.get("status")) for e, d in published]
    assert_json_error(client.post(f"/api/jobs/{job_id}/cancel"), 409, "already cancelled")
    assert len(queue.revoked) == 1


def test_cancel_processing_job_terminates_its_task(client, news, queue):
    job_id = new_job(client, write_wav(news / "clip.wav"))
    record.transition(job_id, "processing", task_id="task-run", worker="w1@host")
    assert client.post(f"/api/jobs/{job_id}/cancel").get_json()["status"] == "cancelled"
    assert queue.revoked == [("task-run", True)]


def test_batch_job_cancelled_before_dispatch_is_never_sent(client, news, queue):
    resp = submit(client, write_wav(news / "one.wav"), write_wav(news / "two.wav"))
    batch_id, (one, two) = resp.get_json()["batch_id"], queued_ids(resp)
    assert client.post(f"/api/jobs/{one}/cancel").status_code == 200
    assert submission.dispatch_batch(batch_id, queue) == 1       # what the batch task does
    assert queue.sent[1:] == [("transcribe", two, "normal")]


@pytest.mark.parametrize("action", ["cancel", "retry"])
def test_actions_on_an_unknown_job_are_404(client, action):
    assert_json_error(client.post(f"/api/jobs/nope/{action}"), 404, "not found")


def test_cancel_of_a_completed_job_is_409(client, news):
    job_id = new_job(client, write_wav(news / "clip.wav"))
    complete(job_id, {"srt": b"x"})
    assert_json_error(client.post(f"/api/jobs/{job_id}/cancel"), 409, "completed")
    assert client.get(f"/api/status/{job_id}").get_json()["status"] == "completed"


def test_retry_of_a_cancelled_job_dispatches_it_again(client, news, queue):
    job_id = new_job(client, write_wav(news / "clip.wav"), priority="high")
    client.post(f"/api/jobs/{job_id}/cancel")
    resp = client.post(f"/api/jobs/{job_id}/retry")
    assert resp.status_code == 202
    body = resp.get_json()
    assert body["status"] == "pending" and body["error"] is None and body["result"] is None
    assert queue.sent[-1] == ("transcribe", job_id, "high")
    assert body["task_id"] == "task-2"                            # task-1 was the batch
    assert_json_error(client.post(f"/api/jobs/{job_id}/retry"), 409, "pending")
    assert len(queue.sent) == 2


def test_retry_of_a_failed_job_clears_its_error(client, news, queue):
    job_id = new_job(client, write_wav(news / "clip.wav"))
    record.transition(job_id, "processing", task_id="t", worker="w")
    record.transition(job_id, "failed", error="worker said no")
    assert client.get(f"/api/status/{job_id}").get_json()["error"] == "worker said no"
    body = client.post(f"/api/jobs/{job_id}/retry").get_json()
    assert body["status"] == "pending" and body["error"] is None and body["worker"] is None
    assert queue.sent[-1][:2] == ("transcribe", job_id)


@pytest.mark.parametrize("state", ["pending", "processing", "completed"])
def test_retry_is_409_unless_failed_or_cancelled(client, news, queue, state):
    job_id = new_job(client, write_wav(news / "clip.wav"))
    if state == "processing":
        record.transition(job_id, "processing", task_id="t", worker="w")
    elif state == "completed":
        complete(job_id, {"srt": b"x"})
    assert_json_error(client.post(f"/api/jobs/{job_id}/retry"), 409, state)
    assert client.get(f"/api/status/{job_id}").get_json()["status"] == state
    assert [kind for kind, _, _ in queue.sent] == ["batch"]


def test_delete_forgets_the_job_and_revokes_its_task(client, tmp_path, queue):
    wav = write_wav(tmp_path / "src.wav").read_bytes()
    job_id = client.post("/api/transcribe", content_type="multipart/form-data", data={
        "file": (io.BytesIO(wav), "clip.wav"), "burn_in": "false"}).get_json()["job_id"]
    resp = client.delete(f"/api/jobs/{job_id}")
    assert resp.status_code == 200
    assert resp.get_json() == {"job_id": job_id, "deleted": True, "outputs_deleted": [], "outputs_kept": []}
    assert queue.revoked == [("task-1", True)]
    assert_json_error(client.get(f"/api/status/{job_id}"), 404)
    assert jobs_total(client) == 0
    assert_json_error(client.delete(f"/api/jobs/{job_id}"), 404, "not found")


def test_delete_without_outputs_keeps_the_published_files(client, news):
    job_id = new_job(client, write_wav(news / "clip.wav"))
    manifest = complete(job_id, {"srt": b"srt", "vtt": b"WEBVTT\n"})
    body = client.delete(f"/api/jobs/{job_id}").get_json()
    assert body["deleted"] is True and body["outputs_deleted"] == []
    assert all(Path(e["path"]).exists() for e in manifest)


def test_delete_with_outputs_removes_only_the_manifest_files(client, news):
    job_id = new_job(client, write_wav(news / "clip.wav"))
    manifest = complete(job_id, {"srt": b"srt text", "vtt": b"WEBVTT\n", "json": b"{}"})
    out_dir = Path(manifest[0]["path"]).parent
    hand_made = out_dir / "clip.wav.notes.txt"
    hand_made.write_text("operator notes")
    other_run = out_dir / "clip.wav.2.srt"                    # same stem, not this job's
    other_run.write_text("another run")
    edited = Path(next(e["path"] for e in manifest if e["kind"] == "json"))
    edited.write_text('{"edited": true}')                     # changed after the job wrote it
    resp = client.delete(f"/api/jobs/{job_id}?outputs=true")
    assert resp.status_code == 200
    body = resp.get_json()
    assert sorted(body["outputs_deleted"]) == sorted(e["path"] for e in manifest if e["kind"] != "json")
    assert body["outputs_kept"] == [str(edited)]
    assert not any(Path(p).exists() for p in body["outputs_deleted"])
    assert hand_made.read_text() == "operator notes" and other_run.read_text() == "another run"
    assert edited.exists() and (news / "clip.wav").exists()
    assert_json_error(client.get(f"/api/status/{job_id}"), 404)


# --- downloads ----------------------------------------------------------------------------------------

def test_download_serves_the_manifest_file_as_attachment(client, news):
    job_id = new_job(client, write_wav(news / "clip.wav"))
    srt = b"1\n00:00:00,000 --> 00:00:01,500\nGOOD EVENING\n"
    complete(job_id, {"srt": srt, "vtt": b"WEBVTT\n"})
    resp = client.get(f"/api/jobs/{job_id}/outputs/srt")
    assert resp.status_code == 200 and resp.data == srt
    disposition = resp.headers["Content-Disposition"]
    assert disposition.startswith("attachment") and "clip.wav.srt" in disposition
    inline = client.get(f"/api/jobs/{job_id}/outputs/vtt?inline=1")
    assert inline.data == b"WEBVTT\n" and "attachment" not in inline.headers.get("Content-Disposition", "")
    assert inline.mimetype == "text/vtt"


@pytest.mark.parametrize("kind", ["exe", "SRT", "..", "manifest"])
def test_download_of_an_unknown_kind_is_404(client, news, kind):
    job_id = new_job(client, write_wav(news / "clip.wav"))
    complete(job_id, {"srt": b"x"})
    assert_json_error(client.get(f"/api/jobs/{job_id}/outputs/{kind}"), 404, "unknown output kind")


def test_download_of_a_missing_output_is_404(client, news):
    job_id = new_job(client, write_wav(news / "clip.wav"))
    assert_json_error(client.get(f"/api/jobs/{job_id}/outputs/srt"), 404, "no srt output")   # pending
    manifest = complete(job_id, {"srt": b"x"})
    assert_json_error(client.get(f"/api/jobs/{job_id}/outputs/video"), 404, "no video output")
    Path(manifest[0]["path"]).unlink()
    assert_json_error(client.get(f"/api/jobs/{job_id}/outputs/srt"), 404, "gone")
    assert_json_error(client.get("/api/jobs/nope/outputs/srt"), 404, "not found")


def test_download_of_an_output_changed_after_publishing_is_409(client, news):
    job_id = new_job(client, write_wav(news / "clip.wav"))
    manifest = complete(job_id, {"srt": b"original captions\n", "vtt": b"WEBVTT\n"})
    path = Path(manifest[0]["path"])
    path.write_bytes(b"someone else's captions, longer\n")
    assert_json_error(client.get(f"/api/jobs/{job_id}/outputs/srt"), 409, "changed")
    assert client.get(f"/api/jobs/{job_id}/outputs/vtt").status_code == 200


# --- queue and inspect --------------------------------------------------------------------------------

def _task(task_id: str, job_id: str, queue_name: str = "transcribe") -> dict:
    return {"id": task_id, "name": TRANSCRIBE_TASK, "args": [job_id], "time_start": 1700000000.0,
            "delivery_info": {"priority": 5, "routing_key": queue_name}}


def test_queue_joins_tasks_to_jobs_and_counts(client, news, queue):
    resp = submit(client, *[write_wav(news / f"{n}.wav") for n in ("run", "held", "later", "wait", "done")])
    run, held, later, wait, done = queued_ids(resp)
    record.transition(run, "processing", task_id="t-run", worker="w1@host", stage="transcribing", progress=0.3)
    complete(done, {"srt": b"x"})
    queue.replies = {
        "active": {"w1@host": [_task("t-run", run), _task("t-done", done)]},
        "reserved": {"w1@host": [_task("t-held", held)]},
        "scheduled": {"w2@host": [{"eta": "2030-01-01T00:00:00Z", "priority": 5,
                                   "request": _task("t-later", later)}]},
        "stats": {"w1@host": {"pool": {"max-concurrency": 2, "implementation": "prefork"},
                              "total": {TRANSCRIBE_TASK: 7}, "pid": 4321, "uptime": 60},
                  "w2@host": {"pool": {"max-concurrency": 1, "implementation": "solo"}, "total": {}}},
        "active_queues": {"w1@host": [{"name": "transcribe"}, {"name": "render"}], "w2@host": [{"name": "render"}]},
    }
    resp = client.get("/api/queue")
    assert resp.status_code == 200
    body = resp.get_json()
    (active,) = body["active"]                                  # the finished job's task is not shown
    assert active["job_id"] == run and active["task_id"] == "t-run" and active["worker"] == "w1@host"
    assert active["status"] == "processing" and active["stage"] == "transcribing"
    assert active["file"] == str(news / "run.wav") and active["queue"] == "transcribe"
    assert active["job"]["job_id"] == run
    assert [r["job_id"] for r in body["reserved"]] == [held]
    (scheduled,) = body["scheduled"]
    assert scheduled["job_id"] == later and scheduled["eta"] == "2030-01-01T00:00:00Z"
    assert [j["job_id"] for j in body["waiting"]] == [wait]     # pending, in no worker's hands
    workers = {w["name"]: w for w in body["workers"]}
    assert set(workers) == {"w1@host", "w2@host"}
    assert workers["w1@host"]["queues"] == ["transcribe", "render"]
    assert workers["w1@host"]["concurrency"] == 2 and workers["w1@host"]["processed"] == 7
    assert workers["w1@host"]["active"] == 1 and workers["w1@host"]["pid"] == 4321
    assert workers["w2@host"]["pool"] == "solo" and workers["w2@host"]["active"] == 0
    assert body["counts"] == {"pending": 3, "processing": 1, "completed": 1, "failed": 0, "cancelled": 0,
                              "total": 5}


def test_queue_without_workers_still_counts_jobs(client, news, queue):
    job_id = new_job(client, write_wav(news / "clip.wav"))
    body = client.get("/api/queue").get_json()                  # every inspect answered None
    assert body["active"] == body["reserved"] == body["scheduled"] == body["workers"] == []
    assert [j["job_id"] for j in body["waiting"]] == [job_id]
    assert body["counts"]["pending"] == 1 and body["counts"]["total"] == 1



@pytest.mark.parametrize("method", ["active", "stats", "active_queues"])
def test_inspect_returns_replies_and_the_celery_command(client, queue, method):
    queue.replies = {method: {"w1@host": [{"id": "t1"}]}}
    resp = client.get(f"/api/inspect/{method}")
    assert resp.status_code == 200
    assert resp.get_json() == {"method": method, "command": f"celery -A core.tasks inspect {method}",
                               "replies": queue.replies[method]}


def test_inspect_with_no_answer_gives_empty_replies(client):
    resp = client.get("/api/inspect/ping")
    assert resp.status_code == 200 and resp.get_json()["replies"] == {}


def test_health_without_a_broker_is_503_degraded_not_500(client):
    resp = client.get("/api/health")                            # the FakeQueue has no broker connection
    assert resp.status_code == 503, resp.get_json()
    body = resp.get_json()
    assert body["status"] == "degraded" and body["database"] == {"ok": True}
    assert body["redis"]["ok"] is False and body["workers"]["ok"] is False


def test_queue_snapshot_is_cached_but_counts_are_fresh(client, news, queue):
    queue.replies = {"stats": {"w1@host": {"pool": {}, "total": {}}}}
    first = client.get("/api/queue").get_json()
    assert [w["name"] for w in first["workers"]] == ["w1@host"]
    queue.replies = {"stats": {"w2@host": {"pool": {}, "total": {}}}}
    new_job(client, write_wav(news / "clip.wav"))
    second = client.get("/api/queue").get_json()
    assert [w["name"] for w in second["workers"]] == ["w1@host"]   # one inspect serves every request
    assert second["counts"]["pending"] == 1                        # ... but counts come from the store
    monitor.last_snapshot = None
    assert [w["name"] for w in client.get("/api/queue").get_json()["workers"]] == ["w2@host"]


@pytest.mark.parametrize("method", ["shutdown", "pool_restart", "revoke", "__class__", "enable_events"])
def test_inspect_of_an_unknown_method_is_404(client, queue, method):
    assert_json_error(client.get(f"/api/inspect/{method}"), 404, "unknown inspect method")


# --- roots, browse, durations -------------------------------------------------------------------------

def test_roots_lists_the_storage_roots(client, settings):
    body = client.get("/api/roots").get_json()
    root = Path(settings["STORAGE_ROOTS"][0]).resolve()
    assert {"name": root.name, "path": str(root)} in body["roots"]


@pytest.fixture
def folder(news):
    (news / "sub").mkdir()
    (news / "notes.txt").write_text("rundown")
    (news / ".hidden.mp4").write_bytes(b"x")
    return {"done": write_wav(news / "b-done.wav", 1.0), "pending": write_wav(news / "c-pending.wav", 3.0),
            "plain": write_wav(news / "a-plain.wav", 2.0)}


def test_browse_lists_a_folder_with_its_videos(client, news, folder):
    resp = client.get("/api/browse", query_string={"path": str(news)})
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["path"] == str(news) and body["parent"] == str(news.parent)
    assert [c["name"] for c in body["breadcrumbs"]] == [news.parent.name, "news"]
    assert [i["name"] for i in body["items"]] == ["sub", "a-plain.wav", "b-done.wav", "c-pending.wav",
                                                  "notes.txt"]                # folders first, no dot files
    items = {i["name"]: i for i in body["items"]}
    assert items["sub"]["is_dir"] and not items["sub"]["is_video"]
    assert items["a-plain.wav"]["is_video"] and items["a-plain.wav"]["path"] == str(folder["plain"])
    assert items["a-plain.wav"]["size"] == folder["plain"].stat().st_size
    assert not items["notes.txt"]["is_video"] and "captioned" not in items["notes.txt"]
    assert body["total"] == 5 and body["folders"] == 1 and body["videos"] == 3


def test_browse_marks_captioned_only_for_completed_jobs(client, news, folder):
    complete(new_job(client, folder["done"]), {"srt": b"x"})
    new_job(client, folder["pending"])
    cancelled = new_job(client, folder["plain"])
    client.post(f"/api/jobs/{cancelled}/cancel")
    items = {i["name"]: i for i in client.get("/api/browse", query_string={"path": str(news)}).get_json()["items"]}
    assert items["b-done.wav"]["captioned"] is True
    assert items["c-pending.wav"]["captioned"] is False
    assert items["a-plain.wav"]["captioned"] is False


def test_browse_sorts_filters_and_pages(client, news, folder):
    def names(**query):
        return [i["name"] for i in client.get("/api/browse", query_string={"path": str(news), **query})
                .get_json()["items"]]

    assert names(videos_only="1") == ["sub", "a-plain.wav", "b-done.wav", "c-pending.wav"]
    assert names(sort="size", order="desc", videos_only="true") == ["sub", "c-pending.wav", "a-plain.wav",
                                                                     "b-done.wav"]
    assert names(filter="DONE") == ["b-done.wav"]
    assert names(page_size="2") == ["sub", "a-plain.wav"]
    assert names(page_size="2", page="3") == ["notes.txt"]


def test_browse_at_a_root_has_no_parent(client, settings):
    root = Path(settings["STORAGE_ROOTS"][0])
    body = client.get("/api/browse", query_string={"path": str(root)}).get_json()
    assert body["parent"] is None and body["root"] == str(root.resolve())
    assert [i["name"] for i in body["items"]] == ["news"]


@pytest.mark.parametrize("query, words", [
    ({"sort": "colour"}, "sort"),
    ({"order": "up"}, "order"),
    ({"page": "0"}, "page"),
    ({"page": "x"}, "page"),
    ({"page_size": "0"}, "page_size"),
    ({"page_size": "1001"}, "page_size"),
    ({"path": ""}, "folder"),
    ({"path": "/etc"}, "outside the storage roots"),
    ({"path": "{news}/../../.."}, "outside the storage roots"),
    ({"path": "news"}, "absolute"),
    ({"path": "{news}/a-plain.wav"}, "not a folder"),
    ({"path": "{news}/missing"}, "not a folder"),
])
def test_browse_bad_arguments_are_400(client, news, folder, query, words):
    query = {"path": str(news), **query}
    query["path"] = query["path"].format(news=news)
    assert_json_error(client.get("/api/browse", query_string=query), 400, words)


def test_browse_does_not_follow_a_symlink_out_of_the_roots(client, news, tmp_path):
    (tmp_path / "private").mkdir()
    (news / "escape").symlink_to(tmp_path / "private", target_is_directory=True)
    assert_json_error(client.get("/api/browse", query_string={"path": str(news / "escape")}), 400,
                      "outside the storage roots")


def test_durations_probes_files_under_the_roots(client, news, tmp_path):
    clip = write_wav(news / "clip.wav", 2.5)
    (news / "notes.mp4").write_text("not media")
    outside = write_wav(tmp_path / "outside.wav")
    paths = [str(clip), str(news / "notes.mp4"), str(news / "missing.wav"), str(outside), 42]
    resp = client.post("/api/durations", json={"paths": paths})
    assert resp.status_code == 200
    assert resp.get_json()["durations"] == {str(clip): 2.5, str(news / "notes.mp4"): None,
                                            str(news / "missing.wav"): None, str(outside): None}


@pytest.mark.parametrize("send", [{"json": {"paths": "x"}}, {"json": ["x"]}, {"data": "x"}, {"json": {}}])
def test_durations_bad_body_is_400(client, send):
    assert_json_error(client.post("/api/durations", **send), 400, "paths")


def test_job_source_is_served_for_preview(client, news):
    clip = write_wav(news / "clip.wav")
    job_id = new_job(client, clip)
    resp = client.get(f"/api/jobs/{job_id}/source")
    assert resp.status_code == 200 and resp.data == clip.read_bytes()
    assert_json_error(client.get("/api/jobs/nope/source"), 404)


# --- security from create_app -------------------------------------------------------------------------

@pytest.fixture
def locked(settings, store, queue):
    from core.api import create_app

    return create_app({**settings, "API_TOKEN": "s3cret"}, queue=queue).test_client()


@pytest.mark.parametrize("method, url", [
    ("get", "/api/jobs"), ("get", "/api/roots"), ("get", "/api/queue"), ("get", "/api/status/x"),
    ("post", "/api/transcribe/batch"), ("post", "/api/jobs/x/cancel"), ("delete", "/api/jobs/x"),
    ("get", "/api/inspect/active"),
])
def test_api_needs_the_token_when_set(locked, queue, method, url):
    assert_json_error(getattr(locked, method)(url), 401, "token")
    assert_json_error(getattr(locked, method)(url, headers={"X-API-Token": "wrong"}), 401, "token")
    assert queue.sent == [] and queue.revoked == []


@pytest.mark.parametrize("headers", [{"X-API-Token": "s3cret"}, {"Authorization": "Bearer s3cret"}])
def test_api_accepts_the_token(locked, headers):
    resp = locked.get("/api/jobs", headers=headers)
    assert resp.status_code == 200 and resp.get_json()["total"] == 0


def test_page_redirects_to_login_until_the_token_is_given(locked):
    resp = locked.get("/")
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/login")
    assert locked.get("/login").status_code == 200
    assert locked.post("/login", data={"token": "wrong"}).status_code == 401
    assert locked.post("/login", data={"token": "s3cret"}).status_code == 302
    assert locked.get("/").status_code == 200
    assert locked.get("/api/jobs").status_code == 200           # the session carries the login


@pytest.mark.parametrize("headers", [{"Origin": "http://evil.example"},
                                     {"Referer": "http://evil.example/page.html"},
                                     {"Origin": "http://localhost.evil.example"},
                                     {"Origin": "null"}])
def test_cross_site_post_is_refused_even_with_the_token(locked, news, queue, headers):
    clip = write_wav(news / "clip.wav")
    resp = locked.post("/api/transcribe/batch", json={"paths": [str(clip)], "options": NO_BURN},
                       headers={"X-API-Token": "s3cret", **headers})
    assert_json_error(resp, 403, "cross-site")
    assert queue.sent == []
    assert locked.get("/api/jobs", headers={"X-API-Token": "s3cret"}).get_json()["total"] == 0


def test_same_origin_post_with_the_token_is_served(locked, news, queue):
    clip = write_wav(news / "clip.wav")
    resp = locked.post("/api/transcribe/batch", json={"paths": [str(clip)], "options": NO_BURN},
                       headers={"X-API-Token": "s3cret", "Origin": "http://localhost"})
    assert resp.status_code == 202 and len(queue.sent) == 1


def test_cross_site_post_is_refused_without_a_token_configured(client, news, queue):
    resp = client.post("/api/jobs/nope/cancel", headers={"Origin": "http://evil.example"})
    assert_json_error(resp, 403, "cross-site")


@pytest.mark.parametrize("url", ["/", "/api/jobs", "/api/status/nope", "/login"])
def test_security_headers_on_every_answer(client, url):
    resp = client.get(url)
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert resp.headers["Referrer-Policy"] == "same-origin"
    assert "default-src 'self'" in resp.headers["Content-Security-Policy"]


# --- error shape --------------------------------------------------------------------------------------

@pytest.mark.parametrize("method, url, kwargs, code", [
    ("get", "/api/no-such-route", {}, 404),
    ("get", "/api/transcribe/batch", {}, 405),
    ("put", "/api/jobs", {}, 405),
    ("post", "/api/transcribe/batch", {"data": "x"}, 415),
    ("post", "/api/transcribe/batch", {"json": {"paths": 1}}, 400),
    ("post", "/api/transcribe", {}, 400),
    ("get", "/api/status/nope", {}, 404),
    ("get", "/api/jobs?page=0", {}, 400),
    ("get", "/api/batches/nope", {}, 404),
    ("post", "/api/jobs/nope/cancel", {}, 404),
    ("delete", "/api/jobs/nope", {}, 404),
    ("get", "/api/jobs/nope/outputs/srt", {}, 404),
    ("get", "/api/inspect/nope", {}, 404),
    ("get", "/api/browse?path=/etc", {}, 400),
    ("post", "/api/durations", {"json": []}, 400),
])
def test_every_4xx_is_json_with_an_error(client, method, url, kwargs, code):
    assert_json_error(getattr(client, method)(url, **kwargs), code)


def test_conflict_answers_are_json_too(client, news):
    job_id = new_job(client, write_wav(news / "clip.wav"))
    assert_json_error(client.post(f"/api/jobs/{job_id}/retry"), 409)
    client.post(f"/api/jobs/{job_id}/cancel")
    assert_json_error(client.post(f"/api/jobs/{job_id}/cancel"), 409)


# --- the broker down ------------------------------------------------------------------------------------

def _broker_down(*_args, **_kwargs):
    raise RuntimeError("Retry limit exceeded while trying to reconnect to the Celery result store backend.")


def test_a_batch_sent_while_redis_is_down_is_a_503_and_leaves_no_job(client, news, queue, monkeypatch):
    """Found by a hostile test: a 500 after 19 s, and a pending job no worker would ever be sent (a retry of
    the request then answered "already queued" with that orphan)."""
    monkeypatch.setattr(queue, "enqueue_batch", _broker_down)
    clip = write_wav(news / "clip.wav")
    resp = client.post("/api/transcribe/batch", json={"paths": [str(clip)], "options": {"burn_in": False}})
    assert resp.status_code == 503 and "Redis" in resp.get_json()["error"]
    assert client.get("/api/jobs").get_json()["total"] == 0
    monkeypatch.undo()
    again = client.post("/api/transcribe/batch", json={"paths": [str(clip)], "options": {"burn_in": False}})
    assert again.status_code == 202 and "existing" not in again.get_json()["queued"][0]
    assert client.get("/api/jobs").get_json()["total"] == 1


def test_an_upload_while_redis_is_down_is_a_503_and_its_file_removed(client, tmp_path, settings, queue, monkeypatch):
    monkeypatch.setattr(queue, "enqueue_transcription", _broker_down)
    resp = client.post("/api/transcribe", content_type="multipart/form-data", data={
        "file": (io.BytesIO(write_wav(tmp_path / "src.wav").read_bytes()), "news.wav"), "burn_in": "false"})
    assert resp.status_code == 503 and "nothing was queued" in resp.get_json()["error"]
    assert client.get("/api/jobs").get_json()["total"] == 0
    assert upload_files(settings) == []
