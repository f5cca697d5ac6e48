"""``python -m worker [celery worker options]``: ``celery -A ruvon.cluster.app worker``."""

from __future__ import annotations

import sys

from worker.app import app

if __name__ == "__main__":
    app.worker_main(["worker", *sys.argv[1:]])
