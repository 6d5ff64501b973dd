"""Celery inspect data per worker, each task joined to its job; the Queue tab and /api/queue."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from ..jobs import queries
from ..jobs.states import FINISHED
from ..queue import QueueClient


def _job_id_of(task: dict) -> str | None:
    args = task.get("args")
    if isinstance(args, (list, tuple)) and args and isinstance(args[0], str):
        return args[0]
    request = task.get("request") or {}
    args = request.get("args")
    if isinstance(args, (list, tuple)) and args and isinstance(args[0], str):
        return args[0]
    return None


def _flatten(kind: str, replies: dict | None) -> list[dict]:
    rows = []
    for worker, tasks in (replies or {}).items():
        for task in tasks or []:
            body = task.get("request", task) if kind == "scheduled" else task
            rows.append({
                "worker": worker,
                "task_id": body.get("id"),
                "name": body.get("name"),
                "args": body.get("args"),
                "time_start": body.get("time_start"),
                "eta": task.get("eta") if kind == "scheduled" else None,
                "priority": (body.get("delivery_info") or {}).get("priority"),
                "queue": (body.get("delivery_info") or {}).get("routing_key"),
                "job_id": _job_id_of(body),
            })
    return rows


def snapshot(queue: QueueClient, timeout: float = 1.0) -> dict:
    """One broadcast of each inspect call, joined to the job store."""
    started, taken_at = time.monotonic(), time.time()
    # Each call waits out the timeout for late replies; run them side by side.
    with ThreadPoolExecutor(max_workers=5) as pool:
        calls = [pool.submit(queue.inspect, name, timeout) for name in ("active", "reserved", "scheduled", "stats",
                                                                         "active_queues")]
        active, reserved, scheduled, stats, queues = (call.result() for call in calls)
    stats, queues = stats or {}, queues or {}
    rows = {kind: _flatten(kind, replies) for kind, replies in
            (("active", active), ("reserved", reserved), ("scheduled", scheduled))}
    known = queries.jobs_by_ids([r["job_id"] for kind in rows.values() for r in kind if r["job_id"]])
    for kind, kind_rows in rows.items():
        for row in kind_rows:
            job = known.get(row["job_id"])
            row["job"] = job
            if job:
                row.update(file=job["source"], stage=job["stage"], progress=job["progress"],
                           status=job["status"], estimated_completion=job["estimated_completion"])
        # The job store is read after the reply window: a job that finished meanwhile
        # is no longer running or waiting, whatever the worker said a second ago.
        rows[kind] = [r for r in kind_rows if r.get("status") not in FINISHED]
    names = set(stats) | set(queues) | {w for replies in (active, reserved, scheduled) for w in (replies or {})}
    workers = []
    for name in sorted(names):
        info = stats.get(name, {})
        pool = info.get("pool", {})
        workers.append({
            "name": name,
            "queues": [q.get("name") for q in queues.get(name, [])],
            "concurrency": pool.get("max-concurrency"),
            "pool": pool.get("implementation"),
            "processed": sum((info.get("total") or {}).values()),
            "active": sum(1 for r in rows["active"] if r["worker"] == name),
            "pid": info.get("pid"),
            "uptime": info.get("uptime"),
        })
    taken = {r["job_id"] for kind in rows.values() for r in kind}
    waiting = [j for j in queries.next_waiting(100) if j["job_id"] not in taken]
    return {**rows, "waiting": waiting[:50], "workers": workers, "counts": queries.counts(),
            "taken_at": taken_at, "inspect_ms": round((time.monotonic() - started) * 1000, 1)}
