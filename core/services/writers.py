"""Caption files from the one caption model: SCC, SRT, WebVTT, DFXP, JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from pycaption import Caption as PyCaption
from pycaption import CaptionNode, CaptionSet, DFXPWriter, SRTWriter, WebVTTWriter
from pycaption.base import CaptionList

from . import qc
from .captions import FPS, Caption
from .scc import Schedule, eoc_frames, write_scc
from .timecode import ZERO, Timecode
from .transcription import Transcript

SIDECAR_KINDS = ("scc", "srt", "vtt", "dfxp", "json")


def to_caption_set(captions: Sequence[Caption], language: str) -> CaptionSet:
    items = []
    for cap in captions:
        nodes = []
        for index, line in enumerate(cap.lines):
            if index:
                nodes.append(CaptionNode.create_break())
            nodes.append(CaptionNode.create_text(line))
        items.append(PyCaption(round(cap.start * 1e6), round(cap.end * 1e6), nodes))
    return CaptionSet({language or "en": CaptionList(items)})


def captions_from_dicts(items: Sequence[dict]) -> list[Caption]:
    return [Caption(float(c["start"]), float(c["end"]), list(c["lines"])) for c in items]


def captions_from_json(path: Path) -> list[Caption]:
    """The captions of a JSON transcript this module wrote (what the render burns)."""
    return captions_from_dicts(json.loads(Path(path).read_text("utf-8"))["captions"])


def transcript_json(transcript: Transcript, captions: Sequence[Caption], schedule: Schedule,
                    start: Timecode = ZERO, **extra) -> str:
    data = transcript.as_dict()
    data["captions"] = [{"start": c.start, "end": c.end, "lines": c.lines,
                         "shown_start": round(frame / FPS, 3)} for c, frame in zip(captions, schedule.eoc_frames)]
    late = schedule.late_seconds
    data["scc"] = {"timecode": "29.97 drop-frame" if start.mode == "df" else "29.97 non-drop", **start.as_dict(),
                   "captions": len(late), "late_max_seconds": round(max(late, default=0.0), 3)}
    data.update(extra)
    return json.dumps(data, ensure_ascii=False, indent=1)


def quality_report(transcript: Transcript, captions: Sequence[Caption], scc_text: str, start: Timecode,
                   profile: str, rows: int, shot_changes: Sequence[float] | None = None) -> dict:
    """The QC report, with each caption's display read back from the SCC as a decoder shows it."""
    return qc.check(captions, profile, rows, eoc_frames=eoc_frames(scc_text, start),
                    speech=transcript.speech_regions or None, shot_changes=shot_changes)


def render_sidecars(transcript: Transcript, captions: Sequence[Caption], start: Timecode = ZERO,
                    qc_profile: str | None = None, rows: int = 2, shot_changes: Sequence[float] | None = None,
                    **extra) -> dict[str, str]:
    """Text of every sidecar file, keyed by extension; the JSON carries the QC report when a profile is given."""
    scc, schedule = write_scc(captions, start)
    if qc_profile:
        extra["qc"] = quality_report(transcript, captions, scc, start, qc_profile, rows, shot_changes)
    caption_set = to_caption_set(captions, transcript.language)
    if captions:
        srt = SRTWriter().write(caption_set)
        vtt = WebVTTWriter().write(caption_set)
    else:  # pycaption writes nothing for an empty set; players want a valid header
        srt, vtt = "", "WEBVTT\n"
    return {
        "scc": scc,
        "srt": srt,
        "vtt": vtt,
        "dfxp": DFXPWriter().write(caption_set),
        "json": transcript_json(transcript, captions, schedule, start, **extra),
    }
