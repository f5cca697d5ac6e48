"""The Lua scripts that make Redis writes atomic, kept as data in ``scripts.lua``.

Each script is registered with ``register_script``: calls go out as EVALSHA (the script text
crosses the wire once per server, on the first NOSCRIPT reply) and run atomically on the server,
so a fenced save, its index moves and its audit entries are one step no other client can
interleave with. Scripts start with a ``#!lua`` flags line, which needs Redis 7.0 or later.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from ruvon.implementations.persistence.queries import load_queries

__all__ = ["MIN_REDIS_VERSION", "RedisScripts", "ScriptStatus", "script_source"]

MIN_REDIS_VERSION = (7, 0)
"""Script flags (``#!lua flags=no-writes``) arrived in Redis 7.0."""

_BLOCKS = load_queries(Path(__file__).with_name("scripts.lua"))
_READ_ONLY = frozenset({"list_workflows", "find_by_idempotency_key"})


class ScriptStatus(IntEnum):
    """First element of a create/save script's reply."""

    OK = 0
    VERSION_CONFLICT = 1
    WORKFLOW_NOT_FOUND = 2
    IDEMPOTENCY_KEY_TAKEN = 3
    DUPLICATE_ID = 4
    IDEMPOTENCY_KEY_USED = 5


def script_source(name: str) -> str:
    """The full text of script ``name``: flags line, shared prelude, body.

    Read-only scripts say ``no-writes`` so Redis also runs them on replicas and when out of
    memory; write scripts carry no ``allow-oom`` flag, so an over-memory server refuses them
    before they write anything.
    """
    flags = "#!lua flags=no-writes" if name in _READ_ONLY else "#!lua"
    return f"{flags}\n{_BLOCKS['prelude']}\n{_BLOCKS[name]}\n"


@dataclass(frozen=True, slots=True)
class RedisScripts:
    """The provider's scripts, registered on one client (they run through that client)."""

    client: Redis
    create_workflow: AsyncScript
    save_workflow: AsyncScript
    list_workflows: AsyncScript
    find_by_idempotency_key: AsyncScript
    append_if_exists: AsyncScript
    record_signal: AsyncScript

    @classmethod
    def register(cls, client: Redis) -> RedisScripts:
        """Register every script on ``client``; nothing is sent until the first call."""

        def script(name: str) -> AsyncScript:
            return client.register_script(script_source(name))

        return cls(
            client=client,
            create_workflow=script("create_workflow"),
            save_workflow=script("save_workflow"),
            list_workflows=script("list_workflows"),
            find_by_idempotency_key=script("find_by_idempotency_key"),
            append_if_exists=script("append_if_exists"),
            record_signal=script("record_signal"),
        )
