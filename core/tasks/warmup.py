"""Load the default Whisper model (and the speaker encoder) in each worker process as it starts.

Without this, a process pays for importing WhisperX and loading the model
(6-9 s on 2 cores) inside the first job it is given, and with
``-c 2`` the second process usually pays it in the middle of a batch.
Loading runs on a background thread, so the process takes work at once; a
transcription that arrives early waits on the model cache's lock.
"""

from __future__ import annotations

import threading

from celery import current_app
from celery.signals import worker_process_init
from celery.utils.log import get_logger

from ..queue import TRANSCRIBE_QUEUE
from ..services import models, speakers
from .runtime import settings

log = get_logger(__name__)


def consumes_transcriptions(app) -> bool:
    """True if this worker reads the transcribe queue (a render-only host needs no model)."""
    return TRANSCRIBE_QUEUE in app.amqp.queues.consume_from


def preload_default_model(s: dict) -> None:
    try:
        models.load_configured(s["WHISPER_MODEL"], s)
        log.info("Whisper model %s loaded ahead of the first job", s["WHISPER_MODEL"])
    except Exception:  # noqa: BLE001 - the first job loads it again and reports the error on the job
        log.warning("could not preload Whisper model %s", s["WHISPER_MODEL"], exc_info=True)
    if s["SPEAKER_CHANGES"]:
        try:
            speakers.encoder()      # Resemblyzer: its imports and weights, ahead of the first job
        except Exception:  # noqa: BLE001 - the first job then marks no speakers and logs why
            log.warning("could not preload the speaker encoder", exc_info=True)


@worker_process_init.connect
def _preload_in_pool_process(**_) -> None:
    s = settings()
    if s["PRELOAD_MODEL"] and consumes_transcriptions(current_app):
        threading.Thread(target=preload_default_model, args=(s,), name="preload-model", daemon=True).start()
