"""Fast tier: issue 13's API-layer lines, each reproduced through Flask's test client.

Never a 500 for bad input (deep JSON, odd pages, long paths, lone surrogates), names with newlines,
quotes or ``.html`` that download and preview safely, the Host check against DNS rebinding (REST
and Socket.IO), content types and CSP, login throttling, exact tokens, logout and upload names.
"""

from __future__ import annotations

import io
import json
import os
import re
import time
from pathlib import Path
from urllib.parse import unquote

import pytest

from core.api.live import monitor
from tests.fast import write_wav
from tests.test_api_routes import NO_BURN, assert_json_error, complete, new_job

KINDS = ("scc", "srt", "vtt", "dfxp", "json", "video")
OUTPUTS = {"scc": b"Scenarist_SCC V1.0\n", "srt": b"1\n00:00:00,000 --> 00:00:01,000\nhi\n",
           "vtt": b"WEBVTT\n\n00:00.000 --> 00:01.000\nhi\n", "dfxp": b"<tt xmlns='http://www.w3.org/ns/ttml'/>",
           "json": b'{"text": "hi"}', "video": b"\0\0\0\x18ftypmp42"}


@pytest.fixture(autouse=True)
def fresh_queue_monitor():
    monitor.last_snapshot, monitor.taken_at = None, 0.0
    yield
    monitor.last_snapshot, monitor.taken_at = None, 0.0


def locked_app(settings, queue, **extra):
    from core.api import create_app

    return create_app({**settings, "API_TOKEN": "s3cret", **extra}, queue=queue)


def raw_json(client, url, text: str, method="post"):
    return getattr(client, method)(url, data=text.encode(), content_type="application/json")


# --- 1. 500s reached through the API layer -------------------------------------------------------------

@pytest.mark.parametrize("url", ["/api/transcribe/batch", "/api/durations", "/api/jobs/x/cancel"])
@pytest.mark.parametrize("body", ["[" * 100_000 + "]" * 100_000,
                                  '{"paths": ' + "[" * 5_000 + "]" * 5_000 + "}",
                                  '{"paths": ["/a"], "options": ' + '{"a":' * 5_000 + "1" + "}" * 5_001])
def test_deeply_nested_json_is_a_400(client, url, body):
    resp = raw_json(client, url, body)
    assert resp.status_code in (400, 404), (resp.status_code, resp.get_data(as_text=True)[:300])
    if url != "/api/jobs/x/cancel":
        assert_json_error(resp, 400)


@pytest.mark.parametrize("query", ["page=²", "page=%C2%B2", "page_size=²", "page=1e3", "page=-1", "page=" + "9" * 5000])
def test_browse_with_an_odd_page_is_a_400(client, news, query):
    assert_json_error(client.get(f"/api/browse?path={news}&{query}"), 400, "page")


@pytest.mark.parametrize("tail", ["a" * 5000, "/".join(["b" * 250] * 20), "c" * 255 + "/x"])
def test_browsing_a_very_long_path_is_a_clear_400(client, news, tail):
    resp = client.get("/api/browse", query_string={"path": f"{news}/{tail}"})
    error = assert_json_error(resp, 400)
    assert "too long" in error or "not" in error, error


def test_batch_and_browse_answer_a_long_path_alike(client, news):
    path = f"{news}/{'a' * 5000}"
    batch = client.post("/api/transcribe/batch", json={"paths": [path], "options": NO_BURN})
    assert batch.status_code == 400 and "too long" in batch.get_json()["rejected"][0]["error"]
    assert "too long" in assert_json_error(client.get("/api/browse", query_string={"path": path}), 400)


def test_a_lone_surrogate_in_a_path_is_refused_for_that_path_only(client, news, queue):
    good = write_wav(news / "good.wav")
    text = json.dumps({"paths": ["\ud800", str(news / "bad\ud800.wav"), str(good)], "options": NO_BURN})
    assert "\\ud800" in text                       # sent escaped, as a browser's JSON.stringify does
    resp = raw_json(client, "/api/transcribe/batch", text)
    assert resp.status_code == 202, resp.get_data(as_text=True)[:500]
    body = resp.get_json()
    assert [q["path"] for q in body["queued"]] == [str(good)]
    assert len(body["rejected"]) == 2 and all(r["error"] for r in body["rejected"])
    durations = raw_json(client, "/api/durations", json.dumps({"paths": ["\ud800", str(news / "x\udfff.wav")]}))
    assert durations.status_code == 200 and set(durations.get_json()["durations"].values()) == {None}


