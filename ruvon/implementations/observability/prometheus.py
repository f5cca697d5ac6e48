"""Prometheus metrics of workflows and steps (``ruvon_`` prefix), and the observer that feeds them.

* ``ruvon_workflows_started_total{workflow_type}`` — workflows this process created and runs
  (embedded); on a cluster, the beat's, read from PostgreSQL (see below);
* ``ruvon_workflows_finished_total{workflow_type, status}`` — terminal statuses committed here;
* ``ruvon_step_duration_seconds{workflow_type, step, kind}`` (histogram) — completed steps;
* ``ruvon_step_retries_total{workflow_type, step, kind}`` — failed attempts that will be retried;
* ``ruvon_step_failures_total{workflow_type, step, kind}`` — failed attempts with no retry left;
* ``ruvon_compensations_total{workflow_type, step, outcome}`` — saga compensations (ok|failed).

``kind`` is the step type (STANDARD, ASYNC, PARALLEL...). A workflow is counted as finished by
the process that commits its terminal status (a worker; the beat for a workflow failed by its
zombie sweep). As started, embedded, by the process that creates it. On a cluster workflows
are created everywhere: by clients that export no metrics (``ruvon start``, ``Client.start``,
a load test), by workers (children), by the beat (cron); so no process counts the starts it
makes there (:attr:`WorkflowStarted.on_cluster`), and the beat serves the cluster's count
instead, read from PostgreSQL (:mod:`ruvon.implementations.observability.workflow_counts`).

The beat's sweeps have their own metrics (:class:`SweepMetrics`, fed by
:meth:`SweepMetrics.record_sweep` in the beat process, which serves them):

* ``ruvon_zombies_recovered_total{action}`` — runs of dead workers re-queued, or failed;
* ``ruvon_lost_messages_resent_total`` — due runs whose message was missing, sent again;
* ``ruvon_sweep_failures_total{sweep}`` — sweeps that raised (the next one runs on time);
* ``ruvon_sweep_last_success_timestamp_seconds{sweep}`` — when each sweep last completed.

Queue depth and lag are read from PostgreSQL instead
(:mod:`ruvon.implementations.observability.queue_metrics`).

Under a prefork worker the counters live in prometheus_client's multiprocess files
(:mod:`ruvon.implementations.observability.metrics_server`); nothing here needs to know.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from ruvon.providers.observer import (
    BaseObserver,
    CompensationRan,
    StepCompleted,
    StepFailed,
    WorkflowFinished,
    WorkflowStarted,
)

__all__ = [
    "STEP_DURATION_BUCKETS",
    "PrometheusObserver",
    "RuvonMetrics",
    "SweepMetrics",
    "default_metrics",
]

#: Steps are short units of work, but some call slow services: up to ten minutes.
STEP_DURATION_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
)  # fmt: skip

_STEP_LABELS = ("workflow_type", "step", "kind")


class RuvonMetrics:
    """The metric objects, registered on ``registry`` (default: prometheus_client's global one).

    One instance per registry: a second on the same registry is refused by prometheus_client
    (duplicate names); use :func:`default_metrics` for the process-wide one.
    """

    def __init__(
        self, registry: CollectorRegistry | None = REGISTRY, *, count_starts: bool = True
    ) -> None:
        """``count_starts=False``: no ``ruvon_workflows_started`` counter (the beat's registry
        serves the cluster's count read from PostgreSQL under that name)."""
        self.workflows_started: Counter | None = None
        if count_starts:
            self.workflows_started = Counter(
                "ruvon_workflows_started",
                "Workflows created and run by this process (embedded).",
                ["workflow_type"],
                registry=registry,
            )
        self.workflows_finished = Counter(
            "ruvon_workflows_finished",
            "Workflows that reached a terminal status in this process.",
            ["workflow_type", "status"],
            registry=registry,
        )
        self.step_duration = Histogram(
            "ruvon_step_duration_seconds",
            "Duration of completed steps, from the start of the step to its commit.",
            _STEP_LABELS,
            buckets=STEP_DURATION_BUCKETS,
            registry=registry,
        )
        self.step_retries = Counter(
            "ruvon_step_retries",
            "Step attempts that failed and will be retried.",
            _STEP_LABELS,
            registry=registry,
        )
        self.step_failures = Counter(
            "ruvon_step_failures",
            "Step attempts that failed with no retry left (or a non-retryable error).",
            _STEP_LABELS,
            registry=registry,
        )
        self.compensations = Counter(
            "ruvon_compensations",
            "Compensation functions run during saga rollbacks.",
            ["workflow_type", "step", "outcome"],
            registry=registry,
        )


class SweepMetrics:
    """The beat's sweep metrics, registered on ``registry`` (the beat's own); ``sweeps`` names
    the sweeps whose failure count is present (at 0) from the start."""

    def __init__(
        self, registry: CollectorRegistry | None = REGISTRY, *, sweeps: Iterable[str] = ()
    ) -> None:
        self.zombies_recovered = Counter(
            "ruvon_zombies_recovered",
            "Step runs whose worker died (lease expired): re-queued, or their workflow failed.",
            ["action"],
            registry=registry,
        )
        self.lost_messages_resent = Counter(
            "ruvon_lost_messages_resent",
            "Due step runs nobody claimed whose message was missing from the broker, sent again.",
            registry=registry,
        )
        self.sweep_failures = Counter(
            "ruvon_sweep_failures",
            "Beat sweeps that raised (a database or broker outage); the next one runs on time.",
            ["sweep"],
            registry=registry,
        )
        self.sweep_last_success = Gauge(
            "ruvon_sweep_last_success_timestamp_seconds",
            "When each beat sweep last completed (Unix time).",
            ["sweep"],
            registry=registry,
        )
        for action in ("requeued", "failed"):
            self.zombies_recovered.labels(action)  # present (at 0) before the first zombie
        for sweep in sweeps:
            self.sweep_failures.labels(sweep)

    def record_sweep(self, report: Mapping[str, object]) -> None:
        """Count what one beat sweep did (``SweepReport.as_dict()``: sweep, requeued, ...)."""
        sweep = report.get("sweep")
        if sweep == "recover_zombies":
            self.zombies_recovered.labels("requeued").inc(_count(report, "requeued"))
            self.zombies_recovered.labels("failed").inc(_count(report, "failed"))
        elif sweep == "redispatch_lost":
            self.lost_messages_resent.inc(_count(report, "sent"))
        if isinstance(sweep, str):
            self.sweep_last_success.labels(sweep).set(time.time())

    def record_failure(self, sweep: str) -> None:
        """Count a sweep that raised."""
        self.sweep_failures.labels(sweep).inc()


def _count(report: Mapping[str, object], key: str) -> int:
    value = report.get(key, 0)
    return value if isinstance(value, int) and value > 0 else 0


_default: RuvonMetrics | None = None
_default_lock = threading.Lock()


def default_metrics() -> RuvonMetrics:
    """This process's metrics on prometheus_client's global registry (created once)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = RuvonMetrics()
        return _default


class PrometheusObserver(BaseObserver):
    """Feeds :class:`RuvonMetrics` from workflow lifecycle events.

    ``WorkflowBuilder(..., observer=PrometheusObserver())``, or a worker with
    ``RUVON_METRICS_PORT`` set (:mod:`ruvon.cluster.metrics`).
    """

    def __init__(self, metrics: RuvonMetrics | None = None) -> None:
        self.metrics = metrics or default_metrics()

    def on_workflow_started(self, event: WorkflowStarted) -> None:
        # A cluster's starts are counted once, by the beat, from PostgreSQL.
        counter = self.metrics.workflows_started
        if counter is not None and not event.on_cluster:
            counter.labels(event.workflow_type).inc()

    def on_workflow_finished(self, event: WorkflowFinished) -> None:
        self.metrics.workflows_finished.labels(event.workflow_type, event.status).inc()

    def on_step_completed(self, event: StepCompleted) -> None:
        self.metrics.step_duration.labels(
            event.workflow_type, event.step_name, event.step_type
        ).observe(max(event.duration_seconds, 0.0))

    def on_step_failed(self, event: StepFailed) -> None:
        counter = self.metrics.step_retries if event.will_retry else self.metrics.step_failures
        counter.labels(event.workflow_type, event.step_name, event.step_type).inc()

    def on_compensation(self, event: CompensationRan) -> None:
        outcome = "ok" if event.succeeded else "failed"
        self.metrics.compensations.labels(event.workflow_type, event.step_name, outcome).inc()
