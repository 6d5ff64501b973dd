"""One video in, captions and a captioned rendition out.

The stages are functions that the CLI (``caption_file``) and the Celery tasks
compose: ``prepare`` (probe), ``transcribe_media`` (decode, transcribe, cut
captions), ``stage_sidecars`` and ``stage_video`` (write into a run's staging
folder).  Publishing and naming live in ``artifacts``: nothing is ever
overwritten, and a failed or killed run leaves no half-written outputs.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..config import process_settings
from . import artifacts, burnin, captions as captions_mod, deliverables, media, models, qc, speakers, timecode, transcription, writers
from .errors import CaptionError, InputError
from .scc import write_scc

Progress = Callable[[str, float], None]
# Audio decoding's share of the "transcribing" stage (19 min of speech: decoded in 1.5 s of 72 s).
DECODE_SHARE = 0.02


@dataclass
class CaptionOptions:
    model: str = ""
    language: str = ""
    burn_in: bool = True
    rows: int = 2
    start_timecode: str = ""      # HH:MM:SS;FF, HH:MM:SS:FF or "source"
    timecode_mode: str = ""       # "df" or "ndf"
    mov: bool | None = None       # also a MOV with a CEA-608 track
    qc_profile: str = ""
    speaker_changes: bool | None = None   # ">>" at a change of speaker
    vocabulary: list[str] | None = None   # the show's names and terms, for the decoder
    settings: dict = field(default_factory=process_settings, repr=False)

    def __post_init__(self):
        s = self.settings
        self.model = self.model or s["WHISPER_MODEL"]
        self.language = self.language or s["LANGUAGE"]
        if not 1 <= int(self.rows) <= captions_mod.MAX_ROWS:
            raise ValueError(f"rows must be between 1 and {captions_mod.MAX_ROWS}")
        self.rows = int(self.rows)
        self.start_timecode = self.start_timecode or s["START_TIMECODE"]
        self.timecode_mode = self.timecode_mode or s["TIMECODE_MODE"]
        self.mov = s["MOV_OUTPUT"] if self.mov is None else bool(self.mov)
        self.qc_profile = self.qc_profile or s["QC_PROFILE"]
        check_deliverable_options(self.start_timecode, self.timecode_mode, self.qc_profile)
        self.speaker_changes = s["SPEAKER_CHANGES"] if self.speaker_changes is None else bool(self.speaker_changes)
        self.vocabulary = clean_vocabulary(s["VOCABULARY"] if self.vocabulary is None else self.vocabulary)


MAX_VOCABULARY = 100        # terms; the prompt the decoder sees is bounded too (transcription.py)
MAX_TERM = 64               # characters


def clean_vocabulary(terms: object) -> list[str]:
    """The vocabulary as a list of distinct terms, or ValueError saying what is wrong with it."""
    if isinstance(terms, str):
        terms = terms.split(",")
    if not isinstance(terms, (list, tuple)):
        raise ValueError("vocabulary must be a list of words or names")
    if len(terms) > 4 * MAX_VOCABULARY:
        raise ValueError(f"vocabulary holds at most {MAX_VOCABULARY} terms")
    cleaned: dict[str, None] = {}         # ordered, and no quadratic search for repeats
    for term in terms:
        if not isinstance(term, str):
            raise ValueError("vocabulary must be a list of words or names")
        if len(term) > 4 * MAX_TERM:
            raise ValueError(f"vocabulary terms are printable text of at most {MAX_TERM} characters")
        term = " ".join(term.split())
        if not term:
            continue
        if len(term) > MAX_TERM or not term.isprintable():
            raise ValueError(f"vocabulary terms are printable text of at most {MAX_TERM} characters")
        cleaned[term] = None
        if len(cleaned) > MAX_VOCABULARY:
            raise ValueError(f"vocabulary holds at most {MAX_VOCABULARY} terms")
    return list(cleaned)


def check_deliverable_options(start_timecode: str, timecode_mode: str, qc_profile: str) -> None:
    """ValueError with the reason for a start timecode, timecode mode or QC profile that does not exist."""
    if timecode_mode not in (timecode.DF, timecode.NDF):
        raise ValueError(f"timecode_mode must be {timecode.DF!r} or {timecode.NDF!r}")
    if start_timecode != "source":
        timecode.parse(start_timecode, timecode_mode)
    if qc_profile not in qc.PROFILES:
        raise ValueError(f"qc_profile must be one of {', '.join(qc.PROFILES)}")


def kinds(options: CaptionOptions, with_video: bool | None = None) -> list[str]:
    """The output kinds of a run: the sidecars, the MOV if asked, the rendition with burn-in."""
    video = options.burn_in if with_video is None else with_video
    return list(artifacts.SIDECAR_KINDS) + (["mov"] if options.mov else []) + (["video"] if video else [])


def prepare(source: str | Path, burn_in: bool, label: str | None = None) -> media.MediaInfo:
    """Probe the source; rejects unusable inputs."""
    info = media.probe(source, label)
    if burn_in and not info.has_video:
        raise InputError(info.shown, "has no video stream to burn captions into (use --no-burn-in)")
    return info


def transcribe_media(info: media.MediaInfo, options: CaptionOptions, report: Progress, timings: dict):
    """Decode audio, transcribe, and cut captions: (transcript, captions)."""
    settings = options.settings
    t0 = time.monotonic()
    audio = media.load_audio(info, progress=lambda f: report("transcribing", DECODE_SHARE * f))
    timings["decode_audio"] = round(time.monotonic() - t0, 3)
    t0 = time.monotonic()
    pipeline = models.load_configured(options.model, settings)
    timings["load_model"] = round(time.monotonic() - t0, 3)
    report("transcribing", DECODE_SHARE)
    t0 = time.monotonic()
    transcript = transcription.transcribe(
        pipeline, audio, language=None if options.language == "auto" else options.language,
        batch_size=settings["WHISPER_BATCH_SIZE"], align_model=settings["ALIGN_MODEL"],
        device=settings["WHISPER_DEVICE"], vocabulary=options.vocabulary,
        progress=lambda f: report("transcribing", DECODE_SHARE + (1.0 - DECODE_SHARE) * f))
    timings["transcribing"] = round(time.monotonic() - t0, 3)
    report("captioning", 0.0)
    t0 = time.monotonic()
    if options.speaker_changes:
        transcript = speakers.label_speakers(transcript, audio)
        timings["speakers"] = round(time.monotonic() - t0, 3)
        t0 = time.monotonic()
    captions = captions_mod.build_captions(transcript.words, options.rows, info.duration,
                                           max_cps=qc.PROFILES[options.qc_profile].reading_cps,
                                           speaker_marks=options.speaker_changes)
    timings["captioning"] = round(time.monotonic() - t0, 3)
    return transcript, captions


def stage_sidecars(staging: artifacts.Staging, info: media.MediaInfo, transcript, captions,
                   options: CaptionOptions) -> dict:
    """Write the caption files (and the MOV if asked) into staging; the QC report and timecode facts."""
    start, note = deliverables.start_timecode(options.start_timecode, options.timecode_mode, info.path)
    cuts = qc.shot_changes(info.path) if info.has_video and options.settings["QC_SHOT_CHANGES"] else None
    facts = {"timecode": {**start.as_dict(), **({"note": note} if note else {})}}
    sidecars = writers.render_sidecars(transcript, captions, start=start, qc_profile=options.qc_profile,
                                       rows=options.rows, shot_changes=cuts, source=info.shown, model=options.model,
                                       media=info.as_dict(), **facts)
    for kind, text in sidecars.items():
        staging.path(kind).write_text(text, encoding="utf-8")
    if options.mov:
        if not info.has_video:
            raise InputError(info.shown, "has no video stream for a MOV deliverable (submit without mov)")
        zero_based = staging.dir / "mov.scc"      # FFmpeg's demuxer times each line: one code word a line
        zero_based.write_text(write_scc(captions, one_word_per_line=True)[0], encoding="utf-8")
        facts["mov"] = deliverables.mux_mov(info, zero_based, staging.path("mov"), start.label)
    return {**facts, "qc": json.loads(sidecars["json"])["qc"]}


def stage_video(staging: artifacts.Staging, info: media.MediaInfo, captions, settings: dict,
                report: Progress, timings: dict) -> dict:
    report("rendering", 0.0)
    t0 = time.monotonic()
    ass = staging.dir / "captions.ass"
    ass.write_text(burnin.ass_document(captions, info.width, info.height), encoding="utf-8")
    render = burnin.burn_in(info, ass, staging.path("video"), preset=settings["RENDER_PRESET"],
                            crf=settings["RENDER_CRF"], progress=lambda f: report("rendering", f))
    timings["rendering"] = round(time.monotonic() - t0, 3)
    return render


def total_seconds(timings: dict) -> float:
    """A run's total: the sum of its stages (the CLI and the tasks report the same figure)."""
    return round(sum(v for k, v in timings.items() if k != "total"), 3)


