"""API under load, in two parts.

``responsive``: a 1,000-path batch of links inside the storage root to ONE
2-hour file, posted to `start_dashboard.py --no-redis --no-worker
--async-mode eventlet` while another client times `GET /api/roots` every
100 ms: how long the submission takes and the worst latency of the requests
that ran meanwhile (the server must stay under 200 ms).  Symlinks all resolve
to one file (1 job, 999 "same file" rejections); hard links are 1,000 names of
one inode (1,000 jobs).

``load``: one batch of 1,000 jobs, then latency of /api/queue and a /api/jobs
page while the worker runs, 20 concurrent Socket.IO clients, and a screenshot
of the Queue tab (`start_dashboard.py --no-redis`, eventlet, with its
supervised worker).

    .venv/bin/python -m bench.api_load [--only responsive|load] [--jobs 1000] [--requests 300]
                                       [--links symlink,hardlink] [--async-mode eventlet] [--repeat 1]
                                       [--keep DIR]

Starts its own redis-server on a free port.  Prints a table and a JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from bench.media import FPS, make_speech_clip
from bench.system import ROOT, get_json, post_json, running_dashboard
from core.embedded import RedisServer, free_port


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


# --- responsive: a big batch must not freeze the server ------------------------------------------------

def make_long_clip(folder: Path, seconds: int = 7200) -> Path:
    """A ``seconds``-long MP4 (160x120 test pattern at 29.97 fps, silent AAC): a minute encoded once and
    looped by stream copy, so its index is as big as a real 2-hour file's (a probe takes ~70 ms)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"long-{seconds}s.mp4"
    if out.exists():
        return out
    segment = folder / ".segment.mp4"
    quiet = ["ffmpeg", "-nostdin", "-y", "-v", "error"]
    subprocess.run([*quiet, "-f", "lavfi", "-i", f"testsrc2=size=160x120:rate={FPS}", "-f", "lavfi", "-i",
                    "anullsrc=channel_layout=mono:sample_rate=48000", "-map", "0:v:0", "-map", "1:a:0", "-t", "60",
                    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "60", "-c:a", "aac",
                    "-b:a", "32k", str(segment)], check=True)
    subprocess.run([*quiet, "-stream_loop", str(max(0, seconds // 60 - 1)), "-i", str(segment), "-c", "copy",
                    "-movflags", "+faststart", str(out)], check=True)
    segment.unlink()
    return out


def make_links(folder: Path, target: Path, count: int, kind: str) -> list[str]:
    """``count`` names in ``folder`` for ``target``: symbolic or hard links."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        link = folder / f"link-{i:04d}.mp4"
        if not link.exists():
            os.symlink(target, link) if kind == "symlink" else os.link(target, link)
        paths.append(str(link))
    return paths


@contextmanager
def dashboard_without_worker(folder: Path, storage: Path, async_mode: str) -> Iterator[str]:
    """`start_dashboard.py --no-redis --no-worker --async-mode M` on its own redis-server: its URL."""
    folder.mkdir(parents=True, exist_ok=True)
    redis = RedisServer(folder / "redis", persist=False).start()
    port = free_port()
    env = {**os.environ, "REDIS_URL": redis.url, "DATABASE_URL": f"sqlite:///{folder / 'jobs.db'}",
           "STORAGE_ROOTS": str(storage), "OUTPUT_DIR": str(folder / "out"), "VAR_DIR": str(folder / "var"),
           "UPLOAD_DIR": str(folder / "uploads")}
    url = f"http://127.0.0.1:{port}"
    with open(folder / "dashboard.log", "wb") as log:
        dash = subprocess.Popen([sys.executable, "start_dashboard.py", "--no-redis", "--no-worker", "--port",
                                 str(port), "--async-mode", async_mode], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
        try:
            _wait_until_up(url, dash, folder)
            yield url
        finally:
            dash.terminate()
            try:
                dash.wait(timeout=30)
            except subprocess.TimeoutExpired:
                dash.kill()
            redis.stop()


def _wait_until_up(url: str, dash: subprocess.Popen, folder: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            get_json(f"{url}/api/roots")
            return
        except OSError:
            if dash.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the dashboard did not come up; see {folder / 'dashboard.log'}") from None
            time.sleep(0.3)


def _poll(url: str, stop: threading.Event, interval: float, samples: list[tuple[float, float]]) -> None:
    """GET ``url`` every ``interval`` s until ``stop``: (start, milliseconds) of each request."""
    while not stop.is_set():
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(url, timeout=300) as resp:
                resp.read()
        except OSError:
            pass
        samples.append((started, (time.perf_counter() - started) * 1000))
        stop.wait(max(0.0, interval - (time.perf_counter() - started)))


def batch_while_polling(url: str, paths: list[str], interval: float = 0.1) -> dict:
    """Post the batch while another client times GET /api/roots; the figures of both."""
    samples: list[tuple[float, float]] = []
    stop = threading.Event()
    poller = threading.Thread(target=_poll, args=(f"{url}/api/roots", stop, interval, samples), daemon=True)
    poller.start()
    time.sleep(1.0)                                   # a few polls before, as a baseline
    begin = time.perf_counter()
    submit_ms, body = post_json(f"{url}/api/transcribe/batch", {"paths": paths, "options": {"burn_in": False}})
    end = time.perf_counter()
    time.sleep(0.5)
    stop.set()
    poller.join()
    during = [ms for started, ms in samples if started < end and started + ms / 1000 > begin]
    return {"paths": len(paths), "submit_ms": round(submit_ms), "queued": len(body["queued"]),
            "rejected": len(body["rejected"]), "roots_requests_during": len(during),
            "roots_worst_ms": round(max(during, default=0.0), 1),
            "roots_p50_ms": round(statistics.median(during), 1) if during else None,
            "roots_before_ms": round(statistics.median([ms for st, ms in samples if st + ms / 1000 < begin]), 1)}


def responsive(tmp: Path, count: int, kinds: list[str], async_mode: str, repeat: int) -> dict:
    """Each batch ``repeat`` times, each time on a freshly started dashboard (nothing probed yet)."""
    storage = tmp / "mnt"
    clip = make_long_clip(storage / "news")
    figures = {"async_mode": async_mode, "source_seconds": 7200}
    for kind in kinds:
        paths = make_links(storage / "news" / kind, clip, count, kind)
        runs = []
        for run in range(repeat):
            with dashboard_without_worker(tmp / f"system-{kind}-{async_mode}-{run}", storage, async_mode) as url:
                runs.append(batch_while_polling(url, paths))
            f = runs[-1]
            print(f"{count} {kind}s ({async_mode}, run {run + 1}):  submit {f['submit_ms']} ms, queued {f['queued']}, "
                  f"rejected {f['rejected']}; GET /api/roots meanwhile: {f['roots_requests_during']} requests, "
                  f"worst {f['roots_worst_ms']} ms, p50 {f['roots_p50_ms']} ms (idle {f['roots_before_ms']} ms)")
        figures[kind] = {"runs": runs, "submit_ms_max": max(r["submit_ms"] for r in runs),
                         "roots_worst_ms": max(r["roots_worst_ms"] for r in runs)}
    return figures


# --- load: 1,000 jobs, the worker busy ----------------------------------------------------------------

def load(tmp: Path, jobs: int, requests: int) -> dict:
    news = tmp / "mnt" / "news"
    clip = make_speech_clip(news, ["Good evening.", "Here is the news."], gap=0.4, lead=0.3, size="160x120",
                            name="clip-0000.mp4").path
    paths = [str(clip)]
    for i in range(1, jobs):
        link = news / f"clip-{i:04d}.mp4"
        os.link(clip, link)
        paths.append(str(link))
    with running_dashboard(tmp, tmp / "mnt") as url:
        submit_ms, batch = post_json(f"{url}/api/transcribe/batch", {"paths": paths, "options": {"burn_in": False}})
        time.sleep(3)
        queue = _measure(f"{url}/api/queue", requests)
        jobs_page = _measure(f"{url}/api/jobs?page=7&page_size=50", requests)
        jobs_filtered = _measure(f"{url}/api/jobs?status=pending&q=clip-09&page_size=50", requests)
        sockets = _socket_clients(url, 20, 8.0)
        rows = _screenshot(url, tmp / "queue-1000.png")
        figures = {
            "jobs": jobs, "batch_submit_ms": round(submit_ms), "queued": len(batch["queued"]),
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
    return figures


def load_ok(f: dict) -> bool:
    return (f["api_queue"]["p95_ms"] < 200 and f["api_jobs_page"]["p95_ms"] < 200
            and f["socketio"]["all_got_queue_update"] and f["socketio"]["all_got_job_update"])


def responsive_ok(f: dict, kinds: list[str]) -> bool:
    return all(f[kind]["roots_worst_ms"] < 200 for kind in kinds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=("responsive", "load"), help="run one part (default: both)")
    parser.add_argument("--jobs", type=int, default=1000, help="paths in each batch")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--links", default="symlink,hardlink", help="responsive: symlink, hardlink or both")
    parser.add_argument("--async-mode", choices=("eventlet", "threading"), default="eventlet")
    parser.add_argument("--repeat", type=int, default=1, help="responsive: runs of each batch")
    parser.add_argument("--keep", type=Path, help="keep the run's files here (the 2-hour file is reused)")
    args = parser.parse_args()
    tmp = args.keep or Path(tempfile.mkdtemp(prefix="api-load-"))
    kinds = [k for k in args.links.split(",") if k]
    figures, ok = {}, True
    if args.only in (None, "responsive"):
        figures["responsive"] = responsive(tmp / "responsive", args.jobs, kinds, args.async_mode, args.repeat)
        ok = ok and responsive_ok(figures["responsive"], kinds)
    if args.only in (None, "load"):
        figures["load"] = load(tmp / "load", args.jobs, args.requests)
        ok = ok and load_ok(figures["load"])
    print(json.dumps(figures))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
