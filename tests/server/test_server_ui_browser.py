"""The web UI in a real headless browser (Debian's chromium, driven by Playwright), against the
real ``ruvon server`` process on a SQLite file, with a tokens file; the cluster page also against
one on PostgreSQL and Redis with a real worker (:func:`cluster_server`), the concurrency page
against one of its own (:func:`gate_server`).

One server and one browser for the module; each test has its own browser context (cookies).
Screenshots of every page go to ``test-artifacts/screenshots/`` (``RUVON_TEST_ARTIFACTS``).
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from ruvon.config import Settings
from ruvon.testing.cluster import LocalCluster
from ruvon.testing.processes import free_port, spawn, stop_process_group
from tests.integration.distributed_support import started_cluster
from tests.integration.test_cli_process import cli_argv, cli_env
from tests.server.cluster_support import Recovered, recover_two_runs
from tests.server.conftest import API_REGISTRY
from tests.server.ui_support import GATE_REGISTRY, UI_REGISTRY, screenshot_dir

CHROMIUM = Path("/usr/bin/chromium")

VIEWER_TOKEN, OPERATOR_TOKEN = "ui-viewer-token", "ui-operator-token"
IDLE_QUEUE = "ui-idle"  # the cluster server's default queue: no worker consumes it
pytestmark = pytest.mark.slow
_T = TypeVar("_T")


@dataclass
class Server:
    url: str
    ids: dict[str, str]
    log: Path

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
        return httpx.request(
            method, f"{self.url}/api/v1{path}", headers=headers, timeout=20, **kwargs
        )

    def start_answer(self, workflow_type: str, data: dict[str, Any]) -> httpx.Response:
        return self.api("POST", "/workflows", json={"type": workflow_type, "data": data})

    def start(self, workflow_type: str, data: dict[str, Any]) -> str:
        response = self.start_answer(workflow_type, data)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])


def _wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"ruvon server exited {process.returncode}: {log.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError(f"ruvon server did not answer at {url}: {log.read_text()}")


@contextmanager
def running_server(home: Path, env: dict[str, str]) -> Iterator[Server]:
    """``ruvon server`` with ``env`` and this module's tokens file, until the block ends."""
    tokens = home / "tokens"
    tokens.write_text(f"viewer {VIEWER_TOKEN} vera\noperator {OPERATOR_TOKEN} otto\n")
    port = free_port()
    env = {**env, "RUVON_SERVER_TOKENS": str(tokens)}
    log = home / "server.log"
    process = spawn(cli_argv("server", "--port", str(port)), env, log)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, process, log)
        yield Server(url=url, ids={}, log=log)
    finally:
        stop_process_group(process)
    output = log.read_text()
    assert VIEWER_TOKEN not in output and OPERATOR_TOKEN not in output  # never logged
    assert "Traceback" not in output


def sqlite_env(home: Path, registry: Path, *, refresh: str = "0.5") -> dict[str, str]:
    """A server's environment: its own SQLite file in ``home``, ``registry``'s workflow types,
    pages polling every ``refresh`` seconds (default 500 ms; the product's default is 2 s)."""
    return {
        **cli_env(),
        "RUVON_DATABASE_URL": f"sqlite:///{home / 'ui.sqlite3'}",
        "RUVON_REGISTRY_FILE": str(registry),
        "RUVON_SERVER_UI_REFRESH": refresh,
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("ui-server")
    with running_server(home, sqlite_env(home, UI_REGISTRY)) as found:
        for name, workflow_type, data in (
            ("saga", "ExecSaga", {}),
            ("fan_out", "ExecFanOut", {"items": [1, 2, 3]}),
            ("parent", "ExecParent", {"value": 4}),
            ("flaky", "UiFlaky", {"marker_dir": str(home), "order": "A-17"}),
            ("review", "UiReview", {"order": "A-18"}),
            ("approval", "UiApproval", {"order": "A-19"}),
        ):
            found.ids[name] = found.start(workflow_type, data)
        yield found


def off_the_loop(call: Callable[..., _T], *args: Any) -> _T:
    """``call(*args)`` on another thread: Playwright's sync API keeps an event loop running on
    this one, and ``asyncio.run`` (LocalCluster's database, the seeding) refuses to start there."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(call, *args).result()


@dataclass
class ClusterServer:
    """``ruvon server`` on a real cluster: one worker (heartbeat files on), queued runs on
    :data:`IDLE_QUEUE`, and two recoveries made by the beat's statements."""

    server: Server
    cluster: LocalCluster
    recovered: Recovered


def _wait_for_heartbeats(cluster: LocalCluster, health: Path) -> None:
    deadline = time.monotonic() + 20
    nodes = [worker.hostname for worker in cluster.workers]
    while not all((health / f"{node}.ready").exists() for node in nodes):
        assert time.monotonic() < deadline, f"no .ready heartbeat file in {health} for {nodes}"
        time.sleep(0.1)


async def _seed(url: str, settings: Settings) -> Recovered:
    async with httpx.AsyncClient(base_url=url, timeout=20) as http:
        return await recover_two_runs(http, settings, token=OPERATOR_TOKEN)


@pytest.fixture(scope="module")
def cluster_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterServer]:
    home = tmp_path_factory.mktemp("ui-cluster")
    health = home / "health"
    health.mkdir()
    opened = started_cluster({"RUVON_HEALTH_DIR": str(health)})
    cluster = off_the_loop(opened.__enter__)
    try:
        _wait_for_heartbeats(cluster, health)
        env = {
            **cluster.env,
            "RUVON_REGISTRY_FILE": str(API_REGISTRY),
            "RUVON_DEFAULT_QUEUE": IDLE_QUEUE,
        }
        with running_server(home, env) as server:
            recovered = off_the_loop(asyncio.run, _seed(server.url, Settings.from_env(env)))
            server.start("ApiTick", {})  # a third run waiting on the idle queue
            yield ClusterServer(server, cluster, recovered)
    finally:
        off_the_loop(opened.__exit__, None, None, None)


