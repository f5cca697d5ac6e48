"""``celery -A beat beat``, kept working for one release: the Ruvon beat inside Celery beat.

The beat no longer sends tasks (its sweeps run in its own process, :mod:`ruvon.cluster.beat`),
so the Celery beat of this app has an empty schedule; what it still does is host the Ruvon
beat, started from ``beat_init`` on a background thread and stopped at exit. Deployments
should run ``ruvon beat`` (``python -m ruvon.cluster.beat``) instead, which needs no Celery
beat at all.
"""

from __future__ import annotations

import atexit
import logging
import threading

from celery import Celery
from celery.signals import beat_init

from ruvon.config import Settings
from ruvon.implementations.execution.celery_config import celery_config
from ruvon.implementations.observability.celery_logs import connect_json_logs

__all__ = ["app", "create_beat_app"]

logger = logging.getLogger("ruvon.beat")

_started: list[threading.Thread] = []


def create_beat_app(settings: Settings | None = None) -> Celery:
    """A Celery app whose beat sends nothing and runs the Ruvon beat (see the module)."""
    beat = Celery("ruvon-beat")
    beat.conf.update(celery_config(settings or Settings.from_env()))
    beat.conf.beat_schedule = {}
    return beat


@beat_init.connect
def _run_ruvon_beat(**_: object) -> None:
    if _started:
        return
    from ruvon.cluster.beat import Beat

    logger.warning(
        "`celery -A beat beat` only hosts the Ruvon beat now (Celery beat has nothing to send): "
        "run `ruvon beat` instead"
    )
    stop = threading.Event()
    beat = Beat()
    thread = threading.Thread(target=beat.run_until, args=(stop,), name="ruvon-beat", daemon=True)
    thread.start()
    _started.append(thread)

    def _stop() -> None:
        stop.set()
        thread.join(30.0)

    atexit.register(_stop)


app = create_beat_app()
connect_json_logs()  # RUVON_LOG_FORMAT=json
