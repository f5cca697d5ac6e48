"""The Ruvon Celery worker: ``celery -A worker worker`` (or ``ruvon worker``) starts it.

``worker.app`` is the Celery application (it shadows the ``worker.app`` module as a package
attribute; import that module's helpers by name: ``from worker.app import process_persistence``).
This package imports ``ruvon``; ``ruvon`` never imports it.
"""

from __future__ import annotations

from worker.app import app

__all__ = ["app"]
