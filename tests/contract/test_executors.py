"""The executor contract: the same workflows, the same observable outcomes, on every executor.

Each test runs once per driver: embedded ``sync`` and ``thread_pool`` (in this process, over the
memory and PostgreSQL providers) and ``celery`` (real prefork ``ruvon worker`` subprocesses of
one module-wide :class:`LocalCluster`, over PostgreSQL). A test sees only the
:class:`ExecutorDriver` and asserts what the database recorded: final status, state, error,
audit events, compensation order, retry counts. Where the two shapes differ by design (a child
runs inline embedded, later on workers) the test states the difference instead of skipping it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from ruvon.models import WorkflowStatus
from ruvon.records import WorkflowRecord
from ruvon.testing.cluster import LocalCluster
from tests.contract.executors import ClusterDriver, EmbeddedDriver, ExecutorDriver, open_cluster

Status = WorkflowStatus
CELERY = "celery"


def driver_params(*celery_marks: pytest.MarkDecorator) -> list[Any]:
    """Every (persistence, executor) the contract runs on; ``celery_marks`` go on celery only."""
    embedded = [
        pytest.param((persistence, execution), id=f"{persistence}-{execution}")
        for persistence in ("memory", "postgres")
        for execution in ("sync", "thread_pool")
    ]
    celery = pytest.param(
        ("postgres", CELERY), id=f"postgres-{CELERY}", marks=[pytest.mark.slow, *celery_marks]
    )
    return [*embedded, celery]


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    """One cluster for every celery case of the module (starting workers costs seconds)."""
    with open_cluster() as running:
        yield running


@pytest.fixture(params=driver_params())
def driver_spec(request: pytest.FixtureRequest) -> tuple[str, str, LocalCluster | None]:
    """(persistence, executor, cluster); synchronous, so the cluster starts outside any loop."""
    persistence, execution = request.param
    cluster = request.getfixturevalue("cluster") if execution == CELERY else None
    return persistence, execution, cluster


@pytest.fixture
async def driver(
    driver_spec: tuple[str, str, LocalCluster | None], tmp_path: Path
) -> AsyncIterator[ExecutorDriver]:
    """The driver of one combination; its providers or client are closed afterwards."""
    persistence, execution, cluster = driver_spec
    if cluster is not None:
        async with ClusterDriver.open(cluster, f"{persistence}-{execution}") as running:
            yield running
    else:
        async with EmbeddedDriver.open(persistence, execution, tmp_path) as embedded:
            yield embedded


async def _run(
    driver: ExecutorDriver, workflow_type: str, data: dict[str, Any] | None = None
) -> WorkflowRecord:
    workflow_id = await driver.start(workflow_type, data or {})
    return await driver.settle(workflow_id)


def _completed(record: WorkflowRecord) -> None:
    assert record.status is Status.COMPLETED, (record.status, record.error)


# --------------------------------------------------------------------------- ASYNC + STANDARD
async def test_async_steps_then_standard_steps(driver: ExecutorDriver) -> None:
    done = await _run(driver, "ExecAsyncChain", {"counter": 0})
    _completed(done)
    assert done.state == {
        "counter": (0 + 1 + 10) * 2,
        "trail": ["First", "Second", "Third", "Fourth"],
        "finished": True,
    }
    assert await driver.audit_events(done.id) == [
        "WORKFLOW_CREATED",
        *("STEP_SUSPENDED", "WORKFLOW_RESUMED", "STEP_COMPLETED"),  # First (ASYNC)
        *("STEP_SUSPENDED", "WORKFLOW_RESUMED", "STEP_COMPLETED"),  # Second (ASYNC)
        *("STEP_COMPLETED", "STEP_COMPLETED"),  # Third, Fourth
        "WORKFLOW_COMPLETED",
    ]


# --------------------------------------------------------------------------- DECISION, LOOP
@pytest.mark.parametrize(
    ("amount", "size", "handler"), [(5, "small", "Handle_Small"), (500, "big", "Handle_Big")]
)
async def test_decision_routes_jumps_and_loop_iterates(
    driver: ExecutorDriver, amount: int, size: str, handler: str
) -> None:
    done = await _run(driver, "ExecRouteAndLoop", {"amount": amount, "items": ["ab", "c", "def"]})
    _completed(done)
    assert done.state == {
        "amount": amount,
        "items": ["ab", "c", "def"],
        "size": size,
        "trail": [handler, "Done"],  # the small path jumped over Handle_Big
        "seen": ["0:ab", "1:c", "2:def"],
        "weight": 6,
    }
    log = await driver.audit_log(done.id)
    completed = [
        (e.step_name, e.details.get("next_step")) for e in log if e.event_type == "STEP_COMPLETED"
    ]
    assert completed == [
        ("Classify", handler),
        (handler, "Tally"),
        ("Tally", "Done"),
        ("Done", None),
    ]
    iterations = [e.details["index"] for e in log if e.event_type == "LOOP_ITERATION"]
    assert iterations == [0, 1, 2]


# --------------------------------------------------------------------------- PARALLEL
_MERGE_START = {"a": 0, "tags": ["s"], "nested": {"x": 0, "keep": 1}}
# Branch One returns {a: 1, b1, tags: [t1], nested: {x: 1, y: 1}}, Two {a: 2, b2, tags: [t2],
# nested: {x: 2, z: 2}}; both merge with prefer_existing, first between branches, then into state.
_BOTH = {"b1": True, "b2": True, "trail": ["Done"]}
MERGED_STATE: dict[str, dict[str, Any]] = {
    "shallow": {**_MERGE_START, **_BOTH},
    "deep": {**_MERGE_START, **_BOTH, "nested": {"x": 0, "keep": 1, "y": 1, "z": 2}},
    "replace": {"a": 2, "tags": ["t2"], "nested": {"x": 2, "z": 2}, **_BOTH},
    "append": {**_MERGE_START, **_BOTH, "tags": ["s", "t1", "t2"]},
    "overwrite_existing": {
        "a": 2,
        "tags": ["t2"],
        "nested": {"x": 2, "keep": 1, "y": 1, "z": 2},
        **_BOTH,
    },
    "preserve_existing": {**_MERGE_START, **_BOTH, "nested": {"x": 0, "keep": 1, "y": 1, "z": 2}},
}


def test_every_merge_strategy_has_a_case() -> None:
    from ruvon.merge import MergeStrategy

    assert set(MERGED_STATE) == {strategy.value for strategy in MergeStrategy}


@pytest.mark.parametrize("strategy", sorted(MERGED_STATE))
async def test_parallel_static_tasks_merge_by_strategy(
    driver: ExecutorDriver, strategy: str
) -> None:
    done = await _run(driver, f"ExecMerge_{strategy}", _MERGE_START)
    _completed(done)
    assert done.state == MERGED_STATE[strategy]
    merged = [
        e.details
        for e in await driver.audit_log(done.id)
        if e.event_type == "PARALLEL_TASKS_MERGED"
    ]
    assert merged == [{"branches": 2, "succeeded": 2, "failed": {}, "run": 1}]


async def test_parallel_merge_conflict_with_raise_error_fails(driver: ExecutorDriver) -> None:
    failed = await _run(driver, "ExecMergeConflict")
    assert failed.status is Status.FAILED
    assert (failed.error or "").startswith("MergeConflictError: merge conflict at 'shared'")
    assert failed.state == {}  # nothing merged, Done never ran
    events = await driver.audit_events(failed.id)
    assert events[-2:] == ["STEP_FAILED", "WORKFLOW_FAILED"]


async def test_dynamic_fan_out_folds_with_merge_function(driver: ExecutorDriver) -> None:
    items = [3, 1, 4, 1, 5]
    done = await _run(driver, "ExecFanOut", {"items": items})
    _completed(done)
    assert done.state == {
        "items": items,
        "total": 9 + 1 + 16 + 1 + 25,
        "order": [0, 1, 2, 3, 4],  # branch order, whatever order they finished in
        "branches": [f"Square_All[{i}]" for i in range(5)],
        "trail": ["Done"],
    }


async def test_failing_branch_without_partial_success_fails_the_workflow(
    driver: ExecutorDriver,
) -> None:
    failed = await _run(driver, "ExecAllOrNothing", {"items": [1, 2, 3, 4], "results": []})
    assert failed.status is Status.FAILED
    error = failed.error or ""
    assert error.startswith("StepFunctionError: PARALLEL step 'Double': 1 of 4 branches failed")
    assert "Double[2]: " in error and "item 3 is cursed" in error
    assert failed.state == {"items": [1, 2, 3, 4], "results": []}  # nothing merged


async def test_partial_success_keeps_successful_branches(driver: ExecutorDriver) -> None:
    done = await _run(driver, "ExecPartial", {"items": [1, 2, 3, 4], "results": []})
    _completed(done)
    assert done.state == {"items": [1, 2, 3, 4], "results": [2, 4, 8], "trail": ["Done"]}
    errors = done.runtime["parallel_errors"]["Double"]
    assert list(errors) == ["Double[2]"]
    assert errors["Double[2]"] == "RuntimeError: item 3 is cursed"


async def test_partial_success_records_branch_errors_as_raised(driver: ExecutorDriver) -> None:
    done = await _run(driver, "ExecPartial", {"items": [1, 2, 3, 4], "results": []})
    _completed(done)
    expected = {"Double[2]": "RuntimeError: item 3 is cursed"}
    assert done.runtime["parallel_errors"] == {"Double": expected}
    merged = [
        e.details
        for e in await driver.audit_log(done.id)
        if e.event_type == "PARALLEL_TASKS_MERGED"
    ]
    assert merged == [{"branches": 4, "succeeded": 3, "failed": expected, "run": 1}]


# --------------------------------------------------------------------------- children
async def test_sub_workflow_child_state_lands_in_the_parent(driver: ExecutorDriver) -> None:
    done = await _run(driver, "ExecParent", {"value": 5})
    _completed(done)
    children = await driver.children(done.id)
    assert [(c.workflow_type, c.status) for c in children] == [("ExecChild", Status.COMPLETED)]
    child = children[0]
    child_state = {"value": 5, "doubled": 10, "parent": done.id}
    assert child.state == child_state
    assert done.state == {
        "value": 5,
        "prepared": True,
        "child_state": child_state,
        "sub_workflow_results": {
            child.id: {
                "workflow_type": "ExecChild",
                "status": "COMPLETED",
                "state": child_state,
                "final_result": child_state,
            }
        },
        "after": 11,
    }
    # By design: embedded, the child runs inside the parent's step and the parent continues in
    # the same call; on workers the parent waits stored and the child's end resumes it.
    resumed = [] if driver.runs_children_inline else ["STEP_RESUMED"]
    assert await driver.audit_events(done.id) == [
        "WORKFLOW_CREATED",
        "STEP_COMPLETED",  # Prepare
        "STEP_SUSPENDED",  # Spawn: PENDING_SUB_WORKFLOW
        *resumed,
        "WORKFLOW_RESUMED",
        "STEP_COMPLETED",  # Spawn
        "STEP_COMPLETED",  # After
        "WORKFLOW_COMPLETED",
    ]


async def test_failed_child_fails_the_parent(driver: ExecutorDriver) -> None:
    failed = await _run(driver, "ExecParentOfFailing", {"value": 1})
    assert failed.status is Status.FAILED_CHILD_WORKFLOW
    children = await driver.children(failed.id)
    assert [(c.workflow_type, c.status) for c in children] == [("ExecFailingChild", Status.FAILED)]
    error = failed.error or ""
    assert error.startswith(f"ChildWorkflowFailed: child workflow '{children[0].id}'")
    assert "ended FAILED: ValueError: the child failed on purpose" in error
    assert failed.state == {"value": 1, "prepared": True}


async def test_fire_and_forget_child_is_independent(driver: ExecutorDriver) -> None:
    done = await _run(driver, "ExecSpawner", {"value": 3})
    _completed(done)
    spawned_id = done.state["spawned_id"]
    assert done.state == {"value": 3, "spawned_id": spawned_id, "prepared": True}
    assert await driver.children(done.id) == []  # not a child: nobody waits for it
    if driver.runs_children_inline:
        # Embedded, the spawned workflow ran (to its first wait) inside the spawning step; on
        # workers it is only queued then, and runs whenever a worker takes it.
        assert (await driver.get(spawned_id)).status is Status.COMPLETED
    spawned = await driver.settle(spawned_id)
    assert (spawned.status, spawned.parent_execution_id) == (Status.COMPLETED, None)
    assert spawned.state == {"value": 3, "doubled": 6, "parent": None}


# --------------------------------------------------------------------------- saga
async def test_saga_compensates_in_reverse_order(driver: ExecutorDriver) -> None:
    failed = await _run(driver, "ExecSaga")
    assert failed.status is Status.FAILED_ROLLED_BACK
    assert (failed.error or "").startswith("RuntimeError: shipping unavailable")
    assert await driver.compensations(failed.id) == ["Charge", "Reserve"]
    assert failed.state == {"reserved": False, "charged": False, "undone": ["refund", "release"]}
    events = await driver.audit_events(failed.id)
    assert events.count("COMPENSATION_EXECUTED") == 2
    assert "COMPENSATION_FAILED" not in events


# --------------------------------------------------------------------------- retries, timeouts
@pytest.mark.parametrize("kind", ["async", "standard"])
async def test_step_failing_twice_succeeds_on_its_third_attempt(
    driver: ExecutorDriver, kind: str
) -> None:
    done = await _run(driver, f"ExecRetries_{kind}")
    _completed(done)
    # The idempotency key is the same for every attempt of the run.
    assert done.state == {"attempts": 3, "key": f"{done.id}:Flaky:1", "trail": ["Done"]}
    retries = [e for e in await driver.audit_log(done.id) if e.event_type == "STEP_RETRY"]
    assert [(e.step_name, e.details["attempt"], e.details["delay"]) for e in retries] == [
        ("Flaky", 1, 0.05),
        ("Flaky", 2, 0.1),
    ]
    assert [e.details["error"] for e in retries] == [
        f"ConnectionError: transient failure on attempt {attempt}" for attempt in (1, 2)
    ]


async def test_non_retryable_error_fails_after_one_attempt(driver: ExecutorDriver) -> None:
    failed = await _run(driver, "ExecNonRetryable")
    assert failed.status is Status.FAILED
    assert (failed.error or "").startswith("PermanentError: card declined on attempt 1")
    assert "STEP_RETRY" not in await driver.audit_events(failed.id)
    assert failed.state == {}


async def test_step_over_its_timeout_fails(driver: ExecutorDriver) -> None:
    failed = await _run(driver, "ExecTimeout")
    assert failed.status is Status.FAILED
    assert (failed.error or "").startswith(
        "StepTimeoutError: step 'Too_Slow' exceeded its timeout of 0.3s (attempt 1)"
    )
    assert failed.state == {}


async def test_a_timed_out_attempt_ends_before_its_retry_starts(
    driver: ExecutorDriver, tmp_path: Path
) -> None:
    log = tmp_path / "attempts.log"
    done = await _run(driver, "ExecTimeoutRetried", {"log": str(log)})
    _completed(done)
    assert done.state["attempts"] == 2
    # Stopped, not abandoned: attempt 1 had ended when attempt 2 started.
    assert log.read_text().split() == ["start:1", "end:1", "start:2", "end:2"]


# --------------------------------------------------------------------------- HUMAN_IN_LOOP
async def test_human_in_loop_waits_then_resumes_with_input(driver: ExecutorDriver) -> None:
    waiting = await _run(driver, "ExecHuman")
    assert (waiting.status, waiting.current_step_name) == (Status.WAITING_HUMAN, "Approve")
    assert waiting.state == {"prepared": True}

    rejected = await driver.resume(waiting.id, {"approved": "not a bool"})
    assert (rejected.status, rejected.current_step_name) == (Status.WAITING_HUMAN, "Approve")
    assert rejected.state == {"prepared": True}

    done = await driver.resume(waiting.id, {"approved": True, "approver": "ann"})
    _completed(done)
    assert done.state == {"prepared": True, "approved": True, "approver": "ann", "trail": ["Done"]}
    log = await driver.audit_log(done.id)
    resumed = [(e.step_name, e.details["input"]) for e in log if e.event_type == "STEP_RESUMED"]
    assert resumed == [("Approve", {"approved": True, "approver": "ann"})]


# --------------------------------------------------------------------------- versions
async def test_versions_side_by_side_each_workflow_keeps_the_one_it_started_on(
    driver: ExecutorDriver,
) -> None:
    # ExecVersioned is registered as 1.9.0 and 1.10.0: 1.10.0 is the latest (semantic order).
    older_id = await driver.start("ExecVersioned", {}, version="1.9.0")
    older = await driver.settle(older_id)
    latest = await driver.settle(await driver.start("ExecVersioned", {}))
    for waiting in (older, latest):
        assert (waiting.status, waiting.current_step_name) == (Status.WAITING_HUMAN, "Approve")
    assert (older.workflow_version, latest.workflow_version) == ("1.9.0", "1.10.0")
    assert older.definition_snapshot["workflow_version"] == "1.9.0"

    answer = {"approved": True, "approver": "ann"}
    older_done = await driver.resume(older.id, answer)
    latest_done = await driver.resume(latest.id, answer)
    _completed(older_done)
    _completed(latest_done)
    # Each ran its own version's last step, whichever process picked it up.
    assert older_done.state["trail"] == ["Prepare", "Finish_v1"]
    assert latest_done.state["trail"] == ["Prepare", "Finish_v2"]
    listed = await driver.ids_of_version("ExecVersioned", "1.9.0")
    assert older.id in listed and latest.id not in listed


# --------------------------------------------------------------------------- dynamic_injection
async def test_dynamic_injection_runs_the_matching_rules_steps_after_the_step(
    driver: ExecutorDriver,
) -> None:
    plain = await _run(driver, "ExecInjection", {"risk": {"level": "low"}, "region": "EU"})
    _completed(plain)
    assert plain.state["trail"] == ["Evaluate_Risk", "Ship"]
    assert "DYNAMIC_INJECTION" not in await driver.audit_events(plain.id)

    export = await _run(driver, "ExecInjection", {"region": "US"})  # risk.level absent
    _completed(export)
    assert export.state["trail"] == ["Evaluate_Risk", "Export_Check", "Ship"]


async def test_injected_steps_live_in_the_snapshot_and_survive_a_wait(
    driver: ExecutorDriver,
) -> None:
    waiting = await _run(driver, "ExecInjection", {"risk": {"level": "high"}, "region": "UK"})
    assert (waiting.status, waiting.current_step_name) == (Status.WAITING_HUMAN, "Manual_Review")
    steps = waiting.definition_snapshot["steps"]
    assert [s["name"] for s in steps] == [
        "Evaluate_Risk", "Manual_Review", "Record_Review", "Export_Check", "Ship",
    ]  # fmt: skip
    assert steps[1]["injected_by"] == {"step": "Evaluate_Risk", "rule": 0}
    assert waiting.runtime["injected"] == ["Evaluate_Risk#0"]
    injections = [
        e for e in await driver.audit_log(waiting.id) if e.event_type == "DYNAMIC_INJECTION"
    ]
    assert [(e.step_name, e.details) for e in injections] == [
        (
            "Evaluate_Risk",
            {
                "rule": 0,
                "condition_key": "risk.level",
                "value": "high",
                "inserted": ["Manual_Review", "Record_Review"],
            },
        )
    ]

    # Resumed from what was stored (on a cluster, by whichever process takes it): the inserted
    # steps whose rule matched run, the other rule's step is passed over.
    done = await driver.resume(waiting.id, {"approved": True, "approver": "ann"})
    _completed(done)
    assert done.state["trail"] == ["Evaluate_Risk", "Record_Review", "Ship"]
