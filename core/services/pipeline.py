"""One video in, captions and a captioned rendition out.

Stages: probing -> transcribing -> captioning -> rendering.  Every output is
written into a hidden staging folder beside its final place and renamed into
place only when the whole job succeeded, so a failed or killed run never
leaves a half-written or partial set of outputs, and a source is never
overwritten.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..config import load_settings
from . import burnin, captions as captions_mod, media, models, transcription, writers
from .errors import CaptionError, InputError, ProcessingError

Progress = Callable[[str, float], None]
STAGES = ("probing", "transcribing", "captioning", "rendering")


@dataclass
class CaptionOptions:
    model: str = ""
    language: str = ""
    burn_in: bool = True
    rows: int = 2
    settings: dict = field(default_factory=load_settings, repr=False)

    def __post_init__(self):
        self.model = self.model or self.settings["WHISPER_MODEL"]
        self.language = self.language or self.settings["LANGUAGE"]
        if not 1 <= int(self.rows) <= captions_mod.MAX_ROWS:
            raise ValueError(f"rows must be between 1 and {captions_mod.MAX_ROWS}")
        self.rows = int(self.rows)


def output_paths(source: Path, out_dir: Path) -> dict[str, Path]:
    stem = source.stem
    paths = {kind: out_dir / f"{stem}.{kind}" for kind in writers.SIDECAR_KINDS}
    paths["video"] = out_dir / f"{stem}_captioned.mp4"
    return paths


class Staging:
    """A hidden folder next to the outputs; ``publish`` renames files into place."""

    def __init__(self, out_dir: Path, stem: str):
        out_dir.mkdir(parents=True, exist_ok=True)
        self._sweep(out_dir, stem)
        tag = f"{socket.gethostname()}-{os.getpid()}"
        self.dir = Path(tempfile.mkdtemp(prefix=f".{stem}.partial-{tag}-", dir=out_dir))

    @staticmethod
    def _sweep(out_dir: Path, stem: str) -> None:
        """Remove staging folders left by killed runs of this host."""
        host = socket.gethostname()
        for old in out_dir.glob(f".{glob.escape(stem)}.partial-{glob.escape(host)}-*"):
            try:
                pid = int(old.name.split(f"-{host}-", 1)[1].split("-", 1)[0])
                os.kill(pid, 0)
            except ProcessLookupError:
                shutil.rmtree(old, ignore_errors=True)
            except (ValueError, IndexError, PermissionError):
                continue

    def path(self, final: Path) -> Path:
        return self.dir / final.name

    def publish(self, finals: dict[str, Path]) -> None:
        for final in finals.values():
            os.replace(self.path(final), final)

    def discard(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _check_not_overwriting(source: Path, finals: dict[str, Path]) -> None:
    for final in finals.values():
        if final.exists() and final.resolve() == source.resolve():
            raise InputError(source, f"output {final.name} would overwrite the source; choose another --out")


def prepare(source: str | Path, out_dir: str | Path, burn_in: bool) -> tuple[media.MediaInfo, dict[str, Path]]:
    """Probe the source and decide the output paths; rejects unusable inputs."""
    source = Path(source)
    info = media.probe(source)
    if burn_in and not info.has_video:
        raise InputError(source, "has no video stream to burn captions into (use --no-burn-in)")
    finals = output_paths(source, Path(out_dir))
    if not burn_in:
        finals.pop("video")
    _check_not_overwriting(source, finals)
    return info, finals


def transcribe_media(info: media.MediaInfo, options: CaptionOptions, report: Progress, timings: dict):
    """Decode audio, transcribe, and cut captions: (transcript, captions)."""
    settings = options.settings
    t0 = time.monotonic()
    audio = media.load_audio(info)
    timings["decode_audio"] = round(time.monotonic() - t0, 3)
    t0 = time.monotonic()
    pipeline = models.load_configured(options.model, settings)
    timings["load_model"] = round(time.monotonic() - t0, 3)
    report("transcribing", 0.0)
    t0 = time.monotonic()
    transcript = transcription.transcribe(
        pipeline, audio, language=None if options.language == "auto" else options.language,
        batch_size=settings["WHISPER_BATCH_SIZE"], align_model=settings["ALIGN_MODEL"],
        device=settings["WHISPER_DEVICE"], progress=lambda f: report("transcribing", f))
    timings["transcribing"] = round(time.monotonic() - t0, 3)
    report("captioning", 0.0)
    t0 = time.monotonic()
    captions = captions_mod.build_captions(transcript.words, options.rows, info.duration)
    timings["captioning"] = round(time.monotonic() - t0, 3)
    return transcript, captions


def stage_sidecars(staging: Staging, finals: dict[str, Path], info: media.MediaInfo, transcript,
                   captions, options: CaptionOptions) -> None:
    sidecars = writers.render_sidecars(transcript, captions, source=info.path, model=options.model,
                                       media=info.as_dict())
    for kind, text in sidecars.items():
        staging.path(finals[kind]).write_text(text, encoding="utf-8")


def stage_video(staging: Staging, final: Path, info: media.MediaInfo, captions, settings: dict,
                report: Progress, timings: dict) -> dict:
    report("rendering", 0.0)
    t0 = time.monotonic()
    ass = staging.dir / "captions.ass"
    ass.write_text(burnin.ass_document(captions, info.width, info.height), encoding="utf-8")
    render = burnin.burn_in(info, ass, staging.path(final), preset=settings["RENDER_PRESET"],
                            crf=settings["RENDER_CRF"], progress=lambda f: report("rendering", f))
    timings["rendering"] = round(time.monotonic() - t0, 3)
    return render


def writing_outputs(source: Path, out_dir: Path):
    """Staging for one source; OSErrors (disk full, permissions) become ProcessingError."""
    return _Writing(source, out_dir)


class _Writing:
    def __init__(self, source: Path, out_dir: Path):
        self.source, self.out_dir = Path(source), Path(out_dir)

    def __enter__(self) -> Staging:
        try:
            self.staging = Staging(self.out_dir, self.source.stem)
        except OSError as err:
            raise ProcessingError(self.source, f"cannot write outputs to {self.out_dir}: {err.strerror or err}") from err
        return self.staging

    def __exit__(self, kind, err, tb):
        self.staging.discard()
        if isinstance(err, OSError) and not isinstance(err, CaptionError):
            raise ProcessingError(self.source, f"cannot write outputs to {self.out_dir}: {err.strerror or err}") from err
        return False


def result_record(info: media.MediaInfo, finals: dict[str, Path], transcript, captions, options: CaptionOptions,
                  render: dict, timings: dict) -> dict:
    return {
        "source": info.path,
        "outputs": {kind: str(path) for kind, path in finals.items()},
        "duration": round(info.duration, 3),
        "language": transcript.language,
        "speech_found": transcript.speech_found,
        "message": "captioned" if transcript.speech_found else "no speech found; captions are empty",
        "captions": len(captions),
        "word_timing": transcript.word_timing,
        "model": options.model,
        "render": render,
        "timings": timings,
    }


def caption_file(source: str | Path, out_dir: str | Path, options: CaptionOptions | None = None,
                 progress: Progress | None = None) -> dict:
    """Caption one file end to end; return the result record (outputs, duration, language, timings)."""
    options = options or CaptionOptions()
    report = progress or (lambda stage, fraction: None)
    timings: dict[str, float] = {}
    started = time.monotonic()
    report("probing", 0.0)
    info, finals = prepare(source, out_dir, options.burn_in)
    timings["probing"] = round(time.monotonic() - started, 3)
    transcript, captions = transcribe_media(info, options, report, timings)
    render: dict = {}
    with writing_outputs(Path(source), Path(out_dir)) as staging:
        stage_sidecars(staging, finals, info, transcript, captions, options)
        if options.burn_in:
            render = stage_video(staging, finals["video"], info, captions, options.settings, report, timings)
        staging.publish(finals)
    timings["total"] = round(time.monotonic() - started, 3)
    return result_record(info, finals, transcript, captions, options, render, timings)


__all__ = ["CaptionError", "CaptionOptions", "STAGES", "caption_file", "output_paths"]
