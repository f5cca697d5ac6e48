"""A Redis restart seen by kombu and by the dispatching provider, without a cluster (seconds).

* The worker's consumer path, replayed with kombu alone: Redis dies while two channels have a
  BRPOP in flight and a message is held unacknowledged; the connection is collected and then
  closed (what Celery 5.7.0's consumer does), and the held message is acknowledged late. With
  :mod:`ruvon.cluster.lost_connection` applied, every step either works or raises a connection
  error that kombu's callers tolerate, never ``AttributeError`` (the chaos scenario S7 runs the
  real thing).
* :class:`CeleryExecutionProvider` fails fast while Redis is down (the run stays QUEUED for the
  beat) and sends again as soon as it is back: no dead connection is kept.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import pytest
import redis
from celery import Celery
from kombu import Connection, Exchange, Message, Queue
from kombu.common import ignore_errors

from ruvon.cluster.app import create_app
from ruvon.cluster.lost_connection import raise_connection_errors_on_lost_channels
from ruvon.config import Settings
from ruvon.errors import BrokerUnavailable
from ruvon.implementations.execution.broker_lanes import lane_key
from ruvon.implementations.execution.celery import CeleryExecutionProvider
from ruvon.providers.runs import QueuedRun, RunKind
from tests.chaos.servers import PrivateRedis

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(60)]


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    try:
        server.start()
        yield server
    finally:
        server.stop()


def _queue(name: str) -> Queue:
    return Queue(name, Exchange(name), name)


def test_a_lost_connection_closes_and_acks_with_connection_errors(
    private_redis: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    raise_connection_errors_on_lost_channels()
    held: list[Message] = []
    with Connection(private_redis.url) as connection:
        with connection.Producer() as producer:
            tasks = _queue("tasks")
            producer.publish({"run": 1}, exchange=tasks.exchange, routing_key="tasks",
                             declare=[tasks])  # fmt: skip
        # The task queue on the default channel, a second consumer on its own channel (the
        # worker's control queue): the close of collect() stops at the second one.
        consumer = connection.Consumer([tasks], callbacks=[lambda _, m: held.append(m)],
                                       prefetch_count=2)  # fmt: skip
        consumer.consume()
        other = connection.Consumer([_queue("control")], channel=connection.channel(),
                                    callbacks=[lambda _, m: None])  # fmt: skip
        other.consume()
        connection.drain_events(timeout=5)
        assert len(held) == 1  # delivered, not acknowledged: a late-ack task is running
        with pytest.raises(socket.timeout):
            connection.drain_events(timeout=0.2)  # both channels now wait in BRPOP
        errors = connection.connection_errors

        private_redis.kill()
        connection.collect(socket_timeout=5)
        ignore_errors(connection, connection.close)  # Celery 5.7.0: AttributeError here
        private_redis.start()
        with caplog.at_level(logging.CRITICAL, logger="ruvon.test"):
            held[0].ack_log_error(logging.getLogger("ruvon.test"), errors)  # and here
    assert "Couldn't ack" in caplog.text


@pytest.mark.parametrize("app", ["client", "worker"])
def test_dispatch_fails_fast_while_redis_is_down_and_recovers(
    private_redis: PrivateRedis, app: str
) -> None:
    settings = Settings.from_env(
        {"RUVON_BROKER_URL": private_redis.url, "RUVON_RESULT_BACKEND": private_redis.url}
    )
    celery: Celery | None = create_app(settings) if app == "worker" else None
    provider = CeleryExecutionProvider(celery, settings=settings)
    run = QueuedRun(1, "wf-1", RunKind.STEP, "Step", "", "default")
    try:
        with redis.Redis(port=private_redis.port) as broker:
            provider.dispatch([run])
            assert broker.llen(lane_key("", "default", 0)) == 1
            private_redis.kill()
            with pytest.raises(BrokerUnavailable):
                provider.dispatch([run])
            private_redis.start()  # empty, on the same port
            provider.dispatch([run])  # the pooled connection was dead: replaced at once
            provider.dispatch([run, run])  # and the pipelined batch too
            assert broker.llen(lane_key("", "default", 0)) == 3
    finally:
        provider.close()
        if celery is not None:
            celery.close()
