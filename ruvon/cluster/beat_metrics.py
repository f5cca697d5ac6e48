"""The beat's ``/metrics``: queue depth and lag read from PostgreSQL (``RUVON_BEAT_METRICS_PORT``).

The beat is the cluster's one scheduler, so it is where the cluster-wide gauges are served
(``ruvon_steps_queued``, ``ruvon_steps_scheduled``, ``ruvon_queue_lag_seconds`` per queue, see
:mod:`ruvon.implementations.observability.queue_metrics`): every worker serving them would
multiply the query by the number of workers. The query runs at each scrape, on a private
event-loop bridge with a one-connection pool. Started by ``beat_init``; unset or 0: off.
"""

from __future__ import annotations

import atexit
import logging
from typing import Any

from celery.signals import beat_init

from ruvon.config import Settings
from ruvon.implementations.observability.settings import ObservabilitySettings

__all__: list[str] = []

logger = logging.getLogger(__name__)

_state: dict[str, Any] = {"server": None}


@beat_init.connect
def _serve_queue_metrics(**_: object) -> None:
    settings = ObservabilitySettings.from_env()
    if settings.beat_metrics_port is None or _state["server"] is not None:
        return
    from prometheus_client import CollectorRegistry

    from ruvon.implementations.observability.health import is_cluster_url
    from ruvon.implementations.observability.metrics_server import start_metrics_server
    from ruvon.implementations.observability.queue_metrics import (
        PostgresQueueStats,
        QueueMetricsCollector,
    )

    database_url = Settings.from_env().database_url
    if not is_cluster_url(database_url):
        logger.error("queue metrics need the cluster's PostgreSQL (RUVON_DATABASE_URL): off")
        return
    reader = PostgresQueueStats(database_url, application_name="ruvon-beat-metrics")
    registry = CollectorRegistry()
    registry.register(QueueMetricsCollector(reader))
    try:
        _state["server"] = start_metrics_server(
            settings.beat_metrics_port, settings.metrics_addr, registry
        )
    except OSError:
        logger.exception(
            "cannot serve metrics on %s:%d", settings.metrics_addr, settings.beat_metrics_port
        )
        reader.close()
        return
    atexit.register(reader.close)