@pytest.mark.parametrize("url", ["/api/status/%ED%A0%80", "/api/jobs/%ED%A0%80/source", "/api/batches/%ff%fe",
                                 "/api/jobs/%ED%A0%80/outputs/vtt", "/api/browse?path=%ED%A0%80",
                                 "/api/browse?path=/%ff"])
def test_undecodable_bytes_in_urls_are_4xx(client, url):
    resp = client.get(url)
    assert 400 <= resp.status_code < 500 and resp.is_json


def weird_source(news: Path, name: str) -> Path:
    return write_wav(news / name)


NAMES = {
    "newline": 'evening\nnews.wav',
    "quotes": 'the "big" \'one\'; name=x.wav',
    "html": "page.html",
    "html-newline": 'x\r\n<meta http-equiv="refresh" content="0;url=//evil.example">.html',
    "unicode": "日本語 ニュース.wav",
    "semicolon-percent": "50% off; filename=evil.html.wav",
}


def _headers_are_clean(resp):
    for key, value in resp.headers.items():
        assert "\n" not in value and "\r" not in value, (key, value)


def _disposition_name(resp) -> str:
    disposition = resp.headers["Content-Disposition"]
    match = re.search(r"filename\*=UTF-8''([^;\s]+)", disposition)
    assert match, disposition
    assert re.search(r'filename="[\x20-\x7e]*"', disposition), disposition   # an ASCII fallback too
    return unquote(match.group(1), errors="surrogateescape")


@pytest.mark.parametrize("case", list(NAMES))
def test_every_download_and_the_preview_work_for_any_legal_name(client, news, case):
    source = weird_source(news, NAMES[case])
    job_id = new_job(client, source)
    complete(job_id, OUTPUTS)
    for kind in KINDS:
        for query in ("", "?inline=1"):
            resp = client.get(f"/api/jobs/{job_id}/outputs/{kind}{query}")
            assert resp.status_code == 200, (kind, query, resp.status_code, resp.get_data(as_text=True)[:300])
            assert resp.data == OUTPUTS[kind]
            assert "html" not in resp.mimetype, (kind, resp.mimetype)
            _headers_are_clean(resp)
            assert _disposition_name(resp).startswith(source.name)
    resp = client.get(f"/api/jobs/{job_id}/source")
    assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
    assert resp.data == source.read_bytes()
    assert "html" not in resp.mimetype
    _headers_are_clean(resp)


def test_a_name_that_is_not_utf8_is_refused_with_its_reason_not_a_500(client, news, queue):
    good = write_wav(news / "good.wav")
    odd = write_wav(Path(os.fsdecode(bytes(news) + b"/clip-\xff\xfe.wav")))
    resp = client.post("/api/transcribe/batch", json={"paths": [str(odd), str(good)], "options": NO_BURN})
    assert resp.status_code == 202, resp.get_data(as_text=True)[:500]
    (rejected,) = resp.get_json()["rejected"]
    assert "UTF-8" in rejected["error"] and len(queue.sent) == 1
    listing = client.get("/api/browse", query_string={"path": str(news)})
    assert listing.status_code == 200 and len(listing.get_json()["items"]) == 2   # still listed


@pytest.mark.parametrize("name", ['a\nb "c".srt', os.fsdecode(b"clip-\xff.srt"), "\ud800.srt", "日本.srt", "%41.srt"])
def test_content_disposition_holds_any_name(name):
    from core.api.files import content_disposition

    value = content_disposition(name, inline=False)
    assert value.isascii() and "\n" not in value and "\r" not in value
    match = re.fullmatch(r'attachment; filename="([\x20-\x7e]*)"; filename\*=UTF-8\'\'([!#$&+\-.^_`|~0-9A-Za-z%]+)', value)
    assert match, value
    assert '"' not in match.group(1) and "\\" not in match.group(1)
    assert unquote(match.group(2)) == name.encode("utf-8", "surrogateescape" if name[0] != "\ud800" else "replace"
                                                  ).decode("utf-8", "replace")


def test_download_names_keep_the_whole_name_in_filename_star(client, news):
    source = weird_source(news, NAMES["quotes"])
    job_id = new_job(client, source)
    complete(job_id, OUTPUTS)
    resp = client.get(f"/api/jobs/{job_id}/outputs/srt")
    assert resp.headers["Content-Disposition"].startswith("attachment;")
    assert _disposition_name(resp) == source.name + ".srt"
    assert client.get(f"/api/jobs/{job_id}/outputs/vtt?inline=1").headers["Content-Disposition"].startswith("inline;")


