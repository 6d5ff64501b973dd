"""Celery worker entry point: ``celery -A core.tasks worker``.

The worker's app is built here from this process's settings; the dashboard
builds its own in the app factory.  Tasks are ``shared_task``s, so either app
knows them by name.
"""

from ..celery_app import create_celery
from ..config import process_settings

celery = app = create_celery(process_settings())

__all__ = ["app", "celery"]
