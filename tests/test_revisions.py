"""Caption review (issue 14): revisions of a job's captions through the REST API, and their renders.

Fast tier: a temp SQLite store, the FakeQueue, real caption files written by the real writers from a
made-up transcript; renders are simulated through the worker's calls (no FFmpeg, model or Redis).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from pycaption import SCCReader

from core.db import Job, new_id, session_scope, utcnow
from core.jobs import actions, history, queries, reaper, record, revisions, worker
from core.jobs.states import CANCELLED, COMPLETED, FAILED, PENDING, PROCESSING
from core.services import artifacts, storage, writers
from core.services import captions as captions_mod
from core.services.transcription import Segment, Transcript, Word

DURATION = 12.0
SENTENCES = [  # (text, start, end, probability of each word, or {word: probability})
    ("Good evening and welcome to the news.", 0.5, 2.6, {}),
    ("The mayor Smyth opened the new bridge today.", 3.6, 6.2, {"Smyth": 0.21}),
    ("Rain is expected tomorrow in the north.", 7.4, 9.6, {}),
]


def transcript() -> Transcript:
    segments = []
    for text, start, end, unsure in SENTENCES:
        words = text.split()
        step = (end - start) / len(words)
        segments.append(Segment(start, end, text, [
            Word(w, round(start + i * step, 3), round(start + (i + 1) * step - 0.05, 3), unsure.get(w.strip("."), 0.93))
            for i, w in enumerate(words)]))
    return Transcript("en", DURATION, segments, "test")


def add_job(settings, name: str = "clip.mp4", burn_in: bool = True, options: dict | None = None) -> str:
    source = Path(settings["STORAGE_ROOTS"][0]) / "news" / name
    job_id = new_id()
    with session_scope() as s:
        s.add(Job(id=job_id, source=str(source), output_dir=str(storage.output_dir_for(source, settings)),
                  options={"burn_in": burn_in, "model": "tiny.en", "language": "en", "rows": 2, **(options or {})},
                  priority="normal", media_duration=DURATION, status=PENDING, progress=0.0, attempts=0,
                  created_at=utcnow()))
    return job_id


def publish(job_id: str, kinds: list[str], texts: dict[str, str], run: int | None = None, revision: int = 1):
    job = queries.get(job_id)
    with artifacts.writing(Path(job.output_dir), Path(job.source).name, job.id) as staging:
        for kind in kinds:
            staging.path(kind).write_text(texts.get(kind, f"{kind} of {job_id} revision {revision}\n"))
        return staging.publish(kinds, run=run, revision=revision)


def caption(job_id: str, render: bool = True, **writer_options) -> str:
    """Run the job as the worker does: claim, publish the machine's caption files, (render,) complete."""
    job = queries.get(job_id)
    assert worker.claim(job_id, "task-transcribe", "w1@host") is not None
    t = transcript()
    caps = captions_mod.build_captions(t.words, 2, DURATION)
    texts = writers.render_sidecars(t, caps, source=job.source, model="tiny.en", media={"duration": DURATION},
                                    **writer_options)
    run, manifest = publish(job_id, list(artifacts.SIDECAR_KINDS), texts)
    result = {"duration": DURATION, "language": "en", "text": t.text, "segments": t.as_dict()["segments"],
              "captions": len(caps), "run": run, "timings": {"transcribing": 1.0}}
    burn_in = job.options["burn_in"]
    assert worker.captions_published(job_id, result, manifest, render_follows=burn_in)
    if burn_in and render:
        worker.hand_to_render(job_id, "task-render")
        render_now(job_id, "task-render")
    return job_id


def render_now(job_id: str, task_id: str) -> bool:
    """A render task: claim, publish the video of the revision the job waits for, complete."""
    job = worker.claim_render(job_id, task_id, "w1@host")
    assert job is not None
    revision, _, run = worker.render_input(job.result)
    _, manifest = publish(job_id, ["video"], {"video": f"video of revision {revision}\n"}, run=run, revision=revision)
    done = worker.video_published(job_id, {"render": {"video": "test"}, "timings": {"rendering": 2.0}}, manifest,
                                  revision)
    if not done:
        artifacts.remove(manifest)
    return done


