"""CeleryExecutionProvider: ASYNC and PARALLEL steps and sub-workflows run on Celery workers.

The provider does two things:

* ``dispatch`` announces stored step runs (see :mod:`ruvon.providers.runs`) by sending a task
  **by name** (:data:`~ruvon.implementations.execution.celery_config.RUN_TASKS`) to the run's
  queue, with ids only. The SDK never imports ``worker/``.
* ``execute`` runs a step function in this process: on a worker, sync functions run in the Celery
  task's thread (:mod:`~ruvon.implementations.execution.task_thread`) and async ones on the
  bridge loop; a sync step past its ``timeout`` is stopped there, not abandoned
  (:mod:`~ruvon.implementations.execution.time_limit`), so a retry never overlaps it.

Which process calls ``execute`` is the engine's business: with this provider the engine stores
ASYNC/PARALLEL work as runs instead of running it, so a client only runs the inline steps it is
explicitly asked to (e.g. the step a resume continues with) and hands the rest to the workers.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Collection, Sequence
from typing import Any

from celery import Celery

from ruvon.config import Settings
from ruvon.definitions.imports import function_shape
from ruvon.errors import BrokerUnavailable
from ruvon.implementations.execution.broker_lanes import broker_priority
from ruvon.implementations.execution.celery_config import (
    BROKER_VISIBILITY_TIMEOUT,
    RUN_TASKS,
    celery_config,
)
from ruvon.implementations.execution.run_publisher import RedisRunPublisher
from ruvon.implementations.execution.sync import (
    SyncExecutionProvider,
    run_async_function,
    timeout_error,
)
from ruvon.implementations.execution.task_thread import current_task_thread
from ruvon.implementations.execution.time_limit import AttemptInterrupted, call_with_time_limit
from ruvon.priority import MAX_PRIORITY
from ruvon.providers.execution import StepCall
from ruvon.providers.runs import Lane, QueuedRun, RunKind

__all__ = ["CeleryExecutionProvider", "CeleryExecutor"]

logger = logging.getLogger("ruvon.celery")

# A retry's message carries its backoff as a countdown hint only while that is short: Redis
# would deliver a reserved ETA message twice past the visibility timeout. Longer backoffs wait
# in PostgreSQL alone and are sent by the beat's due-run sweep.
MAX_COUNTDOWN = BROKER_VISIBILITY_TIMEOUT / 4


class CeleryExecutionProvider:
    """Dispatches step runs to Celery workers; runs step functions where it is called.

    ``app``: a configured Celery app (a worker passes its own); otherwise one is built from
    ``settings`` (default: the environment: ``RUVON_BROKER_URL``, ``RUVON_BROKER_KEY_PREFIX``...).
    ``default_queue``: the queue of steps without ``queue`` in workflows without a data region.
    """

    name = "celery"

    def __init__(
        self,
        app: Celery | None = None,
        *,
        settings: Settings | None = None,
        default_queue: str | None = None,
        duplicate_messages: bool | None = None,
    ) -> None:
        settings = settings or Settings.from_env()
        if app is None:
            app = Celery("ruvon", set_as_current=False)
            app.conf.update(celery_config(settings))
            self._owns_app = True
        else:
            self._owns_app = False
        self.app = app
        self.default_queue = default_queue or settings.default_queue
        # Test hook (RUVON_DUPLICATE_MESSAGES): every message twice, to prove they are hints.
        self.copies = 2 if (settings.duplicate_messages if duplicate_messages is None
                            else duplicate_messages) else 1  # fmt: skip
        self._local = SyncExecutionProvider()
        # The fast path for runs due now: pre-serialised messages, one pipeline (Redis only,
        # and only once a built message was checked to decode as Celery's own would).
        self._fast = RedisRunPublisher.supports(app)
        self._publisher: RedisRunPublisher | None = None

    def __repr__(self) -> str:
        return f"CeleryExecutionProvider(default_queue={self.default_queue!r})"

    # -- dispatch --------------------------------------------------------------------------------

    def queue_for(self, step_queue: str | None, data_region: str | None) -> str:
        return step_queue or data_region or self.default_queue

    def dispatch(self, runs: Sequence[QueuedRun]) -> None:
        """Send one ids-only message per run (``copies`` of it).

        Runs due now go through :class:`RedisRunPublisher` (one pipeline for all of them);
        runs with a countdown, or every run on a broker it does not serve, through Celery.
        """
        if not runs:
            return
        publisher = self._fast_publisher(runs[0])
        if publisher is not None:
            due = [run for run in runs if run.delay <= 0]
            if due:
                try:
                    publisher.publish(due, self.copies)
                except Exception as exc:
                    raise self._unavailable(exc) from exc
            runs = [run for run in runs if run.delay > 0]
            if not runs:
                return
        self._send_tasks(runs)

    def _fast_publisher(self, probe: QueuedRun | None = None) -> RedisRunPublisher | None:
        if not self._fast or self._publisher is not None:
            return self._publisher
        publisher = RedisRunPublisher(self.app, RUN_TASKS)
        try:
            usable = all(publisher.check(run) for run in (probe or _PROBE_RUN, _PROBE_RUN))
        except Exception:
            logger.exception("pre-serialised run messages unavailable; using send_task")
            usable = False
        if not usable:
            logger.warning(
                "run messages built from a template did not decode as Celery's: publishing "
                "them with send_task"
            )
            publisher.close()
            self._fast = False
            return None
        self._publisher = publisher
        return publisher

    def _send_tasks(self, runs: Sequence[QueuedRun]) -> None:
        try:
            with self.app.producer_or_acquire() as producer, _batched(producer, len(runs) > 1):
                for run in runs:
                    countdown = run.delay if 0 < run.delay <= MAX_COUNTDOWN else None
                    if run.delay > MAX_COUNTDOWN:
                        continue  # due later than a message can safely wait: the beat sends it
                    for _ in range(self.copies):
                        self.app.send_task(
                            RUN_TASKS[run.kind],
                            args=[run.run_id, run.workflow_id, run.step_name, run.branch],
                            queue=run.queue,
                            countdown=countdown,
                            priority=broker_priority(run.priority),
                            producer=producer,
                            ignore_result=True,
                        )
        except Exception as exc:
            raise self._unavailable(exc) from exc

    def waiting_messages(self, lanes: Sequence[Lane]) -> dict[Lane, int]:
        """How many messages wait in each of ``lanes`` on the broker (0 for one it does not
        know, or cannot count); messages a worker has reserved are not counted.

        Through Celery (no Redis publisher) a queue is counted whole, and each of its lanes
        is given that count: more than it holds, so the lost-message sweep re-sends less, never
        a run whose message still waits.
        """
        try:
            publisher = self._fast_publisher(None)
            if publisher is not None:
                return publisher.waiting(lanes)
            # A fresh connection, not the pool's: a pooled one can outlive a broker restart
            # in a state kombu cannot use again.
            whole: dict[str, int] = {}
            with self.app.connection_for_read() as connection:
                for queue in sorted({lane.queue for lane in lanes}):
                    whole[queue] = _waiting(connection, queue)
        except Exception as exc:
            raise self._unavailable(exc) from exc
        return {lane: whole[lane.queue] for lane in lanes}

    def waiting_above(self, queues: Collection[str], priority: int) -> bool:
        """Whether a message of a priority above ``priority`` waits in one of ``queues``.

        Only the Redis publisher can count one priority's list apart from the others; on
        another broker (or with the publisher off) the answer is False.
        """
        publisher = self._fast_publisher(None)
        if publisher is None:
            return False
        lanes = [Lane(queue, p) for queue in queues for p in range(priority + 1, MAX_PRIORITY + 1)]
        return any(publisher.waiting(lanes).values()) if lanes else False

    def check_broker(self, timeout: float = 3.0) -> None:
        """Fail fast with :class:`BrokerUnavailable` if the broker cannot be reached."""
        try:
            with self.app.connection_for_write() as connection:
                connection.ensure_connection(max_retries=1, timeout=timeout)
        except Exception as exc:
            raise self._unavailable(exc) from exc

    def _unavailable(self, exc: BaseException) -> BrokerUnavailable:
        url = self.app.conf.broker_url or "(no broker URL)"
        redacted = _redact(str(url))
        return BrokerUnavailable(
            f"cannot reach the Celery broker at {redacted}: {type(exc).__name__}: {exc}. "
            "Is Redis running, and is RUVON_BROKER_URL right?"
        )

    # -- execution -------------------------------------------------------------------------------

    def hand_over(self) -> None:
        """Let a carrier thread serve the calling run's sync calls from now on, if the task
        thread has one free (ruvon.implementations.execution.carriers); else nothing changes.
        Only for a run none of whose calls has a timeout (only the task thread can stop one)."""
        thread = current_task_thread()
        if thread is not None:
            thread.hand_over()

    def carried(self) -> bool:
        """Whether the calling run was handed over to a carrier thread."""
        thread = current_task_thread()
        return thread is not None and thread.carried

    async def execute(self, call: StepCall) -> Any:
        thread = current_task_thread()
        shape = function_shape(call.function)
        if shape.is_async:
            return await run_async_function(call, shape.select_kwargs(dict(call.kwargs)))
        if thread is None:
            return await self._local.execute(call)
        kwargs = shape.select_kwargs(dict(call.kwargs))
        if call.timeout is None:
            return await thread.call(_invoke, call, kwargs)
        try:
            return await thread.call(_invoke_limited, call, kwargs)
        except AttemptInterrupted:
            # Stopped, not abandoned: no retry can overlap it (see time_limit).
            raise timeout_error(call) from None

    def close(self) -> None:
        """Release the broker connections of an app this provider built itself."""
        if self._publisher is not None:
            self._publisher.close()
            self._publisher = None
        if self._owns_app:
            self.app.close()


#: What the publisher's self-check builds and decodes when it has no real run at hand.
#: Priority 5 is kombu priority 4, in no lane of kombu's default steps: the check fails unless the
#: app declares Ruvon's ten (broker_lanes).
_PROBE_RUN = QueuedRun(0, "probe", RunKind.STEP, "probe", "", "probe", priority=5)


def _batched(producer: Any, many: bool) -> contextlib.AbstractContextManager[Any]:
    """One Redis pipeline for several messages (kombu >= 5.7), else plain publishes.

    A fan-out's branch messages then cost one round trip instead of one each; a single message
    goes without (setting up the pipeline costs more than it saves).
    """
    batch = getattr(producer, "batch", None)
    return batch() if batch is not None and many else contextlib.nullcontext()


def _waiting(connection: Any, queue: str) -> int:
    """The length of one queue. Declared like Celery declares its queues (durable): on Redis a
    declaration only reads (a passive one checks EXISTS, which kombu 5.7 does not prefix with
    ``global_keyprefix``), on AMQP it matches the workers' declaration."""
    channel = connection.channel()
    try:
        declared = channel.queue_declare(queue=queue, durable=True, auto_delete=False)
        return int(declared.message_count)
    except connection.channel_errors:
        logger.warning("cannot count the messages waiting in queue %r: taken as none", queue)
        return 0
    finally:
        with contextlib.suppress(Exception):
            channel.close()


def _invoke(call: StepCall, kwargs: dict[str, Any]) -> Any:
    return call.function(call.state, call.context, **kwargs)


def _invoke_limited(call: StepCall, kwargs: dict[str, Any]) -> Any:
    assert call.timeout is not None
    return call_with_time_limit(call.function, (call.state, call.context), kwargs, call.timeout)


def _redact(url: str) -> str:
    """The URL without its password."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user + ':***@' if user else ':***@'}{host}"


CeleryExecutor = CeleryExecutionProvider
