"""Issue 13, submission: every bad request is a 400 with its reason (never a 500), options are checked
against what this installation can run, oversized sources are refused for burn-in, links to one file
are probed once, and probing never stalls an eventlet server.

Fast tier: the REST API through Flask's test client (temp SQLite store, FakeQueue); sources are silent
WAV files, and where a test needs a video of a given size, ``media.probe`` is replaced.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from core.jobs import record, submission
from core.jobs.errors import JobError
from core.services import media
from tests.fast import write_wav

ROOT = Path(__file__).resolve().parent.parent
NO_BURN = {"burn_in": False}
VOCAB_ENGLISH, VOCAB_MULTILINGUAL = 51864, 51865      # Whisper's vocabulary sizes (.en models have one less)


def submit(client, *paths, options=NO_BURN, **body):
    return client.post("/api/transcribe/batch", json={"paths": [str(p) for p in paths], "options": options,
                                                      **body})


def error_of(resp, code: int = 400) -> str:
    assert resp.status_code == code, (resp.status_code, resp.get_data(as_text=True)[:500])
    assert resp.is_json
    return resp.get_json()["error"]


def jobs_total(client) -> int:
    return client.get("/api/jobs").get_json()["total"]


def fake_video(monkeypatch, width: int, height: int, counter: list | None = None) -> None:
    """Make every probe describe a 10-second video of ``width`` x ``height`` with audio."""
    def probe(path, label=None):
        if counter is not None:
            counter.append(str(path))
        return media.MediaInfo(path=str(path), duration=10.0, has_audio=True, has_video=True, width=width,
                               height=height, fps=25.0, audio_codec="aac", video_codec="h264")
    monkeypatch.setattr(media, "probe", probe)


def model_dir(folder: Path, vocabulary: int = VOCAB_MULTILINGUAL, files=("model.bin", "config.json")) -> Path:
    """A directory that looks like a CTranslate2 Whisper model (no real weights)."""
    folder.mkdir(parents=True)
    for name in files:
        (folder / name).write_text("{}" if name.endswith(".json") else "x")
    (folder / "vocabulary.txt").write_text("t\n" * vocabulary)
    return folder


# --- 1. request fields of the wrong type: 400, never a 500 ---------------------------------------------

@pytest.mark.parametrize("priority", [["high"], {}, {"high": 1}, 1.5, True, [None], "high\x00"])
def test_priority_of_the_wrong_type_is_400(client, news, queue, priority):
    resp = submit(client, write_wav(news / "clip.wav"), priority=priority)
    assert "priority" in error_of(resp)
    assert queue.sent == [] and jobs_total(client) == 0


@pytest.mark.parametrize("options, word", [
    ({"model": 0}, "model"), ({"model": False}, "model"), ({"model": []}, "model"), ({"model": {}}, "model"),
    ({"language": 0}, "language"), ({"language": False}, "language"), ({"language": {}}, "language"),
    ({"language": ["en"]}, "language"), ({"burn_in": None}, "burn_in"), ({"burn_in": []}, "burn_in"),
    ({"rows": None}, "rows"), ({"rows": [2]}, "rows"), ({"rows": {"n": 2}}, "rows"), ({"rows": 2.5}, "rows"),
    ({"rows": 10 ** 30}, "rows"), ({"rows": -1}, "rows"),
])
def test_option_of_the_wrong_type_is_400(client, news, queue, options, word):
    resp = submit(client, write_wav(news / "clip.wav"), options={"burn_in": False, **options})
    assert word in error_of(resp)
    assert queue.sent == [] and jobs_total(client) == 0


@pytest.mark.parametrize("bad", ["\ud800", "\udfff", "caf\udce9", "\ud83d"],  # noqa: PT014 - 4 distinct surrogates
                         ids=["high-surrogate", "low-surrogate", "latin-1-byte", "half-an-emoji"])
def test_path_that_cannot_be_encoded_is_rejected_alone_with_its_reason(client, news, queue, bad):
    good = write_wav(news / "good.wav")
    bad_path = f"{news}/bad-{bad}.wav"
    resp = submit(client, good, bad_path, write_wav(news / "also-good.wav"))
    assert resp.status_code == 202, resp.get_data(as_text=True)[:500]
    body = resp.get_json()
    assert [q["path"] for q in body["queued"]] == [str(good), str(news / "also-good.wav")]
    (rejected,) = body["rejected"]
    assert rejected["path"] == bad_path
    assert bad_path.encode("utf-8", "backslashreplace").decode() in rejected["error"]     # shown escaped
    assert "UTF-8" in rejected["error"] or "encod" in rejected["error"]
    assert len(queue.sent) == 1 and jobs_total(client) == 2


def test_batch_of_only_unencodable_paths_is_400_with_each_reason(client, news, queue):
    resp = submit(client, f"{news}/\ud800.wav", f"{news}/\udcff.wav")
    assert "none of the paths" in error_of(resp)
    assert len(resp.get_json()["rejected"]) == 2
    assert queue.sent == []


@pytest.mark.parametrize("make_path, reason", [
    (lambda news: f"{news}/{'x' * 5000}.wav", "name too long"),
    (lambda news: f"{news}/{'d' * 300}/clip.wav", "name too long"),
    (lambda news: f"{write_wav(news / 'plain.wav')}/clip.wav", "not found"),
], ids=["long-name", "long-folder", "file-as-folder"])
def test_path_that_cannot_be_stat_ed_gets_its_own_reason(client, news, queue, make_path, reason):
    good = write_wav(news / "good.wav")
    bad = make_path(news)
    resp = submit(client, good, bad)
    assert resp.status_code == 202, resp.get_data(as_text=True)[:500]
    (rejected,) = resp.get_json()["rejected"]
    assert rejected["path"] == bad and reason in rejected["error"].lower()


def test_unexpected_value_error_of_one_path_rejects_only_that_path(client, news, monkeypatch):
    """Whatever a path's check raises (here a ValueError from the probe), it is that path's reason."""
    good, odd = write_wav(news / "good.wav"), write_wav(news / "odd.wav")
    real_probe = media.probe

    def probe(path, label=None):
        if Path(path).name == "odd.wav":
            raise ValueError("codec parameters out of range")
        return real_probe(path, label)

    monkeypatch.setattr(media, "probe", probe)
    body = submit(client, good, odd).get_json()
    assert [q["path"] for q in body["queued"]] == [str(good)]
    assert "codec parameters out of range" in body["rejected"][0]["error"]


# --- 2. model and language are what this installation can run ------------------------------------------

@pytest.mark.parametrize("options, words", [
    ({"model": "base", "language": "'; DROP TABLE jobs;--"}, ["language", "not a Whisper language code"]),
    ({"model": "base", "language": "xx"}, ["language", "xx"]),
    ({"model": "base", "language": "EN"}, ["language"]),
    ({"model": "base", "language": "english"}, ["language"]),
    ({"model": "tiny.en", "language": "fr"}, ["tiny.en", "English-only", '"en"', '"auto"']),
    ({"language": "de"}, ["tiny.en", "English-only"]),                      # the default model is tiny.en
    ({"model": "large-v3"}, ["large-v3", "not available", "tiny.en", "base"]),
    ({"model": "small.en", "language": "en"}, ["small.en", "not available"]),
    ({"model": "../../models/evil"}, ["model", "not available"]),
    ({"model": "/nonexistent/whisper-model"}, ["model.bin"]),
    ({"model": "/etc"}, ["model.bin"]),
    ({"model": "/" + "m" * 5000}, ["model.bin"]),
    ({"model": "/models/\ud800"}, ["model.bin", "\\ud800"]),
    ({"model": "base", "language": "\udc80"}, ["language", "\\udc80"]),
], ids=["sql", "unknown-code", "upper-case", "language-name", "en-model-fr", "default-model-de", "large-v3",
        "small.en", "relative", "missing-dir", "not-a-model-dir", "name-too-long", "surrogate-model",
        "surrogate-language"])
def test_model_or_language_this_installation_cannot_run_is_400(client, news, queue, options, words):
    resp = submit(client, write_wav(news / "clip.wav"), options={"burn_in": False, **options})
    error = error_of(resp)
    for word in words:
        assert word in error, error
    assert queue.sent == [] and jobs_total(client) == 0


@pytest.mark.parametrize("options", [
    {"model": "tiny.en", "language": "en"}, {"model": "tiny.en", "language": "auto"},
    {"model": "base", "language": "en"}, {"model": "base", "language": "de"}, {"model": "base", "language": "yue"},
    {"model": "base", "language": "auto"}, {"model": "base"}, {}, {"model": "", "language": ""},
])
def test_bundled_models_with_their_languages_are_accepted(client, news, options):
    resp = submit(client, write_wav(news / "clip.wav"), options={"burn_in": False, **options})
    assert resp.status_code == 202, resp.get_json()
    status = client.get(f"/api/status/{resp.get_json()['queued'][0]['job_id']}").get_json()
    assert status["options"]["model"] == (options.get("model") or "tiny.en")
    assert status["options"]["language"] == (options.get("language") or "en")


def test_configured_model_name_is_accepted(settings, store, queue, news):
    settings = {**settings, "WHISPER_MODEL": "small", "LANGUAGE": "auto"}
    clip = str(write_wav(news / "clip.wav"))
    result = submission.submit_batch([clip], {"burn_in": False, "language": "fr"}, settings, queue)
    assert len(result["queued"]) == 1
    with pytest.raises(JobError, match="not available"):
        submission.submit_batch([clip], {"burn_in": False, "model": "medium"}, settings, queue, force=True)


def test_english_only_model_takes_en_when_the_configured_language_is_another(settings, store, queue, news):
    """config.example.py: English-only models always use "en" (only an explicit language is refused)."""
    settings = {**settings, "LANGUAGE": "fr"}
    result = submission.submit_batch([str(write_wav(news / "clip.wav"))], {"burn_in": False}, settings, queue)
    job_id = result["queued"][0]["job_id"]
    from core.jobs import queries
    assert queries.get(job_id).options["language"] == "en"


def test_model_directory_is_accepted_with_the_languages_it_knows(client, news, tmp_path):
    clip = write_wav(news / "clip.wav")
    multi = model_dir(tmp_path / "models" / "whisper-small")
    english = model_dir(tmp_path / "models" / "whisper-small.en-ct2", VOCAB_ENGLISH)
    assert submit(client, clip, options={"burn_in": False, "model": str(multi), "language": "fr"}).status_code == 202
    assert submit(client, clip, options={"burn_in": False, "model": str(english), "language": "auto"},
                  force=True).status_code == 202
    error = error_of(submit(client, clip, options={"burn_in": False, "model": str(english), "language": "fr"},
                            force=True))
    assert "English-only" in error


@pytest.mark.parametrize("files", [("config.json",), ("model.bin",)], ids=["no-model.bin", "no-config.json"])
def test_model_directory_without_its_files_is_400(client, news, tmp_path, files):
    folder = model_dir(tmp_path / "half-model", files=files)
    error = error_of(submit(client, write_wav(news / "clip.wav"), options={"burn_in": False, "model": str(folder)}))
    assert "model.bin and config.json" in error


def test_upload_with_a_model_that_is_not_available_is_400_and_removed(client, tmp_path, settings, queue):
    wav = write_wav(tmp_path / "src.wav").read_bytes()
    resp = client.post("/api/transcribe", content_type="multipart/form-data", data={
        "file": (io.BytesIO(wav), "clip.wav"), "burn_in": "false", "model": "large-v3"})
    assert "not available" in error_of(resp)
    folder = Path(settings["UPLOAD_DIR"])
    assert not [p for p in folder.rglob("*") if p.is_file()] and queue.sent == []


# --- 3. the captioned rendition has a size limit ---------------------------------------------------------

def test_source_over_max_render_pixels_is_refused_for_burn_in_with_the_reason(client, news, queue, monkeypatch):
    fake_video(monkeypatch, 10000, 10000)
    clip = write_wav(news / "huge.mp4")
    resp = submit(client, clip, options={"burn_in": True})
    error_of(resp)
    (rejected,) = resp.get_json()["rejected"]
    for words in ("10000×10000", "MAX_RENDER_PIXELS", "8,847,360", "burn_in false"):
        assert words in rejected["error"], rejected["error"]
    assert queue.sent == [] and jobs_total(client) == 0


def test_source_over_max_render_pixels_is_accepted_without_burn_in(client, news, monkeypatch):
    fake_video(monkeypatch, 10000, 10000)
    resp = submit(client, write_wav(news / "huge.mp4"), options={"burn_in": False})
    assert resp.status_code == 202 and len(resp.get_json()["queued"]) == 1


@pytest.mark.parametrize("width, height, accepted", [(4096, 2160, True), (3840, 2304, True), (4097, 2160, False),
                                                     (2160, 4097, False), (1920, 1080, True)])
def test_render_limit_is_a_pixel_count(client, news, monkeypatch, width, height, accepted):
    fake_video(monkeypatch, width, height)
    resp = submit(client, write_wav(news / "clip.mp4"), options={"burn_in": True})
    assert (resp.status_code == 202) is accepted, resp.get_json()


def test_max_render_pixels_setting_is_honoured(settings, store, queue, news, monkeypatch):
    fake_video(monkeypatch, 1280, 720)
    clip = str(write_wav(news / "clip.mp4"))
    small = {**settings, "MAX_RENDER_PIXELS": 640 * 360}
    with pytest.raises(JobError) as caught:
        submission.submit_batch([clip], {"burn_in": True}, small, queue)
    assert "1280×720" in caught.value.rejected[0]["error"]
    assert len(submission.submit_batch([clip], {"burn_in": True}, settings, queue)["queued"]) == 1


def test_oversized_upload_for_burn_in_is_400_and_removed(client, tmp_path, settings, queue, monkeypatch):
    fake_video(monkeypatch, 10000, 10000)
    resp = client.post("/api/transcribe", content_type="multipart/form-data", data={
        "file": (io.BytesIO(write_wav(tmp_path / "src.wav").read_bytes()), "huge.mp4"), "burn_in": "true"})
    assert "MAX_RENDER_PIXELS" in error_of(resp)
    folder = Path(settings["UPLOAD_DIR"])
    assert not [p for p in folder.rglob("*") if p.is_file()] and queue.sent == []


# --- 5. a big batch is cheap: links to one file are probed once -----------------------------------------

def test_links_to_one_file_are_probed_once(client, news, monkeypatch):
    calls: list[str] = []
    fake_video(monkeypatch, 640, 360, calls)
    clip = write_wav(news / "long.mp4")
    hard = [news / f"hard-{i}.mp4" for i in range(20)]
    soft = [news / f"soft-{i}.mp4" for i in range(20)]
    for h, s in zip(hard, soft):
        os.link(clip, h)
        s.symlink_to(clip)
    resp = submit(client, clip, *hard, *soft, options={"burn_in": True})
    body = resp.get_json()
    assert resp.status_code == 202 and len(body["queued"]) == 21          # the file and its 20 hard links
    assert all("same file as an earlier path" in r["error"] for r in body["rejected"]) and len(body["rejected"]) == 20
    assert len(calls) == 1, calls


def test_a_changed_file_is_probed_again(client, news, monkeypatch):
    calls: list[str] = []
    fake_video(monkeypatch, 640, 360, calls)
    clip = write_wav(news / "clip.mp4")
    assert submit(client, clip, options={"burn_in": True}).status_code == 202
    write_wav(clip, 3.0)                                                    # new size and mtime
    assert submit(client, clip, options={"burn_in": True}, force=True).status_code == 202
    assert len(calls) == 2


def test_a_big_batch_is_inserted_in_chunks_and_a_failed_chunk_leaves_no_job(client, news, queue, monkeypatch):
    """Jobs go in CREATE_CHUNK at a time (the server serves other requests in between); if a chunk fails,
    the chunks before it are removed: no job is left pending without a task."""
    clip = write_wav(news / "clip.wav", 0.5)
    paths = [clip] + [news / f"name-{i}.wav" for i in range(submission.CREATE_CHUNK + 50)]
    for path in paths[1:]:
        os.link(clip, path)
    real_create, chunks = record.create, []

    def create(jobs):
        chunks.append(len(jobs))
        if len(chunks) == 2:
            raise RuntimeError("database went away")
        real_create(jobs)

    monkeypatch.setattr(record, "create", create)
    resp = submit(client, *paths)
    assert resp.status_code == 500 and resp.is_json
    assert chunks == [submission.CREATE_CHUNK, 51]
    assert jobs_total(client) == 0 and queue.sent == []
    monkeypatch.setattr(record, "create", real_create)
    body = submit(client, *paths).get_json()
    assert len(body["queued"]) == len(paths) and jobs_total(client) == len(paths) and len(queue.sent) == 1


EVENTLET_PROBE = textwrap.dedent("""
    import eventlet
    eventlet.monkey_patch()
    import json, sys, time
    from pathlib import Path
    from eventlet.patcher import original
    sys.path.insert(0, sys.argv[1])
    from core import db, events
    from core.config import load_settings
    from core.jobs import record, submission
    from core.services import media
    from tests.fast import FakeQueue, write_wav

    tmp = Path(sys.argv[2])
    news = tmp / "mnt" / "news"
    settings = load_settings({"DATABASE_URL": f"sqlite:///{tmp / 'jobs.db'}", "STORAGE_ROOTS": str(tmp / "mnt"),
                              "OUTPUT_DIR": str(tmp / "out"), "UPLOAD_DIR": str(tmp / "up"),
                              "CAPTION_CONFIG": str(tmp / "none.py"), "REDIS_URL": "redis://127.0.0.1:1/0"})
    db.configure(settings)
    events.configure(sink=lambda event, data: None)
    paths = [str(write_wav(news / f"clip-{i}.wav", 0.5)) for i in range(8)]
    blocking_sleep = original("time").sleep

    def probe(path, label=None):          # a C call that holds the thread, as PyAV's open of a 2-hour file does
        blocking_sleep(0.25)
        return media.MediaInfo(path=str(path), duration=0.5, has_audio=True, has_video=False)

    media.probe = probe
    warm_up = str(write_wav(news / "warm-up.wav", 0.5))       # first-use costs (imports, SQL compilation) apart
    submission.submit_batch([warm_up], {"burn_in": False}, settings, FakeQueue(settings))
    gaps, done = [], False

    def ticker():
        last = time.monotonic()
        while not done:
            eventlet.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    eventlet.spawn(ticker)
    eventlet.sleep(0.05)
    started = time.monotonic()
    result = submission.submit_batch(paths, {"burn_in": False}, settings, FakeQueue(settings))
    elapsed = time.monotonic() - started
    done = True
    eventlet.sleep(0.05)
    print(json.dumps({"queued": len(result["queued"]), "worst_gap": max(gaps), "elapsed": elapsed}))
""")


def test_probing_under_eventlet_does_not_stall_the_server(tmp_path):
    """Under eventlet, threads are green: a probe that holds its thread must run in a real OS thread, or every
    other request waits (issue 13: GET /api/roots waited 84 s behind a 1,000-path batch)."""
    script = tmp_path / "probe_under_eventlet.py"
    script.write_text(EVENTLET_PROBE)
    proc = subprocess.run([sys.executable, str(script), str(ROOT), str(tmp_path)], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    assert figures["queued"] == 8
    assert figures["worst_gap"] < 0.15, figures                 # the hub kept turning while 8 probes ran
    assert figures["elapsed"] < 1.5, figures                    # and they ran side by side (8 x 0.25 s = 2 s in a row)
