"""Where the worker reads the source (``core.services.source_guard``): it must still be the file that was
queued, inside the storage roots, and settled; one that changes while it is read publishes nothing.

Fast tier: real files under a temp storage root, a fake clock; no store, Redis, worker, model or FFmpeg.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.jobs.sources import source_stat
from core.services import source_guard
from core.services.errors import InputError
from tests.fast import write_wav

CHANGED = "source changed since it was queued"


@pytest.fixture
def clip(news) -> Path:
    """A real WAV under the storage root, as submission saw it (its real path)."""
    return Path(os.path.realpath(write_wav(news / "clip.wav", 0.5)))


class FakeTime:
    """``clock`` and ``sleep`` for wait_until_settled: sleeping advances the clock (and may run ``during``)."""

    def __init__(self, now: float, during=None):
        self.now, self.during, self.sleeps = now, during, []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0, "a wait loop must sleep a positive time"
        self.sleeps.append(seconds)
        if self.during:
            self.during(len(self.sleeps))
        self.now += seconds
        assert len(self.sleeps) < 1000, "wait_until_settled never returned"


def set_mtime(path: Path, seconds: float) -> None:
    ns = int(seconds * 1e9)
    os.utime(path, ns=(ns, ns))


# --- open_queued ----------------------------------------------------------------------------------------

def test_open_queued_accepts_the_file_that_was_queued(clip, settings):
    recorded = source_stat(clip)
    with source_guard.open_queued(str(clip), recorded, settings) as handle:
        assert handle.source == str(clip)
        assert Path(handle.read_path).read_bytes() == clip.read_bytes()
        assert handle.stat() == recorded


def test_open_queued_without_a_recorded_stat_still_confines_the_path(clip, settings):
    with source_guard.open_queued(str(clip), None, settings) as handle:
        assert handle.stat()["size"] == clip.stat().st_size


def test_open_queued_refuses_a_file_replaced_by_another(clip, settings, tmp_path):
    recorded = source_stat(clip)
    impostor = clip.with_name("impostor.wav")
    write_wav(impostor, 0.5)                                  # same size, another inode
    os.replace(impostor, clip)
    assert os.stat(clip).st_size == recorded["size"]
    with pytest.raises(InputError) as err:
        source_guard.open_queued(str(clip), recorded, settings)
    assert CHANGED in str(err.value) and "another file" in str(err.value)
    assert str(clip) in str(err.value), "the operator sees which file"


def test_open_queued_refuses_a_path_that_became_a_symlink_outside_the_roots(clip, settings, tmp_path):
    recorded = source_stat(clip)
    secret = tmp_path / "outside" / "secret.wav"
    write_wav(secret, 0.5)
    clip.unlink()
    clip.symlink_to(secret)
    with pytest.raises(InputError) as err:
        source_guard.open_queued(str(clip), recorded, settings)
    assert CHANGED in str(err.value)
    assert str(secret) in str(err.value)


def test_open_queued_refuses_a_symlink_even_to_a_file_inside_the_roots(clip, settings, news):
    recorded = source_stat(clip)
    other = Path(os.path.realpath(write_wav(news / "other.wav", 0.5)))
    clip.unlink()
    clip.symlink_to(other)
    with pytest.raises(InputError, match=CHANGED):
        source_guard.open_queued(str(clip), recorded, settings)


def test_open_queued_refuses_a_folder_swapped_for_a_link_outside_the_roots(settings, news, tmp_path):
    folder = news / "today"
    source = Path(os.path.realpath(write_wav(folder / "clip.wav", 0.5)))
    recorded = source_stat(source)
    outside = tmp_path / "outside-today"
    write_wav(outside / "clip.wav", 0.5)
    folder.rename(news / "today-moved")
    folder.symlink_to(outside, target_is_directory=True)
    with pytest.raises(InputError, match=CHANGED):
        source_guard.open_queued(str(source), recorded, settings)


def test_open_queued_refuses_a_removed_file(clip, settings):
    recorded = source_stat(clip)
    clip.unlink()
    with pytest.raises(InputError) as err:
        source_guard.open_queued(str(clip), recorded, settings)
    assert CHANGED in str(err.value) and "removed" in str(err.value)


def test_open_queued_refuses_a_source_when_its_root_is_no_longer_configured(clip, settings, tmp_path):
    recorded = source_stat(clip)
    elsewhere = tmp_path / "other-root"
    elsewhere.mkdir()
    narrowed = {**settings, "STORAGE_ROOTS": [str(elsewhere)]}
    with pytest.raises(InputError, match="outside the storage roots"):
        source_guard.open_queued(str(clip), recorded, narrowed)


def test_read_path_reads_the_checked_file_after_its_name_is_swapped(clip, settings, news):
    original = clip.read_bytes()
    with source_guard.open_queued(str(clip), source_stat(clip), settings) as handle:
        swapped = news / "swap.bin"
        swapped.write_bytes(b"not the queued media" * 100)
        os.replace(swapped, clip)
        assert clip.read_bytes() != original
        assert Path(handle.read_path).read_bytes() == original
        with open(handle.read_path, "rb") as again:             # how FFmpeg/PyAV open it
            assert again.read() == original


def test_closing_the_handle_releases_the_file(clip, settings):
    handle = source_guard.open_queued(str(clip), source_stat(clip), settings)
    fd = handle.fd
    handle.close()
    with pytest.raises(OSError):
        os.fstat(fd)


# --- wait_until_settled ---------------------------------------------------------------------------------

def test_a_settled_file_returns_at_once(clip, settings):
    set_mtime(clip, 1_000_000.0)
    recorded = source_stat(clip)
    fake = FakeTime(now=1_000_100.0)
    waits = []
    with source_guard.open_queued(str(clip), recorded, settings) as handle:
        settled = source_guard.wait_until_settled(handle, recorded, queued_at=1_000_050.0, settle_seconds=10,
                                             on_wait=lambda: waits.append(1), clock=fake.clock, sleep=fake.sleep)
    assert settled == recorded
    assert waits == [] and fake.sleeps == []


def test_a_fresh_file_waits_until_settle_seconds_pass(clip, settings):
    set_mtime(clip, 1_000_000.0)
    recorded = source_stat(clip)
    fake = FakeTime(now=1_000_002.0)                          # written 2 s ago, 10 s settle
    waits = []
    with source_guard.open_queued(str(clip), recorded, settings) as handle:
        settled = source_guard.wait_until_settled(handle, recorded, queued_at=1_000_001.0, settle_seconds=10,
                                             on_wait=lambda: waits.append(fake.now), clock=fake.clock,
                                             sleep=fake.sleep)
    assert settled == recorded
    assert waits, "the job shows it is waiting for the file to settle"
    assert fake.now >= 1_000_010.0, "it did not return before the file was 10 s old"
    assert fake.now - 1_000_010.0 <= 1.0, "nor much later"
    assert all(s <= 1.0 for s in fake.sleeps), "it looks again at least once a second"


def test_a_file_still_growing_when_queued_is_waited_for_and_read_in_full(clip, settings):
    set_mtime(clip, 1_000_000.0)
    recorded = source_stat(clip)
    fake = FakeTime(now=1_000_001.0)

    def still_being_written(n):
        if n <= 3:                                            # three more chunks arrive, a second apart
            with open(clip, "ab") as f:
                f.write(b"\0" * 3200)
            set_mtime(clip, fake.now)

    fake.during = still_being_written
    with source_guard.open_queued(str(clip), recorded, settings) as handle:
        settled = source_guard.wait_until_settled(handle, recorded, queued_at=1_000_000.5, settle_seconds=5,
                                             clock=fake.clock, sleep=fake.sleep)
    assert settled["size"] == recorded["size"] + 3 * 3200
    assert settled["mtime_ns"] > recorded["mtime_ns"]
    assert fake.now - settled["mtime_ns"] / 1e9 >= 5


def test_a_file_settled_when_queued_and_changed_since_is_refused(clip, settings):
    set_mtime(clip, 1_000_000.0)
    recorded = source_stat(clip)                             # queued 60 s after it was last written
    with open(clip, "ab") as f:
        f.write(b"\0" * 1600)
    set_mtime(clip, 1_000_100.0)
    fake = FakeTime(now=1_000_200.0)
    with source_guard.open_queued(str(clip), recorded, settings) as handle, pytest.raises(InputError) as err:
        source_guard.wait_until_settled(handle, recorded, queued_at=1_000_060.0, settle_seconds=10,
                                   clock=fake.clock, sleep=fake.sleep)
    assert CHANGED in str(err.value) and "modified after it was queued" in str(err.value)
    assert fake.sleeps == []


def test_a_settled_file_touched_after_queueing_is_refused_even_with_the_same_size(clip, settings):
    set_mtime(clip, 1_000_000.0)
    recorded = source_stat(clip)
    set_mtime(clip, 1_000_070.0)
    fake = FakeTime(now=1_000_200.0)
    with source_guard.open_queued(str(clip), recorded, settings) as handle, \
            pytest.raises(InputError, match="modified after it was queued"):
        source_guard.wait_until_settled(handle, recorded, queued_at=1_000_060.0, settle_seconds=10,
                                   clock=fake.clock, sleep=fake.sleep)


def test_settle_zero_never_waits(clip, settings):
    recorded = source_stat(clip)
    fake = FakeTime(now=recorded["mtime_ns"] / 1e9)
    with source_guard.open_queued(str(clip), recorded, settings) as handle:
        assert source_guard.wait_until_settled(handle, recorded, queued_at=fake.now, settle_seconds=0,
                                          clock=fake.clock, sleep=fake.sleep) == recorded
    assert fake.sleeps == []


# --- check_unchanged ------------------------------------------------------------------------------------

def test_check_unchanged_accepts_the_settled_file(clip, settings):
    with source_guard.open_queued(str(clip), source_stat(clip), settings) as handle:
        settled = handle.stat()
        assert source_guard.check_unchanged(handle, settled) is None


def test_check_unchanged_refuses_a_file_that_grew(clip, settings):
    with source_guard.open_queued(str(clip), source_stat(clip), settings) as handle:
        settled = handle.stat()
        with open(clip, "ab") as f:
            f.write(b"\0" * 32000)
        with pytest.raises(InputError) as err:
            source_guard.check_unchanged(handle, settled)
    assert "changed while it was being processed" in str(err.value)
    assert "nothing was published" in str(err.value)


def test_check_unchanged_refuses_a_file_rewritten_in_place(clip, settings):
    with source_guard.open_queued(str(clip), source_stat(clip), settings) as handle:
        settled = handle.stat()
        data = clip.read_bytes()
        with open(clip, "r+b") as f:                         # same size, new content and time
            f.write(b"\x7f" * 64)
        set_mtime(clip, settled["mtime_ns"] / 1e9 + 30)
        assert len(clip.read_bytes()) == len(data)
        with pytest.raises(InputError, match="changed while it was being processed"):
            source_guard.check_unchanged(handle, settled)


def test_check_unchanged_accepts_a_file_only_read_meanwhile(clip, settings):
    with source_guard.open_queued(str(clip), source_stat(clip), settings) as handle:
        settled = handle.stat()
        clip.read_bytes()
        os.stat(clip)
        source_guard.check_unchanged(handle, settled)


@pytest.mark.parametrize("change", ["replaced", "removed"])
def test_check_unchanged_refuses_a_source_replaced_or_removed_while_it_was_read(clip, settings, news, change):
    """README: a source "that changes while it is processed fails and publishes nothing"."""
    with source_guard.open_queued(str(clip), source_stat(clip), settings) as handle:
        settled = handle.stat()
        if change == "replaced":                             # an editor re-exports the clip (temp file + rename)
            other = news / "re-export.wav"
            write_wav(other, 3.0)
            os.replace(other, clip)
        else:
            clip.unlink()
        with pytest.raises(InputError, match=f"source was {change} while it was being processed; nothing"):
            source_guard.check_unchanged(handle, settled)
