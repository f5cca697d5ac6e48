"""Run messages written straight into kombu's Redis queue lists: pre-serialised, pipelined.

``app.send_task`` costs ~350 µs of Python per message here (Celery builds the message, kombu
encodes it, routes it through its exchange tables and creates a client per publish) and 130 µs
even in a batch, for a message that only ever carries four ids. :class:`RedisRunPublisher`
builds each message from a template instead and writes a whole batch with one ``LPUSH``
pipeline.

The template is not hand-written: for each task name, one message is published by Celery
itself to a throwaway queue, read back and removed, so its format is whatever the installed
Celery and kombu produce. Per run only the task id, the delivery tag, the queue and the
arguments change. A built message is decoded back through kombu before the publisher is used
(:meth:`RedisRunPublisher.check`); anything unexpected, a broker that is not plain Redis, or a
run with a countdown makes the caller fall back to ``send_task``.
"""

from __future__ import annotations

import base64
import copy
import uuid
from collections.abc import Sequence
from typing import Any, cast
from urllib.parse import urlsplit

import orjson
import redis
from celery import Celery

from ruvon.implementations.execution.broker_lanes import broker_priority, lane_key
from ruvon.providers.runs import Lane, QueuedRun

__all__ = ["RedisRunPublisher"]

_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
_TEMPLATE_ARGS = [0, "", "", ""]


class RedisRunPublisher:
    """Publishes ``QueuedRun`` messages for ``app`` (a Ruvon Celery app on a Redis broker)."""

    def __init__(self, app: Celery, task_names: dict[Any, str]) -> None:
        self.app = app
        self.task_names = task_names
        options = app.conf.broker_transport_options or {}
        self.prefix: str = options.get("global_keyprefix", "") or ""
        self._client: redis.Redis | None = None
        self._templates: dict[str, dict[str, Any]] = {}

    @staticmethod
    def supports(app: Celery) -> bool:
        """Whether ``app``'s broker is one Redis server (not Sentinel, not another transport)."""
        url = str(app.conf.broker_url or "")
        return urlsplit(url).scheme in ("redis", "rediss") and ";" not in url

    @property
    def client(self) -> redis.Redis:
        if self._client is None:
            self._client = redis.Redis.from_url(str(self.app.conf.broker_url))
        return self._client

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    # -- messages ------------------------------------------------------------------------------

    def message(self, run: QueuedRun) -> bytes:
        """The serialised message of ``run``, as kombu's Redis transport stores it."""
        name = self.task_names[run.kind]
        template = self._templates.get(name) or self._capture(name)
        task_id = str(uuid.uuid4())
        args = [run.run_id, run.workflow_id, run.step_name, run.branch]
        body = base64.b64encode(orjson.dumps([args, {}, _EMBED])).decode()
        headers = {**template["headers"], "id": task_id, "root_id": task_id, "parent_id": None,
                   "argsrepr": repr(args)}  # fmt: skip
        properties = {
            **template["properties"],
            "correlation_id": task_id,
            "delivery_tag": str(uuid.uuid4()),
            "delivery_info": {"exchange": "", "routing_key": run.queue},
            # What kombu reads when it restores an unacknowledged message to its lane.
            "priority": broker_priority(run.priority),
        }
        return orjson.dumps({**template["envelope"], "body": body, "headers": headers,
                             "properties": properties})  # fmt: skip

    def publish(self, runs: Sequence[QueuedRun], copies: int = 1) -> None:
        """Write every run's message (``copies`` each): one ``LPUSH`` per lane (the list of the
        run's queue and priority, see broker_lanes), several lanes in one pipeline."""
        by_lane: dict[str, list[bytes]] = {}
        for run in runs:
            message = self.message(run)
            key = lane_key(self.prefix, run.queue, run.priority)
            by_lane.setdefault(key, []).extend([message] * copies)
        if len(by_lane) == 1:  # the common case: one command, no pipeline to build (~20 µs)
            [(key, messages)] = by_lane.items()
            self.client.lpush(key, *messages)
            return
        with self.client.pipeline(transaction=False) as pipe:
            for key, messages in by_lane.items():
                pipe.lpush(key, *messages)
            pipe.execute()

    def waiting(self, lanes: Sequence[Lane]) -> dict[Lane, int]:
        """Messages waiting in each lane: the length of its list."""
        with self.client.pipeline(transaction=False) as pipe:
            for lane in lanes:
                pipe.llen(lane_key(self.prefix, lane.queue, lane.priority))
            lengths = [int(n) for n in pipe.execute()]
        return dict(zip(lanes, lengths, strict=True))

    def check(self, run: QueuedRun) -> bool:
        """A built message decodes, through kombu, to the task and arguments it stands for,
        and kombu would keep it in the lane the publisher writes it to (the app's priority
        steps are the ones broker_lanes assumes)."""
        from kombu.transport.virtual import Message

        payload = orjson.loads(self.message(run))
        with self.app.connection_for_write() as connection:
            channel = connection.default_channel
            decoded = Message(payload, channel=channel)  # type: ignore[no-untyped-call]
            body = decoded.decode()  # type: ignore[no-untyped-call]
            priority = channel._get_message_priority(payload, reverse=False)
            kombu_lane = channel._q_for_pri(run.queue, priority)
        return bool(
            decoded.headers.get("task") == self.task_names[run.kind]
            and body[0] == [run.run_id, run.workflow_id, run.step_name, run.branch]
            and decoded.delivery_info.get("routing_key") == run.queue
            and kombu_lane == lane_key("", run.queue, run.priority)
        )

    def _capture(self, name: str) -> dict[str, Any]:
        """Let Celery publish one message of task ``name`` to a throwaway queue; keep it."""
        queue = f"ruvon.template.{uuid.uuid4().hex}"
        self.app.send_task(name, args=_TEMPLATE_ARGS, queue=queue, ignore_result=True)
        keys = [self.prefix + queue, f"{self.prefix}_kombu.binding.{queue}",
                f"{self.prefix}_kombu.binding_permanent.{queue}"]  # fmt: skip
        try:
            raw = cast("bytes | None", self.client.lpop(keys[0]))
        finally:
            self.client.delete(*keys)
        if raw is None:
            raise LookupError(f"the template message of {name} was not where kombu puts it")
        message = orjson.loads(raw)
        template = {
            "envelope": {k: v for k, v in message.items() if k not in ("body", "headers",
                                                                        "properties")},
            "headers": copy.deepcopy(message["headers"]),
            "properties": copy.deepcopy(message["properties"]),
        }  # fmt: skip
        self._templates[name] = template
        return template
