"""Load the default Whisper model in each worker process as it starts.

Without this, a process pays for importing WhisperX and loading the model
(6-9 s on 2 cores) inside the first job it is given, and with
``-c 2`` the second process usually pays it in the middle of a batch.
Loading runs on a background thread, so the process takes work at once; a
transcription that arrives early waits on the model cache's lock.
"""

from __future__ import annotations

import threading

from celery.signals import worker_process_init
from celery.utils.log import get_logger

from ..config import load_settings
from .app import TRANSCRIBE_QUEUE

log = get_logger(__name__)


def consumes_transcriptions(app) -> bool:
    """True if this worker reads the transcribe queue (a render-only host needs no model)."""
    return TRANSCRIBE_QUEUE in app.amqp.queues.consume_from


def preload_default_model(settings: dict) -> None:
    from ..services import models

    try:
        models.load_configured(settings["WHISPER_MODEL"], settings)
        log.info("Whisper model %s loaded ahead of the first job", settings["WHISPER_MODEL"])
    except Exception:  # noqa: BLE001 - the first job loads it again and reports the error on the job
        log.warning("could not preload Whisper model %s", settings["WHISPER_MODEL"], exc_info=True)


@worker_process_init.connect
def _preload_in_pool_process(**_) -> None:
    from . import celery

    settings = load_settings()
    if settings["PRELOAD_MODEL"] and consumes_transcriptions(celery):
        threading.Thread(target=preload_default_model, args=(settings,), name="preload-model", daemon=True).start()
