"""The OpenAPI description (issue 18), fast tier: it is valid OpenAPI 3.1, it describes every route the app
serves (and nothing it does not), the merge refuses clashes, and real answers of the app (temp SQLite store,
FakeQueue) match the described schemas."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from openapi_spec_validator import validate

import core
from core.api import openapi
from core.db import new_id
from tests.fast import add_job, write_wav
from tests.openapi_check import Checker
from tests.test_revisions import add_job as add_job_with_duration
from tests.test_revisions import caption

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def doc() -> dict:
    return openapi.build()


@pytest.fixture(scope="module")
def checker(doc) -> Checker:
    return Checker(doc)


def test_the_description_is_valid_openapi_3_1(doc):
    validate(doc)        # raises with the offending part
    assert doc["openapi"].startswith("3.1.")
    assert doc["info"]["version"] == core.__version__
    schemes = doc["components"]["securitySchemes"]
    assert schemes["apiToken"] == {**schemes["apiToken"], "type": "apiKey", "in": "header", "name": "X-API-Token"}
    assert schemes["session"]["in"] == "cookie"


def test_every_route_the_app_serves_is_described(app, doc):
    assert openapi.undescribed(app, doc) == []


def test_every_described_operation_is_served(app, doc):
    """A description of a route that no longer exists is as wrong as a missing one."""
    served = {(openapi.flask_path(r.rule), m.lower()) for r in app.url_map.iter_rules() for m in r.methods or ()}
    described = {(path, method) for path, item in doc["paths"].items() for method in item if method in openapi.METHODS}
    assert sorted(described - served) == []


def test_flask_rules_become_openapi_paths():
    assert openapi.flask_path("/api/jobs/<job_id>/outputs/<kind>") == "/api/jobs/{job_id}/outputs/{kind}"
    assert openapi.flask_path("/static/<path:filename>") == "/static/{filename}"
    assert openapi.flask_path("/api/roots") == "/api/roots"


def _spec_folder(tmp_path: Path, files: dict[str, str]) -> Path:
    (tmp_path / "base.yaml").write_text("openapi: 3.1.0\ninfo: {title: t, version: x}\npaths: {}\n"
                                        "components: {schemas: {Error: {type: object}}}\n")
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def test_two_files_describing_the_same_operation_are_refused_naming_both(tmp_path):
    op = "paths:\n  /api/x:\n    get:\n      responses: {'200': {description: ok}}\n"
    folder = _spec_folder(tmp_path, {"a.yaml": op, "b.yaml": op})
    with pytest.raises(openapi.SpecError, match=r"GET /api/x is described in both a\.yaml and b\.yaml"):
        openapi.build(folder)


def test_a_schema_name_defined_twice_is_refused(tmp_path):
    folder = _spec_folder(tmp_path, {"a.yaml": "paths: {}\ncomponents: {schemas: {Error: {type: string}}}\n"})
    with pytest.raises(openapi.SpecError, match=r"components\.schemas\.Error is defined in both base\.yaml and a\.yaml"):
        openapi.build(folder)


def test_two_files_may_describe_different_methods_of_one_path(tmp_path):
    folder = _spec_folder(tmp_path, {
        "a.yaml": "paths:\n  /api/x:\n    get:\n      responses: {'200': {description: ok}}\n",
        "b.yaml": "paths:\n  /api/x:\n    post:\n      responses: {'200': {description: ok}}\n"})
    merged = openapi.build(folder)
    assert set(merged["paths"]["/api/x"]) == {"get", "post"}
    assert "403" in merged["paths"]["/api/x"]["post"]["responses"]      # the cross-site refusal, added
    assert "401" in merged["paths"]["/api/x"]["get"]["responses"]


def test_a_file_that_is_not_a_mapping_is_refused(tmp_path):
    folder = _spec_folder(tmp_path, {"a.yaml": "- just\n- a list\n"})
    with pytest.raises(openapi.SpecError, match="a.yaml"):
        openapi.build(folder)


def test_the_served_document_is_the_merged_one(client, doc, checker):
    body = checker.check_response(client.get("/api/openapi.json"), "GET", "/api/openapi.json", 200)
    assert body == doc


def test_the_docs_page_loads_only_vendored_files(client):
    resp = client.get("/api/docs")
    assert resp.status_code == 200 and resp.content_type.startswith("text/html")
    page = resp.get_data(as_text=True)
    assert not re.search(r"(src|href)=\"(https?:)?//", page)
    assert "'unsafe-inline'" not in resp.headers["Content-Security-Policy"]
    for url in re.findall(r"(?:src|href)=\"(/static/[^\"]+)\"", page):
        assert client.get(url).status_code == 200, url
    assert (ROOT / "static" / "vendor" / "swagger-ui" / "LICENSE").is_file()


def test_with_a_token_the_description_and_docs_need_it(settings, store, queue):
    from core.api import create_app

    client = create_app({**settings, "API_TOKEN": "s3cret"}, queue=queue).test_client()
    checker = Checker(openapi.build())
    for path in ("/api/openapi.json", "/api/docs"):
        checker.check_response(client.get(path), "GET", path, 401)
    assert client.get("/api/openapi.json", headers={"X-API-Token": "s3cret"}).status_code == 200


# --- real answers against their schemas ------------------------------------------------------------------

def test_job_routes_answer_what_is_described(client, settings, news, queue, checker):
    write_wav(news / "a.wav")
    answer = checker.check_response(client.post("/api/transcribe/batch", json={
        "paths": [str(news / "a.wav"), str(news / "missing.wav")], "options": {"burn_in": False}}),
        "POST", "/api/transcribe/batch", 202)
    job_id = answer["queued"][0]["job_id"]
    checker.check_response(client.post("/api/transcribe/batch", json={"paths": [str(news / "missing.wav")]}),
                           "POST", "/api/transcribe/batch", 400)
    checker.check_response(client.post("/api/transcribe/batch", data="x"), "POST", "/api/transcribe/batch", 415)
    checker.check_response(client.post("/api/transcribe/batch", json={"paths": ["x"], "options": {"rows": 9}}),
                           "POST", "/api/transcribe/batch", 400)
    wav = io.BytesIO((write_wav(news.parent / "up.wav")).read_bytes())
    checker.check_response(client.post("/api/transcribe", data={"file": (wav, "up.wav"), "burn_in": "no"},
                                       content_type="multipart/form-data"), "POST", "/api/transcribe", 202)
    checker.check_response(client.post("/api/transcribe", data={}), "POST", "/api/transcribe", 400)

    checker.check_response(client.get(f"/api/status/{job_id}"), "GET", "/api/status/{job_id}", 200)
    checker.check_response(client.get(f"/api/status/{new_id()}"), "GET", "/api/status/{job_id}", 404)
    checker.check_response(client.get(f"/api/batches/{answer['batch_id']}"), "GET", "/api/batches/{batch_id}", 200)
    checker.check_response(client.get("/api/batches/nope"), "GET", "/api/batches/{batch_id}", 404)
    checker.check_response(client.get(f"/api/jobs/{job_id}/qc"), "GET", "/api/jobs/{job_id}/qc", 404)
    checker.check_response(client.post(f"/api/jobs/{job_id}/retry"), "POST", "/api/jobs/{job_id}/retry", 409)
    checker.check_response(client.post(f"/api/jobs/{job_id}/cancel"), "POST", "/api/jobs/{job_id}/cancel", 200)
    checker.check_response(client.post(f"/api/jobs/{job_id}/cancel"), "POST", "/api/jobs/{job_id}/cancel", 409)
    checker.check_response(client.post(f"/api/jobs/{job_id}/retry"), "POST", "/api/jobs/{job_id}/retry", 202)

    for status in ("processing", "failed", "completed"):
        add_job(settings, f"{status}.mp4", status=status, error="boom" if status == "failed" else None)
    listing = checker.check_response(client.get("/api/jobs?page_size=10"), "GET", "/api/jobs", 200)
    assert listing["total"] == 5
    checker.check_response(client.get("/api/jobs?status=nope"), "GET", "/api/jobs", 400)
    checker.check_response(client.get("/api/jobs?page_size=0"), "GET", "/api/jobs", 400)
    checker.check_response(client.get(f"/api/jobs/{job_id}/outputs/nope"), "GET", "/api/jobs/{job_id}/outputs/{kind}",
                           404)
    checker.check_response(client.delete(f"/api/jobs/{job_id}?outputs=1"), "DELETE", "/api/jobs/{job_id}", 200)
    checker.check_response(client.delete(f"/api/jobs/{job_id}"), "DELETE", "/api/jobs/{job_id}", 404)
    cross = client.post(f"/api/jobs/{job_id}/cancel", headers={"Origin": "http://evil.example"})
    checker.check_response(cross, "POST", "/api/jobs/{job_id}/cancel", 403)


def test_a_captioned_job_and_its_revisions_answer_what_is_described(client, settings, store, news, checker):
    job_id = caption(add_job_with_duration(settings, burn_in=True))
    job = checker.check_response(client.get(f"/api/status/{job_id}"), "GET", "/api/status/{job_id}", 200)
    assert job["status"] == "completed" and job["result"]["revision"] == 1
    checker.check_response(client.get("/api/jobs"), "GET", "/api/jobs", 200)
    revision = checker.check_response(client.get(f"/api/jobs/{job_id}/captions"), "GET",
                                      "/api/jobs/{job_id}/captions", 200)
    checker.check_response(client.get(f"/api/jobs/{job_id}/captions?revision=7"), "GET",
                           "/api/jobs/{job_id}/captions", 404)
    captions = [{k: c[k] for k in ("start", "end", "lines")} for c in revision["captions"]]
    captions[0]["lines"] = ["EDITED"]
    saved = checker.check_response(client.put(f"/api/jobs/{job_id}/captions", json={
        "captions": captions, "base_revision": 1, "note": "fix"}), "PUT", "/api/jobs/{job_id}/captions", 200)
    assert saved["revision"] == 2
    stale = checker.check_response(client.put(f"/api/jobs/{job_id}/captions", json={
        "captions": captions, "base_revision": 1}), "PUT", "/api/jobs/{job_id}/captions", 409)
    assert stale["latest"] == 2
    bad = [dict(captions[0], lines=["X" * 40])]
    refused = checker.check_response(client.put(f"/api/jobs/{job_id}/captions", json={
        "captions": bad, "base_revision": 2}), "PUT", "/api/jobs/{job_id}/captions", 400)
    assert refused["violations"]
    checker.check_response(client.get(f"/api/jobs/{job_id}/captions/revisions"), "GET",
                           "/api/jobs/{job_id}/captions/revisions", 200)
    checker.check_response(client.post(f"/api/jobs/{job_id}/captions/revert", json={"revision": 1, "base_revision": 2}),
                           "POST", "/api/jobs/{job_id}/captions/revert", 200)
    checker.check_response(client.post(f"/api/jobs/{job_id}/captions/revert", json={"revision": "x"}),
                           "POST", "/api/jobs/{job_id}/captions/revert", 400)

    scc = client.get(f"/api/jobs/{job_id}/outputs/scc?revision=1")
    assert scc.status_code == 200
    checker.response_pointer("GET", "/api/jobs/{job_id}/outputs/{kind}", 200)
    content = checker._at(checker.response_pointer("GET", "/api/jobs/{job_id}/outputs/{kind}", 200))["content"]
    assert scc.content_type.split(";")[0] in content


def test_browse_and_system_routes_answer_what_is_described(client, settings, news, queue, checker):
    write_wav(news / "b.wav")
    roots = checker.check_response(client.get("/api/roots"), "GET", "/api/roots", 200)
    root = roots["roots"][0]["path"]
    checker.check_response(client.get(f"/api/browse?path={news}"), "GET", "/api/browse", 200)
    checker.check_response(client.get(f"/api/browse?path={root}&sort=size&order=desc&videos_only=1"), "GET",
                           "/api/browse", 200)
    checker.check_response(client.get("/api/browse?path=/etc"), "GET", "/api/browse", 400)
    checker.check_response(client.get(f"/api/browse?path={news}&order=up"), "GET", "/api/browse", 400)
    durations = checker.check_response(client.post("/api/durations", json={"paths": [str(news / "b.wav"), "/nope"]}),
                                       "POST", "/api/durations", 200)
    assert durations["durations"][str(news / "b.wav")] == pytest.approx(2.0, abs=0.05)
    checker.check_response(client.post("/api/durations", json={}), "POST", "/api/durations", 400)
    add_job(settings, "failed.mp4", status="failed", error="/x/failed.mp4: no audio stream")
    checker.check_response(client.get("/api/analytics?days=3"), "GET", "/api/analytics", 200)
    checker.check_response(client.get("/api/analytics?days=0"), "GET", "/api/analytics", 400)

    queue.replies["ping"] = {"w1@host": {"ok": "pong"}}
    checker.check_response(client.get("/api/inspect/ping"), "GET", "/api/inspect/{method}", 200)
    checker.check_response(client.get("/api/inspect/shutdown"), "GET", "/api/inspect/{method}", 404)
    checker.check_response(client.get("/api/queue"), "GET", "/api/queue", 200)

    job_id = add_job(settings, "b.wav", status="completed")
    source = client.get(f"/api/jobs/{job_id}/source")
    assert source.status_code == 200
    described = checker._at(checker.response_pointer("GET", "/api/jobs/{job_id}/source", 200))["content"]
    assert source.content_type.split("/")[0] + "/*" in described


def test_pages_answer_what_is_described(client, settings, store, queue, checker):
    from core.api import create_app

    resp = client.get("/")
    checker.response_pointer("GET", "/", resp.status_code)
    token_client = create_app({**settings, "API_TOKEN": "s3cret"}, queue=queue).test_client()
    for method, path, data in (("GET", "/", None), ("GET", "/login", None), ("POST", "/login", {"token": "no"}),
                               ("POST", "/login", {"token": "s3cret"}), ("POST", "/logout", None)):
        resp = token_client.open(path, method=method, data=data)
        checker.response_pointer(method, path, resp.status_code)
