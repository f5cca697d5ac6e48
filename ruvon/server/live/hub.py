"""The live streams of one server: their change feed, their timings, and how they stop."""

from __future__ import annotations

from ruvon.providers.changes import WorkflowChanges
from ruvon.server.live.feed import DEFAULT_INTERVAL, DEFAULT_LOOKBACK, ChangeFeed
from ruvon.server.problems import ApiProblem
from ruvon.server.runtime import ServerRuntime

__all__ = ["LiveHub"]

DEFAULT_KEEP_ALIVE = 15.0
#: One workflow's stream also reads the workflow itself this often, in case the shared feed
#: missed a commit (one whose ``updated_at`` came from a clock far behind the others).
DEFAULT_RECHECK = 5.0


class LiveHub:
    """Owns the :class:`ChangeFeed` (made on first use, over the open runtime's persistence).

    :meth:`close` ends every stream; :class:`ruvon.server.serve.RuvonServer` calls it as soon
    as uvicorn begins to shut down, since uvicorn waits for open responses before it runs the
    app's lifespan shutdown (which calls it too).
    """

    def __init__(
        self,
        runtime: ServerRuntime,
        *,
        interval: float = DEFAULT_INTERVAL,
        lookback: float = DEFAULT_LOOKBACK,
        keep_alive: float = DEFAULT_KEEP_ALIVE,
        recheck: float = DEFAULT_RECHECK,
    ) -> None:
        self.runtime = runtime
        self.interval = interval
        self.lookback = lookback
        self.keep_alive = keep_alive
        self.recheck = recheck
        self._feed: ChangeFeed | None = None
        self.stopped = False

    @property
    def feed(self) -> ChangeFeed:
        """The shared feed (501 on a store that cannot list its changes)."""
        if self.stopped:
            raise ApiProblem(503, "shutting_down", "the server is shutting down; reconnect soon")
        if self._feed is None:
            source = self.runtime.persistence
            if not isinstance(source, WorkflowChanges):
                raise ApiProblem(
                    501,
                    "not_implemented",
                    "live streams need a SQLite or PostgreSQL database (this store cannot "
                    "list its changes)",
                )
            self._feed = ChangeFeed(source, interval=self.interval, lookback=self.lookback)
        return self._feed

    def ensure_ready(self) -> None:
        """Raise the 501 / 503 a stream would meet, before it starts."""
        self.feed  # noqa: B018  - the property makes the feed or raises

    async def close(self) -> None:
        """End every stream and stop the poller (idempotent)."""
        self.stopped = True
        if self._feed is not None:
            await self._feed.close()
