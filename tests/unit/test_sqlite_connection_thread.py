"""ConnectionThread: one thread owns one sqlite3 connection and runs whole jobs on it, in order."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ruvon.errors import PersistenceError
from ruvon.implementations.persistence.sqlite.connection_thread import ConnectionThread


@pytest.fixture
async def worker() -> AsyncIterator[ConnectionThread]:
    thread = ConnectionThread("ruvon-sqlite test")
    await thread.open(":memory:", 1.0)
    yield thread
    await thread.close()


def thread_of(conn: sqlite3.Connection) -> tuple[int, bool]:
    return threading.get_ident(), threading.current_thread().daemon


async def test_jobs_run_on_one_daemon_thread_off_the_loop(worker: ConnectionThread) -> None:
    seen = await asyncio.gather(*(worker.run(thread_of) for _ in range(5)))
    assert len(set(seen)) == 1
    ident, daemon = seen[0]
    assert ident != threading.get_ident() and daemon


async def test_jobs_run_whole_and_in_submission_order(worker: ConnectionThread) -> None:
    await worker.run(lambda conn: conn.execute("CREATE TABLE log (n INTEGER)"))

    def append(conn: sqlite3.Connection, n: int) -> int:
        # A multi-statement transaction: another job cannot run between its statements.
        conn.execute("BEGIN IMMEDIATE")
        (count,) = conn.execute("SELECT count(*) FROM log").fetchone()
        conn.execute("INSERT INTO log VALUES (?)", (n,))
        conn.execute("COMMIT")
        return int(count)

    counts = await asyncio.gather(*(worker.run(append, n) for n in range(20)))
    assert counts == list(range(20))
    rows = await worker.run(lambda conn: conn.execute("SELECT n FROM log").fetchall())
    assert rows == [(n,) for n in range(20)]


async def test_a_failing_job_raises_in_its_caller_and_the_thread_goes_on(
    worker: ConnectionThread,
) -> None:
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        await worker.run(lambda conn: conn.execute("SELECT * FROM missing"))

    class Custom(Exception):
        pass

    def fail(conn: sqlite3.Connection) -> None:
        raise Custom("from the job")

    with pytest.raises(Custom, match="from the job"):
        await worker.run(fail)
    assert await worker.run(lambda conn: conn.execute("SELECT 7").fetchone()) == (7,)


async def test_a_cancelled_caller_leaves_the_thread_usable(worker: ConnectionThread) -> None:
    started, release = threading.Event(), threading.Event()

    def slow(conn: sqlite3.Connection) -> str:
        started.set()
        release.wait(5)
        return "done"

    future = worker.run(slow)
    await asyncio.to_thread(started.wait, 5)
    future.cancel()
    release.set()
    assert await worker.run(lambda conn: "next") == "next"
    assert future.cancelled()


async def test_close_finishes_queued_jobs_then_refuses_new_ones(tmp_path: Path) -> None:
    worker = ConnectionThread("ruvon-sqlite test")
    await worker.open(str(tmp_path / "db.sqlite3"), 1.0)
    assert worker.is_open
    await worker.run(lambda conn: conn.execute("CREATE TABLE t (n INTEGER)"))
    queued = [worker.run(lambda conn, n=n: conn.execute("INSERT INTO t VALUES (?)", (n,)))
              for n in range(3)]  # fmt: skip
    await worker.close()
    await worker.close()  # idempotent
    assert all(future.done() for future in queued)
    assert not worker.is_open
    with pytest.raises(RuntimeError, match="not open"):
        worker.run(lambda conn: None)
    with sqlite3.connect(tmp_path / "db.sqlite3") as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (3,)
    conn.close()
    assert not any(t.name == "ruvon-sqlite test" for t in threading.enumerate())


async def test_a_failed_open_raises_and_ends_the_thread(tmp_path: Path) -> None:
    worker = ConnectionThread("ruvon-sqlite unopenable")
    with pytest.raises(sqlite3.OperationalError, match="unable to open"):
        await worker.open(str(tmp_path / "no-such-dir" / "db.sqlite3"), 1.0)
    assert not worker.is_open
    assert not any(t.name == "ruvon-sqlite unopenable" for t in threading.enumerate())


async def test_opening_twice_is_an_error(worker: ConnectionThread) -> None:
    with pytest.raises(RuntimeError, match="already open"):
        await worker.open(":memory:", 1.0)


async def test_a_forked_child_gets_an_error_not_a_hang(worker: ConnectionThread) -> None:
    opened_in = worker._pid
    worker._pid = opened_in + 1  # as a child sees it: the thread stayed in the parent
    try:
        with pytest.raises(PersistenceError, match="forked child") as caught:
            worker.run(lambda conn: None)
        assert str(opened_in + 1) in str(caught.value) and "new SQLite provider" in str(caught)
    finally:
        worker._pid = opened_in
    assert await worker.run(lambda conn: "parent still works") == "parent still works"


async def test_an_inline_job_runs_on_the_callers_thread_when_the_connection_is_idle(
    worker: ConnectionThread,
) -> None:
    ident, _ = await worker.call(thread_of, inline=True)
    assert ident == threading.get_ident()
    ident, _ = await worker.call(thread_of)  # not allowed inline: the thread runs it
    assert ident != threading.get_ident()


async def test_an_inline_job_never_overtakes_one_handed_to_the_thread(
    worker: ConnectionThread,
) -> None:
    await worker.run(lambda conn: conn.execute("CREATE TABLE log (n INTEGER)"))
    started, release = threading.Event(), threading.Event()

    def slow_first(conn: sqlite3.Connection) -> None:
        started.set()
        release.wait(5)
        conn.execute("INSERT INTO log VALUES (1)")

    first = worker.run(slow_first)
    await asyncio.to_thread(started.wait, 5)
    second = asyncio.ensure_future(
        worker.call(lambda conn: conn.execute("INSERT INTO log VALUES (2)").rowcount, inline=True)
    )
    await asyncio.sleep(0.05)
    assert not second.done()  # queued behind the running job, not run beside it
    release.set()
    await first
    assert await second == 1
    rows = await worker.call(lambda conn: conn.execute("SELECT n FROM log").fetchall())
    assert rows == [(1,), (2,)]


async def test_a_locked_database_hands_an_inline_write_to_the_thread_which_waits_for_the_lock(
    tmp_path: Path,
) -> None:
    """Another connection holds the write lock: the inline attempt fails at once with nothing
    written, the thread waits (busy timeout) while the event loop keeps running, then commits."""
    path = tmp_path / "db.sqlite3"
    with sqlite3.connect(path) as setup:
        setup.execute("PRAGMA journal_mode=WAL")
        setup.execute("CREATE TABLE t (n INTEGER)")
    setup.close()
    worker = ConnectionThread("ruvon-sqlite locked")
    await worker.open(str(path), 5.0)
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    caller = threading.get_ident()

    def write(conn: sqlite3.Connection) -> int:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t VALUES (1)")
        conn.execute("COMMIT")
        return threading.get_ident()

    try:
        writing = asyncio.ensure_future(worker.call(write, inline=True))
        ticks = 0
        for _ in range(10):  # the loop is not blocked while the write waits for the lock
            await asyncio.sleep(0.02)
            ticks += 1
        assert ticks == 10 and not writing.done()
        holder.execute("ROLLBACK")
        assert await writing != caller  # committed by the thread, after the lock was released
        assert await worker.call(lambda c: c.execute("SELECT n FROM t").fetchall()) == [(1,)]
        # Resting, the connection waits for nobody: the next inline job runs inline again.
        ident, _ = await worker.call(thread_of, inline=True)
        assert ident == caller
    finally:
        holder.close()
        await worker.close()
