"""Celery application and tasks (``celery -A core.tasks worker``).  See issue #3."""
