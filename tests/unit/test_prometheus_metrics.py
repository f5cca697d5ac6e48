"""The Prometheus observer on embedded runs, sweep reports, the queue collector, the directory."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from ruvon.implementations.observability.metrics_server import (
    MULTIPROC_ENV,
    prepare_multiprocess_dir,
)
from ruvon.implementations.observability.prometheus import (
    PrometheusObserver,
    RuvonMetrics,
    SweepMetrics,
)
from ruvon.implementations.observability.queue_metrics import QueueMetricsCollector, QueueStats
from ruvon.implementations.observability.workflow_counts import WorkflowsStartedCollector
from ruvon.models import StepContext, WorkflowStatus
from ruvon.providers.observer import WorkflowStarted
from ruvon.testing.providers import open_engine


def ok(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    return {context.step_name: True}


def twice_flaky(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    if context.attempt < 3:
        raise RuntimeError("not yet")
    return {"flaky": context.attempt}


def boom(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    raise ValueError("boom")


def undo(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    return {"undone": True}


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


async def test_observer_counts_workflows_steps_retries_and_compensations(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    observer = PrometheusObserver(RuvonMetrics(registry))
    async with open_engine("memory", "sync", tmp_path) as engine:
        builder = engine.new_builder(observer=observer)
        builder.register_workflow_inline(
            "Good",
            [
                {"name": "A", "type": "STANDARD", "function": ok, "automate_next": True},
                {
                    "name": "Flaky",
                    "type": "STANDARD",
                    "function": twice_flaky,
                    "retry": {"max_attempts": 3, "initial_interval": 0.001, "jitter": False},
                },
            ],
        )
        builder.register_workflow_inline(
            "Bad",
            [
                {
                    "name": "Reserve",
                    "type": "COMPENSATABLE",
                    "function": ok,
                    "compensate_function": undo,
                    "automate_next": True,
                },
                {"name": "Boom", "type": "STANDARD", "function": boom},
            ],
            saga_mode=True,
        )
        for _ in range(2):
            good = await builder.create_workflow("Good", {})
            await good.run()
            assert good.status is WorkflowStatus.COMPLETED
        bad = await builder.create_workflow("Bad", {})
        await bad.run()
        assert bad.status is WorkflowStatus.FAILED_ROLLED_BACK

    assert _value(registry, "ruvon_workflows_started_total", workflow_type="Good") == 2
    assert _value(registry, "ruvon_workflows_started_total", workflow_type="Bad") == 1
    finished = "ruvon_workflows_finished_total"
    assert _value(registry, finished, workflow_type="Good", status="COMPLETED") == 2
    assert _value(registry, finished, workflow_type="Bad", status="FAILED_ROLLED_BACK") == 1
    durations = "ruvon_step_duration_seconds_count"
    assert _value(registry, durations, workflow_type="Good", step="A", kind="STANDARD") == 2
    assert _value(registry, durations, workflow_type="Good", step="Flaky", kind="STANDARD") == 2
    assert _value(registry, durations, workflow_type="Bad", step="Reserve", kind="COMPENSATABLE")
    assert _value(registry, durations, workflow_type="Bad", step="Boom", kind="STANDARD") == 0
    labels = {"workflow_type": "Good", "step": "Flaky", "kind": "STANDARD"}
    assert _value(registry, "ruvon_step_retries_total", **labels) == 4  # 2 per workflow
    assert _value(registry, "ruvon_step_failures_total", **labels) == 0
    assert (
        _value(
            registry, "ruvon_step_failures_total", workflow_type="Bad", step="Boom", kind="STANDARD"
        )
        == 1
    )
    compensations = "ruvon_compensations_total"
    assert _value(registry, compensations, workflow_type="Bad", step="Reserve", outcome="ok") == 1


def test_sweep_reports_count_zombies_and_lost_messages() -> None:
    registry = CollectorRegistry()
    metrics = SweepMetrics(registry, sweeps=["recover_zombies", "redispatch_lost"])
    assert _value(registry, "ruvon_zombies_recovered_total", action="requeued") == 0  # present
    assert _value(registry, "ruvon_sweep_failures_total", sweep="redispatch_lost") == 0
    metrics.record_sweep({"sweep": "recover_zombies", "requeued": 3, "failed": 1, "sent": 0})
    metrics.record_sweep({"sweep": "recover_zombies", "requeued": 2, "failed": 0})
    metrics.record_sweep({"sweep": "redispatch_lost", "sent": 4})
    metrics.record_sweep({"sweep": "fire_due_timers", "sent": 9})
    metrics.record_sweep({"sweep": "redispatch_lost", "sent": "junk"})
    assert _value(registry, "ruvon_zombies_recovered_total", action="requeued") == 5
    assert _value(registry, "ruvon_zombies_recovered_total", action="failed") == 1
    assert _value(registry, "ruvon_lost_messages_resent_total") == 4
    metrics.record_failure("redispatch_lost")
    assert _value(registry, "ruvon_sweep_failures_total", sweep="redispatch_lost") == 1
    assert _value(registry, "ruvon_sweep_last_success_timestamp_seconds", sweep="fire_due_timers")


def test_workers_metrics_leave_the_sweeps_to_the_beat() -> None:
    registry = CollectorRegistry()
    RuvonMetrics(registry)
    sample = {"action": "requeued"}
    assert registry.get_sample_value("ruvon_zombies_recovered_total", sample) is None


def _scrape(collector: QueueMetricsCollector) -> dict[tuple[str, str], float]:
    """One collection: {(sample name, queue label): value}."""
    return {
        (sample.name, sample.labels.get("queue", "")): sample.value
        for family in collector.collect()
        for sample in family.samples
    }


def test_queue_collector_keeps_drained_queues_and_reports_a_failing_database() -> None:
    answers: list[Any] = [
        [QueueStats("default", 3, 1, 12.5), QueueStats("gpu", 1, 0, 0.5)],
        [QueueStats("default", 1, 0, 0.25)],
        RuntimeError("database down"),
    ]

    def read() -> list[QueueStats]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return list(answer)

    collector = QueueMetricsCollector(read)
    first = _scrape(collector)
    assert first[("ruvon_steps_queued", "default")] == 3
    assert first[("ruvon_steps_scheduled", "default")] == 1
    assert first[("ruvon_queue_lag_seconds", "default")] == 12.5
    assert first[("ruvon_queue_lag_seconds", "gpu")] == 0.5
    assert first[("ruvon_queue_stats_up", "")] == 1
    second = _scrape(collector)  # gpu drained: still reported, at 0
    assert second[("ruvon_steps_queued", "gpu")] == 0
    assert second[("ruvon_queue_lag_seconds", "gpu")] == 0
    assert second[("ruvon_queue_lag_seconds", "default")] == 0.25
    assert _scrape(collector) == {("ruvon_queue_stats_up", ""): 0}
    registry = CollectorRegistry()
    registry.register(QueueMetricsCollector(lambda: [QueueStats("q", 2, 0, 1.0)]))
    assert registry.get_sample_value("ruvon_steps_queued", {"queue": "q"}) == 2


def test_cluster_starts_are_left_to_the_beats_count() -> None:
    """A process counts the workflows it starts embedded, not those it stores on a cluster
    (a client, a worker's children, the beat's cron starts): the beat counts those once."""
    registry = CollectorRegistry()
    observer = PrometheusObserver(RuvonMetrics(registry))
    observer.on_workflow_started(WorkflowStarted("w1", "Order"))
    observer.on_workflow_started(WorkflowStarted("w2", "Order", on_cluster=True))
    sample = {"workflow_type": "Order"}
    assert registry.get_sample_value("ruvon_workflows_started_total", sample) == 1
    beat_registry = CollectorRegistry()
    beat = PrometheusObserver(RuvonMetrics(beat_registry, count_starts=False))
    beat.on_workflow_started(WorkflowStarted("w3", "Order"))
    # The beat's registry holds the collector's counter of that name instead.
    beat_registry.register(WorkflowsStartedCollector(lambda: {"Order": 7}))
    assert beat_registry.get_sample_value("ruvon_workflows_started_total", sample) == 7


def test_the_started_collector_serves_nothing_while_the_database_fails() -> None:
    answers: list[Any] = [{"A": 2, "B": 1}, RuntimeError("database down"), {"A": 3, "B": 1}]

    def read() -> dict[str, int]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return dict(answer)

    collector = WorkflowsStartedCollector(read)

    def scrape() -> dict[str, float]:
        return {
            sample.labels["workflow_type"]: sample.value
            for family in collector.collect()
            for sample in family.samples
            if sample.name == "ruvon_workflows_started_total"
        }

    assert scrape() == {"A": 2, "B": 1}
    assert scrape() == {}  # a gap, not a drop to 0 that rate() would take for a reset
    assert scrape() == {"A": 3, "B": 1}


def test_the_multiprocess_directory_is_wiped_and_exported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    directory = tmp_path / "metrics"
    directory.mkdir()
    (directory / "counter_p0.db").write_bytes(b"stale")
    (directory / "keep.txt").write_text("not ours")
    assert prepare_multiprocess_dir(directory) == directory
    assert sorted(p.name for p in directory.iterdir()) == ["keep.txt"]
    assert os.environ[MULTIPROC_ENV] == str(directory)
    private = prepare_multiprocess_dir(None)
    try:
        assert private.is_dir() and private.name.startswith("ruvon-metrics-")
        assert os.environ[MULTIPROC_ENV] == str(private)
    finally:
        private.rmdir()
