"""The OpenAPI description against the real system (issue 18): a private redis-server, a real Celery worker
with WhisperX and FFmpeg; a short clip is captioned and every JSON answer met on the way (status while it
runs, the job, its QC report, captions and revisions, batches, health, queue, inspect, browse, analytics,
errors) is checked against the described schema.  Then the docs page is opened in Chromium: every request
it makes stays on this dashboard, and it lists the operations."""

from __future__ import annotations

import threading

import pytest
from werkzeug.serving import make_server

from bench.media import make_speech_clip
from core.api import openapi
from core.queue import INSPECT_METHODS
from tests.openapi_check import Checker
from tests.system import start_system, stop_system, wait_for

pytestmark = pytest.mark.system

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SCRIPT = ["Good evening and welcome to the news.", "The weather will be dry tomorrow."]
FINISHED = ("completed", "failed", "cancelled")


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    sys_ = start_system(tmp_path_factory.mktemp("openapi"))
    make_speech_clip(sys_.storage / "news", SCRIPT, gap=0.6, lead=0.4, size="320x240", name="news.mp4")
    (sys_.storage / "news" / "notes.mp4").write_text("this is not a video\n")
    yield sys_
    stop_system(sys_)


@pytest.fixture(scope="module")
def checker() -> Checker:
    return Checker(openapi.document())


@pytest.fixture(scope="module")
def captioned(system, checker):
    """A short clip queued through the API and followed to completion, every status answer checked."""
    client = system.app.test_client()
    news = system.storage / "news"
    answer = checker.check_response(client.post("/api/transcribe/batch", json={
        "paths": [str(news / "news.mp4"), str(news / "notes.mp4")], "options": {"burn_in": True}}),
        "POST", "/api/transcribe/batch", 202)
    assert len(answer["queued"]) == 1 and len(answer["rejected"]) == 1
    job_id = answer["queued"][0]["job_id"]
    seen = set()

    def finished():
        job = checker.check_response(client.get(f"/api/status/{job_id}"), "GET", "/api/status/{job_id}", 200)
        seen.add((job["status"], job["stage"]))
        if job["status"] == "processing":
            checker.check_response(client.get("/api/queue"), "GET", "/api/queue", 200)
        return job if job["status"] in FINISHED else None

    job = wait_for(finished, 300, interval=0.3, what="the clip to be captioned")
    assert job["status"] == "completed", job["error"]
    return {"job_id": job_id, "batch_id": answer["batch_id"], "seen": seen}


def test_a_captioned_job_answers_what_is_described(system, checker, captioned):
    client = system.app.test_client()
    job_id = captioned["job_id"]
    assert any(status == "processing" for status, _ in captioned["seen"])   # running answers were checked too
    job = checker.check_response(client.get(f"/api/status/{job_id}"), "GET", "/api/status/{job_id}", 200)
    assert job["result"]["qc"] is not None and job["result"]["segments"]
    checker.check_response(client.get(f"/api/jobs?batch_id={captioned['batch_id']}"), "GET", "/api/jobs", 200)
    checker.check_response(client.get("/api/jobs?status=completed&qc=pass"), "GET", "/api/jobs", 200)
    checker.check_response(client.get(f"/api/jobs/{job_id}/qc"), "GET", "/api/jobs/{job_id}/qc", 200)
    checker.check_response(client.get(f"/api/batches/{captioned['batch_id']}"), "GET", "/api/batches/{batch_id}", 200)
    checker.check_response(client.post(f"/api/jobs/{job_id}/cancel"), "POST", "/api/jobs/{job_id}/cancel", 409)
    checker.check_response(client.post(f"/api/jobs/{job_id}/retry"), "POST", "/api/jobs/{job_id}/retry", 409)

    outputs = checker._at(checker.response_pointer("GET", "/api/jobs/{job_id}/outputs/{kind}", 200))["content"]
    for kind in job["result"]["outputs"]:
        resp = client.get(f"/api/jobs/{job_id}/outputs/{kind}")
        assert resp.status_code == 200 and resp.content_type.split(";")[0] in outputs, (kind, resp.content_type)
    checker.check_response(client.get(f"/api/jobs/{job_id}/outputs/mov"), "GET", "/api/jobs/{job_id}/outputs/{kind}",
                           404)
    source = client.get(f"/api/jobs/{job_id}/source")
    assert source.status_code == 200 and source.content_type == "video/mp4"


