"""Output files that belong to one run (``core.services.artifacts``): names, staging, no-overwrite
publishing, the manifest, removal only while unchanged, staging sweeps.

Fast tier: plain files in a temp folder; no store, Redis, worker, model or FFmpeg.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from core.services import artifacts
from core.services.artifacts import KINDS, SIDECAR_KINDS, OutputConflict, Staging, file_name
from core.services.errors import ProcessingError

HOST = socket.gethostname()


def stage(staging: Staging, kinds, text: str = "new") -> dict[str, bytes]:
    """Write a staged file of each kind; the bytes written."""
    written = {}
    for kind in kinds:
        data = f"{text} {kind}\n".encode()
        staging.path(kind).write_bytes(data)
        written[kind] = data
    return written


def names(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def visible(folder: Path) -> set[str]:
    return {name for name in names(folder) if not name.startswith(".")}


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# --- names ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("source", "kind", "run", "expected"), [
    ("clip.mp4", "scc", 1, "clip.mp4.scc"),
    ("clip.mp4", "srt", 1, "clip.mp4.srt"),
    ("clip.mp4", "vtt", 1, "clip.mp4.vtt"),
    ("clip.mp4", "dfxp", 1, "clip.mp4.dfxp"),
    ("clip.mp4", "json", 1, "clip.mp4.json"),
    ("clip.mp4", "video", 1, "clip.mp4.captioned.mp4"),
    ("clip.mp4", "scc", 2, "clip.mp4.2.scc"),
    ("clip.mp4", "video", 2, "clip.mp4.2.captioned.mp4"),
    ("clip.mov", "scc", 1, "clip.mov.scc"),
    ("news at 6 [final].mxf", "srt", 3, "news at 6 [final].mxf.3.srt"),
    ("noext", "vtt", 1, "noext.vtt"),
])
def test_file_name_examples(source, kind, run, expected):
    assert file_name(source, kind, run) == expected


def test_same_stem_sources_never_share_a_name():
    mp4 = {file_name("clip.mp4", kind, run) for kind in KINDS for run in range(1, 6)}
    mov = {file_name("clip.mov", kind, run) for kind in KINDS for run in range(1, 6)}
    assert len(mp4) == len(KINDS) * 5 and mp4.isdisjoint(mov)


def test_every_kind_of_one_run_has_its_own_name():
    assert len({file_name("clip.mp4", kind) for kind in KINDS}) == len(KINDS)


# --- publishing -----------------------------------------------------------------------------------------

def test_publish_links_the_whole_set_into_place(tmp_path):
    staging = Staging(tmp_path, "clip.mp4", "job1")
    written = stage(staging, KINDS)
    run, manifest = staging.publish(list(KINDS))
    assert run == 1
    assert [e["kind"] for e in manifest] == list(KINDS)
    for entry in manifest:
        path = Path(entry["path"])
        assert path.parent == tmp_path and path.name == file_name("clip.mp4", entry["kind"])
        assert path.read_bytes() == written[entry["kind"]]


def test_staging_is_a_hidden_folder_named_after_source_and_owner(tmp_path):
    staging = Staging(tmp_path, "clip.mp4", "job1")
    assert staging.dir.parent == tmp_path
    assert staging.dir.name.startswith(f".clip.mp4.partial-job1-{HOST}-{os.getpid()}-")
    assert staging.path("scc").parent == staging.dir


def test_writing_leaves_only_the_published_files(tmp_path):
    with artifacts.writing(tmp_path, "clip.mp4", "job1") as staging:
        stage(staging, SIDECAR_KINDS)
        staging.publish(list(SIDECAR_KINDS))
    assert names(tmp_path) == {file_name("clip.mp4", kind) for kind in SIDECAR_KINDS}


def test_writing_that_fails_before_publishing_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), artifacts.writing(tmp_path, "clip.mp4", "job1") as staging:
        stage(staging, SIDECAR_KINDS)
        raise RuntimeError("transcription crashed")
    assert names(tmp_path) == set()


def test_writing_turns_an_os_error_into_a_processing_error_naming_the_folder(tmp_path):
    with pytest.raises(ProcessingError, match="cannot write outputs"), artifacts.writing(tmp_path, "clip.mp4", "job1"):
        raise OSError(28, "No space left on device")
    assert names(tmp_path) == set()


def test_publish_never_overwrites_a_hand_made_file_and_takes_the_next_free_set(tmp_path):
    hand_made = tmp_path / "clip.mp4.srt"
    hand_made.write_text("edited by hand")
    staging = Staging(tmp_path, "clip.mp4", "job1")
    stage(staging, SIDECAR_KINDS)
    run, manifest = staging.publish(list(SIDECAR_KINDS))
    assert run == 2
    assert [Path(e["path"]).name for e in manifest] == [file_name("clip.mp4", k, 2) for k in SIDECAR_KINDS]
    assert hand_made.read_text() == "edited by hand"
    assert not (tmp_path / "clip.mp4.scc").exists(), "one run's set is never split across run numbers"


def test_publish_skips_every_run_with_any_name_taken(tmp_path):
    (tmp_path / "clip.mp4.scc").write_text("first")
    (tmp_path / "clip.mp4.2.json").write_text("second")
    (tmp_path / "clip.mp4.3.captioned.mp4").write_text("third")
    staging = Staging(tmp_path, "clip.mp4", "job1")
    stage(staging, KINDS)
    run, _ = staging.publish(list(KINDS))
    assert run == 4
    assert (tmp_path / "clip.mp4.scc").read_text() == "first"
    assert (tmp_path / "clip.mp4.2.json").read_text() == "second"
    assert (tmp_path / "clip.mp4.3.captioned.mp4").read_text() == "third"


def test_a_dangling_symlink_counts_as_taken_and_is_never_followed(tmp_path):
    target = tmp_path / "elsewhere" / "victim.txt"
    (tmp_path / "clip.mp4.scc").symlink_to(target)
    staging = Staging(tmp_path, "clip.mp4", "job1")
    stage(staging, ["scc"])
    run, _ = staging.publish(["scc"])
    assert run == 2 and not target.exists()
    assert (tmp_path / "clip.mp4.scc").is_symlink()


def test_fail_policy_raises_and_leaves_nothing(tmp_path):
    hand_made = tmp_path / "clip.mp4.vtt"
    hand_made.write_text("WEBVTT\n\nhand made\n")
    with pytest.raises(OutputConflict) as err, artifacts.writing(tmp_path, "clip.mp4", "job1") as staging:
        stage(staging, SIDECAR_KINDS)
        staging.publish(list(SIDECAR_KINDS), conflict="fail")
    assert "clip.mp4.vtt" in str(err.value) and "OUTPUT_CONFLICT=fail" in str(err.value)
    assert names(tmp_path) == {"clip.mp4.vtt"}, "nothing of the run is left, staging included"
    assert hand_made.read_text() == "WEBVTT\n\nhand made\n"


def test_fail_policy_publishes_when_nothing_is_taken(tmp_path):
    staging = Staging(tmp_path, "clip.mp4", "job1")
    stage(staging, ["srt"])
    assert staging.publish(["srt"], conflict="fail")[0] == 1


def test_a_second_run_on_the_same_source_never_touches_the_first(tmp_path):
    first = Staging(tmp_path, "clip.mp4", "job1")
    stage(first, KINDS, "first")
    _, first_manifest = first.publish(list(KINDS))
    second = Staging(tmp_path, "clip.mp4", "job2")
    stage(second, KINDS, "second")
    run, second_manifest = second.publish(list(KINDS))
    assert run == 2
    for entry in first_manifest:
        assert Path(entry["path"]).read_text().startswith("first")
        assert artifacts.unchanged(entry)
    assert {e["path"] for e in first_manifest}.isdisjoint(e["path"] for e in second_manifest)


def test_two_same_stem_sources_in_one_folder_each_get_run_one(tmp_path):
    mp4, mov = Staging(tmp_path, "clip.mp4", "job1"), Staging(tmp_path, "clip.mov", "job2")
    stage(mp4, KINDS, "mp4")
    stage(mov, KINDS, "mov")
    assert mp4.publish(list(KINDS))[0] == 1
    assert mov.publish(list(KINDS))[0] == 1
    for kind in KINDS:
        assert (tmp_path / file_name("clip.mp4", kind)).read_text() == f"mp4 {kind}\n"
        assert (tmp_path / file_name("clip.mov", kind)).read_text() == f"mov {kind}\n"


def test_the_render_joins_the_caption_run_it_was_given(tmp_path):
    (tmp_path / "clip.mp4.scc").write_text("someone else's")
    captions = Staging(tmp_path, "clip.mp4", "job1")
    stage(captions, SIDECAR_KINDS)
    run, _ = captions.publish(list(SIDECAR_KINDS))
    assert run == 2
    render = Staging(tmp_path, "clip.mp4", "job1")
    stage(render, ["video"])
    assert render.publish(["video"], run=run)[0] == 2
    assert (tmp_path / "clip.mp4.2.captioned.mp4").exists()
    assert not (tmp_path / "clip.mp4.captioned.mp4").exists()


def test_a_name_taken_meanwhile_undoes_the_partial_set_and_moves_on(tmp_path, monkeypatch):
    """Another run takes one name between the check and the link: nothing of ours stays at run 1."""
    staging = Staging(tmp_path, "clip.mp4", "job1")
    stage(staging, SIDECAR_KINDS)
    real_link = os.link

    def racing_link(src, dst):
        if Path(dst).name == "clip.mp4.vtt" and not Path(dst).exists():
            Path(dst).write_text("the other run's vtt")
        return real_link(src, dst)

    monkeypatch.setattr(os, "link", racing_link)
    run, manifest = staging.publish(list(SIDECAR_KINDS))
    assert run == 2
    assert visible(tmp_path) == {"clip.mp4.vtt"} | {file_name("clip.mp4", k, 2) for k in SIDECAR_KINDS}
    assert (tmp_path / "clip.mp4.vtt").read_text() == "the other run's vtt"
    assert all(artifacts.unchanged(e) for e in manifest)


# --- the manifest ---------------------------------------------------------------------------------------

def test_manifest_entries_describe_each_published_file(tmp_path):
    before = datetime.now(timezone.utc).replace(microsecond=0)
    staging = Staging(tmp_path, "clip.mp4", "job1")
    written = stage(staging, KINDS)
    _, manifest = staging.publish(list(KINDS))
    after = datetime.now(timezone.utc) + timedelta(seconds=1)
    for entry in manifest:
        assert set(entry) == {"kind", "path", "size", "sha256", "mtime_ns", "published_at"}
        path = Path(entry["path"])
        st = path.stat()
        assert entry["size"] == st.st_size == len(written[entry["kind"]])
        assert entry["mtime_ns"] == st.st_mtime_ns
        assert entry["sha256"] == hashlib.sha256(written[entry["kind"]]).hexdigest()
        assert entry["published_at"].endswith("Z")
        stamp = datetime.fromisoformat(entry["published_at"].replace("Z", "+00:00"))
        assert before <= stamp <= after
        assert path.is_absolute()


# --- removal --------------------------------------------------------------------------------------------

def published_set(tmp_path) -> list[dict]:
    staging = Staging(tmp_path, "clip.mp4", "job1")
    stage(staging, SIDECAR_KINDS)
    return staging.publish(list(SIDECAR_KINDS))[1]


def test_remove_deletes_unchanged_files(tmp_path):
    manifest = published_set(tmp_path)
    removed, kept = artifacts.remove(manifest)
    assert sorted(removed) == sorted(e["path"] for e in manifest) and kept == []
    assert visible(tmp_path) == set()


def test_remove_keeps_a_file_edited_after_publishing(tmp_path):
    manifest = published_set(tmp_path)
    edited = Path(manifest[1]["path"])
    edited.write_text("fixed by an editor, a little longer than before\n")
    removed, kept = artifacts.remove(manifest)
    assert kept == [str(edited)] and str(edited) not in removed
    assert edited.read_text().startswith("fixed by an editor")


def test_remove_keeps_a_file_with_same_size_and_time_but_other_content(tmp_path):
    manifest = published_set(tmp_path)
    entry = manifest[0]
    path = Path(entry["path"])
    st = path.stat()
    path.write_bytes(b"X" * st.st_size)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (entry["size"], entry["mtime_ns"])
    _, kept = artifacts.remove([entry])
    assert kept == [str(path)] and path.exists()


def test_remove_keeps_a_file_replaced_by_a_symlink(tmp_path):
    manifest = published_set(tmp_path)
    entry = manifest[0]
    path = Path(entry["path"])
    victim = tmp_path / "victim.txt"
    victim.write_bytes(path.read_bytes())
    path.unlink()
    path.symlink_to(victim)
    _, kept = artifacts.remove([entry])
    assert kept == [str(path)] and victim.exists() and path.is_symlink()


def test_remove_reports_a_file_already_gone_as_kept(tmp_path):
    manifest = published_set(tmp_path)
    Path(manifest[0]["path"]).unlink()
    removed, kept = artifacts.remove(manifest)
    assert kept == [manifest[0]["path"]] and len(removed) == len(manifest) - 1


def test_remove_of_an_empty_manifest_does_nothing(tmp_path):
    (tmp_path / "clip.mp4.scc").write_text("hand made")
    assert artifacts.remove([]) == ([], [])
    assert (tmp_path / "clip.mp4.scc").exists()


# --- staging sweeps -------------------------------------------------------------------------------------

def make_staging(folder: Path, source: str, owner: str, host: str, pid: int) -> Path:
    path = folder / f".{source}.partial-{owner}-{host}-{pid}-abc123"
    path.mkdir(parents=True)
    (path / "out.scc").write_text("half")
    return path


def test_sweep_dead_removes_a_dead_runs_staging_of_this_host_only(tmp_path):
    pid = dead_pid()
    dead_here = make_staging(tmp_path, "clip.mp4", "job1", HOST, pid)
    alive_here = make_staging(tmp_path, "clip.mp4", "job2", HOST, os.getpid())
    other_host = make_staging(tmp_path, "clip.mp4", "job3", "some-other-host", pid)
    other_source = make_staging(tmp_path, "clip.mov", "job4", HOST, pid)
    artifacts.sweep_dead(tmp_path, "clip.mp4")
    assert not dead_here.exists()
    assert alive_here.exists(), "a live run's staging is never swept"
    assert other_host.exists(), "a pid of another host says nothing here"
    assert other_source.exists()


def test_sweep_dead_copes_with_a_hyphenated_host_name_and_odd_folders(tmp_path, monkeypatch):
    monkeypatch.setattr(socket, "gethostname", lambda: "render-node-02")
    dead = make_staging(tmp_path, "clip.mp4", "cli", "render-node-02", dead_pid())
    alive = make_staging(tmp_path, "clip.mp4", "cli", "render-node-02", os.getpid())
    odd = tmp_path / ".clip.mp4.partial-x-render-node-02-notapid"
    odd.mkdir()
    artifacts.sweep_dead(tmp_path, "clip.mp4")
    assert not dead.exists() and alive.exists() and odd.exists()


def test_a_new_staging_sweeps_what_a_killed_run_left(tmp_path):
    left = make_staging(tmp_path, "clip.mp4", "job-killed", HOST, dead_pid())
    staging = Staging(tmp_path, "clip.mp4", "job-new")
    assert not left.exists() and staging.dir.exists()


def test_discard_owned_removes_only_the_owners_staging(tmp_path):
    mine = [make_staging(tmp_path, "clip.mp4", "job1", HOST, os.getpid()),
            make_staging(tmp_path, "clip.mp4", "job1", "other-host", 7)]
    theirs = make_staging(tmp_path, "clip.mp4", "job2", HOST, os.getpid())
    same_owner_other_source = make_staging(tmp_path, "clip.mov", "job1", HOST, os.getpid())
    published = tmp_path / "clip.mp4.scc"
    published.write_text("published")
    artifacts.discard_owned(tmp_path, "clip.mp4", "job1")
    assert not any(p.exists() for p in mine)
    assert theirs.exists() and same_owner_other_source.exists() and published.exists()


def test_discard_owned_treats_glob_characters_in_names_literally(tmp_path):
    odd = make_staging(tmp_path, "news [a].mp4", "job1", HOST, os.getpid())
    lookalike = make_staging(tmp_path, "news a.mp4", "job1", HOST, os.getpid())
    artifacts.discard_owned(tmp_path, "news [a].mp4", "job1")
    assert not odd.exists() and lookalike.exists()


def test_discard_owned_of_a_job_id_never_matches_a_longer_one(tmp_path):
    short = make_staging(tmp_path, "clip.mp4", "abc", HOST, os.getpid())
    longer = make_staging(tmp_path, "clip.mp4", "abcdef", HOST, os.getpid())
    artifacts.discard_owned(tmp_path, "clip.mp4", "abc")
    assert not short.exists() and longer.exists()


def test_publish_on_a_share_without_hard_links_still_never_overwrites(tmp_path, monkeypatch):
    import errno

    def no_hard_links(src, dst):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_hard_links)
    (tmp_path / "clip.mp4.json").write_text('{"hand": "made"}')
    staging = Staging(tmp_path, "clip.mp4", "job1")
    written = stage(staging, SIDECAR_KINDS)
    run, manifest = staging.publish(list(SIDECAR_KINDS))
    assert run == 2
    assert (tmp_path / "clip.mp4.json").read_text() == '{"hand": "made"}'
    for entry in manifest:
        assert Path(entry["path"]).read_bytes() == written[entry["kind"]]
        assert artifacts.unchanged(entry)
