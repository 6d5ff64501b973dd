"""Workers never import eventlet (only the dashboard server may run on it), so no
worker prints eventlet's deprecation warning."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# What a worker process imports: the app, every task module, and the events emitter it publishes with.
WORKER_IMPORTS = """
import importlib, json, sys
import core.tasks
from core.celery_app import TASK_MODULES
for name in TASK_MODULES:
    importlib.import_module(name)
from core import events
events.configure("redis://127.0.0.1:1/0")
events._socketio_sink()
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("eventlet", "gevent"))))
"""


def test_worker_modules_and_the_event_emitter_do_not_import_eventlet():
    proc = subprocess.run([sys.executable, "-W", "always", "-c", WORKER_IMPORTS], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.splitlines()[-1]) == []
    assert "EventletDeprecationWarning" not in proc.stderr


@pytest.mark.system
def test_a_worker_that_ran_a_job_printed_no_eventlet_warning(tmp_path):
    from bench.media import make_speech_clip
    from tests.system import start_system, stop_system, wait_for

    system = start_system(tmp_path)
    try:
        clip = make_speech_clip(system.storage / "news", ["Good evening."], size="160x120", name="short.mp4")
        client = system.app.test_client()
        job_id = client.post("/api/transcribe/batch", json={"paths": [str(clip.path)]}).get_json()["queued"][0]["job_id"]
        job = wait_for(lambda: (lambda j: j if j["status"] in ("completed", "failed") else None)(
            client.get(f"/api/status/{job_id}").get_json()), 300, what="the job")
    finally:
        stop_system(system)
    assert job["status"] == "completed", job["error"]
    log = (tmp_path / "worker.log").read_text()
    assert "succeeded" in log, "precondition: the worker ran the job"
    assert "EventletDeprecationWarning" not in log and "eventlet" not in log.lower()
