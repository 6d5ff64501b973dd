"""The job state machine: ``core.jobs.states`` (the table) and ``core.jobs.record.transition`` (its one writer).

Fast tier: a temp SQLite store, events caught in a list; no Redis, worker or model.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from core.db import Job, new_id, session_scope, utcnow
from core.jobs import queries, record
from core.jobs import states as states_module
from core.jobs.errors import JobError
from core.jobs.serialize import job_dict
from core.jobs.states import (
    CANCELLED,
    COMPLETED,
    FAILED,
    FINISHED,
    PENDING,
    PROCESSING,
    STATUSES,
    TRANSITIONS,
    IllegalTransition,
    overall_progress,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# The moves core/jobs/states.py documents (its docstring and comments), written out independently,
# so that a change to the table is a visible decision and not an accident.
DOCUMENTED_MOVES = {
    (PENDING, PENDING), (PENDING, PROCESSING), (PENDING, CANCELLED), (PENDING, FAILED),
    (PROCESSING, PROCESSING), (PROCESSING, COMPLETED), (PROCESSING, FAILED), (PROCESSING, CANCELLED),
    (PROCESSING, PENDING),
    (FAILED, PENDING), (CANCELLED, PENDING),
    (COMPLETED, PROCESSING),
}
ALL_PAIRS = [(a, b) for a in STATUSES for b in STATUSES]
COLUMNS = [c.name for c in Job.__table__.columns]


def add_job(status: str = PENDING, source: str = "/mnt/news/clip.mp4", **fields) -> str:
    """A job row in ``status`` (inserted directly: nothing is published)."""
    base = {"id": new_id(), "source": source, "output_dir": "/tmp/out", "options": {"burn_in": True},
            "priority": "normal", "media_duration": 60.0, "status": status, "progress": 0.0, "attempts": 0,
            "created_at": utcnow()}
    if status == PROCESSING:
        base.update(stage="transcribing", progress=0.3, task_id="task-old", worker="w-old", attempts=1,
                    started_at=utcnow() - timedelta(minutes=5), heartbeat_at=utcnow() - timedelta(seconds=5))
    elif status in FINISHED:
        base.update(task_id="task-old", worker="w-old", attempts=1, started_at=utcnow() - timedelta(minutes=5),
                    completed_at=utcnow() - timedelta(minutes=1), progress=1.0 if status == COMPLETED else 0.4)
        if status != COMPLETED:
            base["error"] = "it broke"
    base.update(fields)
    with session_scope() as s:
        s.add(Job(**base))
    return base["id"]


def row(job_id: str) -> dict:
    """Every column of the stored job, read fresh."""
    with session_scope() as s:
        job = s.get(Job, job_id)
        return {name: getattr(job, name) for name in COLUMNS}


# --- the table ------------------------------------------------------------------------------------------

def test_statuses_are_the_five_the_dashboard_knows():
    assert set(STATUSES) == {PENDING, PROCESSING, COMPLETED, FAILED, CANCELLED}
    assert len(STATUSES) == 5


def test_transitions_table_is_the_documented_one():
    assert set(TRANSITIONS) == DOCUMENTED_MOVES


def test_a_finished_job_never_finishes_again_or_jumps_straight_to_another_end():
    for a in FINISHED:
        for b in FINISHED:
            assert (a, b) not in TRANSITIONS, f"{a} -> {b} would rewrite a finished job's outcome"


# --- every pair through transition() on a real row ------------------------------------------------------

@pytest.mark.parametrize(("current", "target"), ALL_PAIRS, ids=[f"{a}->{b}" for a, b in ALL_PAIRS])
def test_every_pair_is_allowed_or_refused_by_the_table(store, published, current, target):
    job_id = add_job(current)
    before = row(job_id)
    if (current, target) in TRANSITIONS:
        job = record.transition(job_id, target)
        assert job is not None and job.status == target
        assert row(job_id)["status"] == target
        assert [event for event, _ in published] == ["job_update"]
        assert published[0][1]["status"] == target
    else:
        with pytest.raises(IllegalTransition, match=f"from {current} to {target}"):
            record.transition(job_id, target, error="should not be written", progress=0.9)
        assert row(job_id) == before, "a refused move changed the row"
        assert published == []


# --- timestamps follow the move -------------------------------------------------------------------------

def test_claim_stamps_started_at_and_heartbeat_and_clears_old_error(store):
    job_id = add_job(PENDING, error="old reason")
    t0 = utcnow()
    record.transition(job_id, PROCESSING, stage="probing", progress=0.0, task_id="t1", worker="w1")
    after = row(job_id)
    assert after["started_at"] >= t0 and after["heartbeat_at"] >= t0
    assert after["completed_at"] is None and after["error"] is None
    assert (after["task_id"], after["worker"], after["stage"]) == ("t1", "w1", "probing")


def test_staying_in_processing_keeps_started_at_and_refreshes_heartbeat(store):
    job_id = add_job(PROCESSING)
    before = row(job_id)
    record.transition(job_id, PROCESSING, stage="captioning", progress=0.56)
    after = row(job_id)
    assert after["started_at"] == before["started_at"]
    assert after["heartbeat_at"] > before["heartbeat_at"]


@pytest.mark.parametrize(("current", "target"), [(PROCESSING, COMPLETED), (PROCESSING, FAILED),
                                                 (PROCESSING, CANCELLED), (PENDING, CANCELLED),
                                                 (PENDING, FAILED)])
def test_finishing_stamps_completed_at(store, current, target):
    job_id = add_job(current)
    t0 = utcnow()
    record.transition(job_id, target)
    after = row(job_id)
    assert after["completed_at"] is not None and after["completed_at"] >= t0


@pytest.mark.parametrize("current", [PROCESSING, FAILED, CANCELLED])
def test_going_back_to_pending_clears_the_run(store, current):
    job_id = add_job(current, stage="rendering" if current != PROCESSING else "transcribing")
    record.transition(job_id, PENDING)
    after = row(job_id)
    assert after["status"] == PENDING
    assert (after["stage"], after["progress"], after["task_id"], after["worker"]) == (None, 0.0, None, None)
    assert after["started_at"] is None and after["completed_at"] is None and after["heartbeat_at"] is None
    assert after["attempts"] == 1, "going back to pending must not forget how often the job ran"


def test_pending_to_pending_records_the_task_id_without_clearing_anything(store):
    job_id = add_job(PENDING)
    record.transition(job_id, PENDING, task_id="task-9")
    assert row(job_id)["task_id"] == "task-9"


def test_re_render_of_a_completed_job_reopens_it(store):
    job_id = add_job(COMPLETED)
    before = row(job_id)
    record.transition(job_id, PROCESSING, stage="rendering", progress=0.6)
    after = row(job_id)
    assert after["completed_at"] is None
    assert after["started_at"] > before["started_at"]


def test_new_attempt_counts_a_run(store):
    job_id = add_job(PENDING)
    record.transition(job_id, PROCESSING, new_attempt=True)
    assert row(job_id)["attempts"] == 1
    record.transition(job_id, PENDING)
    record.transition(job_id, PROCESSING, new_attempt=True)
    assert row(job_id)["attempts"] == 2


def test_transition_refuses_fields_it_does_not_own(store, published):
    job_id = add_job(PENDING)
    before = row(job_id)
    with pytest.raises(TypeError, match="source"):
        record.transition(job_id, PENDING, source="/etc/passwd")
    with pytest.raises(TypeError, match="status"):
        record.transition(job_id, PENDING, status=COMPLETED)
    assert row(job_id) == before and published == []


# --- only_from / when -----------------------------------------------------------------------------------

def test_only_from_that_does_not_hold_changes_nothing(store, published):
    job_id = add_job(CANCELLED)
    before = row(job_id)
    assert record.transition(job_id, PROCESSING, only_from={PROCESSING}, stage="rendering", progress=0.7) is None
    assert row(job_id) == before
    assert published == []


def test_only_from_is_checked_before_the_table(store, published):
    """A caller that lost a race (the job finished meanwhile) gets None, not an exception."""
    job_id = add_job(COMPLETED)
    before = row(job_id)
    assert record.transition(job_id, FAILED, only_from={PENDING, PROCESSING}, error="late") is None
    assert row(job_id) == before and published == []


def test_when_that_does_not_hold_changes_nothing(store, published):
    job_id = add_job(PROCESSING)
    before = row(job_id)
    seen = []

    def other_task(job):
        seen.append(job.task_id)
        return job.task_id == "task-mine"

    assert record.transition(job_id, PENDING, when=other_task) is None
    assert seen == ["task-old"], "when() is called with the stored job"
    assert row(job_id) == before and published == []


def test_when_that_holds_applies_the_move(store, published):
    job_id = add_job(PROCESSING)
    job = record.transition(job_id, COMPLETED, only_from={PROCESSING}, when=lambda j: j.task_id == "task-old",
                            progress=1.0, stage=None)
    assert job is not None and row(job_id)["status"] == COMPLETED
    assert len(published) == 1


# --- job_update -----------------------------------------------------------------------------------------

def test_job_update_is_published_once_per_transition(store, published):
    job_id = add_job(PENDING)
    record.transition(job_id, PENDING, task_id="t1")
    record.transition(job_id, PROCESSING, stage="probing", progress=0.0, task_id="t1", worker="w1")
    record.transition(job_id, PROCESSING, stage="transcribing", progress=0.3)
    record.transition(job_id, COMPLETED, stage=None, progress=1.0)
    assert [event for event, _ in published] == ["job_update"] * 4
    assert [data["status"] for _, data in published] == [PENDING, PROCESSING, PROCESSING, COMPLETED]
    assert all(data["job_id"] == job_id for _, data in published)
    assert published[2][1]["stage"] == "transcribing" and published[2][1]["progress"] == 30.0
    assert published[3][1]["progress"] == 100.0


def test_publish_false_publishes_nothing_but_moves(store, published):
    job_id = add_job(FAILED)
    record.transition(job_id, PENDING, publish=False)
    assert row(job_id)["status"] == PENDING
    assert published == []


def test_job_update_is_published_after_the_commit(store):
    """A browser that reacts to the event by asking the API must read the new state, not the old one."""
    from core import events

    job_id = add_job(PENDING)
    seen_in_store = []
    events.configure(sink=lambda event, data: seen_in_store.append(queries.get(data["job_id"]).status))
    try:
        record.transition(job_id, PROCESSING, stage="probing", progress=0.0)
        record.transition(job_id, CANCELLED)
    finally:
        events.configure()
    assert seen_in_store == [PROCESSING, CANCELLED]


def test_job_update_has_the_summary_shape_without_transcript(store, published):
    job_id = add_job(PROCESSING)
    result = {"text": "a very long transcript " * 50, "segments": [{"start": 0.0, "end": 1.0, "text": "hi"}],
              "language": "en", "outputs": {"scc": "/tmp/out/clip.mp4.scc"}, "manifest": []}
    record.transition(job_id, COMPLETED, stage=None, progress=1.0, result=result)
    (_, data), = published
    full = job_dict(queries.get(job_id))
    assert set(data) - {"emitted_at"} == set(full), "the event is the status document's shape"
    assert "text" not in data["result"] and "segments" not in data["result"]
    assert data["result"]["outputs"] == {"scc": "/tmp/out/clip.mp4.scc"}
    assert data["result"]["language"] == "en"
    assert data["status"] == COMPLETED and data["progress"] == 100.0


def test_publish_failure_never_fails_the_transition(store):
    from core import events

    def broken(event, data):
        raise ConnectionError("redis is down")

    job_id = add_job(PENDING)
    events.configure(sink=broken)
    try:
        job = record.transition(job_id, CANCELLED)
    finally:
        events.configure()
    assert job is not None and row(job_id)["status"] == CANCELLED


# --- progress -------------------------------------------------------------------------------------------

def test_progress_never_goes_backwards_within_a_stage(store):
    job_id = add_job(PROCESSING, stage="transcribing", progress=0.3)
    record.transition(job_id, PROCESSING, stage="transcribing", progress=0.5)
    record.transition(job_id, PROCESSING, stage="transcribing", progress=0.4)
    assert row(job_id)["progress"] == 0.5
    record.transition(job_id, PROCESSING, progress=0.1)  # no stage given: the same stage
    assert row(job_id)["progress"] == 0.5


def test_progress_of_a_new_stage_is_taken_as_given(store):
    job_id = add_job(PROCESSING, stage="transcribing", progress=0.5)
    record.transition(job_id, PROCESSING, stage="captioning", progress=0.55)
    assert (row(job_id)["stage"], row(job_id)["progress"]) == ("captioning", 0.55)


def test_overall_progress_is_monotonic_across_stages():
    for burn_in in (True, False):
        values = [overall_progress(stage, f, burn_in)
                  for stage in ("settling", "probing", "transcribing", "captioning", "rendering")
                  for f in (0.0, 0.25, 0.5, 1.0)]
        assert values == sorted(values)
        assert values[0] == 0.0 and values[-1] == 1.0
        assert overall_progress("transcribing", 7.0, burn_in) <= 1.0   # out-of-range fractions are clamped
        assert overall_progress("transcribing", -1.0, burn_in) >= 0.0


# --- unknown jobs ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("job_id", ["0" * 32, "no-such-job", 42, None])
def test_unknown_job_is_a_404(store, published, job_id):
    with pytest.raises(JobError) as err:
        record.transition(job_id, PROCESSING)
    assert err.value.status == 404
    assert published == []


# --- the README ----------------------------------------------------------------------------------------

# A right-pointing arrowhead (ASCII, mermaid, or box drawing): the word after it is a state.
_HEAD = r"(?:-+>|─*►|─*▶|→|⟶|=+>)"
_NODE_AFTER_HEAD = re.compile(_HEAD + r"\s*([A-Za-z_]+(?:\s*[|/,]\s*[A-Za-z_]+)*)")
# A line that starts with a state and an arrow leaving it: ``pending -> ...``, ``[*] --> pending``.
_NODE_AT_START = re.compile(r"^[\s│|]*([A-Za-z_]+)(?:\s*\([^)]*\))?\s*(?:-+|─+)\s*(?:>|►|▶)")


def _diagram_lines(readme: str) -> list[str] | None:
    """The lines of the README's job state diagram: a mermaid stateDiagram, or a fenced or indented
    block with arrows under a heading about states, or naming at least three statuses."""
    blocks: list[tuple[str, list[str]]] = []  # (heading, block lines)
    heading = ""
    lines = readme.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            heading = line.lower()
        if line.strip().startswith("```"):
            j = i + 1
            while j < len(lines) and not lines[j].strip().startswith("```"):
                j += 1
            blocks.append((heading + " " + line.lower(), lines[i + 1:j]))
            i = j + 1
            continue
        if line.startswith("    ") and (i == 0 or not lines[i - 1].strip()):
            j = i
            while j < len(lines) and (lines[j].startswith("    ") or not lines[j].strip()):
                j += 1
            blocks.append((heading, lines[i:j]))
            i = j
            continue
        i += 1
    for head, block in blocks:
        text = "\n".join(block)
        has_arrows = any(re.search(_HEAD, ln) for ln in block)
        named = {s for s in STATUSES if re.search(rf"\b{s}\b", text)}
        if has_arrows and ("statediagram" in text.lower() or "state" in head or len(named) >= 3):
            return block
    return None


def _states_in(block: list[str]) -> set[str]:
    """The states a diagram draws: the words arrows point at, and the words arrows leave from."""
    states = set()
    for line in block:
        found = [m.group(1) for m in _NODE_AFTER_HEAD.finditer(line)]
        start = _NODE_AT_START.match(line)
        if start:
            found.append(start.group(1))
        for group in found:
            states.update(name.lower() for name in re.split(r"\s*[|/,]\s*", group) if name)
    return states


def test_readme_state_diagram_names_exactly_the_statuses():
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    block = _diagram_lines(readme)
    if block is None:
        pytest.skip("README.md has no job state diagram yet")
    assert _states_in(block) == set(STATUSES), "\n".join(block)


STATES_DOC_DIAGRAM = "\n".join("    " + ln.strip() for ln in states_module.__doc__.splitlines()[2:7])
MERMAID_DIAGRAM = ("```mermaid\nstateDiagram-v2\n  [*] --> pending\n  pending --> processing\n"
                   "  processing --> completed : done\n  processing --> failed\n  processing --> cancelled\n"
                   "  failed --> pending : retry\n```")
BOX_DIAGRAM = ("    pending ──► processing (probing, rendering) ──► completed\n"
               "       ├──► cancelled / failed   │\n"
               "       └──────── retry ◄────────┘")


@pytest.mark.parametrize("diagram", [STATES_DOC_DIAGRAM, MERMAID_DIAGRAM, BOX_DIAGRAM], ids=["states-docstring", "mermaid", "box-drawing"])
def test_readme_diagram_parser_reads_the_usual_notations(diagram):
    """The parser above on the notations a README uses (so a pass or a skip is not a parser accident)."""
    block = _diagram_lines("## Job states\n\n" + diagram + "\n")
    assert block is not None
    assert _states_in(block) == set(STATUSES)


def test_readme_diagram_parser_notices_a_status_that_is_missing_or_extra():
    block = _diagram_lines("## States\n\n    pending -> processing -> completed | failed | paused\n")
    assert _states_in(block) == {PENDING, PROCESSING, COMPLETED, FAILED, "paused"} != set(STATUSES)