@pytest.fixture
def job(settings, store, news):
    return caption(add_job(settings))


@pytest.fixture
def sidecar_job(settings, store, news):
    return caption(add_job(settings, "sidecars.mp4", burn_in=False))


def get(client, job_id: str, revision: int | None = None) -> dict:
    resp = client.get(f"/api/jobs/{job_id}/captions" + (f"?revision={revision}" if revision else ""))
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def edit(body: dict) -> list[dict]:
    return [{"start": c["start"], "end": c["end"], "lines": list(c["lines"])} for c in body["captions"]]


def put(client, job_id: str, captions: list[dict], base: int, note: str = ""):
    return client.put(f"/api/jobs/{job_id}/captions", json={"base_revision": base, "captions": captions,
                                                              "note": note})


def download(client, job_id: str, kind: str, revision: int | None = None):
    return client.get(f"/api/jobs/{job_id}/outputs/{kind}" + (f"?revision={revision}" if revision else ""))


def scc_text(data: bytes) -> list[str]:
    """What a 608 decoder shows, caption by caption (pycaption's SCC reader)."""
    caption_set = SCCReader().read(data.decode("utf-8"))
    return [" ".join(node.content for node in cap.nodes if node.type_ == 1)
            for cap in caption_set.get_captions(caption_set.get_languages()[0])]


def files_on_disk(job_id: str) -> list[Path]:
    job = queries.get(job_id)
    return sorted(p for p in Path(job.output_dir).iterdir() if not p.name.startswith("."))


def with_word(captions: list[dict], old: str, new: str) -> tuple[list[dict], int]:
    for i, cap in enumerate(captions):
        if any(old in line for line in cap["lines"]):
            cap["lines"] = [line.replace(old, new) for line in cap["lines"]]
            return captions, i
    raise AssertionError(f"{old!r} is in no caption")


# --- reading a revision -----------------------------------------------------------------------------------

def test_revision_one_is_the_machines_captions_with_words_rules_and_no_problems(client, job):
    body = get(client, job)
    assert (body["revision"], body["latest"], body["status"], body["burn_in"]) == (1, 1, COMPLETED, True)
    assert body["rules"]["columns"] == 32 and body["rules"]["rows"] == 2
    assert (body["rules"]["min_duration"], body["rules"]["max_duration"]) == (1.0, 6.0)
    assert body["violations"] == []
    text = " ".join(" ".join(c["lines"]) for c in body["captions"])
    assert "Smyth" in text and "welcome" in text
    words = [w for c in body["captions"] for w in c["words"]]
    assert {"text", "start", "end", "probability"} <= set(words[0])
    assert [w["probability"] for w in words if w["text"] == "Smyth"] == [0.21]
    for cap in body["captions"]:   # each caption's words lie within it
        assert all(cap["start"] - 0.01 <= (w["start"] + w["end"]) / 2 <= cap["end"] for w in cap["words"])


def test_unknown_job_revision_and_a_job_without_captions(client, settings, job):
    assert client.get("/api/jobs/nope/captions").status_code == 404
    assert client.get(f"/api/jobs/{job}/captions?revision=7").status_code == 404
    assert client.get(f"/api/jobs/{job}/captions?revision=0").status_code == 400
    pending = add_job(settings, "waiting.mp4")
    assert client.get(f"/api/jobs/{pending}/captions").status_code == 404
    resp = put(client, pending, [], 1)
    assert resp.status_code == 409 and "no captions to edit yet" in resp.get_json()["error"]


def test_an_edit_is_refused_while_the_job_is_transcribing(client, settings, store, news):
    job_id = add_job(settings, "busy.mp4")
    worker.claim(job_id, "t1", "w1")
    worker.report_progress(job_id, "transcribing", 0.5)
    resp = put(client, job_id, [{"start": 1, "end": 2, "lines": ["x"]}], 1)
    assert resp.status_code == 409 and "transcribing" in resp.get_json()["error"]


# --- saving a revision ------------------------------------------------------------------------------------

