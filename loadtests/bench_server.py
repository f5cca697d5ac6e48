"""The ``server`` suite of ``python -m loadtests.bench``: Ruvon Server's reads over real HTTP.

Set-up (untimed): one local cluster (one prefork ``ruvon worker``, concurrency 2, the fan-out
study's) on a fresh database cloned from the migrated template. Its client runs a
``BenchFanOutWide`` PARALLEL of 1,000 branches to the end on the workers, and one workflow of
each seeded type; then 100,000 workflows are bulk-inserted beside them by one ``INSERT ...
SELECT`` over ``generate_series`` and the table is ``VACUUM (ANALYZE)``-ed
(:mod:`loadtests.server_dataset`: weighted types and statuses, 30 days of creation times,
idempotency keys on 60 %). Then a real ``ruvon server`` subprocess (uvicorn, its own process
and event loop, default pool of 10 connections, the cluster's environment) serves that
database on a loopback port, and this process times requests with one keep-alive
``httpx.Client``, one request at a time (latency, not throughput): from sending to the whole
body read, status 200 checked, the first answer of each query checked against what it should
match.

* **list** (target: p95 <= 50 ms): ``GET /api/v1/workflows`` (a page of 50) with no filter,
  ``status=FAILED``, ``type=BenchSaga``, ``id_prefix`` (8 characters of an id, 1 match),
  ``idempotency_key_prefix`` (10 keys' prefix), ``since``/``until`` (one day, 10 days back) and
  a ``cursor`` 90 % down the list. Each run: ``rounds`` rounds after a warm-up, each query once
  per round (the order reversed every other round); per query p50 / p95 / max, and the p95 of
  all the run's list requests together against the target.
* **workflow page** (target: p95 <= 300 ms): ``GET /ui/workflows/{id}`` of the 1,000-branch
  workflow, logged in through the login form as an admin (a browser's session cookie),
  alternating with ``GET /api/v1/workflows/{id}/history`` of the same workflow (no target):
  median / p95 / max of ``page_loads`` each per run.
* **live stream** (target: max <= 1,000 ms): :mod:`loadtests.bench_live_stream` on PostgreSQL
  (its own fresh database; the app served by uvicorn *inside* this process, 20 clients on
  ``GET /api/v1/events``): commit -> event lag p50 / p95 / max, after the server above stopped.

Every figure is the median of ``runs`` runs with the min-max spread; a run's percentiles are
over its own requests. ``--quick`` shrinks every count (a smoke run, not a measurement).
"""

from __future__ import annotations

import asyncio
import os
import re
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from loadtests.bench import Figure, _figure
from loadtests.bench_distributed import distributed_cluster, run_with_client
from loadtests.bench_live_stream import LiveLag, measure
from loadtests.server_dataset import Dataset, seed_workflows
from loadtests.server_process import ruvon_server
from ruvon.testing.cluster import LocalCluster

__all__ = ["LIST_QUERY_NAMES", "ServerSizes", "bench_server"]

TOKEN = "bench-server-admin"
LIST_TARGET_MS = 50.0
PAGE_TARGET_MS = 300.0
LIVE_TARGET_MS = 1000.0
PAGE_SIZE = 50
#: The list requests, by the name their rows carry (see :func:`list_queries`).
LIST_QUERY_NAMES = (
    "all",
    "status=FAILED",
    "type=BenchSaga",
    "id_prefix",
    "idempotency_key_prefix",
    "since/until (1 day)",
    "cursor deep",
)
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass(frozen=True)
class ServerSizes:
    """How much the suite measures; :meth:`quick` is the smoke-test size."""

    runs: int = 3
    rows: int = 100_000
    fan_out_width: int = 1000
    rounds: int = 200
    page_loads: int = 30
    warmup: int = 5
    live_workflows: int = 100
    live_streams: int = 20

    @classmethod
    def quick(cls, runs: int = 1) -> ServerSizes:
        return cls(
            runs=runs,
            rows=1000,
            fan_out_width=20,
            rounds=5,
            page_loads=3,
            warmup=1,
            live_workflows=5,
            live_streams=2,
        )


@dataclass
class ServerRuns:
    """Milliseconds per request, per run: list requests by query, pages, histories."""

    lists: list[dict[str, list[float]]] = field(default_factory=list)
    pages: list[list[float]] = field(default_factory=list)
    histories: list[list[float]] = field(default_factory=list)
    page_bytes: int = 0
    fan_out_width: int = 0
    seconds: tuple[float, ...] = ()  # set-up, HTTP runs, tear-down, live stream
    load: tuple[float, float] = (0.0, 0.0)  # 1-minute load average before and after the runs
    live: list[LiveLag] = field(default_factory=list)