# --- 3. content types and CSP --------------------------------------------------------------------------

def test_a_source_named_html_is_never_served_as_html(client, news):
    source = weird_source(news, "bulletin.html")
    job_id = new_job(client, source)
    resp = client.get(f"/api/jobs/{job_id}/source")
    assert resp.status_code == 200
    assert resp.mimetype == "application/octet-stream"
    assert resp.headers["Content-Disposition"].startswith("attachment;")
    assert "sandbox" in resp.headers["Content-Security-Policy"]
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


def test_a_media_source_is_served_inline_with_its_media_type(client, news):
    job_id = new_job(client, weird_source(news, "clip.wav"))
    resp = client.get(f"/api/jobs/{job_id}/source")
    assert resp.status_code == 200 and resp.mimetype.startswith("audio/")
    assert resp.headers["Content-Disposition"].startswith("inline;")
    partial = client.get(f"/api/jobs/{job_id}/source", headers={"Range": "bytes=0-9"})
    assert partial.status_code == 206 and len(partial.data) == 10     # seeking in the preview player


@pytest.mark.parametrize("kind, mimetype", [("vtt", "text/vtt"), ("srt", "application/x-subrip"),
                                            ("scc", "text/plain"), ("dfxp", "application/ttml+xml"),
                                            ("json", "application/json"), ("video", "video/mp4")])
def test_outputs_carry_their_caption_types(client, news, kind, mimetype):
    job_id = new_job(client, weird_source(news, "page.html"))
    complete(job_id, OUTPUTS)
    for query in ("", "?inline=1"):
        resp = client.get(f"/api/jobs/{job_id}/outputs/{kind}{query}")
        assert resp.mimetype == mimetype
        assert "sandbox" in resp.headers["Content-Security-Policy"]