def test_a_save_publishes_every_caption_file_of_revision_two_and_keeps_revision_one(client, job, queue, published):
    before = {kind: download(client, job, kind).data for kind in ("scc", "srt", "vtt", "dfxp", "json", "video")}
    captions, index = with_word(edit(get(client, job)), "Smyth", "Smith")
    published.clear()
    resp = put(client, job, captions, 1, note="mayor's name")
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert (body["revision"], body["latest"], body["render_queued"]) == (2, 2, True)
    assert body["timings"]["total_ms"] > 0
    names = sorted(Path(p).name for p in body["outputs"].values())
    assert names == ["clip.mp4.r2.dfxp", "clip.mp4.r2.json", "clip.mp4.r2.scc", "clip.mp4.r2.srt", "clip.mp4.r2.vtt"]
    assert any("Smith" in line for line in scc_text(download(client, job, "scc").data))
    assert not any("Smyth" in line for line in scc_text(download(client, job, "scc").data))
    assert "Smith" in download(client, job, "srt").get_data(as_text=True)
    assert "Smith" in download(client, job, "vtt").get_data(as_text=True)
    assert "Smith" in download(client, job, "dfxp").get_data(as_text=True)
    data = json.loads(download(client, job, "json").data)
    assert data["revision"]["number"] == 2 and data["revision"]["based_on"] == 1 and data["revision"]["author"] == "local"
    assert data["segments"] and data["source"].endswith("clip.mp4")     # the transcript and details carried over
    for kind, content in before.items():     # revision 1 downloads unchanged, byte for byte
        assert download(client, job, kind, revision=1).data == content
    again = get(client, job)
    assert again["revision"] == 2 and "Smith" in " ".join(again["captions"][index]["lines"])
    assert "Smyth" in " ".join(get(client, job, 1)["captions"][index]["lines"])
    assert any(e == "job_update" for e, _ in published)


def test_downloads_by_revision(client, job):
    captions, _ = with_word(edit(get(client, job)), "Smyth", "Smith")
    put(client, job, captions, 1)
    assert "r2" in download(client, job, "scc").headers["Content-Disposition"]
    assert "r2" not in download(client, job, "scc", revision=1).headers["Content-Disposition"]
    assert download(client, job, "scc", revision=2).data == download(client, job, "scc").data
    assert download(client, job, "scc", revision=3).status_code == 404
    assert client.get(f"/api/jobs/{job}/outputs/scc?revision=x").status_code == 400
    assert download(client, job, "video").status_code == 404          # revision 2 is not rendered yet
    assert download(client, job, "video", revision=1).status_code == 200


def test_the_revisions_list(client, job):
    captions, _ = with_word(edit(get(client, job)), "Smyth", "Smith")
    put(client, job, captions, 1, note="name")
    body = client.get(f"/api/jobs/{job}/captions/revisions").get_json()
    assert body["latest"] == 2 and body["rendering"] == 2
    first, second = body["revisions"]
    assert (first["number"], first["author"], first["latest"]) == (1, "machine", False)
    assert (second["number"], second["author"], second["note"], second["based_on"], second["latest"]) == \
        (2, "local", "name", 1, True)
    assert second["files"]["scc"] == "clip.mp4.r2.scc" and "video" in first["files"]


def test_a_stale_base_revision_is_refused_with_the_latest(client, job, settings):
    captions = edit(get(client, job))
    assert put(client, job, captions, 1).status_code == 200
    count = len(files_on_disk(job))
    resp = put(client, job, captions, 1)
    assert resp.status_code == 409
    body = resp.get_json()
    assert body["latest"] == 2 and body["latest_revision"]["number"] == 2 and "revision 1 is not the latest" in \
        body["error"]
    assert len(files_on_disk(job)) == count and get(client, job)["latest"] == 2


def test_revert_makes_a_new_revision_equal_to_an_old_one(client, job):
    original = edit(get(client, job))
    captions, _ = with_word(edit(get(client, job)), "Smyth", "Smith")
    put(client, job, captions, 1)
    resp = client.post(f"/api/jobs/{job}/captions/revert", json={"revision": 1})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["revision"] == 3
    assert edit(get(client, job)) == original and get(client, job)["revision"] == 3
    listed = client.get(f"/api/jobs/{job}/captions/revisions").get_json()["revisions"]
    assert listed[2]["reverted_from"] == 1 and listed[2]["note"] == "revert to revision 1"
    assert scc_text(download(client, job, "scc").data) == scc_text(download(client, job, "scc", revision=1).data)
    assert client.post(f"/api/jobs/{job}/captions/revert", json={"revision": 9}).status_code == 404
    assert client.post(f"/api/jobs/{job}/captions/revert", json={"revision": 1, "base_revision": 2}).status_code == 409