@pytest.fixture(scope="module")
def gate_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``ruvon server`` on its own SQLite file with the ``UiGate`` type only: the other pages'
    counts never see its workflows."""
    home = tmp_path_factory.mktemp("ui-gate")
    with running_server(home, sqlite_env(home, GATE_REGISTRY)) as found:
        yield found


@pytest.fixture(scope="module")
def retry_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``ruvon server`` on its own SQLite file, its pages polling every 200 ms, with one
    ``UiFlaky`` whose retry takes 1.5 s (its last step sleeps): the other pages' counts never see
    it."""
    home = tmp_path_factory.mktemp("ui-retry")
    with running_server(home, sqlite_env(home, UI_REGISTRY, refresh="0.2")) as found:
        data = {"marker_dir": str(home), "order": "A-20", "finish_seconds": 1.5}
        found.ids["flaky"] = found.start("UiFlaky", data)
        yield found


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # A missing browser fails these tests rather than skipping them: the UI is never untested.
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/install dev (it installs chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield launched
        finally:
            launched.close()


def _page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    context.set_default_timeout(5000)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    yield from _page(browser)


def log_in(page: Page, server: Server, token: str, *, shot: str | None = None) -> None:
    page.goto(f"{server.url}/ui/workflows")
    expect(page).to_have_url(f"{server.url}/ui/login?next=%2Fui%2Fworkflows")
    page.get_by_label("API token").fill(token)
    if shot:
        page.screenshot(path=screenshot_dir() / shot)
    page.keyboard.press("Enter")  # the form submits from the keyboard
    expect(page).to_have_url(f"{server.url}/ui/workflows")


def tab_to(page: Page, text: str, *, presses: int = 30) -> None:
    """Press Tab until the focused element reads ``text`` (the page works without a mouse)."""
    for _ in range(presses):
        page.keyboard.press("Tab")
        focused = page.evaluate("document.activeElement && document.activeElement.innerText")
        if focused and focused.strip() == text:
            return
    raise AssertionError(f"{text!r} is not reachable with the Tab key")


def shoot(page: Page, name: str, *, full: bool = True) -> None:
    page.screenshot(path=screenshot_dir() / name, full_page=full)


def test_operator_filters_the_list_opens_a_failed_workflow_and_retries_it(
    page: Page, server: Server
) -> None:
    page.goto(f"{server.url}/ui/login")
    page.get_by_label("API token").fill("not-a-token")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_test_id("login-error")).to_have_text("This token is not accepted.")

    log_in(page, server, OPERATOR_TOKEN, shot="login.png")
    expect(page.get_by_test_id("actor")).to_contain_text("otto")
    expect(page.locator("tbody tr")).to_have_count(7)  # six started, and ExecParent's child
    expect(page.get_by_test_id("count-FAILED")).to_have_text("1")
    expect(page.get_by_test_id("count-WAITING_HUMAN")).to_have_text("2")
    shoot(page, "workflows.png")

    page.get_by_label("Status", exact=True).select_option("FAILED")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"/ui/workflows\?status=FAILED&"))
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("UiFlaky")
    shoot(page, "workflows-filtered.png")

    flaky = server.ids["flaky"]
    page.get_by_role("link", name=flaky[:8]).click()
    expect(page).to_have_url(f"{server.url}/ui/workflows/{flaky}")
    expect(page.get_by_test_id("workflow-status")).to_have_text("FAILED")
    expect(page.get_by_test_id("current-step")).to_have_text("Charge")
    # The error's markup is shown as text, never rendered.
    expect(page.get_by_test_id("workflow-error")).to_contain_text("<b>(first try)</b>")
    assert page.locator("b", has_text="first try").count() == 0
    expect(page.get_by_test_id("step-Charge")).to_have_class("step step-failed")
    shoot(page, "workflow-failed.png")

    tab_to(page, "Retry from Charge")
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("notice")).to_have_text("Retried from the failed step.")
    expect(page.get_by_test_id("workflow-status")).to_have_text("COMPLETED")
    expect(page.get_by_test_id("state")).to_contain_text('"charged": true')
    expect(page.get_by_test_id("step-Finish")).to_have_class("step step-done")
    shoot(page, "workflow-retried.png")
    audit = page.locator("table.audit")
    expect(audit).to_contain_text('"action": "retry", "by": "otto"')


