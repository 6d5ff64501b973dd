"""What a caption correction costs: save to new SCC, save to re-rendered video, against the first render.

    .venv/bin/python -m bench.revisions [--size 1280x720] [--model tiny.en] [--rounds 3]

Makes the 41 s synthetic news clip, captions it with burn-in through the dashboard's API (a real
worker), then saves ``--rounds`` edited revisions one after another (a word changed each time) and
times each: the PUT (the revision's SCC, SRT, WebVTT, DFXP and JSON are published before it answers),
and the save until the job is completed again with the revision's captioned video.  Last, a burst of
three saves back to back: only the newest revision's render may publish a video.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path

from .media import NEWS_SCRIPT, make_speech_clip
from .system import get_json, post_json, running_dashboard


def put_json(url: str, payload: dict) -> tuple[float, dict]:
    start = time.perf_counter()
    req = urllib.request.Request(url, json.dumps(payload).encode(), {"Content-Type": "application/json"},
                                 method="PUT")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            body = json.loads(resp.read())
    except urllib.error.HTTPError as err:
        raise RuntimeError(f"PUT {url}: {err.code} {err.read().decode()[:2000]}") from None
    return (time.perf_counter() - start) * 1000, body


def wait_completed(url: str, job_id: str, revision: int, timeout: float = 900) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = get_json(f"{url}/api/status/{job_id}")[1]
        if status["status"] == "failed":
            raise RuntimeError(status["error"])
        if status["status"] == "completed" and (status["result"] or {}).get("revision") == revision:
            return status
        time.sleep(0.1)
    raise RuntimeError(f"revision {revision} was not rendered in {timeout} s")


def edited(captions: list[dict], round_: int) -> list[dict]:
    out = [{"start": c["start"], "end": c["end"], "lines": list(c["lines"])} for c in captions]
    cap = out[(round_ * 3) % len(out)]
    words = cap["lines"][0].split()
    cap["lines"][0] = " ".join(["X" * len(words[0])] + words[1:])      # the first word corrected, same width
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-revisions-") as tmp:
        folder = Path(tmp)
        clip = make_speech_clip(folder / "storage" / "news", NEWS_SCRIPT, size=args.size, name="news.mp4")
        with running_dashboard(folder, folder / "storage") as url:
            _, batch = post_json(f"{url}/api/transcribe/batch", {"paths": [str(clip.path)], "options": {
                "burn_in": True, "model": args.model, "language": "en"}})
            job_id = batch["queued"][0]["job_id"]
            first = wait_completed(url, job_id, 1)
            first_job = (datetime.fromisoformat(first["completed_at"].rstrip("Z"))
                         - datetime.fromisoformat(first["created_at"].rstrip("Z"))).total_seconds()
            first_render = get_json(f"{url}/api/jobs/{job_id}/captions/revisions")[1]["revisions"][0]["render_seconds"]
            saves, renders, server = [], [], []
            for round_ in range(1, args.rounds + 1):
                current = get_json(f"{url}/api/jobs/{job_id}/captions")[1]
                t0 = time.monotonic()
                ms, body = put_json(f"{url}/api/jobs/{job_id}/captions", {
                    "base_revision": current["revision"], "captions": edited(current["captions"], round_)})
                wait_completed(url, job_id, body["revision"])
                renders.append(time.monotonic() - t0)
                saves.append(ms)
                server.append(body["timings"]["total_ms"])
            current = get_json(f"{url}/api/jobs/{job_id}/captions")[1]
            base = current["revision"]
            for k in range(3):       # a burst: each save supersedes the render of the one before
                _, body = put_json(f"{url}/api/jobs/{job_id}/captions", {
                    "base_revision": base + k, "captions": edited(current["captions"], 10 + k)})
            done = wait_completed(url, job_id, base + 3)
            time.sleep(2)
            listed = get_json(f"{url}/api/jobs/{job_id}/captions/revisions")[1]["revisions"]
            burst_videos = [r["number"] for r in listed[base:] if "video" in r["files"]]
    report = {"media_seconds": round(clip.duration, 2), "size": args.size, "model": args.model,
              "save_to_scc_ms": {"median": round(statistics.median(saves), 1), "all": [round(x, 1) for x in saves]},
              "save_to_scc_server_ms": round(statistics.median(server), 1),
              "save_to_video_s": {"median": round(statistics.median(renders), 2),
                                  "all": [round(x, 2) for x in renders]},
              "first_render_s": first_render, "first_job_s": first_job, "burst": {"revisions": [base + 1, base + 2, base + 3],
                                                        "with_video": burst_videos,
                                                        "final_video": Path(done["result"]["outputs"]["video"]).name}}
    print(f"media {report['media_seconds']} s at {args.size}, {args.model}")
    print(f"save -> new SCC (PUT answered, files published): median {report['save_to_scc_ms']['median']} ms "
          f"(server {report['save_to_scc_server_ms']} ms)")
    print(f"save -> re-rendered video: median {report['save_to_video_s']['median']} s; "
          f"first render of the job: {first_render} s (the whole first job, transcription included: {first_job:.0f} s)")
    print(f"burst of 3 saves: revisions with a video {burst_videos} (only the newest should have one)")
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