# --- the rules: each error refuses the edit, each warning is reported --------------------------------------

def one(captions: list[dict], index: int, **change) -> list[dict]:
    captions[index].update(change)
    return captions


ERRORS = {
    "columns": lambda c: one(c, 0, lines=["x" * 33]),
    "columns after 608 mapping": lambda c: one(c, 0, lines=["x" * 31 + "\u2014"]),      # an em dash is "--"
    "rows": lambda c: one(c, 1, lines=["one", "two", "three"]),
    "overlap": lambda c: one(c, 1, start=c[0]["end"] - 0.5),
    "negative": lambda c: one(c, 0, start=-0.5),
    "past_end": lambda c: one(c, len(c) - 1, end=DURATION + 1),
    "order": lambda c: one(c, 0, end=c[0]["start"] - 0.1),
    "empty": lambda c: one(c, 1, lines=["   ", ""]),
}
RULE_OF = {"columns after 608 mapping": "columns"}
INDEX_OF = {"columns": 0, "columns after 608 mapping": 0, "rows": 1, "overlap": 1, "negative": 0, "order": 0,
            "empty": 1}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_each_rule_refuses_the_edit_with_the_caption_and_rule(client, job, case):
    captions = ERRORS[case](edit(get(client, job)))
    count = len(files_on_disk(job))
    resp = put(client, job, captions, 1)
    assert resp.status_code == 400, resp.get_json()
    body = resp.get_json()
    rule = RULE_OF.get(case, case)
    index = INDEX_OF.get(case, len(captions) - 1)
    assert {"index": index, "rule": rule} in [{"index": v["index"], "rule": v["rule"]} for v in body["violations"]]
    assert all(v["message"] for v in body["violations"])
    assert "nothing was saved" in body["error"]
    assert len(files_on_disk(job)) == count and get(client, job)["latest"] == 1


def test_a_wide_row_is_counted_after_608_mapping_and_accented_letters_are_kept(client, job):
    captions = one(edit(get(client, job)), 0, lines=["Caf\u00e9 \u2014 \u201cquoted\u201d"])
    resp = put(client, job, captions, 1)
    assert resp.status_code == 200
    assert get(client, job)["captions"][0]["lines"] == ['Caf\u00e9 -- "quoted"']


WARNINGS = {
    "min_duration": lambda c: one(c, 0, end=c[0]["start"] + 0.5, lines=["Good evening."]),
    "max_duration": lambda c: one(c[:1], 0, end=c[0]["start"] + 6.5),
    "reading_rate": lambda c: one(c, 0, end=c[0]["start"] + 1.0, lines=["Good evening and welcome to all", "of you"]),
    "gap_frames": lambda c: one(c, 0, end=round(c[1]["start"] - 1 / 29.97, 3)),
}
WARNING_INDEX = {"min_duration": 0, "max_duration": 0, "reading_rate": 0, "gap_frames": 0}


@pytest.mark.parametrize("rule", sorted(WARNINGS))
def test_each_warning_is_returned_and_the_edit_is_saved(client, job, rule):
    captions = WARNINGS[rule](edit(get(client, job)))
    resp = put(client, job, captions, 1)
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["revision"] == 2
    found = [w for w in body["warnings"] if w["rule"] == rule]
    assert found and found[0]["index"] == WARNING_INDEX[rule] and found[0]["message"]
    assert [w["rule"] for w in get(client, job)["warnings"]].count(rule) == len(found)


def test_the_rules_come_from_the_jobs_qc_profile(client, settings, store, news):
    netflix = caption(add_job(settings, "n.mp4", options={"qc_profile": "netflix-like"}))
    rules = get(client, netflix)["rules"]
    assert (rules["profile"], rules["min_duration"], rules["max_duration"], rules["max_cps"]) == \
        ("netflix-like", 5 / 6, 7.0, 17.0)
    dcmp = caption(add_job(settings, "d.mp4", options={"qc_profile": "dcmp", "rows": 4}))
    assert get(client, dcmp)["rules"]["rows"] == 2            # DCMP allows two rows whatever the job's setting


