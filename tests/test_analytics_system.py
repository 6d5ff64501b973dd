"""Issue 18, analytics over time, end to end: a real worker finishes one burn-in job and fails another,
`start_dashboard.py` (sampling the queue every 2 s) serves the page, and headless Chromium (Debian's)
driven by Playwright draws every chart of the Analytics tab with the finished job in it, the queue chart
moving live over Socket.IO, and nothing refused by the Content-Security-Policy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.media import make_speech_clip
from core.embedded import free_port
from tests.fast import write_wav
from tests.system import interrupt, start_system, stop_system, wait_for
from tests.test_dashboard import CHROMIUM, CHROMIUM_ARGS, _get, _post

pytestmark = pytest.mark.system

ROOT = Path(__file__).resolve().parent.parent
CHARTS = ("an-jobs", "an-media", "an-queue", "an-rtf", "an-failures")

# Pixels of one colour on a chart's canvas (the bars and lines are drawn in the theme's colours).
COLOURED_PIXELS = """([id, hex]) => {
  const canvas = document.querySelector(`#${id} .uplot canvas`);
  const want = [1, 3, 5].map(i => parseInt(hex.slice(i, i + 2), 16));
  const px = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0, matching = 0;
  for (let i = 0; i < px.length; i += 4) {
    if (px[i + 3] === 0) continue;
    painted++;
    if (want.every((v, k) => Math.abs(px[i + k] - v) < 12)) matching++;
  }
  return { width: canvas.width, height: canvas.height, painted, matching };
}"""


@pytest.fixture
def system(tmp_path):
    sys_ = start_system(tmp_path)
    yield sys_
    stop_system(sys_)


def _dashboard(system, tmp: Path):
    env = {**os.environ, **system.env, "VAR_DIR": str(tmp / "var"), "ANALYTICS_SAMPLE_SECONDS": "2"}
    log = open(tmp / "dashboard.log", "wb")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "start_dashboard.py", "--no-redis", "--no-worker", "--port", str(port)],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    return proc, f"http://127.0.0.1:{port}"


def _failing_job(system) -> str:
    """A job whose source is replaced after it was queued: the worker fails it with that reason."""
    from core.db import Job, new_id, utcnow
    from core.jobs import record, sources, submission
    from core.queue import QueueClient
    from core.services import storage

    clip = write_wav(system.storage / "news" / "replaced.wav", 2.0)
    job = Job(id=new_id(), source=str(clip), source_stat=sources.source_stat(clip),
              output_dir=str(storage.output_dir_for(clip, system.settings)),
              options={"model": "tiny.en", "language": "en", "burn_in": False, "rows": 2}, priority="normal",
              media_duration=2.0, status="pending", progress=0.0, attempts=0, created_at=utcnow())
    record.create([job])
    clip.write_bytes(b"not a media file any more\n")
    submission.dispatch(job.id, QueueClient(system.celery, system.settings))
    return job.id


def _colours(page, chart: str, hex_colour: str) -> dict:
    return page.evaluate(COLOURED_PIXELS, [chart, hex_colour])


def test_the_analytics_tab_draws_every_chart_with_the_finished_jobs_and_moves_live(system, tmp_path):
    from playwright.sync_api import sync_playwright

    make_speech_clip(system.storage / "news", ["Good evening and welcome to the news.", "It will be dry tomorrow."],
                     gap=0.6, lead=0.4, size="320x240", name="Bulletin.mp4")
    proc, url = _dashboard(system, tmp_path)
    problems: list[str] = []
    try:
        wait_for(lambda: _up(url), 90, interval=0.5, what="the dashboard")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            # Errors, and anything the Content-Security-Policy refused (not the test's own pixel reads).
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
                    if m.type == "error" or "Content Security Policy" in m.text or "Refused" in m.text else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.goto(f"{url}/#analytics")
            page.wait_for_selector("#conn.online")
            page.select_option("#an-range", "24h")

            # Before any job: every chart is drawn (axes and grid) and says there is nothing yet.
            page.wait_for_selector("#an-jobs .uplot canvas")
            assert "No jobs finished in this period yet" in page.inner_text("#an-jobs")
            for chart in CHARTS:
                drawn = _colours(page, chart, "#000000")
                assert drawn["width"] > 300 and drawn["height"] > 100 and drawn["painted"] > 1000, (chart, drawn)

            good = _post(f"{url}/api/transcribe/batch", {"paths": [str(system.storage / "news" / "Bulletin.mp4")],
                                                          "options": {"burn_in": True}})["queued"][0]["job_id"]
            bad = _failing_job(system)
            for job_id, status in ((good, "completed"), (bad, "failed")):
                wait_for(lambda j=job_id, s=status: _get(f"{url}/api/status/{j}")["status"] == s, 240,
                         what=f"job {job_id} {status}")

            # The job_update of the finished jobs makes the tab fetch its data again, no reload.
            wait_for(lambda: "1 completed · 1 failed" in page.inner_text("#an-totals"), 30,
                     what="the tab to show the finished jobs")
            assert _colours(page, "an-jobs", "#3fb950")["matching"] > 20          # a green bar: completed
            assert _colours(page, "an-jobs", "#f85149")["matching"] > 20          # a red one: failed
            assert _colours(page, "an-media", "#3d8bfd")["matching"] > 20
            assert _colours(page, "an-rtf", "#d29922")["matching"] > 5            # rendering's point
            assert _colours(page, "an-rtf", "#3fb950")["matching"] > 5            # the whole job's
            assert _colours(page, "an-failures", "#f85149")["matching"] > 20
            assert "source changed" in page.inner_text("#chart-failures")
            assert "transcribing" in page.inner_text("#chart-rtf") and "rendering" in page.inner_text("#chart-rtf")
            for chart in CHARTS:
                assert not page.query_selector(f"#{chart} .chart-empty"), page.inner_text(f"#{chart}")

            # The series hold the finished job, bucketed in the browser's zone.
            series = page.evaluate("Analytics.charts.get('an-media').data")
            duration = _get(f"{url}/api/status/{good}")["result"]["duration"]
            assert abs(sum(v for v in series[1] if v) - duration / 3600) < 0.001, (series, duration)
            assert sum(v or 0 for v in page.evaluate("Analytics.charts.get('an-failures').data[1]")) == 1

            # Live: a sample pushed over Socket.IO lands on the queue chart without a fetch.
            before = page.evaluate("Analytics.charts.get('an-queue').data[0].length")
            point = page.evaluate("new Promise(r => socket.once('analytics_sample', r))")
            assert point["workers"] >= 1 and point["waiting"] == 0
            wait_for(lambda: page.evaluate("Analytics.charts.get('an-queue').data[0].length") > before, 10,
                     what="the queue chart to take the new sample")
            page.screenshot(path=str(tmp_path / "analytics.png"), full_page=True)
            lines = sum(_colours(page, "an-queue", colour)["matching"] for colour in ("#d29922", "#3d8bfd", "#3fb950",
                                                                                       "#a371f7"))
            assert lines > 5, page.evaluate("Analytics.charts.get('an-queue').data")
            browser.close()
    finally:
        interrupt(proc)
        print((tmp_path / "dashboard.log").read_text()[-2000:])
    assert not problems, problems
    print(f"screenshot: {tmp_path / 'analytics.png'}")


def _up(url: str) -> bool:
    try:
        return bool(_get(f"{url}/api/jobs"))
    except OSError:
        return False