def test_content_security_policy_is_tight(client):
    csp = client.get("/").headers["Content-Security-Policy"]
    directives = {part.split()[0]: part.split()[1:] for part in csp.split(";") if part.strip()}
    assert directives["connect-src"] == ["'self'"]
    assert directives["form-action"] == ["'self'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["default-src"] == ["'self'"]


# --- 2. Host check (DNS rebinding) ---------------------------------------------------------------------

EVIL = "evil.example:5077"


@pytest.mark.parametrize("method, url", [("get", "/"), ("get", "/login"), ("get", "/api/jobs"), ("get", "/api/roots"),
                                         ("get", "/api/queue"), ("get", "/static/app.js"),
                                         ("post", "/api/jobs/x/cancel"), ("post", "/api/transcribe/batch"),
                                         ("get", "/api/no-such-route")])
def test_a_foreign_host_is_refused_on_every_route(client, queue, method, url):
    resp = getattr(client, method)(url, headers={"Host": EVIL, "Origin": f"http://{EVIL}"})
    assert_json_error(resp, 400, "Host")
    assert queue.sent == []


@pytest.mark.parametrize("host", ["localhost", "localhost:5050", "LOCALHOST:1", "127.0.0.1", "127.0.0.1:5050",
                                  "[::1]:5050", "[::1]", "localhost."])
def test_loopback_hosts_are_allowed(client, host):
    assert client.get("/api/jobs", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize("host", ["evil.example", "localhost.evil.example", "127.0.0.1.nip.io:5050",
                                  "[::2]:5050", "127.0.0.2", "", "localhost:5050@evil.example", "[::1",
                                  "loc alhost", "0.0.0.0:5050"])
def test_other_hosts_are_refused(client, host):
    assert_json_error(client.get("/api/jobs", headers={"Host": host}), 400, "Host")


def test_allowed_hosts_and_dashboard_host_are_honoured(settings, store, queue):
    from core.api import create_app

    app = create_app({**settings, "ALLOWED_HOSTS": ["captions.example.com"], "DASHBOARD_HOST": "10.1.2.3"},
                     queue=queue)
    client = app.test_client()
    for host in ("captions.example.com", "Captions.Example.com:8443", "10.1.2.3:5050", "localhost:5050"):
        assert client.get("/api/jobs", headers={"Host": host}).status_code == 200, host
    assert_json_error(client.get("/api/jobs", headers={"Host": "other.example.com"}), 400, "Host")
    anything = create_app({**settings, "ALLOWED_HOSTS": ["*"]}, queue=queue).test_client()
    assert anything.get("/api/jobs", headers={"Host": "whatever.example"}).status_code == 200


def test_the_address_a_request_arrived_on_is_allowed_as_an_ip_literal_only(client):
    here = {"SERVER_NAME": "10.1.2.3"}
    assert client.get("/api/jobs", headers={"Host": "10.1.2.3:5050"}, environ_overrides=here).status_code == 200
    assert_json_error(client.get("/api/jobs", headers={"Host": "10.1.2.4:5050"}, environ_overrides=here), 400, "Host")
    named = {"SERVER_NAME": "box.example"}         # a name is allowed only by ALLOWED_HOSTS (rebinding uses names)
    assert_json_error(client.get("/api/jobs", headers={"Host": "box.example"}, environ_overrides=named), 400, "Host")


def test_allowed_hosts_come_from_the_environment_like_storage_roots(settings, store, queue):
    from core.api import create_app
    from core.config import load_settings

    configured = load_settings({"CAPTION_CONFIG": "/nonexistent", "ALLOWED_HOSTS": "captions.example.com:qc.local"})
    assert configured["ALLOWED_HOSTS"] == ["captions.example.com", "qc.local"]
    assert load_settings({"CAPTION_CONFIG": "/nonexistent"})["ALLOWED_HOSTS"] == []
    client = create_app({**settings, "ALLOWED_HOSTS": configured["ALLOWED_HOSTS"]}, queue=queue).test_client()
    assert client.get("/api/jobs", headers={"Host": "qc.local:5050"}).status_code == 200
    assert client.get("/api/jobs", headers={"Host": "evil.example"}).status_code == 400


@pytest.fixture
def with_socketio(app, monkeypatch):
    """Socket.IO on the app, without Redis and without background work that could outlive the test:
    no inspect loop, and a fresh snapshot so a connecting client is answered at once."""
    from core.api.live import init_socketio, socketio

    monkeypatch.setattr(monitor, "ensure_loop", lambda: None)
    monitor.last_snapshot, monitor.taken_at = {"workers": []}, time.monotonic()
    init_socketio(app, {**app.config["CAPTION_SETTINGS"], "REDIS_URL": None}, async_mode="threading")
    yield socketio
    socketio.server = None


def test_socketio_refuses_a_foreign_host(app, with_socketio):
    http = app.test_client()
    handshake = http.get("/socket.io/?EIO=4&transport=polling", headers={"Host": EVIL, "Origin": f"http://{EVIL}"})
    assert handshake.status_code == 400, handshake.get_data(as_text=True)[:200]
    refused = with_socketio.test_client(app, headers={"Host": EVIL})
    assert not refused.is_connected()
    allowed = with_socketio.test_client(app, headers={"Host": "127.0.0.1:5050"})
    assert allowed.is_connected()
    allowed.disconnect()
    ok = http.get("/socket.io/?EIO=4&transport=polling", headers={"Host": "127.0.0.1:5050"})
    assert ok.status_code == 200 and b"sid" in ok.data


# --- 4. login: throttle, exact tokens, logout ----------------------------------------------------------

class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def locked(settings, store, queue):
    app = locked_app(settings, queue)
    clock = Clock()
    app.extensions["login_limiter"].clock = clock
    return app.test_client(), clock


def test_wrong_tokens_are_throttled_then_even_the_right_one_waits(locked):
    client, clock = locked
    for _ in range(10):
        assert client.get("/api/jobs", headers={"X-API-Token": "guess"}).status_code == 401
    limited = client.get("/api/jobs", headers={"X-API-Token": "guess"})
    assert_json_error(limited, 429, "too many")
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert client.get("/api/jobs", headers={"X-API-Token": "s3cret"}).status_code == 429
    assert client.get("/api/jobs", headers={"Authorization": "Bearer s3cret"}).status_code == 429
    assert client.post("/login", data={"token": "s3cret"}).status_code == 429
    other = client.get("/api/jobs", headers={"X-API-Token": "s3cret"}, environ_overrides={"REMOTE_ADDR": "10.9.9.9"})
    assert other.status_code == 200                                  # another client address is not limited
    clock.now += 61
    assert client.get("/api/jobs", headers={"X-API-Token": "s3cret"}).status_code == 200


def test_wrong_login_form_tries_are_throttled(locked):
    client, clock = locked
    for _ in range(10):
        assert client.post("/login", data={"token": "guess"}).status_code == 401
    resp = client.post("/login", data={"token": "s3cret"})
    assert resp.status_code == 429 and int(resp.headers["Retry-After"]) >= 1
    assert "too many" in resp.get_data(as_text=True)
    clock.now += 61
    assert client.post("/login", data={"token": "s3cret"}).status_code == 302


def test_requests_without_a_token_are_not_counted_as_guesses(locked):
    client, _ = locked
    for _ in range(30):
        assert client.get("/api/jobs").status_code == 401
    assert client.get("/api/jobs", headers={"X-API-Token": "s3cret"}).status_code == 200


@pytest.mark.parametrize("headers", [{"X-API-Token": "s3cret "}, {"X-API-Token": " s3cret"},
                                     {"X-API-Token": "s3cret\t"}, {"Authorization": "Bearer s3cret "},
                                     {"Authorization": "Bearer  s3cret"}, {"Authorization": "s3cret"},
                                     {"X-API-Token": "S3CRET"}])
def test_a_token_must_match_exactly(locked, headers):
    client, _ = locked
    assert_json_error(client.get("/api/jobs", headers=headers), 401, "token")


@pytest.mark.parametrize("token", ["s3cret ", " s3cret", "s3cret\n", "s3cre"])
def test_the_login_form_needs_the_exact_token(locked, token):
    client, _ = locked
    assert client.post("/login", data={"token": token}).status_code == 401
    assert client.get("/api/jobs").status_code == 401


def test_logout_ends_the_session(locked):
    client, _ = locked
    assert client.post("/login", data={"token": "s3cret"}).status_code == 302
    page = client.get("/")
    assert page.status_code == 200 and b'action="/logout"' in page.data
    resp = client.post("/logout")
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/login")
    assert client.get("/api/jobs").status_code == 401
    assert client.get("/").status_code == 302


def test_logout_from_another_site_is_refused(locked):
    client, _ = locked
    client.post("/login", data={"token": "s3cret"})
    assert client.post("/logout", headers={"Origin": "http://evil.example"}).status_code == 403
    assert client.get("/api/jobs").status_code == 200


def test_no_logout_button_without_a_token(client):
    page = client.get("/")
    assert page.status_code == 200 and b"/logout" not in page.data


# --- 5. upload names -----------------------------------------------------------------------------------

@pytest.mark.parametrize("sent, kept", [
    ("日本語.wav", "日本語.wav"),
    ("Ünïcödé news.wav", "Ünïcödé_news.wav"),
    ("../../etc/evil.wav", "evil.wav"),
    (".hidden.wav", "hidden.wav"),
    ("-rf.wav", "rf.wav"),
    ("a'b$c.wav", "a_b_c.wav"),
    ("..", "upload"),
    ("日本語", "日本語"),
    ("x" * 400 + ".wav", None),
])
def test_upload_names_keep_their_letters_and_extension(client, tmp_path, settings, sent, kept):
    wav = write_wav(tmp_path / "src.wav").read_bytes()
    resp = client.post("/api/transcribe", content_type="multipart/form-data",
                       data={"file": (io.BytesIO(wav), sent), "burn_in": "false"})
    assert resp.status_code == 202, resp.get_json()
    saved = Path(client.get(f"/api/status/{resp.get_json()['job_id']}").get_json()["source"])
    assert saved.is_file() and Path(settings["UPLOAD_DIR"]).resolve() in saved.parents
    assert len(saved.name.encode()) <= 255 and saved.parent.parent == Path(settings["UPLOAD_DIR"]).resolve()
    if kept is None:
        assert saved.name.endswith("xxx.wav")
    else:
        assert saved.name.split("-", 1)[1] == kept, saved.name


@pytest.mark.parametrize("sent, kept", [("..\\..\\windows\\evil.wav", "evil.wav"), ("C:\\Users\\me\\日本語.mp4", "日本語.mp4"),
                                        ("a\nb\r\x00c.mp4", "a_b__c.mp4"), ("\ud800.mp4", "upload.mp4"),
                                        ("clip.tar.gz", "clip.tar.gz"), ("x.verylongextension", "x.verylongextension")])
def test_safe_file_name(sent, kept):
    from core.services.storage import safe_file_name

    assert safe_file_name(sent) == kept
