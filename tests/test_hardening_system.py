"""Issue 13 through the real server: `start_dashboard.py` (both Socket.IO modes, with API_TOKEN set) on a
private redis-server, spoken to over real sockets and by headless Chromium.

- The Host check on REST and on Socket.IO (polling handshake and a direct WebSocket), against DNS rebinding.
- The tightened CSP still lets the page connect its Socket.IO client (same origin, over WebSocket), play
  the preview (source served as video, WebVTT track as text/vtt) and download with the whole name.
- Login with the exact token, logout, and the wrong-token throttle with Retry-After.

No worker: the job is finished by the test through the job store, as the fast tier does.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.media import make_speech_clip
from core.embedded import RedisServer, free_port
from tests.system import interrupt, wait_for

pytestmark = pytest.mark.system

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
TOKEN = "s3cret-token"
NAME = 'Evening "news"\nat ten.mp4'


def request(port: int, method: str, path: str, host: str | None = None, headers: dict | None = None,
            body: bytes | None = None) -> tuple[int, dict, bytes]:
    """One HTTP request with exactly the Host given (http.client would send its own)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", host or f"127.0.0.1:{port}")
        for key, value in (headers or {}).items():
            conn.putheader(key, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hardening")
    news = root / "mnt" / "news"
    clip = make_speech_clip(news, ["Good evening.", "Here is the news."], gap=0.4, lead=0.3, size="320x240",
                            name="clip.mp4").path
    clip.rename(news / NAME)      # a legal name on broadcast storage: newline and quotes
    return root


@pytest.fixture(params=["eventlet", "threading"])
def dashboard(request, media, tmp_path):
    redis = RedisServer(tmp_path / "redis", persist=False).start()
    port = free_port()
    env = {**os.environ, "REDIS_URL": redis.url, "DATABASE_URL": f"sqlite:///{tmp_path / 'jobs.db'}",
           "STORAGE_ROOTS": str(media / "mnt"), "OUTPUT_DIR": str(tmp_path / "outputs"),
           "UPLOAD_DIR": str(tmp_path / "uploads"), "VAR_DIR": str(tmp_path / "var"), "SETTLE_SECONDS": "0",
           "API_TOKEN": TOKEN}
    with open(tmp_path / "dashboard.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "start_dashboard.py", "--no-redis", "--no-worker", "--port",
                                 str(port), "--async-mode", request.param], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: _up(port), 60, interval=0.5, what="the dashboard")
        yield {"port": port, "url": f"http://127.0.0.1:{port}", "env": env, "mode": request.param}
    finally:
        interrupt(proc)
        redis.stop()
        print((tmp_path / "dashboard.log").read_text()[-3000:])


def _up(port: int) -> bool:
    try:
        return request(port, "GET", "/login")[0] == 200
    except OSError:
        return False


def _finish_job(dashboard, source: Path) -> str:
    """Queue ``source`` through the API and finish it through the job store, with a WebVTT and an SRT."""
    from core import db, events
    from core.config import load_settings
    from tests.test_api_routes import complete

    status, _, body = request(dashboard["port"], "POST", "/api/transcribe/batch",
                              headers={"X-API-Token": TOKEN, "Content-Type": "application/json"},
                              body=json.dumps({"paths": [str(source)], "options": {"burn_in": False}}).encode())
    assert status == 202, body
    job_id = json.loads(body)["queued"][0]["job_id"]
    db.configure(load_settings(dashboard["env"]))
    events.configure(sink=lambda *_: None)
    try:
        complete(job_id, {"vtt": b"WEBVTT\n\n00:00.300 --> 00:02.000\nGood evening.\n",
                          "srt": b"1\n00:00:00,300 --> 00:00:02,000\nGood evening.\n"})
    finally:
        events.configure()
    return job_id


def test_a_foreign_host_is_refused_on_rest_and_socketio(dashboard):
    port, evil = dashboard["port"], f"evil.example:{dashboard['port']}"
    for path in ("/", "/login", "/api/jobs", "/static/app.js", "/socket.io/?EIO=4&transport=polling"):
        status, _, body = request(port, "GET", path, host=evil,
                                        headers={"Origin": f"http://{evil}", "X-API-Token": TOKEN})
        assert status == 400, (path, status, body[:200])
        assert "Host" in json.loads(body)["error"]
    status, _, body = request(port, "GET", "/socket.io/?EIO=4&transport=polling")
    assert status == 200 and b'"sid"' in body                     # the dashboard's own name: served
    for host in (f"localhost:{port}", f"[::1]:{port}"):
        assert request(port, "GET", "/api/jobs", host=host, headers={"X-API-Token": TOKEN})[0] == 200

    import websocket

    url = f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket"
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(url, host=evil, origin=f"http://{evil}", timeout=10)
    assert refused.value.status_code == 400
    ws = websocket.create_connection(url, timeout=10)
    try:
        assert ws.recv().startswith("0{")                           # engine.io open packet
    finally:
        ws.close()


def test_the_page_connects_plays_downloads_and_logs_out_under_the_csp(dashboard, media):
    from playwright.sync_api import sync_playwright

    job_id = _finish_job(dashboard, media / "mnt" / "news" / NAME)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(accept_downloads=True)
            problems: list[str] = []
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("console", lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None)
            page.goto(dashboard["url"])
            assert page.url.endswith("/login")
            page.fill("input[name=token]", TOKEN + " ")                # a trailing space is not the token
            page.click("button[type=submit]")
            assert page.url.endswith("/login") and "wrong token" in page.inner_text("main")
            page.fill("input[name=token]", TOKEN)
            page.click("button[type=submit]")
            page.wait_for_selector("#conn.online", timeout=20_000)     # Socket.IO connected under connect-src 'self'
            assert page.evaluate("socket.io.engine.transport.name") == "websocket"

            page.click("nav#tabs button[data-tab=jobs]")
            page.click(f"#job-rows tr[data-job='{job_id}']")
            page.wait_for_selector("#job-detail video.preview")
            duration = wait_for(lambda: page.evaluate("document.querySelector('#job-detail video').duration || 0"),
                                30, what="the preview")                # NaN until the metadata is loaded
            assert duration > 1
            wait_for(lambda: page.evaluate("document.querySelector('#job-detail track').readyState") == 2, 15,
                     what="the WebVTT track to load")
            with page.expect_download() as download:
                page.click("#job-detail .downloads a:has-text('SRT')")
            suggested = download.value.suggested_filename
            assert suggested.startswith("Evening") and suggested.endswith("ten.mp4.srt"), suggested

            page.click("header form.logout button")
            page.wait_for_url("**/login")
            assert page.evaluate("fetch('/api/jobs').then(r => r.status)") == 401
            assert not problems, problems
        finally:
            browser.close()


def test_wrong_tokens_are_throttled_by_the_real_server(dashboard):
    port = dashboard["port"]
    assert request(port, "GET", "/api/jobs", headers={"X-API-Token": TOKEN})[0] == 200
    for _ in range(10):
        assert request(port, "GET", "/api/jobs", headers={"X-API-Token": "guess"})[0] == 401
    status, headers, body = request(port, "GET", "/api/jobs", headers={"X-API-Token": TOKEN})
    assert status == 429 and 1 <= int(headers["retry-after"]) <= 60, (status, headers, body)
    form = b"token=" + TOKEN.encode()
    status, headers, _ = request(port, "POST", "/login", body=form,
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 429 and int(headers["retry-after"]) >= 1
