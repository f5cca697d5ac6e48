"""The beat's ``/metrics`` (``RUVON_BEAT_METRICS_PORT``; unset or 0: off).

The beat is the cluster's one scheduler, so it serves the cluster-wide gauges, read from
PostgreSQL at each scrape (``ruvon_steps_queued``, ``ruvon_steps_scheduled``,
``ruvon_queue_lag_seconds`` per queue, see
:mod:`ruvon.implementations.observability.queue_metrics`; and the cluster's
``ruvon_workflows_started_total`` per workflow type, wherever the workflows were started, see
:mod:`ruvon.implementations.observability.workflow_counts`; on a private event-loop bridge
with a one-connection pool): every worker serving them would multiply the query by the number
of workers, and would serve the same count once per worker. It also serves what its sweeps
did (``ruvon_zombies_recovered_total``, ``ruvon_lost_messages_resent_total``,
``ruvon_sweep_failures_total``, ``ruvon_sweep_last_success_timestamp_seconds``:
:class:`SweepMetrics`) and the workflow metrics of its own work (workflows its zombie sweep
failed, their compensations: :class:`RuvonMetrics`, without its own start counter). One
process: a plain registry, no multiprocess files.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ruvon.config import Settings
from ruvon.implementations.observability.settings import ObservabilitySettings

if TYPE_CHECKING:
    from ruvon.implementations.observability.prometheus import (
        PrometheusObserver,
        RuvonMetrics,
        SweepMetrics,
    )

__all__ = ["BeatMetrics", "serve_beat_metrics"]

logger = logging.getLogger("ruvon.beat")


@dataclass
class BeatMetrics:
    """The beat's registry, its metric objects, and the server and reader serving them."""

    workflows: RuvonMetrics
    sweeps: SweepMetrics
    server: Any  # MetricsServer
    reader: Any  # PostgresQueueStats

    def observer(self) -> PrometheusObserver:
        """The observer of the beat's builder and runner (counts into :attr:`workflows`)."""
        from ruvon.implementations.observability.prometheus import PrometheusObserver

        return PrometheusObserver(self.workflows)

    def close(self) -> None:
        """Stop serving; close the queue reader's pool."""
        with contextlib.suppress(Exception):
            self.server.close()
        self.reader.close()


def serve_beat_metrics(settings: Settings, sweeps: Iterable[str]) -> BeatMetrics | None:
    """Serve the beat's ``/metrics`` if ``RUVON_BEAT_METRICS_PORT`` asks for it (None: off)."""
    observability = ObservabilitySettings.from_env()
    port = observability.beat_metrics_port
    if port is None:
        return None
    if importlib.util.find_spec("prometheus_client") is None:
        logger.error(
            "RUVON_BEAT_METRICS_PORT is set but prometheus_client is not installed "
            "(pip install 'ruvon[prometheus]'): metrics are off"
        )
        return None
    from prometheus_client import CollectorRegistry

    from ruvon.implementations.observability.metrics_server import start_metrics_server
    from ruvon.implementations.observability.prometheus import RuvonMetrics, SweepMetrics
    from ruvon.implementations.observability.queue_metrics import (
        PostgresQueueStats,
        QueueMetricsCollector,
    )
    from ruvon.implementations.observability.workflow_counts import (
        WorkflowsStartedCollector,
        read_workflows_started,
    )

    registry = CollectorRegistry()
    reader = PostgresQueueStats(settings.database_url, application_name="ruvon-beat-metrics")
    registry.register(QueueMetricsCollector(reader))
    registry.register(WorkflowsStartedCollector(lambda: reader.query(read_workflows_started)))
    sweep_metrics = SweepMetrics(registry, sweeps=sweeps)
    metrics = BeatMetrics(RuvonMetrics(registry, count_starts=False), sweep_metrics, None, reader)
    try:
        metrics.server = start_metrics_server(port, observability.metrics_addr, registry)
    except OSError:
        # Metrics must not stop the sweeps; the scrape failing (up == 0) is the alarm.
        logger.exception("cannot serve metrics on %s:%d", observability.metrics_addr, port)
        reader.close()
        return None
    return metrics