def p95_of(values: Sequence[float]) -> float:
    """The 95th percentile ("inclusive": with few samples it stays within the range seen)."""
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[94]


def list_queries(data: Dataset) -> dict[str, dict[str, str]]:
    """The list requests' query parameters, by the name their rows carry."""
    queries = {
        "all": {},
        "status=FAILED": {"status": "FAILED"},
        "type=BenchSaga": {"type": "BenchSaga"},
        "id_prefix": {"id_prefix": data.id_prefix},
        "idempotency_key_prefix": {"idempotency_key_prefix": data.key_prefix},
        "since/until (1 day)": {"since": data.since.isoformat(), "until": data.until.isoformat()},
        "cursor deep": {"cursor": data.deep_cursor},
    }
    assert tuple(queries) == LIST_QUERY_NAMES
    return queries


def _get(client: httpx.Client, path: str, params: Mapping[str, str] | None = None) -> float:
    """Milliseconds to send one GET and read its whole body; a non-200 fails the bench."""
    started = time.perf_counter()
    response = client.get(path, params=params)
    elapsed = (time.perf_counter() - started) * 1e3
    if response.status_code != 200:
        raise RuntimeError(f"GET {path} {params}: {response.status_code} {response.text[:300]}")
    return elapsed


def _check_lists(client: httpx.Client, data: Dataset, queries: dict[str, dict[str, str]]) -> None:
    """Each query returns the page its filter should: the bench times what it names."""
    for name, params in queries.items():
        page = client.get("/api/v1/workflows", params=params).json()
        expected = min(PAGE_SIZE, data.matches[name])
        if len(page["items"]) != expected:
            raise RuntimeError(f"list {name}: {len(page['items'])} items, expected {expected}")


def _list_run(
    client: httpx.Client, queries: dict[str, dict[str, str]], rounds: int, warmup: int
) -> dict[str, list[float]]:
    order = list(queries)
    times: dict[str, list[float]] = {name: [] for name in order}
    for number in range(warmup + rounds):
        for name in order if number % 2 == 0 else reversed(order):
            ms = _get(client, "/api/v1/workflows", queries[name])
            if number >= warmup:
                times[name].append(ms)
    return times


def _log_in(client: httpx.Client) -> None:
    form = client.get("/ui/login")
    match = _CSRF.search(form.text)
    if match is None:
        raise RuntimeError("the login page has no CSRF token")
    done = client.post("/ui/login", data={"csrf": match.group(1), "token": TOKEN, "next": "/ui"})
    if done.status_code != 303:
        raise RuntimeError(f"login: {done.status_code} {done.text[:300]}")


def _check_page(api: httpx.Client, browser: httpx.Client, data: Dataset) -> int:
    """The page and the history show every branch; the page's size in bytes."""
    history = api.get(f"/api/v1/workflows/{data.fan_out_id}/history").json()
    branches = sum(len(item["branches"]) for item in history["parallel"])
    if branches != data.fan_out_width:
        raise RuntimeError(f"history: {branches} branches, expected {data.fan_out_width}")
    page = browser.get(f"/ui/workflows/{data.fan_out_id}")
    if page.status_code != 200 or "Fan_Out" not in page.text:
        raise RuntimeError(f"workflow page: {page.status_code} {page.text[:300]}")
    return len(page.content)


def measure_http(url: str, data: Dataset, sizes: ServerSizes, into: ServerRuns) -> None:
    """Every run of the list and page figures against the server at ``url``."""
    queries = list_queries(data)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as api:
        _check_lists(api, data, queries)
        with httpx.Client(base_url=url, timeout=60) as browser:
            _log_in(browser)
            into.page_bytes = _check_page(api, browser, data)
            into.fan_out_width = data.fan_out_width
            for _ in range(sizes.runs):
                into.lists.append(_list_run(api, queries, sizes.rounds, sizes.warmup))
                pages, histories = _timed_pages(api, browser, data, sizes)
                into.pages.append(pages)
                into.histories.append(histories)


def _timed_pages(
    api: httpx.Client, browser: httpx.Client, data: Dataset, sizes: ServerSizes
) -> tuple[list[float], list[float]]:
    # The page as the browser loads it (session cookie), the history as an API client does.
    page, history = (
        f"/ui/workflows/{data.fan_out_id}",
        f"/api/v1/workflows/{data.fan_out_id}/history",
    )
    pages: list[float] = []
    histories: list[float] = []
    for number in range(sizes.warmup + sizes.page_loads):
        first, second = (browser, page, pages), (api, history, histories)
        pair = (first, second) if number % 2 == 0 else (second, first)
        for client, path, into in pair:
            ms = _get(client, path)
            if number >= sizes.warmup:
                into.append(ms)
    return pages, histories


