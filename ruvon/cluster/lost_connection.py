"""A lost broker connection's Redis channels fail with a connection error, not AttributeError.

Without this, a Redis restart kills workers for good (Celery 5.7.0 with kombu 5.7.0). When the
consumer's connection drops, Celery collects it and, since 5.7.0, also closes it
(``Consumer.on_connection_error_after_connected``, celery/celery#10242, commit feb789acc):

1. ``collect()`` closes the channels (kombu ``Transport.close_connection``) but stops at the
   first whose close raises: one whose BRPOP was in flight reads it first, and that raises a
   connection error. Channels not reached yet, often the consumer's default channel, stay open.
   ``collect()`` then detaches the transport (``transport.client = None``).
2. The close Celery 5.7.0 adds closes that default channel again. Its first step drops its
   Redis pool; then it restores the messages of tasks still running (``task_acks_late``), which
   needs a new pool, whose parameters kombu's ``Channel._connparams`` reads from the detached
   transport: ``AttributeError: 'NoneType' object has no attribute 'hostname'``.
3. Had that close got through, the running task's acknowledgement, once it finished, would
   fail the same way on the same channel.

That is no connection error, so nothing tolerates it: it escapes the consumer as an
"Unrecoverable error" and the worker exits (celery/kombu#582 is the same failure on another
path). With :func:`raise_connection_errors_on_lost_channels` such a channel raises
``redis.ConnectionError`` instead, as a py-amqp channel of a closed connection raises
``RecoverableConnectionError``. Celery then drops the close, logs the failed acknowledgement
("Couldn't ack") and reconnects. The message is a hint: Redis re-delivers it after the
visibility timeout if it kept it, where the run's claim makes it a no-op, and the beat's
``redispatch_lost`` re-sends a run whose message was lost.

Celery 5.6.3 does not close twice, but lacks 5.7's other reconnect fixes (a bounded socket
timeout for that collect, GH-9705; celery/celery#10346, #10335, #10277), so the worker keeps
5.7 with this. Covered by ``tests/chaos/test_lost_connection.py`` (kombu alone) and the chaos
scenario S7 (a cluster through Redis restarts); drop it once kombu raises a connection error
itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis
from kombu.transport import redis as kombu_redis

__all__ = ["raise_connection_errors_on_lost_channels"]

_APPLIED = "_ruvon_lost_channels_raise_connection_errors"


def raise_connection_errors_on_lost_channels() -> None:
    """Make kombu's Redis channels of a closed connection raise ``redis.ConnectionError`` when
    they need a new connection pool (idempotent; :func:`ruvon.cluster.app.create_app` calls it)."""
    channel = kombu_redis.Channel
    if getattr(channel, _APPLIED, False):
        return
    connparams: Callable[..., Any] = channel._connparams

    def _connparams(self: Any, asynchronous: bool = False) -> Any:
        transport = self.connection  # None once the channel was closed
        if transport is None or transport.client is None:  # detached: connection closed
            raise redis.ConnectionError(
                "this broker channel belongs to a connection that was closed after it was lost"
            )
        return connparams(self, asynchronous=asynchronous)

    channel._connparams = _connparams  # type: ignore[method-assign]
    setattr(channel, _APPLIED, True)
