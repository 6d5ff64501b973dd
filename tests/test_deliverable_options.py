"""Batch options for deliverables and QC: start timecode, timecode mode, MOV, QC profile; the QC API."""

from __future__ import annotations

import pytest

from core.jobs import record
from core.jobs.states import COMPLETED, PROCESSING
from tests.fast import write_wav


def submit(client, path, **options):
    return client.post("/api/transcribe/batch", json={"paths": [str(path)], "options": {"burn_in": False, **options}})


@pytest.mark.parametrize("options", [
    {"start_timecode": "01:00:00;00"}, {"start_timecode": "01:00:00:00", "timecode_mode": "ndf"},
    {"start_timecode": "source"}, {"mov": False}, {"qc_profile": "netflix-like"}, {"qc_profile": "dcmp"},
])
def test_good_deliverable_options_are_kept_on_the_job(client, news, options):
    resp = submit(client, write_wav(news / "clip.wav"), **options)
    assert resp.status_code == 202, resp.get_json()
    job = client.get(f"/api/status/{resp.get_json()['queued'][0]['job_id']}").get_json()
    assert options.items() <= job["options"].items()


def test_defaults_come_from_the_settings(client, news):
    job_id = submit(client, write_wav(news / "clip.wav")).get_json()["queued"][0]["job_id"]
    options = client.get(f"/api/status/{job_id}").get_json()["options"]
    assert (options["start_timecode"], options["timecode_mode"], options["mov"], options["qc_profile"]) == \
        ("00:00:00;00", "df", False, "broadcast-608")


@pytest.mark.parametrize("options, reason", [
    ({"start_timecode": "25:61:00;00"}, "timecode"),
    ({"start_timecode": "00:01:00;00"}, "drop-frame"),          # a label drop-frame skips
    ({"start_timecode": "01:00:00;00", "timecode_mode": "pal"}, "timecode_mode"),
    ({"start_timecode": 3600}, "start_timecode must be a string"),
    ({"mov": "yes"}, "mov must be true or false"),
    ({"qc_profile": "house"}, "qc_profile must be one of"),
])
def test_bad_deliverable_options_are_a_400_with_the_reason(client, news, queue, options, reason):
    resp = submit(client, write_wav(news / "clip.wav"), **options)
    assert resp.status_code == 400 and reason in resp.get_json()["error"]
    assert queue.sent == []


REPORT = {"status": "fail", "profile": "broadcast-608",
          "rules": [{"id": "min_duration", "status": "fail", "count": 1,
                     "items": [{"index": 0, "start": 0.0, "end": 0.5, "text": "Hi."}]}]}


def _completed(client, news, name, report):
    job_id = submit(client, write_wav(news / name)).get_json()["queued"][0]["job_id"]
    record.transition(job_id, PROCESSING, stage="probing", task_id="t", worker="w")
    record.transition(job_id, COMPLETED, stage=None, progress=1.0, result={"qc": report, "outputs": {}})
    return job_id


def test_the_qc_report_is_served_and_jobs_filter_by_it(client, news):
    failing = _completed(client, news, "a.wav", REPORT)
    passing = _completed(client, news, "b.wav", {**REPORT, "status": "pass", "rules": []})
    assert client.get(f"/api/jobs/{failing}/qc").get_json() == REPORT
    assert [j["job_id"] for j in client.get("/api/jobs?qc=fail").get_json()["items"]] == [failing]
    assert [j["job_id"] for j in client.get("/api/jobs?qc=pass").get_json()["items"]] == [passing]
    row = client.get("/api/jobs?qc=fail").get_json()["items"][0]
    assert row["result"]["qc_status"] == "fail" and "qc" not in row["result"]       # the list stays small
    assert client.get(f"/api/status/{failing}").get_json()["result"]["qc"] == REPORT


def test_qc_of_a_job_without_captions_yet_is_a_404_and_a_bad_filter_a_400(client, news):
    job_id = submit(client, write_wav(news / "clip.wav")).get_json()["queued"][0]["job_id"]
    assert client.get(f"/api/jobs/{job_id}/qc").status_code == 404
    assert client.get("/api/jobs?qc=maybe").status_code == 400


def test_mov_on_a_file_without_video_is_rejected_at_submission(client, news, queue):
    resp = submit(client, write_wav(news / "radio.wav"), mov=True)
    assert resp.status_code == 400 and "no video stream for a MOV" in resp.get_json()["rejected"][0]["error"]
    assert queue.sent == []


def test_a_name_too_long_for_its_outputs_is_rejected_at_submission(client, news):
    long_name = "n" * 230 + ".wav"
    resp = submit(client, write_wav(news / long_name))
    assert resp.status_code == 400 and "too long for its output files" in resp.get_json()["rejected"][0]["error"]


def test_retry_records_the_source_as_it_is_now(client, news, queue):
    from core.jobs import queries, worker

    clip = write_wav(news / "fixed.wav")
    job_id = submit(client, clip).get_json()["queued"][0]["job_id"]
    worker.fail(job_id, f"{clip}: source changed since it was queued (it was modified after it was queued)")
    write_wav(clip, 3.0)                                 # the operator puts the corrected file in place
    assert client.post(f"/api/jobs/{job_id}/retry").status_code == 202
    recorded = queries.get(job_id).source_stat
    assert recorded["size"] == clip.stat().st_size and recorded["mtime_ns"] == clip.stat().st_mtime_ns
