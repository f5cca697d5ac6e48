"""Workflows on real ``celery worker`` subprocesses (prefork, concurrency 2), real PostgreSQL and
Redis: every step kind, the examples, retries, timeouts, sagas, queue routing, bad input.

One cluster serves the module (starting workers costs seconds); each test starts its own
workflows through :class:`ruvon.Client`, and reads the truth from PostgreSQL.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from ruvon.client import Client
from ruvon.config import Settings
from ruvon.errors import BrokerUnavailable, ConcurrencyConflict, InvalidWorkflowOperation
from ruvon.models import WorkflowStatus
from ruvon.testing.cluster import LocalCluster
from tests.integration.distributed_support import (
    REGISTRY,
    WAIT,
    builder_of,
    client_of,
    effect_counts,
    fetch,
    redis_list,
    run_embedded,
    started_cluster,
    without,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with started_cluster() as running:
        yield running


async def _completed(client: Client, workflow_type: str, data: dict | None = None):
    record = await client.start(workflow_type, data or {})
    done = await client.wait(record.id, timeout=WAIT)
    assert done.status is WorkflowStatus.COMPLETED, (done.status, done.error)
    return done


async def test_async_steps_run_on_workers_and_inline_steps_follow(cluster: LocalCluster) -> None:
    async with client_of(cluster) as client:
        done = await _completed(client, "AsyncChain", {"counter": 0})
    assert done.state["counter"] == 12 and done.state["final_counter"] == 12
    assert done.state["finished"] is True
    workers = {pid for worker in cluster.workers for pid in worker.child_pids()}
    assert set(done.state["pids"]) <= workers  # the sync functions ran in pool processes
    runs = await fetch(
        cluster,
        "SELECT kind, step_name, status, attempt FROM step_runs WHERE workflow_id = $1 ORDER BY id",
        done.id,
    )
    # The first ASYNC step was dispatched with the workflow's creation (no advance run), each
    # next one with the commit of the one before; Finish ran inline after Third.
    assert [tuple(r) for r in runs] == [
        ("step", "First", "DONE", 1),
        ("step", "Second", "DONE", 1),
        ("step", "Third", "DONE", 1),
    ]
    assert effect_counts(cluster, done.id) == {"First:1": 1, "Second:1": 1, "Third:1": 1}


@pytest.mark.parametrize("size", [3, 200])
async def test_dynamic_fan_out_joins_once_in_branch_order(cluster: LocalCluster, size: int) -> None:
    async with client_of(cluster) as client:
        done = await _completed(client, "FanOut", {"size": size})
    assert done.state["total"] == sum(i * i for i in range(size))
    assert done.state["order"] == list(range(size))
    assert done.state["branches"] == size
    kinds = await fetch(
        cluster,
        "SELECT kind, count(*), count(*) FILTER (WHERE status = 'DONE') FROM step_runs "
        "WHERE workflow_id = $1 GROUP BY kind",
        done.id,
    )
    assert {r[0]: (r[1], r[2]) for r in kinds} == {
        "advance": (1, 1),
        "branch": (size, size),
        "join": (1, 1),
    }
    recorded = await fetch(
        cluster, "SELECT count(*) FROM parallel_branch_results WHERE workflow_id = $1", done.id
    )
    assert recorded[0][0] == size
    counts = effect_counts(cluster, done.id)
    assert len(counts) == size and set(counts.values()) == {1}


_IN_FLIGHT = """
SELECT r.branch,
       (SELECT count(*) FROM step_runs AS s WHERE s.workflow_id = $1 AND s.kind = 'branch'
          AND s.step_name = $2 AND s.created_at <= r.created_at)
     - (SELECT count(*) FROM parallel_branch_results AS b WHERE b.workflow_id = $1
          AND b.step_name = $2 AND b.recorded_at <= r.created_at)
