"""The step function of ``ruvon.BulkOperation``: one page of matching workflows per call.

It runs wherever the bulk workflow runs: in the server's process on an embedded (SQLite)
database, on a Celery worker on a cluster. It reaches the workflows through a
:class:`BulkTarget`: the server sets one for the runs it makes (:func:`acting_through`); a
worker builds one from its process's runner (its PostgreSQL pool and broker), so retry and
cancel go through the same ``ruvon.Client`` paths as the CLI, audited with who asked.

Each page's outcomes are committed with the page (the LOOP saves after every iteration), so
a bulk operation that is interrupted continues after the last page it recorded.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterator
from typing import Any, Protocol

from ruvon.client import Client
from ruvon.errors import InvalidWorkflowOperation, WorkflowNotFound
from ruvon.models import StepContext
from ruvon.providers.persistence import PersistenceProvider
from ruvon.records import ListPosition, WorkflowRecord
from ruvon.server.bulk.spec import RETRYABLE, BulkAction, BulkSpec, Outcome

__all__ = ["PAGE", "BulkTarget", "ClientTarget", "acting_through", "apply_page"]

logger = logging.getLogger("ruvon.server.bulk")

#: Workflows read (and acted on) per page: one commit of the bulk workflow each.
PAGE = 100
_MAX_ERROR = 500


class BulkTarget(Protocol):
    """Where a bulk operation reads the workflows it matches and how it moves them."""

    @property
    def persistence(self) -> PersistenceProvider: ...

    async def retry(self, workflow_id: str, actor: str) -> WorkflowRecord: ...

    async def cancel(self, workflow_id: str, reason: str | None, actor: str) -> WorkflowRecord: ...


class ClientTarget:
    """A target over a ``ruvon.Client`` (on a worker: the workers run what a retry enqueues)."""

    def __init__(self, client: Client, persistence: PersistenceProvider) -> None:
        self.client = client
        self._persistence = persistence

    @property
    def persistence(self) -> PersistenceProvider:
        return self._persistence

    async def retry(self, workflow_id: str, actor: str) -> WorkflowRecord:
        return await self.client.retry(workflow_id, actor=actor)

    async def cancel(self, workflow_id: str, reason: str | None, actor: str) -> WorkflowRecord:
        return await self.client.cancel(workflow_id, reason, actor=actor)


_target: contextvars.ContextVar[BulkTarget | None] = contextvars.ContextVar(
    "ruvon_bulk_target", default=None
)


@contextlib.contextmanager
def acting_through(target: BulkTarget) -> Iterator[None]:
    """Bulk steps run inside this block use ``target`` (the server's embedded runs)."""
    token = _target.set(target)
    try:
        yield
    finally:
        _target.reset(token)


def _current_target() -> BulkTarget:
    target = _target.get()
    if target is not None:
        return target
    # On a worker: its process's runner holds the pool (on this loop) and the broker app.
    from ruvon.cluster.process import process_runner

    runner = process_runner()
    client = Client(
        runner.builder,
        settings=runner.builder.settings,
        persistence=runner.persistence,
        execution=runner.execution,
    )
    return ClientTarget(client, runner.persistence)


async def apply_page(state: dict[str, Any], context: StepContext) -> dict[str, Any]:
    """Act on the next page of matching workflows; record each outcome."""
    spec = BulkSpec.model_validate(state["request"])
    target = _current_target()
    counts: dict[str, int] = dict(state["counts"])
    done = sum(counts.values())
    room = spec.max_count - done
    cursor = state.get("cursor")
    after = ListPosition.from_cursor(cursor) if cursor else None
    take = min(PAGE, room)
    page = await target.persistence.list_workflows(
        status=spec.status,
        workflow_type=spec.workflow_type,
        created_since=spec.since,
        created_until=spec.until,
        after=after,
        limit=take + 1,  # one more tells whether anything is left
    )
    outcomes: list[dict[str, Any]] = []
    for record in page[:take]:
        outcome = await _apply(target, spec, record, context.workflow_id)
        counts[outcome["outcome"]] += 1
        outcomes.append(outcome)
    left = len(page) > take
    if page[:take]:
        cursor = ListPosition.of(page[:take][-1]).to_cursor()
    return {
        "cursor": cursor,
        "more": left and take == PAGE and done + take < spec.max_count,
        "truncated": left and done + take >= spec.max_count,
        "counts": counts,
        "outcomes": [*state["outcomes"], *outcomes],
    }


async def _apply(
    target: BulkTarget, spec: BulkSpec, record: WorkflowRecord, own_id: str
) -> dict[str, Any]:
    base: dict[str, Any] = {"id": record.id, "workflow_type": record.workflow_type}

    def skipped(reason: str) -> dict[str, Any]:
        return {**base, "outcome": Outcome.SKIPPED.value, "reason": reason}

    if record.id == own_id:
        return skipped("this bulk operation itself")
    if spec.action is BulkAction.RETRY and record.status not in RETRYABLE:
        return skipped(f"it is {record.status}; only failed workflows can be retried")
    if spec.action is BulkAction.CANCEL and record.status.is_terminal:
        return skipped(f"it is already {record.status}")
    if spec.dry_run:
        return {**base, "outcome": Outcome.DRY_RUN.value, "status": str(record.status)}
    try:
        if spec.action is BulkAction.RETRY:
            moved = await target.retry(record.id, spec.actor)
        else:
            moved = await target.cancel(record.id, spec.reason, spec.actor)
    except InvalidWorkflowOperation as exc:  # it moved since the page was read
        return skipped(str(exc))
    except WorkflowNotFound:
        return skipped("it no longer exists")
    except Exception as exc:  # one workflow's failure must not stop the others
        logger.warning("bulk %s of workflow %s failed", spec.action, record.id, exc_info=True)
        message = f"{type(exc).__name__}: {exc}"[:_MAX_ERROR]
        return {**base, "outcome": Outcome.ERROR.value, "error": message}
    return {**base, "outcome": Outcome.OK.value, "status": str(moved.status)}
