"""Access control and hostile input at the API: confinement to the storage
roots, the API token, browser login, cross-site requests, Socket.IO auth."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.media import make_speech_clip

pytestmark = pytest.mark.system

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def roots(tmp_path, monkeypatch):
    storage = tmp_path / "mnt" / "news"
    storage.mkdir(parents=True)
    outside = tmp_path / "private"
    outside.mkdir()
    secret = make_speech_clip(outside, ["Secret."], gap=0.3, lead=0.3, size="160x120", name="secret.mp4").path
    (storage / "escape.mp4").symlink_to(secret)
    (storage / "escape-dir").symlink_to(outside, target_is_directory=True)
    env = {"STORAGE_ROOTS": str(tmp_path / "mnt"), "OUTPUT_DIR": str(tmp_path / "out"),
           "UPLOAD_DIR": str(tmp_path / "uploads"), "DATABASE_URL": f"sqlite:///{tmp_path / 'jobs.db'}",
           "REDIS_URL": "redis://127.0.0.1:1/0"}  # nothing here may reach the queue
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return tmp_path, storage, secret


def _app(**overrides):
    from core.api import create_app
    from core.config import load_settings

    return create_app({**load_settings(), **overrides})


@pytest.mark.parametrize("path", [
    "{storage}/../../private/secret.mp4",
    "{storage}/escape.mp4",
    "{storage}/escape-dir/secret.mp4",
    "/etc/passwd",
    "{storage}/%2e%2e/%2e%2e/private/secret.mp4",
    "{storage}/../news/../../private/secret.mp4",
])
def test_paths_outside_the_roots_are_refused(roots, path):
    _, storage, _ = roots
    client = _app().test_client()
    resp = client.post("/api/transcribe/batch", json={"paths": [path.format(storage=storage)]})
    assert resp.status_code == 400
    reason = resp.get_json()["rejected"][0]["error"]
    assert "outside the storage roots" in reason or "not found" in reason


@pytest.mark.parametrize("query", ["path=/etc", "path={storage}/escape-dir", "path={storage}/..%2F..%2Fprivate",
                                   "path=%2Fetc", "path={storage}/../../private"])
def test_browsing_is_confined_to_the_roots(roots, query):
    _, storage, _ = roots
    resp = _app().test_client().get(f"/api/browse?{query.format(storage=storage)}")
    assert resp.status_code == 400 and "outside the storage roots" in resp.get_json()["error"]


def test_batch_of_a_thousand_bad_paths_answers_with_every_reason(roots):
    _, storage, _ = roots
    paths = [f"{storage}/missing-{i}.mp4" for i in range(1000)]
    resp = _app().test_client().post("/api/transcribe/batch", json={"paths": paths})
    body = resp.get_json()
    assert resp.status_code == 400 and len(body["rejected"]) == 1000
    assert all("not found" in r["error"] for r in body["rejected"])


def test_api_token_is_required_when_set(roots):
    client = _app(API_TOKEN="s3cret").test_client()
    assert client.get("/api/jobs").status_code == 401
    assert "token" in client.get("/api/jobs").get_json()["error"]
    assert client.get("/api/jobs", headers={"X-API-Token": "wrong"}).status_code == 401
    assert client.get("/api/jobs", headers={"X-API-Token": "s3cret"}).status_code == 200
    assert client.get("/api/jobs", headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_browser_logs_in_once_with_the_token(roots):
    client = _app(API_TOKEN="s3cret").test_client()
    assert client.get("/").status_code == 302
    assert client.post("/login", data={"token": "nope"}).status_code == 401
    assert client.post("/login", data={"token": "s3cret"}).status_code == 302
    assert client.get("/").status_code == 200
    assert client.get("/api/jobs").status_code == 200          # the session cookie carries the login
    cookie = client.get_cookie("session")
    assert cookie.http_only and cookie.same_site == "Strict"


def test_cross_site_state_changes_are_refused(roots):
    client = _app().test_client()
    resp = client.post("/api/jobs/abc/cancel", headers={"Origin": "https://evil.example"})
    assert resp.status_code == 403 and "cross-site" in resp.get_json()["error"]
    resp = client.delete("/api/jobs/abc", headers={"Referer": "https://evil.example/page"})
    assert resp.status_code == 403
    same = client.post("/api/jobs/abc/cancel", headers={"Origin": "http://localhost"})
    assert same.status_code == 404                              # same origin: reaches the route


def test_security_headers(roots):
    resp = _app().test_client().get("/")
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert "default-src 'self'" in resp.headers["Content-Security-Policy"]


def test_socketio_needs_the_token_when_set(roots):
    from core.api.live import init_socketio, socketio
    from core.config import load_settings

    app = _app(API_TOKEN="s3cret")
    init_socketio(app, {**load_settings(), "REDIS_URL": None}, async_mode="threading")
    try:
        refused = socketio.test_client(app, auth={"token": "wrong"})
        assert not refused.is_connected()
        allowed = socketio.test_client(app, auth={"token": "s3cret"})
        assert allowed.is_connected()
        allowed.disconnect()
    finally:
        socketio.server = None  # leave the module-level server as other tests expect it


def test_dashboard_refuses_a_public_address_without_a_token(roots):
    env = {**os.environ, "API_TOKEN": ""}
    out = subprocess.run([sys.executable, "start_dashboard.py", "--host", "0.0.0.0", "--no-redis", "--no-worker"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "API_TOKEN" in out.stderr