@pytest.mark.parametrize(("body", "code", "words"), [
    ({"base_revision": 1}, 400, "captions must be a list"),
    ({"base_revision": 1, "captions": [{"start": "1", "end": 2, "lines": ["a"]}]}, 400, "start must be a number"),
    ({"base_revision": 1, "captions": [{"start": 1, "end": 2, "lines": "a"}]}, 400, "lines must be a list"),
    ({"base_revision": 1, "captions": [3]}, 400, "must be an object"),
    ({"base_revision": True, "captions": []}, 400, "base_revision"),
    ({"captions": []}, 400, "base_revision"),
    ({"base_revision": 1, "captions": [], "note": "x" * 501}, 400, "note"),
])
def test_malformed_edits_get_a_400_with_the_reason(client, job, body, code, words):
    resp = client.put(f"/api/jobs/{job}/captions", json=body)
    assert resp.status_code == code and words in resp.get_json()["error"]


def test_a_body_that_is_not_json_gets_a_415(client, job):
    assert client.put(f"/api/jobs/{job}/captions", data="x").status_code == 415


# --- the re-render ----------------------------------------------------------------------------------------

def test_a_save_with_burn_in_queues_only_a_render_and_the_job_shows_rendering_revision_n(client, job, queue,
                                                                                          published):
    captions, _ = with_word(edit(get(client, job)), "Smyth", "Smith")
    published.clear()
    sent = len(queue.sent)
    put(client, job, captions, 1)
    assert [kind for kind, *_ in queue.sent[sent:]] == ["render"]
    status = client.get(f"/api/status/{job}").get_json()
    assert (status["status"], status["stage"], status["stage_label"]) == (PROCESSING, "rendering",
                                                                          "rendering revision 2")
    assert status["task_id"] == f"task-{len(queue.sent)}" and status["result"]["revision"] == 2
    assert "video" not in status["result"]["outputs"]
    assert [d["stage_label"] for e, d in published if e == "job_update"][-1] == "rendering revision 2"
    assert render_now(job, status["task_id"])
    done = client.get(f"/api/status/{job}").get_json()
    assert (done["status"], done["stage_label"]) == (COMPLETED, None)
    assert Path(done["result"]["outputs"]["video"]).name == "clip.mp4.r2.captioned.mp4"
    assert download(client, job, "video").data == b"video of revision 2\n"
    assert download(client, job, "video", revision=1).data == b"video of revision 1\n"
    revisions = client.get(f"/api/jobs/{job}/captions/revisions").get_json()
    assert revisions["rendering"] is None and revisions["revisions"][1]["render_seconds"] == 2.0


def test_without_burn_in_a_save_leaves_the_job_completed_and_queues_nothing(client, sidecar_job, queue, published):
    before = queries.get(sidecar_job)
    sent = len(queue.sent)
    published.clear()
    resp = put(client, sidecar_job, edit(get(client, sidecar_job)), 1)
    assert resp.status_code == 200 and resp.get_json()["render_queued"] is False
    after = queries.get(sidecar_job)
    assert (after.status, after.completed_at, after.stage) == (COMPLETED, before.completed_at, None)
    assert queue.sent[sent:] == [] and [e for e, _ in published] == ["job_update"]


