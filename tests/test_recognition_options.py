"""Issue 16's options: speaker-change marks and a show's vocabulary, from the batch API, the settings,
the environment and the CLI, each checked (a 400 with the reason, never a 500)."""

from __future__ import annotations

import pytest

from core.cli import main as cli_main
from core.config import load_settings
from core.services import pipeline
from tests.fast import write_wav


def submit(client, path, **options):
    return client.post("/api/transcribe/batch", json={"paths": [str(path)], "options": {"burn_in": False, **options}})


def job_options(client, resp) -> dict:
    assert resp.status_code == 202, resp.get_json()
    return client.get(f"/api/status/{resp.get_json()['queued'][0]['job_id']}").get_json()["options"]


def test_by_default_speakers_are_marked_and_there_is_no_vocabulary(client, news):
    options = job_options(client, submit(client, write_wav(news / "clip.wav")))
    assert options["speaker_changes"] is True and options["vocabulary"] == []


def test_batch_options_are_kept_on_the_job_cleaned(client, news):
    options = job_options(client, submit(client, write_wav(news / "clip.wav"), speaker_changes=False,
                                         vocabulary=["O'Neill", "  Kyiv ", "", "O'Neill", "Star Trek:  Picard"]))
    assert options["speaker_changes"] is False
    assert options["vocabulary"] == ["O'Neill", "Kyiv", "Star Trek: Picard"]


def test_a_comma_separated_vocabulary_is_read_as_terms(client, news):
    options = job_options(client, submit(client, write_wav(news / "clip.wav"), vocabulary="O'Neill, Kyiv"))
    assert options["vocabulary"] == ["O'Neill", "Kyiv"]


@pytest.mark.parametrize("options, reason", [
    ({"speaker_changes": "no"}, "speaker_changes must be true or false"),
    ({"speaker_changes": None}, "speaker_changes must be true or false"),
    ({"vocabulary": 5}, "vocabulary must be a list"),
    ({"vocabulary": {"a": 1}}, "vocabulary must be a list"),
    ({"vocabulary": ["ok", 3]}, "vocabulary must be a list"),
    ({"vocabulary": ["x" * 65]}, "at most 64 characters"),
    ({"vocabulary": ["bad\x07name"]}, "printable"),
    ({"vocabulary": [f"name{i}" for i in range(101)]}, "at most 100 terms"),
])
def test_bad_recognition_options_are_a_400_with_the_reason(client, news, queue, options, reason):
    resp = submit(client, write_wav(news / "clip.wav"), **options)
    assert resp.status_code == 400 and reason in resp.get_json()["error"], resp.get_json()
    assert queue.sent == []


def test_settings_give_the_defaults(settings, store, queue, news, app):
    settings.update(SPEAKER_CHANGES=False, VOCABULARY=["Kyiv"])
    options = job_options(app.test_client(), submit(app.test_client(), write_wav(news / "clip.wav")))
    assert options["speaker_changes"] is False and options["vocabulary"] == ["Kyiv"]


def test_environment_vocabulary_is_comma_separated_and_may_hold_a_colon():
    settings = load_settings({"VOCABULARY": "O'Neill, Star Trek: Picard,,Kyiv", "SPEAKER_CHANGES": "off"})
    assert settings["VOCABULARY"] == ["O'Neill", "Star Trek: Picard", "Kyiv"]
    assert settings["SPEAKER_CHANGES"] is False


def test_cli_flags_reach_the_options(monkeypatch, tmp_path, capsys):
    seen = []
    monkeypatch.setattr(pipeline, "caption_file", lambda video, out, options: seen.append(options) or {"ok": 1})
    assert cli_main(["caption", "a.mp4", "--out", str(tmp_path), "--no-speaker-changes",
                     "--vocabulary", "O'Neill,Kyiv"]) == 0
    assert seen[0].speaker_changes is False and seen[0].vocabulary == ["O'Neill", "Kyiv"]
    assert cli_main(["caption", "a.mp4", "--out", str(tmp_path)]) == 0
    assert seen[1].speaker_changes is True


def test_cli_refuses_a_bad_vocabulary_with_exit_2(tmp_path, capsys):
    assert cli_main(["caption", "a.mp4", "--out", str(tmp_path), "--vocabulary", "x" * 70]) == 2
    assert "at most 64 characters" in capsys.readouterr().err


def test_a_huge_vocabulary_is_refused_at_once_without_holding_up_the_server(client, news, queue):
    """Found by a hostile test: 40,000 terms held every request of the dashboard for 10 s (a quadratic
    search for repeats, and the 100-term limit checked only at the end)."""
    resp = submit(client, write_wav(news / "clip.wav"), vocabulary=[f"w{i}" for i in range(40000)])
    assert resp.status_code == 400 and "at most 100 terms" in resp.get_json()["error"]
    assert queue.sent == []


class CountingList(list):
    """A list that counts the terms read from it."""
    read = 0

    def __iter__(self):
        for item in super().__iter__():
            CountingList.read += 1
            yield item


def test_the_term_limit_stops_the_reading_early():
    terms = CountingList(f"w{i}" for i in range(400))
    with pytest.raises(ValueError, match="at most 100 terms"):
        pipeline.clean_vocabulary(terms)
    assert CountingList.read == 101


def test_an_upload_takes_the_same_options_as_form_fields(client, tmp_path):
    import io

    resp = client.post("/api/transcribe", content_type="multipart/form-data", data={
        "file": (io.BytesIO(write_wav(tmp_path / "src.wav").read_bytes()), "news.wav"), "burn_in": "false",
        "speaker_changes": "off", "vocabulary": "O'Neill, Kyiv", "qc_profile": "dcmp"})
    assert resp.status_code == 202, resp.get_json()
    options = client.get(f"/api/status/{resp.get_json()['job_id']}").get_json()["options"]
    assert options["speaker_changes"] is False and options["vocabulary"] == ["O'Neill", "Kyiv"]
    assert options["qc_profile"] == "dcmp"
