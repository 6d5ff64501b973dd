"""One video in, captions and a captioned rendition out.

Stages: probing -> transcribing -> captioning -> rendering.  Every output is
written into a hidden staging folder beside its final place and renamed into
place only when the whole job succeeded, so a failed or killed run never
leaves a half-written or partial set of outputs, and a source is never
overwritten.
"""

from __future__ import annotations

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
        for old in out_dir.glob(f".{stem}.partial-{host}-*"):
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


def caption_file(source: str | Path, out_dir: str | Path, options: CaptionOptions | None = None,
                 progress: Progress | None = None) -> dict:
    """Caption one file; return the result record (outputs, duration, language, timings)."""
    options = options or CaptionOptions()
    settings = options.settings
    source, out_dir = Path(source), Path(out_dir)
    report = progress or (lambda stage, fraction: None)
    timings: dict[str, float] = {}
    started = time.monotonic()

    def timed(stage: str, fn, *args, **kwargs):
        report(stage, 0.0)
        t0 = time.monotonic()
        value = fn(*args, **kwargs)
        timings[stage] = round(time.monotonic() - t0, 3)
        return value

    info = timed("probing", media.probe, source)
    if options.burn_in and not info.has_video:
        raise InputError(source, "has no video stream to burn captions into (use --no-burn-in)")
    finals = output_paths(source, out_dir)
    if not options.burn_in:
        finals.pop("video")
    _check_not_overwriting(source, finals)

    t0 = time.monotonic()
    audio = media.load_audio(info)
    timings["decode_audio"] = round(time.monotonic() - t0, 3)
    pipeline = timed("load_model", models.load_pipeline, options.model, settings["WHISPER_DEVICE"],
                     settings["WHISPER_COMPUTE_TYPE"], settings["WHISPER_THREADS"])
    language = None if options.language == "auto" else options.language
    transcript = timed("transcribing", transcription.transcribe, pipeline, audio, language=language,
                       batch_size=settings["WHISPER_BATCH_SIZE"], align_model=settings["ALIGN_MODEL"],
                       device=settings["WHISPER_DEVICE"],
                       progress=lambda f: report("transcribing", f))
    captions = timed("captioning", captions_mod.build_captions, transcript.words, options.rows, info.duration)

    staging = Staging(out_dir, source.stem)
    try:
        sidecars = writers.render_sidecars(transcript, captions, source=str(source), model=options.model,
                                           media=info.as_dict())
        for kind, text in sidecars.items():
            staging.path(finals[kind]).write_text(text, encoding="utf-8")
        render = {}
        if options.burn_in:
            ass = staging.dir / "captions.ass"
            ass.write_text(burnin.ass_document(captions, info.width, info.height), encoding="utf-8")
            render = timed("rendering", burnin.burn_in, info, ass, staging.path(finals["video"]),
                           preset=settings["RENDER_PRESET"], crf=settings["RENDER_CRF"],
                           progress=lambda f: report("rendering", f))
        staging.publish(finals)
    except OSError as err:
        raise ProcessingError(source, f"cannot write outputs to {out_dir}: {err.strerror or err}") from err
    finally:
        staging.discard()
    timings["total"] = round(time.monotonic() - started, 3)
    return {
        "source": str(source),
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


__all__ = ["CaptionError", "CaptionOptions", "STAGES", "caption_file", "output_paths"]
