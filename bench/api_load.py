"""API under load: one batch of 1,000 jobs, then latency of /api/queue and a
/api/jobs page while the worker runs, 20 concurrent Socket.IO clients, and a
screenshot of the Queue tab.

    .venv/bin/python -m bench.api_load [--jobs 1000] [--requests 300] [--keep DIR]

Starts its own system: redis-server on a free port and `start_dashboard.py
--no-redis` (eventlet, with its supervised worker).  Prints a table and a JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.media import make_speech_clip
from bench.system import get_json, post_json, running_dashboard



def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _measure(url: str, n: int, concurrency: int = 8) -> dict:
    with ThreadPoolExecutor(concurrency) as pool:
        times = [t for t, _ in pool.map(lambda _: get_json(url), range(n))]
    return {"p50_ms": round(statistics.median(times), 1), "p95_ms": round(_pct(times, 0.95), 1),
            "max_ms": round(max(times), 1), "requests": n}


def _socket_clients(url: str, count: int, seconds: float) -> dict:
    import socketio

    clients, boxes = [], []
    for _ in range(count):
        c = socketio.Client()
        box = {"queue": 0, "job": 0}
        c.on("queue_update", lambda data, box=box: box.__setitem__("queue", box["queue"] + 1))
        c.on("job_update", lambda data, box=box: box.__setitem__("job", box["job"] + 1))
        c.connect(url, transports=["websocket"])
        clients.append(c)
        boxes.append(box)
    time.sleep(seconds)
    for c in clients:
        c.disconnect()
    return {"clients": count, "all_got_queue_update": all(b["queue"] for b in boxes),
            "all_got_job_update": all(b["job"] for b in boxes),
            "min_queue_updates": min(b["queue"] for b in boxes), "min_job_updates": min(b["job"] for b in boxes)}


def _screenshot(url: str, out: Path) -> int | None:
    if not Path("/usr/bin/chromium").exists():
        return None
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(url + "/#queue")
        page.wait_for_selector("#q-waiting tr[data-job]", timeout=30_000)
        page.screenshot(path=str(out))
        rows = page.locator("#q-waiting tr[data-job]").count()
        browser.close()
        return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--keep", type=Path, help="keep the run's files here")
    args = parser.parse_args()
    tmp = args.keep or Path(tempfile.mkdtemp(prefix="api-load-"))
    news = tmp / "mnt" / "news"
    clip = make_speech_clip(news, ["Good evening.", "Here is the news."], gap=0.4, lead=0.3, size="160x120",
                            name="clip-0000.mp4").path
    paths = [str(clip)]
    for i in range(1, args.jobs):
        link = news / f"clip-{i:04d}.mp4"
        os.link(clip, link)
        paths.append(str(link))
    with running_dashboard(tmp, tmp / "mnt") as url:
        submit_ms, batch = post_json(f"{url}/api/transcribe/batch", {"paths": paths, "options": {"burn_in": False}})
        time.sleep(3)
        queue = _measure(f"{url}/api/queue", args.requests)
        jobs_page = _measure(f"{url}/api/jobs?page=7&page_size=50", args.requests)
        jobs_filtered = _measure(f"{url}/api/jobs?status=pending&q=clip-09&page_size=50", args.requests)
        sockets = _socket_clients(url, 20, 8.0)
        rows = _screenshot(url, tmp / "queue-1000.png")
        figures = {
            "jobs": args.jobs, "batch_submit_ms": round(submit_ms), "queued": len(batch["queued"]),
            "api_queue": queue, "api_jobs_page": jobs_page, "api_jobs_filtered": jobs_filtered,
            "socketio": sockets, "queue_tab_waiting_rows": rows, "screenshot": str(tmp / "queue-1000.png"),
        }
    print(f"{'batch of':28} {figures['jobs']} paths, queued {figures['queued']} in {figures['batch_submit_ms']} ms")
    for name in ("api_queue", "api_jobs_page", "api_jobs_filtered"):
        f = figures[name]
        print(f"{name:28} p50 {f['p50_ms']:7.1f} ms  p95 {f['p95_ms']:7.1f} ms  max {f['max_ms']:7.1f} ms")
    print(f"{'20 Socket.IO clients':28} queue_update to all: {sockets['all_got_queue_update']}, "
          f"job_update to all: {sockets['all_got_job_update']}")
    print(f"{'Queue tab':28} rendered {rows} waiting rows; screenshot {figures['screenshot']}")
    print(json.dumps(figures))
    ok = (queue["p95_ms"] < 200 and jobs_page["p95_ms"] < 200 and sockets["all_got_queue_update"]
          and sockets["all_got_job_update"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
