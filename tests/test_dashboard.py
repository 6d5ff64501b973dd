"""The dashboard as an operator runs it: `start_dashboard.py` (with its own
supervised worker) against a private redis-server, in both Socket.IO modes;
a real Socket.IO client and headless Chromium driven by Playwright."""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from bench.media import NEWS_SCRIPT, make_speech_clip
from core.embedded import RedisServer, free_port, pid_running
from tests.system import wait_for

pytestmark = pytest.mark.system

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SCRIPT = ["Good evening and welcome to the news.", "The weather will be dry tomorrow."]


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def _post(url: str, payload: dict) -> dict:
    req = urllib.request.Request(url, json.dumps(payload).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


@pytest.fixture(scope="module")
def media_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("dash")
    news = root / "mnt" / "news"
    news.mkdir(parents=True)
    # The bulletin runs 2 min so its job stays active across several inspect polls
    # (a poll takes about 1 s, every 2 s); the short clips can finish between two.
    make_speech_clip(news, list(NEWS_SCRIPT) * 4, gap=0.6, lead=0.4, size="320x240", name="Evening bulletin.mp4")
    for name in ("Sport update.mp4", "Weather.mp4"):
        make_speech_clip(news, SCRIPT, gap=0.6, lead=0.4, size="320x240", name=name)
    big = root / "mnt" / "big"
    big.mkdir()
    for i in range(10_000):
        (big / f"clip_{i:05d}.mp4").touch()
    return root


@contextmanager
def running_dashboard(tmp: Path, media_root: Path, mode: str):
    """start_dashboard.py (with its own worker) on a private redis-server, stopped with Ctrl-C afterwards."""
    redis = RedisServer(tmp / "redis", persist=False).start()
    port = free_port()
    env = {**os.environ, "REDIS_URL": redis.url, "DATABASE_URL": f"sqlite:///{tmp / 'jobs.db'}",
           "STORAGE_ROOTS": str(media_root / "mnt"), "OUTPUT_DIR": str(tmp / "outputs"),
           "UPLOAD_DIR": str(tmp / "uploads"), "VAR_DIR": str(tmp / "var"), "SETTLE_SECONDS": "0"}
    log = open(tmp / "dashboard.log", "wb")
    proc = subprocess.Popen([sys.executable, "start_dashboard.py", "--no-redis", "--port", str(port),
                             "--async-mode", mode], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _health(url), 120, interval=1, what="the dashboard and its worker")
        yield {"url": url, "proc": proc, "mode": mode, "root": media_root, "tmp": tmp}
    finally:
        _stop_dashboard(proc, tmp / "var" / "run" / "worker.pid")
        redis.stop()
        print((tmp / "dashboard.log").read_text()[-3000:])


@pytest.fixture(scope="module", params=["eventlet", "threading"])
def dashboard(request, media_root, tmp_path_factory):
    """One dashboard shared by the tests that leave it running."""
    with running_dashboard(tmp_path_factory.mktemp(f"run-{request.param}"), media_root, request.param) as dash:
        yield dash


@pytest.fixture(params=["eventlet", "threading"])
def own_dashboard(request, media_root, tmp_path_factory):
    """A dashboard of the test's own, for tests that kill or stop it."""
    with running_dashboard(tmp_path_factory.mktemp(f"own-{request.param}"), media_root, request.param) as dash:
        yield dash


def _stop_dashboard(proc: subprocess.Popen, worker_pidfile: Path) -> None:
    """Ctrl-C as an operator would; if that hangs (or a test ended early), kill the
    dashboard and its worker, which runs in its own session so it outlives a crash."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    left = pid_running(worker_pidfile, "celery")  # None once it stopped with the dashboard
    if left:
        os.killpg(left, signal.SIGKILL)


def _health(url):
    try:
        return _get(f"{url}/api/health")["workers"]["count"] >= 1
    except OSError:
        return False


def test_job_update_is_pushed_within_a_second(dashboard):
    import socketio

    received, queue_updates = [], []
    client = socketio.Client()
    client.on("job_update", lambda data: received.append((time.time(), data)))
    client.on("queue_update", lambda data: queue_updates.append(data))
    client.connect(dashboard["url"], transports=["websocket"])
    try:
        news = dashboard["root"] / "mnt" / "news"
        job_id = _post(f"{dashboard['url']}/api/transcribe/batch",
                       {"paths": [str(news / "Weather.mp4")], "options": {"burn_in": False},
                        "force": True})["queued"][0]["job_id"]
        wait_for(lambda: any(d["job_id"] == job_id and d["status"] == "completed" for _, d in received), 180,
                 what="a job_update saying completed")
        mine = [(t, d) for t, d in received if d.get("job_id") == job_id]
        statuses = [d["status"] for _, d in mine]
        assert statuses[0] == "pending" and "processing" in statuses and statuses[-1] == "completed"
        assert {"job_id", "status", "stage", "progress", "source", "result"} <= set(mine[-1][1])
        latencies = sorted(t - d["emitted_at"] for t, d in mine)
        p95 = latencies[max(0, int(len(latencies) * 0.95) - 1)]
        print(f"{dashboard['mode']}: {len(latencies)} job_update events, p50 {statistics.median(latencies)*1000:.0f} ms,"
              f" p95 {p95*1000:.0f} ms")
        assert p95 < 1.0
        wait_for(lambda: queue_updates, 10, what="a queue_update")
        assert {"active", "reserved", "scheduled", "workers", "counts"} <= set(queue_updates[-1])
    finally:
        client.disconnect()


def test_a_browser_that_connects_later_gets_a_current_snapshot(dashboard):
    """Nobody watched for a while, so the poll loop idled: the first queue_update
    a new browser gets is taken after it connected, not the one cached before."""
    import socketio

    from core.api.live import FRESH_FOR_NEW_CLIENT

    time.sleep(FRESH_FOR_NEW_CLIENT + 2)
    first = []
    client = socketio.Client()
    client.on("queue_update", lambda data: first.append(data))
    connected_at = time.time()
    client.connect(dashboard["url"], transports=["websocket"])
    try:
        wait_for(lambda: first, 10, what="a queue_update")
        assert first[0]["taken_at"] >= connected_at - FRESH_FOR_NEW_CLIENT, connected_at - first[0]["taken_at"]
    finally:
        client.disconnect()


def test_many_clients_share_one_poll(dashboard):
    import socketio

    clients, counts = [], []
    for _ in range(5):
        c = socketio.Client()
        box = []
        c.on("queue_update", lambda data, box=box: box.append(time.time()))
        c.connect(dashboard["url"], transports=["websocket"])
        clients.append(c)
        counts.append(box)
    try:
        time.sleep(7)
        # Every client gets the snapshots, about one per 2 s interval (not one poll per client).
        assert all(2 <= len(box) <= 5 for box in counts), [len(b) for b in counts]
    finally:
        for c in clients:
            c.disconnect()


def test_folder_of_ten_thousand_files_pages_on_the_server(dashboard):
    big = dashboard["root"] / "mnt" / "big"
    first = _get(f"{dashboard['url']}/api/browse?path={big}&page_size=200")
    assert first["total"] == 10_000 and len(first["items"]) == 200 and first["items"][0]["name"] == "clip_00000.mp4"
    last = _get(f"{dashboard['url']}/api/browse?path={big}&page=50&page_size=200&sort=name&order=desc")
    assert last["items"][-1]["name"] == "clip_00000.mp4"
    filtered = _get(f"{dashboard['url']}/api/browse?path={big}&filter=clip_0999")
    assert filtered["total"] == 10 and all("clip_0999" in i["name"] for i in filtered["items"])


def test_operator_queues_two_files_and_watches_them_complete(dashboard):
    from playwright.sync_api import sync_playwright

    shots = dashboard["tmp"] / "screenshots"
    shots.mkdir()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(dashboard["url"])
        page.wait_for_selector("#conn.online")
        page.click("a.folder:has-text('news')")
        page.get_by_label("select Evening bulletin.mp4").check()
        page.get_by_label("select Sport update.mp4").check()
        page.screenshot(path=str(shots / "browser.png"))
        page.click("#queue-selected")
        page.wait_for_selector("#submit-result.ok")
        assert "queued 2 file(s)" in page.inner_text("#submit-result")
        page.click("nav#tabs button[data-tab=queue]")
        # Live, no reload: the bulletin shows as running, with its progress.
        page.wait_for_selector("#q-active tr[data-job]:has-text('Evening bulletin') .progress", timeout=90_000)
        page.screenshot(path=str(shots / "queue.png"))
        page.click("nav#tabs button[data-tab=jobs]")
        for name in ("Sport update", "Evening bulletin"):
            page.locator(f"#job-rows tr[data-job]:has-text('{name}') .s-completed").wait_for(timeout=240_000)
        # Its job_update took the finished bulletin off the queue tables at once, not at the next poll.
        assert "Evening bulletin" not in page.text_content("#q-active")
        page.click("#job-rows tr[data-job]:has-text('Evening bulletin')")
        video = page.wait_for_selector("#job-detail video.preview")
        duration = wait_for(lambda: (lambda d: d if d and d == d else None)(
            page.evaluate("document.querySelector('#job-detail video').duration")),
                            30, what="the preview to load")
        assert duration > 3, duration
        assert "captioned" in video.get_attribute("src") or "outputs/video" in video.get_attribute("src")
        page.screenshot(path=str(shots / "jobs.png"))
        page.click("nav#tabs button[data-tab=workers]")
        assert "transcribe, render" in page.inner_text("#worker-cards")
        page.click("#inspect-buttons button:has-text('registered')")
        page.locator("#inspect-output:has-text('transcribe_video')").wait_for()
        page.screenshot(path=str(shots / "workers.png"))
        page.click("nav#tabs button[data-tab=analytics]")
        page.wait_for_selector("#chart-rtf .bar-row")
        page.screenshot(path=str(shots / "analytics.png"))
        browser.close()
    assert not errors, errors
    print(f"screenshots in {shots}")


def test_twenty_clients_all_receive_updates(dashboard):
    import socketio

    clients, seen = [], []
    for _ in range(20):
        c = socketio.Client()
        box = {"queue": 0, "jobs": set()}
        c.on("queue_update", lambda data, box=box: box.__setitem__("queue", box["queue"] + 1))
        c.on("job_update", lambda data, box=box: box["jobs"].add(data.get("job_id")))
        c.connect(dashboard["url"], transports=["websocket"])
        clients.append(c)
        seen.append(box)
    try:
        news = dashboard["root"] / "mnt" / "news"
        job_id = _post(f"{dashboard['url']}/api/transcribe/batch",
                       {"paths": [str(news / "Weather.mp4")], "options": {"burn_in": False},
                        "force": True})["queued"][0]["job_id"]
        wait_for(lambda: all(job_id in box["jobs"] and box["queue"] for box in seen), 120,
                 what="every client to get job and queue updates")
    finally:
        for c in clients:
            c.disconnect()


def _descendants(pid: int) -> list[int]:
    children = [int(p) for p in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True,
                                                text=True).stdout.split()]
    return children + [d for c in children for d in _descendants(c)]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_supervisor_restarts_a_dead_worker(own_dashboard):
    dashboard = own_dashboard
    worker = next(pid for pid in _descendants(dashboard["proc"].pid)
                  if "celery" in Path(f"/proc/{pid}/cmdline").read_text(errors="replace"))
    os.killpg(worker, signal.SIGKILL)  # the worker and its pool, as a crash would
    wait_for(lambda: not _alive(worker), 10, what="the worker to die")
    wait_for(lambda: _health(dashboard["url"]), 90, interval=1, what="a restarted worker to answer")
    assert worker not in _descendants(dashboard["proc"].pid)


def test_ctrl_c_stops_dashboard_and_worker(own_dashboard):
    proc = own_dashboard["proc"]
    family = _descendants(proc.pid)
    assert family, "the dashboard should run a worker"
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=90)
    wait_for(lambda: not any(_alive(pid) for pid in family), 30, what="the worker and its pool to exit")
