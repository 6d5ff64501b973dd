"""Job states as constants and sets (after ``celery/states.py``), and the legal moves between them.

    pending -> processing(stage) -> completed | failed | cancelled
    processing -> pending             a lost worker's job, requeued by the reaper
    failed | cancelled -> pending     an operator's retry
    completed -> processing           a re-render of an edited caption revision
"""

from __future__ import annotations

from enum import Enum


class Status(str, Enum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return self.value


class Stage(str, Enum):
    SETTLING = "settling"
    PROBING = "probing"
    TRANSCRIBING = "transcribing"
    CAPTIONING = "captioning"
    RENDERING = "rendering"

    def __str__(self) -> str:
        return self.value


PENDING, PROCESSING, COMPLETED, FAILED, CANCELLED = (s.value for s in Status)
STATUSES = tuple(s.value for s in Status)
STAGES = tuple(s.value for s in Stage)
FINISHED = frozenset({COMPLETED, FAILED, CANCELLED})
ACTIVE = frozenset({PENDING, PROCESSING})

STAGE_LABELS = {
    "settling": "waiting for the file to settle",
    "probing": "probing",
    "transcribing": "transcribing",
    "captioning": "captioning",
    "rendering": "rendering",
}

# (from, to) pairs; a move not listed raises IllegalTransition.
TRANSITIONS = frozenset({
    (PENDING, PENDING),          # the dispatcher records the task id
    (PENDING, PROCESSING),       # a worker claims it
    (PENDING, CANCELLED),
    (PENDING, FAILED),           # the source is refused before it runs
    (PROCESSING, PROCESSING),    # stage and progress, the render task taking over
    (PROCESSING, COMPLETED),
    (PROCESSING, FAILED),
    (PROCESSING, CANCELLED),
    (PROCESSING, PENDING),       # the reaper requeues a job whose worker died
    (FAILED, PENDING),           # retry
    (CANCELLED, PENDING),        # retry
    (COMPLETED, PROCESSING),     # re-render of an edited caption revision
})

# Share of overall progress each stage covers, with and without burn-in.
_SPAN_WITH_RENDER = {"settling": (0.0, 0.0), "probing": (0.0, 0.02), "transcribing": (0.02, 0.55),
                     "captioning": (0.55, 0.6), "rendering": (0.6, 1.0)}
_SPAN_WITHOUT = {"settling": (0.0, 0.0), "probing": (0.0, 0.02), "transcribing": (0.02, 0.95),
                 "captioning": (0.95, 1.0), "rendering": (1.0, 1.0)}


class IllegalTransition(RuntimeError):
    """A move the transitions table does not allow: a bug in the caller, never an operator's mistake."""


def check(current: str, target: str) -> None:
    if (current, target) not in TRANSITIONS:
        raise IllegalTransition(f"a job cannot go from {current} to {target}")


def stage_span(stage: str, burn_in: bool) -> tuple[float, float]:
    return (_SPAN_WITH_RENDER if burn_in else _SPAN_WITHOUT)[stage]


def overall_progress(stage: str, fraction: float, burn_in: bool) -> float:
    lo, hi = stage_span(stage, burn_in)
    return round(lo + (hi - lo) * min(max(fraction, 0.0), 1.0), 4)


def public_vocabulary() -> dict:
    """What the page needs to know of states (it receives this, never a copy)."""
    return {"statuses": list(STATUSES), "finished": sorted(FINISHED), "active": sorted(ACTIVE),
            "stages": dict(STAGE_LABELS)}