def test_a_caption_edit_and_its_revisions_answer_what_is_described(system, checker, captioned):
    client = system.app.test_client()
    job_id = captioned["job_id"]
    revision = checker.check_response(client.get(f"/api/jobs/{job_id}/captions"), "GET",
                                      "/api/jobs/{job_id}/captions", 200)
    latest = revision["latest"]
    captions = [{k: c[k] for k in ("start", "end", "lines")} for c in revision["captions"]]
    captions[0]["lines"] = ["GOOD EVENING"]
    saved = checker.check_response(client.put(f"/api/jobs/{job_id}/captions", json={
        "captions": captions, "base_revision": latest}), "PUT", "/api/jobs/{job_id}/captions", 200)
    checker.check_response(client.put(f"/api/jobs/{job_id}/captions", json={
        "captions": captions, "base_revision": latest}), "PUT", "/api/jobs/{job_id}/captions", 409)
    checker.check_response(client.put(f"/api/jobs/{job_id}/captions", json={
        "captions": [dict(captions[0], end=captions[0]["start"] - 1)], "base_revision": saved["revision"]}),
        "PUT", "/api/jobs/{job_id}/captions", 400)
    checker.check_response(client.put(f"/api/jobs/{job_id}/captions", data="x"), "PUT",
                           "/api/jobs/{job_id}/captions", 415)
    listed = checker.check_response(client.get(f"/api/jobs/{job_id}/captions/revisions"), "GET",
                                    "/api/jobs/{job_id}/captions/revisions", 200)
    assert listed["latest"] == saved["revision"]
    checker.check_response(client.get(f"/api/jobs/{job_id}/captions?revision=1"), "GET",
                           "/api/jobs/{job_id}/captions", 200)
    # the re-render of the edit: status answers while it runs and after
    wait_for(lambda: checker.check_response(client.get(f"/api/status/{job_id}"), "GET", "/api/status/{job_id}",
                                            200)["status"] in FINISHED, 300, what="the re-render")
    checker.check_response(client.post(f"/api/jobs/{job_id}/captions/revert", json={
        "revision": 1, "base_revision": saved["revision"]}), "POST", "/api/jobs/{job_id}/captions/revert", 200)


def test_system_browse_and_error_answers_match_the_description(system, checker, captioned):
    client = system.app.test_client()
    news = system.storage / "news"
    health = checker.check_response(client.get("/api/health"), "GET", "/api/health", 200)
    assert health["workers"]["count"] >= 1
    checker.check_response(client.get("/api/queue"), "GET", "/api/queue", 200)
    for method in INSPECT_METHODS:
        checker.check_response(client.get(f"/api/inspect/{method}"), "GET", "/api/inspect/{method}", 200)
    checker.check_response(client.get("/api/inspect/shutdown"), "GET", "/api/inspect/{method}", 404)
    roots = checker.check_response(client.get("/api/roots"), "GET", "/api/roots", 200)
    checker.check_response(client.get(f"/api/browse?path={roots['roots'][0]['path']}"), "GET", "/api/browse", 200)
    listing = checker.check_response(client.get(f"/api/browse?path={news}"), "GET", "/api/browse", 200)
    assert any(item.get("captioned") for item in listing["items"])
    checker.check_response(client.get("/api/browse?path=/etc"), "GET", "/api/browse", 400)
    durations = checker.check_response(client.post("/api/durations", json={"paths": [str(news / "news.mp4")]}),
                                       "POST", "/api/durations", 200)
    assert durations["durations"][str(news / "news.mp4")] > 1
    checker.check_response(client.get("/api/analytics"), "GET", "/api/analytics", 200)
    checker.check_response(client.get("/api/jobs/0123/captions"), "GET", "/api/jobs/{job_id}/captions", 404)
    checker.check_response(client.post("/api/transcribe/batch", json={"paths": []}), "POST",
                           "/api/transcribe/batch", 400)
    checker.check_response(client.get("/api/jobs?page=x"), "GET", "/api/jobs", 400)


def test_every_json_route_without_parameters_answers_what_is_described(system, checker, captioned):
    """Whatever the description lists that a plain GET can reach (routes other areas add included)."""
    client = system.app.test_client()
    reached = []
    for path, item in checker.doc["paths"].items():
        op = item.get("get")
        required = [p for p in (op or {}).get("parameters", []) + item.get("parameters", [])
                    if "$ref" in p or p.get("required")]
        if op is None or "{" in path or required:
            continue
        resp = client.get(path)
        checker.response_pointer("GET", path, resp.status_code)
        if resp.is_json:
            checker.check("GET", path, resp.status_code, resp.get_json(), resp.content_type)
            reached.append(path)
    assert {"/api/jobs", "/api/health", "/api/queue", "/api/roots", "/api/analytics", "/api/openapi.json"} <= set(reached)


def test_the_docs_page_renders_in_chromium_with_nothing_from_elsewhere(system, captioned):
    from playwright.sync_api import sync_playwright

    server = make_server("127.0.0.1", 0, system.app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    origin = f"http://127.0.0.1:{server.server_port}"
    requests, problems = [], []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.on("request", lambda r: requests.append(r.url))
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(f"{origin}/api/docs")
            page.wait_for_selector(".opblock-summary-path", timeout=30_000)
            paths = page.locator(".opblock-summary-path").all_inner_texts()
            page.locator(".opblock-summary", has_text="/api/status/{job_id}").first.click()
            page.wait_for_selector(".opblock.is-open .responses-table", timeout=10_000)
            browser.close()
    finally:
        server.shutdown()
    assert requests and all(url.startswith(origin + "/") for url in requests), requests
    assert f"{origin}/api/openapi.json" in requests
    assert not problems, problems          # a CSP refusal shows here
    described = {(path, method) for path, item in openapi.document()["paths"].items() for method in item
                 if method in openapi.METHODS}
    assert len(paths) == len(described)
    assert {"/api/transcribe/batch", "/api/jobs/{job_id}/captions", "/api/health"} <= {p.strip() for p in paths}