def test_the_newest_revisions_render_wins(client, job, queue):
    captions = edit(get(client, job))
    put(client, job, with_word(captions, "Smyth", "Smith")[0], 1)
    first_task = queries.get(job).task_id
    assert worker.claim_render(job, first_task, "w1") is not None         # revision 2's render starts
    checked = worker.unless_superseded(job, 2, lambda stage, fraction: None, interval=0.0)
    checked("rendering", 0.3)                                               # still wanted
    put(client, job, with_word(captions, "Smith", "Smithe")[0], 2)          # revision 3 saved meanwhile
    assert queries.get(job).status == PROCESSING and (first_task, False) in queue.revoked
    with pytest.raises(worker.Superseded):
        checked("rendering", 0.6)                                           # the running render stops ...
    _, manifest = publish(job, ["video"], {"video": "stale"}, revision=2)
    assert worker.video_published(job, {"timings": {}}, manifest, 2) is False   # ... or its result is discarded
    assert queries.get(job).status == PROCESSING
    assert render_now(job, queries.get(job).task_id)
    status = client.get(f"/api/status/{job}").get_json()
    assert status["status"] == COMPLETED and Path(status["result"]["outputs"]["video"]).name == \
        "clip.mp4.r3.captioned.mp4"
    assert download(client, job, "video", revision=2).status_code == 404


def test_an_edit_saved_during_the_first_render_wins_over_it(client, settings, store, news, queue):
    job_id = caption(add_job(settings, "early.mp4"), render=False)
    worker.hand_to_render(job_id, "task-first-render")
    assert worker.claim_render(job_id, "task-first-render", "w1") is not None
    assert put(client, job_id, edit(get(client, job_id)), 1).status_code == 200
    assert ("task-first-render", False) in queue.revoked
    _, manifest = publish(job_id, ["video"], {"video": "machine"})
    assert worker.video_published(job_id, {"timings": {}}, manifest, 1) is False
    assert render_now(job_id, queries.get(job_id).task_id)
    assert Path(queries.get(job_id).result["outputs"]["video"]).name == "early.mp4.r2.captioned.mp4"


def test_a_failed_re_render_keeps_every_revision_and_retry_renders_again(client, job, queue):
    put(client, job, with_word(edit(get(client, job)), "Smyth", "Smith")[0], 1)
    worker.claim_render(job, queries.get(job).task_id, "w1")
    manifest = queries.get(job).result["manifest"]
    worker.fail(job, "clip.mp4: ffmpeg burn-in failed: out of memory")
    failed = queries.get(job)
    assert failed.status == FAILED and "out of memory" in failed.error
    assert all(artifacts.unchanged(e) for e in manifest) and failed.result["manifest"] == manifest
    assert get(client, job)["revision"] == 2 and download(client, job, "scc").status_code == 200
    sent = len(queue.sent)
    assert client.post(f"/api/jobs/{job}/retry").status_code == 202
    assert [kind for kind, *_ in queue.sent[sent:]] == ["render"]
    waiting = client.get(f"/api/status/{job}").get_json()
    assert waiting["status"] == PENDING and waiting["result"]["revision"] == 2
    assert render_now(job, waiting["task_id"])
    assert queries.get(job).status == COMPLETED


def test_a_save_after_a_failed_re_render_renders_the_new_revision(client, job, queue):
    put(client, job, edit(get(client, job)), 1)
    worker.claim_render(job, queries.get(job).task_id, "w1")
    worker.fail(job, "boom")
    assert put(client, job, with_word(edit(get(client, job)), "Smyth", "Smith")[0], 2).status_code == 200
    status = client.get(f"/api/status/{job}").get_json()
    assert (status["status"], status["error"]) == (PENDING, None)
    assert render_now(job, status["task_id"])
    assert Path(queries.get(job).result["outputs"]["video"]).name == "clip.mp4.r3.captioned.mp4"


def test_cancelling_a_re_render_keeps_the_files_and_retry_renders_again(client, job, queue):
    put(client, job, edit(get(client, job)), 1)
    manifest = queries.get(job).result["manifest"]
    resp = client.post(f"/api/jobs/{job}/cancel")
    assert resp.status_code == 200 and resp.get_json()["status"] == CANCELLED
    assert "re-render of caption revision 2" in resp.get_json()["error"]
    assert all(artifacts.unchanged(e) for e in manifest)
    assert client.post(f"/api/jobs/{job}/retry").status_code == 202
    assert render_now(job, queries.get(job).task_id)


def test_a_lost_re_render_is_rendered_again_and_its_files_stay(client, job, queue):
    put(client, job, edit(get(client, job)), 1)
    task = queries.get(job).task_id
    worker.claim_render(job, task, "w1")
    manifest = queries.get(job).result["manifest"]
    sent = len(queue.sent)
    assert reaper.reclaim("w1", queue)["requeued"] == [job]
    assert [kind for kind, *_ in queue.sent[sent:]] == ["render"]
    assert queries.get(job).status == PENDING and all(artifacts.unchanged(e) for e in manifest)
    assert render_now(job, queries.get(job).task_id)