def outputs_of(manifest: list[dict]) -> dict[str, str]:
    """The ``{kind: path}`` map automation reads, from a manifest."""
    return {entry["kind"]: entry["path"] for entry in manifest}


def result_record(info: media.MediaInfo, transcript, captions, options: CaptionOptions) -> dict:
    return {
        "source": info.shown,
        "duration": round(info.duration, 3),
        "language": transcript.language,
        "speech_found": transcript.speech_found,
        "message": "captioned" if transcript.speech_found else "no speech found; captions are empty",
        "captions": len(captions),
        "word_timing": transcript.word_timing,
        "model": options.model,
    }


def caption_file(source: str | Path, out_dir: str | Path, options: CaptionOptions | None = None,
                 progress: Progress | None = None) -> dict:
    """Caption one file end to end; return the result record (outputs, manifest, duration, language, timings)."""
    options = options or CaptionOptions()
    report = progress or (lambda stage, fraction: None)
    timings: dict[str, float] = {}
    started = time.monotonic()
    report("probing", 0.0)
    info = prepare(source, options.burn_in)
    timings["probing"] = round(time.monotonic() - started, 3)
    transcript, captions = transcribe_media(info, options, report, timings)
    render: dict = {}
    with artifacts.writing(Path(out_dir), Path(source).name, "cli") as staging:
        facts = stage_sidecars(staging, info, transcript, captions, options)
        if options.burn_in:
            render = stage_video(staging, info, captions, options.settings, report, timings)
        _, manifest = staging.publish(kinds(options), options.settings["OUTPUT_CONFLICT"])
    timings["total"] = total_seconds(timings)
    return {**result_record(info, transcript, captions, options), "outputs": outputs_of(manifest),
            "manifest": manifest, **facts, "render": render, "timings": timings}


__all__ = ["CaptionError", "CaptionOptions", "caption_file", "prepare", "transcribe_media"]
