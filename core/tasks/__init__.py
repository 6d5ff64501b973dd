"""Celery application and tasks: ``celery -A core.tasks worker``."""

from .app import create_celery

celery = create_celery()

__all__ = ["celery"]
