"""What the Analytics tab's series query costs on a large job store.

    .venv/bin/python -m bench.analytics_query [--jobs 100000] [--days 90] [--db PATH]

Fills a fresh SQLite store with ``--jobs`` finished jobs spread over ``--days`` days (95 % completed with
stage timings and a 2.3 KB transcript in the result, 5 % failed with messages of several kinds), then
times ``core.services.analytics`` for each period the tab offers (best of two, uncached).
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ERRORS = ("/mnt/news/a.mp4: file not found", "/mnt/news/b.mp4: media file is truncated or corrupt (moov atom not found)",
          "/mnt/news/c.mp4: worker lost 3 times; giving up", "/mnt/news/d.mp4: ffmpeg burn-in failed: Conversion failed!")
PERIODS = ((1, "hour"), (7, "hour"), (14, "day"), (30, "day"), (90, "day"))


def fill(n: int, days: int, rng: random.Random) -> None:
    from core.db import Job, new_id, session_scope, utcnow

    now, text = utcnow(), "Good evening and welcome to the news. " * 60
    rows = []
    for i in range(n):
        media = rng.uniform(10, 3600)
        done = now - timedelta(seconds=rng.uniform(0, days * 86400))
        failed = rng.random() < 0.05
        timings = {"probing": 0.1, "decode_audio": media / 200, "load_model": 4.0, "transcribing": media / 35,
                   "captioning": 0.05, "rendering": media / 20}
        rows.append(dict(id=new_id(), source=f"/mnt/news/clip{i}.mp4", output_dir="/out", options={},
                         priority="normal", status="failed" if failed else "completed", progress=1.0,
                         media_duration=media, attempts=1, created_at=done - timedelta(seconds=media),
                         started_at=done - timedelta(seconds=media / 10), completed_at=done,
                         error=rng.choice(ERRORS) if failed else None,
                         result=None if failed else {"duration": media, "text": text,
                                                     "timings": {**timings, "total": sum(timings.values())}}))
    with session_scope() as s:
        for start in range(0, n, 10_000):
            s.bulk_insert_mappings(Job, rows[start:start + 10_000])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--db", type=Path, help="an existing store to time instead of a new one")
    args = parser.parse_args()
    from core import db
    from core.services import analytics

    path = args.db or Path(tempfile.mkdtemp()) / "jobs.db"
    db.configure({"DATABASE_URL": f"sqlite:///{path}"})
    if args.db is None:
        started = time.perf_counter()
        fill(args.jobs, args.days, random.Random(18))
        print(f"filled {args.jobs} jobs in {time.perf_counter() - started:.1f} s ({path.stat().st_size / 1e6:.0f} MB)")
    zone = analytics.zone("Europe/Berlin")
    for days, bucket in PERIODS:
        best = float("inf")
        for _ in range(2):
            started = time.perf_counter()
            data = analytics._series(days, bucket, zone, datetime.now(timezone.utc))
            best = min(best, time.perf_counter() - started)
        print(f"{days:>3} days by {bucket:<4}: {best * 1000:6.0f} ms  {len(data['t']):>3} buckets  "
              f"{data['totals']['completed']:>6} completed  {data['totals']['failed']:>5} failed")


if __name__ == "__main__":
    main()