def test_delete_removes_every_revisions_files(client, job):
    captions = edit(get(client, job))
    put(client, job, with_word(captions, "Smyth", "Smith")[0], 1)
    render_now(job, queries.get(job).task_id)
    put(client, job, with_word(captions, "Smith", "Smithe")[0], 2)
    render_now(job, queries.get(job).task_id)
    on_disk = files_on_disk(job)
    assert len(on_disk) == 18                                # 3 revisions x (5 sidecars + video)
    body = client.delete(f"/api/jobs/{job}?outputs=true").get_json()
    assert sorted(body["outputs_deleted"]) == sorted(map(str, on_disk)) and body["outputs_kept"] == []
    assert not any(p.exists() for p in on_disk)


def test_retention_removes_every_revisions_files(client, job, queue):
    put(client, job, edit(get(client, job)), 1)
    render_now(job, queries.get(job).task_id)
    on_disk = files_on_disk(job)
    with session_scope() as s:
        s.get(Job, job).created_at = utcnow().replace(year=2000)
    assert actions.apply_retention(queue, 30, delete_outputs=True)["deleted"] == 1
    assert not any(p.exists() for p in on_disk)


def test_the_author_is_the_logged_in_session(settings, store, queue, news):
    from core.api import create_app

    token_settings = {**settings, "API_TOKEN": "tok", "SECRET_KEY": "k"}
    app = create_app(token_settings, queue=queue)
    client = app.test_client()
    job_id = caption(add_job(settings, "auth.mp4", burn_in=False))
    client.post("/login", data={"token": "tok"})
    assert put(client, job_id, edit(get(client, job_id)), 1).status_code == 200
    author = client.get(f"/api/jobs/{job_id}/captions/revisions").get_json()["revisions"][1]["author"]
    assert author.startswith("session ") and len(author) > len("session ")
    api = app.test_client()
    resp = api.put(f"/api/jobs/{job_id}/captions", headers={"X-API-Token": "tok"},
                   json={"base_revision": 2, "captions": edit(get(client, job_id))})
    assert resp.status_code == 200
    assert client.get(f"/api/jobs/{job_id}/captions/revisions").get_json()["revisions"][2]["author"] == "api token"


def test_revision_files_never_overwrite_a_file_they_did_not_write(client, job):
    taken = Path(queries.get(job).output_dir) / "clip.mp4.r2.scc"
    taken.write_text("someone else's file")
    body = put(client, job, edit(get(client, job)), 1).get_json()
    assert taken.read_text() == "someone else's file"
    assert Path(body["outputs"]["scc"]).name == "clip.mp4.2.r2.scc"


def test_file_names_of_revisions():
    assert artifacts.file_name("clip.mp4", "scc", 1, 2) == "clip.mp4.r2.scc"
    assert artifacts.file_name("clip.mp4", "video", 3, 2) == "clip.mp4.3.r2.captioned.mp4"
    assert artifacts.file_name("clip.mp4", "scc") == "clip.mp4.scc"


def test_a_transitions_check_and_its_write_see_the_same_row(settings, store, news):
    """A save in the dashboard and a worker's write at the same moment: the second waits for the first and
    decides on what the first wrote (else a worker's write could replace a revision saved meanwhile)."""
    job_id = caption(add_job(settings, "race.mp4", burn_in=False))
    first_checking, seen = threading.Event(), []

    def slow_check(job: Job) -> bool:
        first_checking.set()
        time.sleep(0.5)
        return True

    first = threading.Thread(target=record.amend_result, args=(job_id, {"writer": "first"}, slow_check))
    first.start()
    assert first_checking.wait(5)
    record.amend_result(job_id, {"writer": "second"}, when=lambda job: seen.append(job.result) or True)
    first.join()
    assert seen == [{"writer": "first"}] and queries.get(job_id).result == {"writer": "second"}