def test_a_waiting_workflow_resumes_through_the_form_generated_from_its_input_model(
    page: Page, server: Server
) -> None:
    log_in(page, server, OPERATOR_TOKEN)
    review = server.ids["review"]
    page.goto(f"{server.url}/ui/workflows/{review}")
    expect(page.get_by_test_id("workflow-status")).to_have_text("WAITING_HUMAN")
    expect(page.get_by_label("Priority")).to_have_value("low")  # the model's default

    page.get_by_label("Reviewer").fill("ann")
    page.get_by_label("Amount").fill("twelve")
    page.get_by_role("button", name="Resume").click()
    expect(page.get_by_test_id("error-amount")).to_contain_text("valid integer")
    expect(page.get_by_label("Amount")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Reviewer")).to_have_value("ann")  # what was typed stays
    expect(page.get_by_test_id("workflow-status")).to_have_text("WAITING_HUMAN")
    shoot(page, "workflow-resume-error.png")

    page.get_by_label("Amount").fill("0")
    page.get_by_role("button", name="Resume").click()
    expect(page.get_by_test_id("error-amount")).to_contain_text("greater than or equal to 1")

    page.get_by_label("Amount").fill("120")
    page.get_by_label("Priority").select_option("high")
    page.get_by_label("Urgent").check()
    page.get_by_label("Note").fill("fine <script>alert(1)</script>")
    page.get_by_role("button", name="Resume").click()
    expect(page.get_by_test_id("workflow-status")).to_have_text("COMPLETED")
    state = page.get_by_test_id("state")
    expect(state).to_contain_text('"amount": 120')
    expect(state).to_contain_text('"priority": "high"')
    expect(state).to_contain_text('"urgent": true')
    expect(state).to_contain_text("<script>alert(1)</script>")
    shoot(page, "workflow.png", full=False)  # the README's picture of a workflow page


def test_an_approval_step_is_approved_with_a_button(page: Page, server: Server) -> None:
    log_in(page, server, OPERATOR_TOKEN)
    page.goto(f"{server.url}/ui/workflows/{server.ids['approval']}")
    page.get_by_label("Reason (optional)").fill("looks right")
    shoot(page, "workflow-approval.png")
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_test_id("notice")).to_have_text("Approved.")
    expect(page.get_by_test_id("workflow-status")).to_have_text("COMPLETED")
    expect(page.get_by_test_id("state")).to_contain_text('"approver": "otto"')


def test_a_viewer_sees_no_operator_buttons_and_a_post_is_refused(
    page: Page, server: Server
) -> None:
    log_in(page, server, VIEWER_TOKEN)
    failed = server.start("UiFlaky", {"marker_dir": str(server.log.parent)})
    waiting = server.start("UiReview", {})
    for workflow_id in (failed, waiting):
        page.goto(f"{server.url}/ui/workflows/{workflow_id}")
        expect(page.get_by_test_id("workflow-status")).not_to_have_text("COMPLETED")
        expect(page.locator("section.operate")).to_have_count(0)
        expect(page.get_by_role("button", name="Retry", exact=False)).to_have_count(0)
        expect(page.get_by_role("button", name="Cancel workflow")).to_have_count(0)
        expect(page.get_by_role("button", name="Resume")).to_have_count(0)
    shoot(page, "workflow-viewer.png")
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    assert csrf
    refused = page.request.post(
        f"{server.url}/ui/workflows/{failed}/retry", form={"csrf": csrf}, max_redirects=0
    )
    assert refused.status == 403
    assert "has the role viewer; this needs operator" in refused.text()
    assert server.api("GET", f"/workflows/{failed}").json()["status"] == "FAILED"


