"""Watch folders against the real system (issue 18): start_dashboard.py --no-redis --no-worker runs the
watcher next to a real Redis and Celery worker with WhisperX; a clip copied into a watch folder is captioned
once with that folder's options, also when the dashboard restarts between the copy and the settle; a rename
within the folder and a copy of the same content make no new job.  Once with inotify events, once with
rescans only (WATCH_EVENTS=false)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from datetime import timezone
from pathlib import Path

import pytest

from core.embedded import free_port
from tests.conftest import make_video
from tests.system import interrupt, start_system, stop_system, wait_for

pytestmark = pytest.mark.system
ROOT = Path(__file__).resolve().parent.parent
SETTLE, SCAN = 4, 3


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    system = start_system(tmp_path_factory.mktemp("watch-system"))
    yield system
    stop_system(system)


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


class Dashboard:
    """start_dashboard.py with watch folders, on the system's Redis and store, no worker of its own."""

    def __init__(self, system, tmp: Path, folder: dict, events: bool):
        self.config = tmp / "config.py"
        self.config.write_text(f"WATCH_FOLDERS = [{folder!r}]\n")
        self.env = {**os.environ, **system.env, "CAPTION_CONFIG": str(self.config), "VAR_DIR": str(tmp / "var"),
                    "SETTLE_SECONDS": str(SETTLE), "WATCH_SCAN_SECONDS": str(SCAN),
                    "WATCH_EVENTS": "true" if events else "false"}
        self.env.pop("WATCH_FOLDERS", None)
        self.log = tmp / "dashboard.log"
        self.port, self.proc = free_port(), None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Dashboard":
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "start_dashboard.py", "--no-redis", "--no-worker",
                                          "--port", str(self.port)], cwd=ROOT, env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: self._up(), 90, interval=0.5, what="the dashboard")
        return self

    def _up(self) -> bool:
        try:
            return bool(_get(f"{self.url}/api/watch")["folders"])
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None:
            interrupt(self.proc)

    def watch(self) -> dict:
        (folder,) = _get(f"{self.url}/api/watch")["folders"]
        return folder


def jobs_on(system, folder: Path) -> list:
    from core.db import Job, session_scope

    with session_scope() as s:
        return [job for job in s.query(Job).all() if Path(job.source).parent == folder]


def watcher_processes(dashboard: Dashboard) -> list[int]:
    out = subprocess.run(["pgrep", "-f", "core.watch --exit-with-parent"], capture_output=True, text=True).stdout
    return [int(pid) for pid in out.split() if Path(f"/proc/{pid}/environ").exists()
            and str(dashboard.config).encode() in Path(f"/proc/{pid}/environ").read_bytes()]


@pytest.mark.parametrize("events", [True, False], ids=["inotify-events", "rescan-only"])
def test_a_copied_clip_is_captioned_once_with_the_folders_options(system, short_clip, short_wav, events, tmp_path):
    drop = system.storage / "news" / f"drop-{'events' if events else 'rescan'}"
    drop.mkdir()
    dash = Dashboard(system, tmp_path, {"path": str(drop), "burn_in": False, "rows": 3, "priority": "high"},
                     events).start()
    try:
        assert len(watcher_processes(dash)) == 1
        clip = drop / "evening news.mp4"
        shutil.copyfile(short_clip, clip)
        dash.stop()                                    # restart between the copy and the settle
        assert jobs_on(system, drop) == []
        assert watcher_processes(dash) == []           # Ctrl-C left no watcher behind
        assert "Traceback" not in dash.log.read_text()
        dash.start()
        restarted = time.monotonic()
        (job,) = wait_for(lambda: jobs_on(system, drop), SETTLE + SCAN + 15, interval=0.3, what="the job")
        print(f"queued {time.monotonic() - restarted:.1f} s after the restart")
        assert job.source == str(clip) and clip.exists()
        assert (job.options["burn_in"], job.options["rows"], job.priority) == (False, 3, "high")
        wait_for(lambda: jobs_on(system, drop)[0].status in ("completed", "failed"), 180, what="the captions")
        (job,) = jobs_on(system, drop)
        assert job.status == "completed", job.error
        assert "video" not in job.result["outputs"]               # the folder says no burn-in
        assert Path(job.result["outputs"]["scc"]).exists()

        # A different clip, no restart: queued within SETTLE_SECONDS plus one scan interval (plus a margin).
        other = tmp_path / "other.mp4"
        make_video(other, short_wav, size="160x120")
        copied_at = time.time()
        shutil.copyfile(other, drop / "second.mp4")
        wait_for(lambda: len(jobs_on(system, drop)) == 2, SETTLE + SCAN + 5, interval=0.2, what="the second job")
        second = [j for j in jobs_on(system, drop) if j.source.endswith("second.mp4")][0]
        delay = second.created_at.replace(tzinfo=timezone.utc).timestamp() - copied_at
        print(f"second clip queued {delay:.1f} s after the copy (settle {SETTLE} s, scan {SCAN} s)")
        assert delay <= SETTLE + SCAN + 2

        # A rename within the folder and a copy of the same content under another name: no new job.
        clip.rename(drop / "renamed.mp4")
        shutil.copyfile(short_clip, drop / "copy of the news.mp4")
        wait_for(lambda: dash.watch()["counts"]["duplicate"] == 2, 2 * (SETTLE + SCAN) + 10, interval=0.5,
                 what="the rename and the copy recognised")
        time.sleep(SCAN + 1)
        assert len(jobs_on(system, drop)) == 2
        folder = dash.watch()
        assert folder["counts"]["queued"] == 2 and folder["watcher_running"]
        assert ("events" in folder["mode"]) == events
        assert all("same content as" in f["reason"] for f in folder["duplicates"])
    finally:
        dash.stop()
        print(dash.log.read_text()[-3000:])