def _percentiles(prefix: str, per_run: Sequence[Sequence[float]]) -> list[Figure]:
    return [
        _figure(f"{prefix} p50", "ms", [statistics.median(run) for run in per_run]),
        _figure(f"{prefix} p95", "ms", [p95_of(run) for run in per_run]),
        _figure(f"{prefix} max", "ms", [max(run) for run in per_run]),
    ]


def _against(figure: Figure, bound: float) -> Figure:
    met = figure.median <= bound
    figure.target = f"target <= {bound:,.0f} ms: {'met' if met else 'NOT met'}"
    return figure


def figures(result: ServerRuns) -> list[Figure]:
    """The suite's rows: per list query, all list requests, the page, the history, the stream."""
    rows: list[Figure] = []
    for name in result.lists[0]:
        rows += _percentiles(f"list {name}:", [run[name] for run in result.lists])
    pooled = [[ms for times in run.values() for ms in times] for run in result.lists]
    rows.append(
        _against(
            _figure("list, every query: p95", "ms", [p95_of(r) for r in pooled]), LIST_TARGET_MS
        )
    )
    width = f"PARALLEL({result.fan_out_width:,})"
    page = _percentiles(f"workflow page /ui/workflows/{{id}}, {width}:", result.pages)
    page[1] = _against(page[1], PAGE_TARGET_MS)
    rows += page
    rows += _percentiles(f"history JSON /api/v1/.../history, {width}:", result.histories)
    if result.live:
        live = [
            _figure(f"live stream (postgres): commit->event {name}", "ms", values)
            for name, values in (
                ("p50", [run.p50 * 1e3 for run in result.live]),
                ("p95", [run.p95 * 1e3 for run in result.live]),
                ("max", [run.max * 1e3 for run in result.live]),
            )
        ]
        live[2] = _against(live[2], LIVE_TARGET_MS)
        rows += live
    return rows


def notes(data: Dataset, result: ServerRuns, sizes: ServerSizes) -> list[str]:
    """What the figures were measured on: the stored rows, what each filter matched, sizes."""
    matched = ", ".join(f"{name} {count:,}" for name, count in data.matches.items())
    runs, rows, audit = data.fan_out_rows
    return [
        f"{data.rows:,} workflows stored ({sizes.rows:,} bulk-inserted in "
        f"{data.seed_seconds:.1f} s incl. VACUUM ANALYZE); rows matched per list query: "
        f"{matched}",
        f"workflow page: PARALLEL of {data.fan_out_width:,} branches run on the cluster "
        f"({runs:,} step runs, {rows:,} branch results, {audit} audit rows), page "
        f"{result.page_bytes / 1024:,.0f} KiB",
        f"per run: {sizes.rounds} requests per list query, {sizes.page_loads} page loads and "
        f"histories, after {sizes.warmup} warm-up rounds; live stream: "
        f"{sizes.live_workflows} workflows, {sizes.live_streams} streams; "
        "seconds: set-up (cluster, fan-out, seed, server) {:.1f}, HTTP runs {:.1f}, "
        "stopping {:.1f}, live stream {:.1f}".format(*result.seconds),
        f"machine load (1-minute average, {os.cpu_count()} cores) before the HTTP runs "
        f"{result.load[0]:.2f}, after {result.load[1]:.2f}",
    ]


def _log_dir(cluster: LocalCluster) -> Path:
    if cluster.log_dir is None:  # set when the cluster starts
        raise RuntimeError("the cluster has no log directory")
    return cluster.log_dir


def bench_server(sizes: ServerSizes, *, live: bool = True) -> tuple[list[Figure], list[str]]:
    """Set everything up, run every figure ``sizes.runs`` times; the rows and the notes."""
    result = ServerRuns()
    clock = time.perf_counter
    began = clock()
    with (
        distributed_cluster(split_step_queues=False) as cluster,
        ruvon_server(cluster.env, _log_dir(cluster), TOKEN) as server,
    ):
        # The server starts up while the workflows are run and stored.
        data = run_with_client(
            cluster, lambda client, db: seed_workflows(client, db, sizes.rows, sizes.fan_out_width)
        )
        url = server.wait_up()
        up, before = clock(), os.getloadavg()[0]
        measure_http(url, data, sizes, result)
        timed = clock()
        result.load = (before, os.getloadavg()[0])
    stopped = clock()
    if live:
        for _ in range(sizes.runs):
            lag = asyncio.run(measure("postgres", sizes.live_workflows, sizes.live_streams))
            result.live.append(lag)
    ended = clock()
    result.seconds = (up - began, timed - up, stopped - timed, ended - stopped)
    return figures(result), notes(data, result, sizes)
