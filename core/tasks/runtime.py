"""What every task of this worker process shares: settings read once, the queue client, failure messages."""

from __future__ import annotations

from celery.exceptions import SoftTimeLimitExceeded
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.exc import OperationalError

from ..config import process_settings
from ..queue import QueueClient
from ..services.errors import CaptionError

TRANSIENT = (RedisConnectionError, OperationalError)
_clients: dict[int, QueueClient] = {}


def settings() -> dict:
    return process_settings()


def queue_client(celery_app) -> QueueClient:
    client = _clients.get(id(celery_app))
    if client is None:
        client = _clients[id(celery_app)] = QueueClient(celery_app, settings())
    return client


def failure_message(job, err: Exception, retries: int) -> str:
    """The operator-facing reason a job failed."""
    if isinstance(err, CaptionError):
        return str(err)
    if isinstance(err, TRANSIENT):
        return f"{job.source}: gave up after {retries} retries: {err}"
    if isinstance(err, SoftTimeLimitExceeded):
        return (f"{job.source}: stopped after exceeding its time limit "
                f"({job.media_duration or 0:.0f} s of media); see TIME_LIMIT_* settings")
    return f"{job.source}: {type(err).__name__}: {err}"
