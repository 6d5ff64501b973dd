"""What a Prometheus scrape of ``/metrics`` costs on a large job store.

    .venv/bin/python -m bench.metrics_scrape [--jobs 100000] [--segments 10] [--rounds 5] [--db PATH]

Fills a fresh SQLite store with ``--jobs`` jobs (80 % completed with stage timings and a transcript of
``--segments`` segments, 10 % failed with messages of every kind, 5 % cancelled, 3 % pending, 2 %
processing), then scrapes ``/metrics`` through the Flask app ``--rounds`` times and prints the time of
each scrape and of the store's part alone.  No broker: the queue stand-in has none (broker_up 0), so
the figure is the job store's cost; a reachable Redis adds one round trip per queue.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import insert

FAILURES = ("file not found", "source changed since it was queued (it was modified after it was queued)",
            "media file is truncated or corrupt (Invalid data found when processing input)",
            "has no audio stream, so there is nothing to transcribe", "ffmpeg burn-in failed: Conversion failed!",
            "cannot write outputs to /srv/out: No space left on device")


class NoBroker:
    """The queue client's shape without a broker: no Celery app, no worker answers."""
    celery = None

    def inspect(self, method: str, timeout: float = 1.0):
        return None


def fill(n: int, segments: int, rng: random.Random) -> None:
    from core.db import Job, get_engine, new_id, utcnow

    now = utcnow()
    text = "Good evening and welcome to the late news from the coast tonight."
    rows = []
    for i in range(n):
        roll = rng.random()
        duration = rng.uniform(20, 3600)
        source = f"/mnt/news/2024/show-{i:06d}.mxf"
        row = {"id": new_id(), "source": source, "output_dir": "/srv/out", "options": {"burn_in": True},
               "priority": "normal", "media_duration": duration, "progress": 0.0, "attempts": 1,
               "created_at": now - timedelta(seconds=i), "result": None, "error": None,
               "completed_at": None, "stage": None}
        if roll < 0.80:
            timings = {"probing": rng.uniform(0.01, 0.5), "decode_audio": rng.uniform(0.1, 20),
                       "load_model": rng.uniform(0, 5), "transcribing": duration / rng.uniform(5, 20),
                       "captioning": rng.uniform(0.01, 2), "rendering": duration / rng.uniform(4, 10)}
            timings["total"] = sum(timings.values())
            row.update(status="completed", progress=1.0, completed_at=now, result={
                "duration": duration, "language": "en", "timings": timings, "text": text * segments,
                "segments": [{"start": k * 3.0, "end": k * 3.0 + 2.5, "text": text} for k in range(segments)],
                "outputs": {"scc": source + ".scc", "srt": source + ".srt"}, "qc": {"status": "pass"}})
        elif roll < 0.90:
            row.update(status="failed", error=f"{source}: {rng.choice(FAILURES)}")
        elif roll < 0.95:
            row.update(status="cancelled", error="cancelled by operator")
        elif roll < 0.98:
            row.update(status="pending")
        else:
            row.update(status="processing", stage="transcribing", progress=0.3)
        rows.append(row)
    with get_engine().begin() as conn:
        for start in range(0, n, 5000):
            conn.execute(insert(Job), rows[start:start + 5000])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--segments", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--db", type=Path, default=None, help="keep the store here (default: a temp dir)")
    args = parser.parse_args()

    from core.api import create_app
    from core.config import load_settings
    from core.services import metrics

    folder = Path(tempfile.mkdtemp(prefix="metrics-bench-"))
    db_path = args.db or folder / "jobs.db"
    settings = load_settings({"DATABASE_URL": f"sqlite:///{db_path}", "CAPTION_CONFIG": str(folder / "none.py"),
                              "STORAGE_ROOTS": str(folder), "REDIS_URL": "redis://127.0.0.1:1/0"})
    app = create_app(settings, queue=NoBroker())
    t0 = time.perf_counter()
    fill(args.jobs, args.segments, random.Random(18))
    print(f"filled {args.jobs} jobs in {time.perf_counter() - t0:.1f} s; store {db_path.stat().st_size / 1e6:.0f} MB")

    client = app.test_client()
    scrapes, store = [], []
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        resp = client.get("/metrics")
        scrapes.append(time.perf_counter() - t0)
        assert resp.status_code == 200, resp.get_data(as_text=True)
        t0 = time.perf_counter()
        figures = metrics.store_figures()
        store.append(time.perf_counter() - t0)
    print(json.dumps({"jobs": args.jobs, "segments_per_job": args.segments,
                      "scrape_ms": [round(s * 1000, 1) for s in scrapes],
                      "scrape_median_ms": round(statistics.median(scrapes) * 1000, 1),
                      "store_median_ms": round(statistics.median(store) * 1000, 1),
                      "status": {k: v for k, v in figures["status"].items()},
                      "bytes": len(resp.get_data())}, indent=1))


if __name__ == "__main__":
    main()
