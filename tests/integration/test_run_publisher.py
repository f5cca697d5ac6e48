"""Pre-serialised run messages on the real Redis: what kombu and Celery read back from them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import orjson
import pytest
import redis
from celery import Celery
from kombu.transport.virtual import Message

from ruvon.config import Settings
from ruvon.implementations.execution.broker_lanes import lane_key
from ruvon.implementations.execution.celery import CeleryExecutionProvider
from ruvon.implementations.execution.celery_config import RUN_TASKS, celery_config
from ruvon.implementations.execution.run_publisher import RedisRunPublisher
from ruvon.providers.runs import Lane, QueuedRun, RunKind
from ruvon.testing.redis import redis_url_for_tests


@pytest.fixture
def prefix() -> Iterator[str]:
    prefix = f"ruvon:test:{uuid.uuid4().hex}:"
    yield prefix
    with redis.Redis.from_url(redis_url_for_tests()) as client:
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)


@pytest.fixture
def provider(prefix: str) -> Iterator[CeleryExecutionProvider]:
    settings = Settings.from_env(
        {"RUVON_BROKER_URL": redis_url_for_tests(), "RUVON_BROKER_KEY_PREFIX": prefix}
    )
    execution = CeleryExecutionProvider(settings=settings)
    yield execution
    execution.close()


def _queued(client: redis.Redis, key: str) -> list[Message]:
    with Celery(set_as_current=False, broker=redis_url_for_tests()).connection() as connection:
        return [
            Message(orjson.loads(raw), channel=connection.default_channel)
            for raw in reversed(client.lrange(key, 0, -1))  # LPUSH'ed: the oldest is last
        ]


def test_messages_decode_as_celerys_own(provider: CeleryExecutionProvider, prefix: str) -> None:
    runs = [
        QueuedRun(7, "wf-a", RunKind.STEP, "Charge", "", "default"),
        QueuedRun(8, "wf-a", RunKind.BRANCH, "Checks", "Fraud", "gpu"),
        QueuedRun(9, "wf-b", RunKind.ADVANCE, "", "start", "default"),
    ]
    provider.dispatch(runs)
    with redis.Redis.from_url(redis_url_for_tests()) as client:
        default = _queued(client, lane_key(prefix, "default", 0))
        gpu = _queued(client, lane_key(prefix, "gpu", 0))
        assert not [k for k in client.scan_iter(match=f"{prefix}ruvon.template.*")]
    assert [m.headers["task"] for m in default] == [RUN_TASKS[RunKind.STEP],
                                                    RUN_TASKS[RunKind.ADVANCE]]  # fmt: skip
    assert [m.decode()[0] for m in default] == [[7, "wf-a", "Charge", ""], [9, "wf-b", "", "start"]]
    assert [m.decode()[0] for m in gpu] == [[8, "wf-a", "Checks", "Fraud"]]
    ids = {m.headers["id"] for m in [*default, *gpu]}
    assert len(ids) == 3 and {m.properties["correlation_id"] for m in default} <= ids
    assert {m.delivery_info["routing_key"] for m in gpu} == {"gpu"}
    assert all(m.headers["eta"] is None and m.headers["ignore_result"] for m in default)


def test_a_run_with_a_countdown_goes_through_celery(
    provider: CeleryExecutionProvider, prefix: str
) -> None:
    provider.dispatch([QueuedRun(1, "wf", RunKind.STEP, "Retry", "", "default", delay=2.0)])
    with redis.Redis.from_url(redis_url_for_tests()) as client:
        (message,) = _queued(client, lane_key(prefix, "default", 0))
    assert message.headers["eta"] is not None  # Celery's countdown, as before


def test_copies_and_the_test_hook(prefix: str) -> None:
    settings = Settings.from_env(
        {"RUVON_BROKER_URL": redis_url_for_tests(), "RUVON_BROKER_KEY_PREFIX": prefix}
    )
    doubled = CeleryExecutionProvider(settings=settings, duplicate_messages=True)
    try:
        doubled.dispatch([QueuedRun(3, "wf", RunKind.JOIN, "P", "", "default")])
    finally:
        doubled.close()
    with redis.Redis.from_url(redis_url_for_tests()) as client:
        assert client.llen(lane_key(prefix, "default", 0)) == 2


def test_only_a_plain_redis_broker_gets_the_fast_path() -> None:
    def app(url: str) -> Celery:
        celery = Celery(set_as_current=False)
        celery.conf.update(celery_config(Settings.from_env({"RUVON_BROKER_URL": url})))
        return celery

    assert RedisRunPublisher.supports(app("redis://127.0.0.1:6379/0"))
    assert not RedisRunPublisher.supports(app("amqp://guest@127.0.0.1//"))
    assert not RedisRunPublisher.supports(app("sentinel://a:26379;sentinel://b:26379"))


def test_waiting_counts_what_kombu_counts(provider: CeleryExecutionProvider, prefix: str) -> None:
    provider.dispatch(
        [QueuedRun(i, "wf", RunKind.BRANCH, "P", f"b{i}", "busy", priority=i % 2) for i in range(3)]
    )
    lanes = [Lane("busy", 0), Lane("busy", 1), Lane("busy", 9), Lane("idle", 0)]
    counted = provider.waiting_messages(lanes)
    with provider.app.connection_for_read() as connection:
        kombu = connection.default_channel.queue_declare(queue="busy", durable=True).message_count
    assert counted == dict(zip(lanes, [2, 1, 0, 0], strict=True)) and kombu == 3


@pytest.mark.parametrize("path", ["pipelined", "send_task"])
def test_a_worker_takes_the_most_urgent_lane_first(
    provider: CeleryExecutionProvider, path: str
) -> None:
    """kombu's own consumer (the Redis channel a Celery worker reads with) pops the runs of the
    higher priority first, whichever way they were sent, and in order within one priority."""
    if path == "send_task":
        provider._fast = False  # the fallback Celery path (a countdown, or another broker)
    sent = [(1, 0), (2, 9), (3, 5), (4, 9), (5, 0), (6, 1)]  # (run id, priority)
    provider.dispatch(
        [QueuedRun(i, "wf", RunKind.STEP, "S", "", "prio", priority=p) for i, p in sent]
    )
    with provider.app.connection_for_read() as connection:
        channel = connection.default_channel
        taken = []
        while (message := channel.basic_get("prio")) is not None:
            taken.append(message.decode()[0][0])
    assert taken == [2, 4, 3, 6, 1, 5]
