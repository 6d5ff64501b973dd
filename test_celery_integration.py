"""The operator's check of a running captioning system.

    python test_celery_integration.py --url http://127.0.0.1:5050 [--token TOKEN]

checks health, task registration, worker status and queues, then captions a
generated clip end to end through the upload and batch APIs and reads the
queue API.  Under pytest it starts its own system (redis-server on a free
port, a real Celery worker, the API on a real HTTP port) and runs the same
checks against it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

REQUIRED_TASKS = ("core.tasks.transcription.batch_transcription", "core.tasks.transcription.transcribe_video",
                  "core.tasks.transcription.generate_captioned_video")
SCRIPT = ["Good evening, this is the integration check.", "Captions should appear for every sentence."]


class Api:
    def __init__(self, url: str, token: str = ""):
        self.url, self.token = url.rstrip("/"), token

    def call(self, method: str, path: str, body: bytes | None = None, content_type: str | None = None,
             timeout: float = 30) -> tuple[int, dict | bytes]:
        req = urllib.request.Request(self.url + path, data=body, method=method)
        if content_type:
            req.add_header("Content-Type", content_type)
        if self.token:
            req.add_header("X-API-Token", self.token)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                code, data, kind = resp.status, resp.read(), resp.headers.get("Content-Type", "")
        except urllib.error.HTTPError as err:
            code, data, kind = err.code, err.read(), err.headers.get("Content-Type", "")
        return code, json.loads(data) if "json" in kind else data

    def get(self, path: str):
        return self.call("GET", path)

    def post_json(self, path: str, payload: dict):
        return self.call("POST", path, json.dumps(payload).encode(), "application/json")

    def upload(self, path: Path, fields: dict):
        boundary = uuid.uuid4().hex
        parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
                 for k, v in fields.items()]
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
                     f"Content-Type: video/mp4\r\n\r\n".encode() + path.read_bytes() + b"\r\n")
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        return self.call("POST", "/api/transcribe", body, f"multipart/form-data; boundary={boundary}", timeout=120)


def _step(name: str):
    print(f"- {name} ...", flush=True)


def check_health(api: Api) -> None:
    _step("health: Redis, database, workers")
    code, health = api.get("/api/health")
    assert code == 200, f"unhealthy system ({code}): {health}"
    assert health["redis"]["ok"] and health["database"]["ok"] and health["workers"]["count"] >= 1, health


def check_registration(api: Api) -> None:
    _step("task registration")
    code, data = api.get("/api/inspect/registered")
    assert code == 200, data
    names = {t.split(" ")[0] for tasks in data["replies"].values() for t in tasks}
    missing = [t for t in REQUIRED_TASKS if t not in names]
    assert not missing, f"tasks not registered by any worker: {missing}"


def check_workers(api: Api) -> None:
    _step("worker status and queues")
    code, queue = api.get("/api/queue")
    assert code == 200, queue
    assert queue["workers"], "no worker in the queue snapshot"
    served = {q for w in queue["workers"] for q in w["queues"]}
    assert {"transcribe", "render"} <= served, f"queues served: {served}"


def make_clip(folder: Path) -> Path:
    from bench.media import make_speech_clip

    return make_speech_clip(folder, SCRIPT, gap=0.8, lead=0.6, size="640x360", name="integration check.mp4").path


def wait_job(api: Api, job_id: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code, job = api.get(f"/api/status/{job_id}")
        assert code == 200, job
        if job["status"] in ("completed", "failed", "cancelled"):
            return job
        time.sleep(1)
    raise AssertionError(f"job {job_id} did not finish within {timeout}s")


def check_captioning_workflow(api: Api, clip: Path) -> dict:
    _step("captioning workflow: upload, transcribe, caption, burn in")
    code, created = api.upload(clip, {"language": "en", "burn_in": "true"})
    assert code == 202, created
    job = wait_job(api, created["job_id"])
    assert job["status"] == "completed", job["error"]
    text = job["result"]["text"].lower()
    assert "integration" in text and "captions" in text, text
    for kind in ("scc", "srt", "vtt", "dfxp", "json", "video"):
        code, data = api.get(f"/api/jobs/{job['job_id']}/outputs/{kind}")
        assert code == 200 and data, f"{kind} download failed ({code})"
    code, scc = api.get(f"/api/jobs/{job['job_id']}/outputs/scc")
    assert bytes(scc).startswith(b"Scenarist_SCC V1.0")
    return job


def check_batch_api(api: Api, source: str) -> None:
    _step("batch API: partial success")
    code, batch = api.post_json("/api/transcribe/batch", {"paths": [source, "/nonexistent/clip.mp4"],
                                                          "options": {"burn_in": False}, "force": True})
    assert code == 202, batch
    assert batch["valid_paths"] == 1 and len(batch["rejected"]) == 1, batch
    job = wait_job(api, batch["queued"][0]["job_id"])
    assert job["status"] == "completed", job["error"]
    code, summary = api.get(f"/api/batches/{batch['batch_id']}")
    assert code == 200 and summary["done"], summary


def check_queue_api(api: Api) -> None:
    _step("queue API")
    code, queue = api.get("/api/queue")
    assert code == 200 and set(queue) >= {"active", "reserved", "scheduled", "workers", "counts"}, queue
    assert queue["counts"]["completed"] >= 1


def run_all(url: str, token: str = "") -> None:
    api = Api(url, token)
    check_health(api)
    check_registration(api)
    check_workers(api)
    with tempfile.TemporaryDirectory() as tmp:
        job = check_captioning_workflow(api, make_clip(Path(tmp)))
    check_batch_api(api, job["source"])
    check_queue_api(api)


# --- pytest: the same checks against a system started for the test --------------------

try:  # the script itself runs without pytest installed
    import pytest
except ImportError:
    pytest = None


def _serve(app):
    from werkzeug.serving import make_server

    from core.embedded import free_port

    server = make_server("127.0.0.1", free_port(), app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_running_system_passes_operator_check(tmp_path):
    from tests.system import start_system, stop_system

    system = start_system(tmp_path)
    server = _serve(system.app)
    try:
        run_all(f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        stop_system(system)


if pytest is not None:
    test_running_system_passes_operator_check = pytest.mark.system(test_running_system_passes_operator_check)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:5050")
    parser.add_argument("--token", default="", help="API_TOKEN of the dashboard, if it has one")
    args = parser.parse_args()
    try:
        run_all(args.url, args.token)
    except AssertionError as err:
        print(f"FAILED: {err}")
        return 1
    except OSError as err:
        print(f"FAILED: cannot reach {args.url}: {err}")
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