def test_the_list_and_the_workflow_page_follow_changes_live(page: Page, server: Server) -> None:
    log_in(page, server, VIEWER_TOKEN)
    page.goto(f"{server.url}/ui/workflows?type=UiApproval")
    rows = page.locator("tbody tr")
    before = rows.count()
    started = server.start("UiApproval", {})
    expect(page.locator(f"tr[data-id='{started}']")).to_have_count(1)  # no reload
    expect(rows).to_have_count(before + 1)
    page.get_by_role("link", name=started[:8]).click()
    expect(page.get_by_test_id("workflow-status")).to_have_text("WAITING_HUMAN")
    cancelled = server.api("POST", f"/workflows/{started}/cancel", json={"reason": "test"})
    assert cancelled.status_code == 200, cancelled.text
    expect(page.get_by_test_id("workflow-status")).to_have_text("CANCELLED")
    expect(page).to_have_url(f"{server.url}/ui/workflows/{started}")


def test_the_other_pages_render_and_errors_read_as_pages(page: Page, server: Server) -> None:
    log_in(page, server, VIEWER_TOKEN)
    for path, shot, text in (
        ("/ui/definitions", "definitions.png", "UiReview"),
        ("/ui/schedules", "schedules.png", "Schedules"),
        (f"/ui/workflows/{server.ids['saga']}", "workflow-saga.png", "Compensation log"),
        (f"/ui/workflows/{server.ids['parent']}", "workflow-children.png", "Children"),
        (f"/ui/workflows/{server.ids['fan_out']}", "workflow-parallel.png", "PARALLEL branches"),
    ):
        response = page.goto(f"{server.url}{path}")
        assert response is not None and response.status == 200
        expect(page.locator("main")).to_contain_text(text)
        shoot(page, shot)
    missing = page.goto(f"{server.url}/ui/workflows/no-such-workflow")
    assert missing is not None and missing.status == 404
    expect(page.get_by_test_id("error-message")).to_contain_text("'no-such-workflow' not found")
    assert "Traceback" not in page.content()
    shoot(page, "not-found.png")


def test_the_cluster_page_opens_from_the_nav_and_says_embedded_on_sqlite(
    page: Page, server: Server
) -> None:
    log_in(page, server, VIEWER_TOKEN)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Cluster").click()
    expect(page).to_have_url(f"{server.url}/ui/cluster")
    expect(page.get_by_test_id("embedded")).to_contain_text("Embedded: no cluster")
    expect(page.locator("table")).to_have_count(0)
    shoot(page, "cluster-embedded.png")


def test_the_cluster_page_shows_the_workers_queues_and_recoveries_and_pings(
    page: Page, cluster_server: ClusterServer
) -> None:
    server, recovered = cluster_server.server, cluster_server.recovered
    [worker] = cluster_server.cluster.workers
    log_in(page, server, VIEWER_TOKEN)
    tab_to(page, "Cluster")  # the nav link, from the keyboard
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{server.url}/ui/cluster")
    expect(page.get_by_role("link", name="Cluster")).to_have_attribute("aria-current", "page")
    row = page.locator(f"tr[data-node='{worker.hostname}']")
    expect(row).to_contain_text(str(worker.pid))
    expect(row).to_contain_text("ready")
    expect(row).to_contain_text("not pinged")
    idle = page.locator(f"tr[data-queue='{IDLE_QUEUE}']")
    expect(idle.get_by_test_id("depth")).to_have_text("3")  # nobody consumes it
    expect(idle).to_contain_text("due since")
    crash = page.locator(f"tr[data-recovery='{recovered.crashed} WORKER_CRASH_DETECTED']")
    expect(crash).to_contain_text("dead-worker@host")
    expect(page.locator(f"tr[data-recovery='{recovered.lost} MESSAGE_RESENT']")).to_contain_text(
        "resent"
    )
    shoot(page, "cluster.png")

    tab_to(page, "Ping the workers")
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{server.url}/ui/cluster?ping=true")
    expect(page.get_by_test_id("ping-result")).to_have_text("1 worker answered a ping.")
    expect(row).to_contain_text("answered")
    shoot(page, "cluster-pinged.png")

    crash.get_by_role("link").click()  # a recovery's workflow opens its page
    expect(page).to_have_url(f"{server.url}/ui/workflows/{recovered.crashed}")
    expect(page.locator("main")).to_contain_text("WORKER_CRASH_DETECTED")