def test_a_save_whose_render_cannot_be_queued_is_kept_and_says_so(client, job, queue, monkeypatch):
    def broker_down(*args):
        raise ConnectionError("redis is down")

    monkeypatch.setattr(queue, "enqueue_render", broker_down)
    resp = put(client, job, edit(get(client, job)), 1)
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["revision"] == 2 and body["render_queued"] is False and "retried automatically" in body["render_error"]
    stored = queries.get(job)
    assert (stored.status, stored.task_id) == (PROCESSING, None)       # the reaper queues its render later
    assert download(client, job, "scc").status_code == 200


def test_a_stale_transcription_message_never_runs_a_job_waiting_for_its_re_render(client, job):
    put(client, job, edit(get(client, job)), 1)
    worker.claim_render(job, queries.get(job).task_id, "w1")
    worker.fail(job, "boom")
    client.post(f"/api/jobs/{job}/retry")                       # pending, for a render
    assert queries.get(job).status == PENDING
    assert worker.claim(job, "task-old-transcription", "w2") is None


def test_a_render_that_finishes_while_a_save_is_written_is_kept_and_the_save_goes_through(client, job, monkeypatch):
    put(client, job, with_word(edit(get(client, job)), "Smyth", "Smith")[0], 1)
    real = revisions.caption_edit.sidecars

    def render_finishes_meanwhile(*args, **kwargs):
        render_now(job, queries.get(job).task_id)           # revision 2's render completes the job now
        return real(*args, **kwargs)

    monkeypatch.setattr(revisions.caption_edit, "sidecars", render_finishes_meanwhile)
    resp = put(client, job, with_word(edit(get(client, job)), "Smith", "Smithe")[0], 2)
    assert resp.status_code == 200 and resp.get_json()["revision"] == 3
    stored = queries.get(job)
    assert (stored.status, history.render_target(stored.result)) == (PROCESSING, 3)
    assert download(client, job, "video", revision=2).data == b"video of revision 2\n"


def test_a_revisions_scc_keeps_the_jobs_start_timecode_and_its_json_a_qc_report_of_its_own(client, settings, store,
                                                                                            news):
    from core.services import timecode

    job_id = caption(add_job(settings, "tc.mp4", burn_in=False), start=timecode.parse("01:00:00;00"),
                     qc_profile="broadcast-608", rows=2)
    first_label = download(client, job_id, "scc").get_data(as_text=True).split("\n")[2].split("\t")[0]
    assert first_label.startswith(("00:59:59", "01:00:"))            # the first load is in the pre-roll
    captions = one(edit(get(client, job_id)), 0, end=get(client, job_id)["captions"][0]["start"] + 0.5)
    assert put(client, job_id, captions, 1).status_code == 200
    scc = download(client, job_id, "scc").get_data(as_text=True)
    assert scc.split("\n")[2].split("\t")[0] == first_label
    data = json.loads(download(client, job_id, "json").data)
    assert data["scc"]["start_timecode"] == "01:00:00;00" and data["revision"]["number"] == 2
    assert {r["id"]: r["status"] for r in data["qc"]["rules"]}["min_duration"] == "fail"     # this revision's


def test_an_edit_with_more_than_two_captions_a_second_is_refused_at_once(client, job):
    """Thousands of captions on a short clip would tie up the server writing the SCC."""
    body = get(client, job)
    many = [{"start": round(i * 0.01, 3), "end": round(i * 0.01 + 0.009, 3), "lines": [f"c{i}"]} for i in range(400)]
    resp = put(client, job, many, base=body["latest"])
    assert resp.status_code == 400
    assert [v["rule"] for v in resp.get_json()["violations"]] == ["too_many"]
    assert get(client, job)["latest"] == body["latest"]


def test_deleting_a_job_while_its_revision_renders_keeps_the_published_revisions(client, job):
    body = get(client, job)
    captions, _ = with_word(edit(body), body["captions"][0]["lines"][0].split()[0], "ZEBRA")
    assert put(client, job, captions, base=body["latest"]).status_code == 200      # a re-render is now queued
    published = files_on_disk(job)
    assert published
    answer = client.delete(f"/api/jobs/{job}").get_json()
    assert answer["outputs_deleted"] == [] and all(p.exists() for p in published)
