"""A job's caption revisions as its result records them (pure reads of the result, and file checks).

``result["revisions"]``: one entry per revision, oldest first, each with its
number, time, author, note and the manifest of its own files.  Revision 1 is
the machine's captions; a job captioned before revisions existed has none
recorded, and its revision 1 is its whole manifest.  ``result["manifest"]``
holds every revision's files (what cancel, delete and retention remove);
``result["outputs"]`` maps the latest revision's.  ``result["rerender"]``
names the revision a queued, running, failed or cancelled re-render is for;
it goes when that render is published.
"""

from __future__ import annotations

from pathlib import Path

from .errors import JobError
from .states import STAGE_LABELS, Stage

SIDECARS = ("scc", "srt", "vtt", "dfxp", "json")


def revisions(result: dict | None) -> list[dict]:
    """Every revision, oldest first (revision 1 made up from the manifest for a job without a history)."""
    result = result or {}
    if result.get("revisions"):
        return list(result["revisions"])
    manifest = result.get("manifest") or []
    if not any(e.get("kind") == "json" for e in manifest):
        return []
    rendered = any(e.get("kind") == "video" for e in manifest)
    return [{"number": 1, "created_at": (manifest[0].get("published_at") if manifest else None),
             "author": "machine", "note": "machine captions", "run": result.get("run", 1), "manifest": manifest,
             "render_seconds": (result.get("timings") or {}).get("rendering") if rendered else None}]


def latest(result: dict | None) -> int:
    found = revisions(result)
    return found[-1]["number"] if found else 0


def revision(result: dict | None, number: int | None) -> dict:
    """Revision ``number`` (None: the latest); a 404 JobError if there is none."""
    found = revisions(result)
    if not found:
        raise JobError("this job has no captions yet", 404)
    if number is None:
        return found[-1]
    for entry in found:
        if entry["number"] == number:
            return entry
    raise JobError(f"no caption revision {number} (latest is {found[-1]['number']})", 404)


def render_target(result: dict | None) -> int:
    """The revision a render of this job is for: a re-render's, or the machine's (1)."""
    return int(((result or {}).get("rerender") or {}).get("revision", 1))


def is_rerender(result: dict | None) -> bool:
    """A render of an edited revision is queued, running, failed or cancelled (its files stay, whatever happens)."""
    return bool((result or {}).get("rerender"))


def stage_label(stage: str | None, result: dict | None) -> str | None:
    """What the page shows for a stage: "rendering revision 3" for a re-render of an edited revision."""
    if stage is None:
        return None
    if stage == Stage.RENDERING.value and is_rerender(result):
        return f"rendering revision {render_target(result)}"
    return STAGE_LABELS.get(stage, stage)


def outputs_of(entry: dict) -> dict[str, str]:
    return {e["kind"]: e["path"] for e in entry.get("manifest", [])}


def file_entry(entry: dict, kind: str) -> dict | None:
    return next((e for e in entry.get("manifest", []) if e["kind"] == kind), None)


def checked_path(job_id: str, entry: dict | None, kind: str, label: str = "") -> Path:
    """The path of a manifest entry while it is what the job published (404 gone, 409 changed)."""
    if entry is None:
        raise JobError(f"job {job_id} has no {kind} output{label}", 404)
    path = Path(entry["path"])
    try:
        st = path.stat()
    except OSError:
        raise JobError(f"job {job_id}'s {kind} output {path.name} is gone", 404) from None
    if "size" in entry and (st.st_size, st.st_mtime_ns) != (entry["size"], entry["mtime_ns"]):
        raise JobError(f"job {job_id}'s {kind} output {path.name} was changed after the job wrote it", 409)
    return path


def with_revision(result: dict, entry: dict, rerender: bool) -> dict:
    """The result with ``entry`` as its latest revision (its files joining the job's manifest)."""
    history = revisions(result)
    merged = {**result, "revisions": [*history, entry], "manifest": [*(result.get("manifest") or []),
                                                                   *entry["manifest"]],
              "outputs": outputs_of(entry)}
    merged.pop("render_started_at", None)
    if rerender:
        merged["rerender"] = {"revision": entry["number"]}
    else:
        merged.pop("rerender", None)
    return merged


def with_video(result: dict, number: int, manifest: list[dict], render: dict, seconds: float | None) -> dict:
    """The result once revision ``number``'s rendition is published (a re-render: it is the latest)."""
    history = revisions(result)
    for i, entry in enumerate(history):
        if entry["number"] == number:
            history[i] = {**entry, "manifest": [*entry["manifest"], *manifest], "render": render,
                          "render_seconds": seconds}
    merged = {**result, "revisions": history, "manifest": [*(result.get("manifest") or []), *manifest],
              "outputs": outputs_of(history[-1])}
    merged.pop("rerender", None)
    merged.pop("render_started_at", None)
    return merged


def summary(entry: dict, latest_number: int) -> dict:
    """A revision as the API lists it."""
    return {"number": entry["number"], "created_at": entry.get("created_at"), "author": entry.get("author"),
            "note": entry.get("note", ""), "based_on": entry.get("based_on"),
            "reverted_from": entry.get("reverted_from"), "captions": entry.get("captions"),
            "latest": entry["number"] == latest_number, "files": {e["kind"]: Path(e["path"]).name
                                                                  for e in entry.get("manifest", [])},
            "render_seconds": entry.get("render_seconds")}