FROM step_runs AS r WHERE r.workflow_id = $1 AND r.kind = 'branch' AND r.step_name = $2
"""


async def test_a_batched_fan_out_runs_batch_size_branches_at_a_time(
    cluster: LocalCluster,
) -> None:
    size = 8
    async with client_of(cluster) as client:
        done = await _completed(client, "BatchedFanOut", {"size": size})
    assert done.state["total"] == sum(i * i for i in range(size))
    assert done.state["order"] == list(range(size))
    # When each branch run was created, how many were out and not yet recorded.
    dynamic = await fetch(cluster, _IN_FLIGHT, done.id, "Square_All")
    assert len(dynamic) == size and max(row[1] for row in dynamic) <= 2
    static = await fetch(cluster, _IN_FLIGHT, done.id, "Static_Pair")
    assert sorted(row[0] for row in static) == ["Left", "Middle", "Right"]
    assert max(row[1] for row in static) <= 1
    assert set(effect_counts(cluster, done.id).values()) == {1}


async def test_racing_resumes_run_a_human_step_once_on_a_worker(cluster: LocalCluster) -> None:
    """Two clients resume each waiting workflow at once: its function runs once, on a worker."""
    workflows = 6
    async with client_of(cluster) as first, client_of(cluster) as second:
        ids = [(await first.start("HumanReview", {})).id for _ in range(workflows)]
        for workflow_id in ids:
            await first.wait(workflow_id, timeout=WAIT)  # WAITING_HUMAN
        counters = {wid: f"{cluster.key_prefix}reviews:{wid}" for wid in ids}
        outcomes = await asyncio.gather(
            *(
                client.resume(wid, {"verdict": "ok", "counter": counters[wid]})
                for wid in ids
                for client in (first, second)
            ),
            return_exceptions=True,
        )
        # The loser of each race is refused: at its commit (the winner's save came first), or,
        # when it loaded the workflow after that save, because it is no longer waiting for input
        # (handed to the workers, or already COMPLETED by them).
        refused = [o for o in outcomes if isinstance(o, BaseException)]
        lost = (ConcurrencyConflict, InvalidWorkflowOperation)
        assert all(isinstance(o, lost) for o in refused), refused
        assert len(refused) == workflows  # one resume of each workflow accepted, the other not
        done = [await first.wait(wid, timeout=WAIT) for wid in ids]
    workers = {pid for worker in cluster.workers for pid in worker.child_pids()}
    with redis.Redis.from_url(cluster.env["RUVON_BROKER_URL"]) as store:
        calls = {wid: int(store.get(counters[wid]) or 0) for wid in ids}
    assert all(d.status is WorkflowStatus.COMPLETED for d in done), [d.error for d in done]
    assert calls == dict.fromkeys(ids, 1)  # once per workflow, however many resumes raced
    assert {d.state["reviewed_by_pid"] for d in done} <= workers
    assert all(d.state["verdict"] == "ok" and d.state["finished"] for d in done)


async def test_resuming_a_workflow_that_is_not_waiting_for_input_is_refused(
    cluster: LocalCluster,
) -> None:
    """What the loser of a resume race meets when it loads after the winner's save: the
    workflow handed to the workers. Its input must not be dropped unread as if accepted."""
    async with client_of(cluster) as client:
        record = await client.start("Unserved", {})
        pending = await client.wait(record.id, timeout=WAIT, until={WorkflowStatus.PENDING_ASYNC})
        with pytest.raises(InvalidWorkflowOperation) as refused:
            await client.resume(record.id, {"verdict": "ok"}, actor="ann")
        stored = await client.get(record.id)
    message = str(refused.value)
    assert f"workflow '{record.id}' is PENDING_ASYNC at step 'Never', not waiting" in message
    assert (stored.status, stored.version) == (WorkflowStatus.PENDING_ASYNC, pending.version)


async def test_examples_end_as_they_do_embedded(cluster: LocalCluster) -> None:
    async with client_of(cluster) as client:
        for workflow_type in ("OrderFulfillment", "SalesDataPipeline"):
            done = await _completed(client, workflow_type)
            embedded = await run_embedded(workflow_type, {})
            assert embedded.status is WorkflowStatus.COMPLETED
            # payment ids digest the workflow's idempotency key (its id): the rest is equal.
            assert without(done.state, "payment_id") == without(embedded.state_dict(), "payment_id")


async def test_loan_application_with_child_and_human_review(cluster: LocalCluster) -> None:
    # $60,000 is above the automatic-approval limit: the application goes to manual review.
    data = {"applicant_id": "APP-9", "amount": 60000}
    async with client_of(cluster) as client:
        record = await client.start("LoanApplication", data)
        waiting = await client.wait(record.id, timeout=WAIT)
        embedded = await run_embedded("LoanApplication", data)
        assert waiting.status is embedded.status is WorkflowStatus.WAITING_HUMAN
        assert waiting.current_step_name == "Manual_Review"
        decision = {"approved": True, "reason": "ok", "approver": "tester"}
        await client.resume(record.id, decision)
        done = await client.wait(record.id, timeout=WAIT)
        assert done.status is WorkflowStatus.COMPLETED, done.error
        await embedded.resume(decision)
        await embedded.run()
    children = await fetch(
        cluster,
        "SELECT workflow_type, status FROM workflow_executions WHERE parent_execution_id = $1",
        record.id,
    )
    assert [tuple(c) for c in children] == [("CreditCheck", "COMPLETED")]
    assert done.state["credit_score"] == embedded.state_dict()["credit_score"]
    assert without(done.state, "sub_workflow_results") == without(
        embedded.state_dict(), "sub_workflow_results"
    )


async def test_nested_sub_workflows_three_deep(cluster: LocalCluster) -> None:
    async with client_of(cluster) as client:
        done = await _completed(client, "NestLevel1", {"size": 5})
    assert done.state["counter"] == 1  # its own ASYNC step after the child
    rows = await fetch(
        cluster,
        "WITH RECURSIVE tree AS (SELECT id, workflow_type, status, state, 1 AS depth "
        "FROM workflow_executions WHERE id = $1 UNION ALL SELECT w.id, w.workflow_type, "
        "w.status, w.state, t.depth + 1 FROM workflow_executions w JOIN tree t "
        "ON w.parent_execution_id = t.id) SELECT workflow_type, status, depth, state "
        "FROM tree ORDER BY depth",
        done.id,
    )
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("NestLevel1", "COMPLETED", 1),
        ("NestLevel2", "COMPLETED", 2),
        ("NestLevel3", "COMPLETED", 3),
    ]
    level3 = rows[2][3]
    assert level3["total"] == sum(i * i for i in range(10))  # its default size of 10
    level2_results = rows[1][3]["sub_workflow_results"]
    assert [r["workflow_type"] for r in level2_results.values()] == ["NestLevel3"]


async def test_saga_rolls_back_a_distributed_failure(cluster: LocalCluster) -> None:
    async with client_of(cluster) as client:
        record = await client.start("DistributedSaga", {})
        done = await client.wait(record.id, timeout=WAIT)
        assert done.status is WorkflowStatus.FAILED_ROLLED_BACK
        assert "the async step failed on purpose" in (done.error or "")
        order_fulfillment = await client.start("OrderFulfillment", {"shipping_country": "XX"})
        rolled_back = await client.wait(order_fulfillment.id, timeout=WAIT)
    assert redis_list(cluster, f"compensations:{done.id}") == ["refund", "release"]
    assert rolled_back.status is WorkflowStatus.FAILED_ROLLED_BACK
    assert rolled_back.state["inventory_status"] == "RELEASED"


async def test_retries_back_off_in_the_database(cluster: LocalCluster) -> None:
    async with client_of(cluster) as client:
        done = await _completed(client, "Retries")
    assert done.state["flaky_attempts"] == 3
    attempts = [item.split(":") for item in redis_list(cluster, f"attempts:{done.id}")]
    assert [int(a) for a, _ in attempts] == [1, 2, 3]
    times = [float(t) for _, t in attempts]
    assert times[1] - times[0] >= 0.3 - 0.05 and times[2] - times[1] >= 0.6 - 0.05
    audit = await fetch(
        cluster,
        "SELECT details FROM workflow_audit_log WHERE workflow_id = $1 AND event_type = "
        "'STEP_RETRY' ORDER BY id",
        done.id,
    )
    assert [(d[0]["attempt"], d[0]["delay"]) for d in audit] == [(1, 0.3), (2, 0.6)]
    run = await fetch(
        cluster,
        "SELECT attempt, status FROM step_runs WHERE kind = 'step' AND workflow_id = $1",
        done.id,
    )
    assert tuple(run[0]) == (3, "DONE")


async def test_a_step_past_its_timeout_fails_on_the_worker(cluster: LocalCluster) -> None:
    started = time.monotonic()
    async with client_of(cluster) as client:
        record = await client.start("StepTimeout", {})
        done = await client.wait(record.id, timeout=WAIT)
    assert done.status is WorkflowStatus.FAILED
    assert "exceeded its timeout of 0.5s" in (done.error or "")
    assert "[worker " in (done.error or "")
    assert time.monotonic() - started < 4  # not the 5 s the function sleeps


async def test_a_timed_out_attempt_is_stopped_before_the_retry_starts(
    cluster: LocalCluster,
) -> None:
    async with client_of(cluster) as client:
        record = await client.start("StepTimeoutRetried", {})
        done = await client.wait(record.id, timeout=WAIT)
    assert done.status is WorkflowStatus.FAILED
    assert "exceeded its timeout of 0.5s (attempt 2)" in (done.error or "")
    await asyncio.sleep(3.5)  # an abandoned body would finish its 3 s meanwhile
    events = redis_list(cluster, f"slow:{done.id}:events")
    assert [e.split()[:2] for e in events] == [["start", "1"], ["start", "2"]]  # none finished


async def test_a_step_routed_to_gpu_waits_for_a_gpu_worker(cluster: LocalCluster) -> None:
    async with client_of(cluster) as client:
        record = await client.start("GpuStep", {})
        await asyncio.sleep(1.5)
        pending = await client.get(record.id)
        assert pending.status is WorkflowStatus.PENDING_ASYNC
        assert pending.current_step_name == "Render"
        gpu = await asyncio.to_thread(cluster.start_worker, ["gpu"], concurrency=1, name="gpu")
        done = await client.wait(record.id, timeout=WAIT)
    assert done.status is WorkflowStatus.COMPLETED, done.error
    assert done.state["gpu_pid"] in gpu.child_pids()
    queues = await fetch(cluster, "SELECT queue FROM step_runs WHERE workflow_id = $1 AND "
                         "kind = 'step'", record.id)  # fmt: skip
    assert [q[0] for q in queues] == ["gpu"]


async def test_a_function_the_worker_cannot_import_fails_the_workflow(
    cluster: LocalCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Importable here (the client validates the definition) but not on the workers.
    (tmp_path / "client_only_steps.py").write_text(
        "def work(state, context):\n    return {'done': True}\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "client_only.yaml").write_text(
        "workflow_type: ClientOnly\nsteps:\n  - name: Work\n    type: ASYNC\n"
        "    function: client_only_steps.work\n"
    )
    async with client_of(cluster) as client:
        client.builder.register_workflow_file(tmp_path / "client_only.yaml")
        record = await client.start("ClientOnly", {})
        done = await client.wait(record.id, timeout=WAIT)
    assert done.status is WorkflowStatus.FAILED
    assert "client_only_steps" in (done.error or "")
    assert "[worker " in (done.error or "")


async def test_an_unreachable_broker_fails_start_fast_and_writes_nothing(
    cluster: LocalCluster,
) -> None:
    settings = Settings.from_env({**cluster.env, "RUVON_BROKER_URL": "redis://127.0.0.1:1/0"})
    started = time.monotonic()
    async with Client(builder_of(settings), settings=settings) as client:
        with pytest.raises(BrokerUnavailable, match=r"redis://127\.0\.0\.1:1/0"):
            await client.start("AsyncChain", {}, idempotency_key="never-written")
    assert time.monotonic() - started < 10
    rows = await fetch(
        cluster,
        "SELECT count(*) FROM workflow_executions WHERE idempotency_key = $1",
        "never-written",
    )
    assert rows[0][0] == 0


def _ruvon_cli(cluster: LocalCluster, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ruvon.cli.main", *args],
        env={**cluster.env, "NO_COLOR": "1", "COLUMNS": "200", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_start_wait_runs_on_the_cluster(cluster: LocalCluster) -> None:
    registry = str(REGISTRY)
    ok = _ruvon_cli(cluster, "start", "AsyncChain", "--registry", registry, "--wait",
                    "--input", '{"counter": 5}')  # fmt: skip
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "on the cluster" in ok.stdout and "COMPLETED" in ok.stdout
    assert '"final_counter": 17' in ok.stdout

    failed = _ruvon_cli(cluster, "start", "DistributedSaga", "--registry", registry, "--wait")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "FAILED_ROLLED_BACK" in failed.stdout

    slow = _ruvon_cli(cluster, "start", "Unserved", "--registry", registry, "--wait",
                      "--timeout", "1")  # fmt: skip
    assert slow.returncode == 5, slow.stdout + slow.stderr
    assert "is still PENDING_ASYNC at step 'Never' after 1s" in slow.stdout + slow.stderr

    down = _ruvon_cli(
        cluster, "start", "AsyncChain", "--registry", registry, "--cluster",
        RUVON_BROKER_URL="redis://127.0.0.1:1/0",
    )  # fmt: skip
    assert down.returncode == 1, down.stdout + down.stderr
    assert "cannot reach the Celery broker at redis://127.0.0.1:1/0" in down.stderr + down.stdout


async def test_cli_resume_and_retry_hand_cluster_workflows_back_to_the_workers(
    cluster: LocalCluster,
) -> None:
    registry = str(REGISTRY)
    started = _ruvon_cli(cluster, "start", "LoanApplication", "--registry", registry, "--wait",
                         "--input", '{"amount": 60000}')  # fmt: skip
    assert started.returncode == 0, started.stdout + started.stderr
    assert "WAITING_HUMAN" in started.stdout
    workflow_id = started.stdout.split("Started ", 1)[1].split()[0]
    decision = '{"approved": false, "reason": "too much"}'
    resumed = await asyncio.to_thread(
        _ruvon_cli, cluster, "resume", workflow_id, "--input", decision
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "Handed to the workers" in resumed.stdout
    async with client_of(cluster) as client:
        done = await client.wait(workflow_id, timeout=WAIT)
    assert done.status is WorkflowStatus.COMPLETED, done.error
    assert done.state["approved"] is False and done.state["decision"] == "REJECTED"