def _waiting_start(server: Server, lane: str, holder: str) -> tuple[str, Future[httpx.Response]]:
    """Start a second ``UiGate`` of ``lane`` on another thread: the server runs it in its own
    process (SQLite), where it waits for the lane's slot, so the request answers only once it
    is admitted. Returns its id (found in the list) and the pending answer."""
    pool = ThreadPoolExecutor(1)
    answer = pool.submit(server.start_answer, "UiGate", {"lane": lane})
    pool.shutdown(wait=False)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = server.api("GET", "/workflows", params={"type": "UiGate"}).json()["items"]
        others = [item["id"] for item in found if item["id"] != holder]
        if others:
            return others[0], answer
        time.sleep(0.05)
    raise AssertionError("the second UiGate workflow was never created")


def test_the_concurrency_page_shows_the_holder_and_the_waiting_line(
    page: Page, gate_server: Server
) -> None:
    server = gate_server
    lane = "<i>north</i>"  # keys render from state: what a user typed must stay text
    key = f"lane-{lane}"
    first = server.start("UiGate", {"lane": lane})  # holds the slot, waiting at its approval
    second, answer = _waiting_start(server, lane, first)
    try:
        log_in(page, server, VIEWER_TOKEN)
        nav = page.get_by_role("navigation", name="Main")
        nav.get_by_role("link", name="Concurrency").click()
        expect(page).to_have_url(f"{server.url}/ui/concurrency")
        line = page.locator(f'section[data-key="{key}"]')
        expect(line.locator("h2")).to_have_text(key)  # the text, not an <i> element
        expect(page.locator("main i")).to_have_count(0)
        expect(line.get_by_test_id("key-summary")).to_have_text("1 of 1 slot held, 1 waiting")
        held = line.locator(f"tr[data-slot='{first}']")
        expect(held).to_have_attribute("data-state", "holding")
        expect(held).to_contain_text("holds a slot")
        expect(held).to_contain_text("(the workflow)")
        waits = line.locator(f"tr[data-slot='{second}']")
        expect(waits).to_have_attribute("data-state", "waiting")
        expect(waits.get_by_test_id("position")).to_have_text("1st in line")
        expect(line.locator("tbody tr")).to_have_count(2)
        shoot(page, "concurrency.png")

        waits.get_by_role("link", name=second[:8]).click()  # the waiter's own page
        expect(page).to_have_url(f"{server.url}/ui/workflows/{second}")
        expect(page.get_by_test_id("concurrency")).to_have_text(
            f"waits for a slot of {key} (1st in line)"
        )
        page.goto(f"{server.url}/ui/workflows/{first}")
        expect(page.get_by_test_id("concurrency")).to_have_text(f"holds a slot of {key}")
        page.get_by_test_id("concurrency").get_by_role("link", name=key).click()
        expect(page).to_have_url(re.compile(r"/ui/concurrency\?key="))
        expect(page.get_by_test_id("key-filter")).to_have_text(key)

        # The first ends: the waiter takes the slot, and the open page follows (no reload).
        cancelled = server.api("POST", f"/workflows/{first}/cancel", json={"reason": "make room"})
        assert cancelled.status_code == 200, cancelled.text
        expect(page.locator(f"tr[data-slot='{second}']")).to_have_attribute("data-state", "holding")
        expect(page.locator(f"tr[data-slot='{first}']")).to_have_count(0)
        admitted = answer.result(timeout=20)
        assert admitted.status_code == 201, admitted.text
        assert admitted.json()["status"] == "WAITING_HUMAN"
    finally:
        if not answer.done():  # a failed check left it waiting: free its lane, then wait
            server.api("POST", f"/workflows/{first}/cancel", json={})
            answer.result(timeout=20)


def test_a_retry_slower_than_the_page_poll_lands_on_its_outcome(
    page: Page, retry_server: Server
) -> None:
    """While the retry's POST runs, the workflow moves on (retried, Charge done) and the page's
    poll sees it. Reloading then would cancel the POST's navigation: the operator would never
    see the outcome of what they sent (seen once in CI with the 2 ms retry of the test above)."""
    server, flaky = retry_server, retry_server.ids["flaky"]
    log_in(page, server, OPERATOR_TOKEN)
    page.goto(f"{server.url}/ui/workflows/{flaky}")
    expect(page.get_by_test_id("workflow-status")).to_have_text("FAILED")
    page.get_by_role("button", name="Retry from Charge").click()
    expect(page.get_by_test_id("notice")).to_have_text(
        "Retried from the failed step.", timeout=15_000
    )
    expect(page).to_have_url(re.compile(r"done=retry"))
    expect(page.get_by_test_id("workflow-status")).to_have_text("COMPLETED")
