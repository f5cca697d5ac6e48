"""The web UI over HTTP (no browser): login, the session cookie, CSRF, roles and error pages,
against ``create_app`` on SQLite and on PostgreSQL (``database_url`` in conftest.py)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import sys
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from ruvon.config import Settings
from ruvon.errors import ConfigurationError
from ruvon.implementations.execution.sync import SyncExecutionProvider
from ruvon.server.app import create_app
from ruvon.server.runtime import ServerRuntime
from ruvon.server.tokens import Actor, Role, TokenSet
from ruvon.server.ui import routes_cluster as ui_cluster
from ruvon.server.ui.session import COOKIE_NAME, SessionCodec, new_session, session_key
from ruvon.testing.processes import REPO_ROOT
from tests.server.conftest import OPERATOR, TOKENS, VIEWER, auth
from tests.server.ui_support import UI_REGISTRY, csrf_of, log_in, row_cells


def _settings(database_url: str) -> Settings:
    return Settings.from_env(
        {"RUVON_DATABASE_URL": database_url, "RUVON_REGISTRY_FILE": str(UI_REGISTRY)}
    )


async def _client(database_url: str, tokens: TokenSet) -> AsyncIterator[httpx.AsyncClient]:
    execution = SyncExecutionProvider()
    app = create_app(_settings(database_url), tokens, execution=execution)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://ruvon.test"
            ) as client:
                client.runtime = app.state.runtime  # type: ignore[attr-defined]
                yield client
    finally:
        execution.close()


@pytest.fixture
async def ui(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A browser-like client on the app (cookies kept), not logged in yet."""
    async for client in _client(database_url, TOKENS):
        yield client


def runtime_of(client: httpx.AsyncClient) -> ServerRuntime:
    runtime: ServerRuntime = client.runtime  # type: ignore[attr-defined]
    return runtime


async def start(client: httpx.AsyncClient, workflow_type: str, data: dict[str, object]) -> str:
    runtime = runtime_of(client)
    record = await runtime.client.start(workflow_type, data, check_broker=False)
    return (await runtime.carry_on(record)).id


def field_errors(html: str) -> list[str]:
    return re.findall(r'class="field-error"[^>]*>([^<]*)<', html)


async def test_a_page_without_a_session_goes_to_the_login_and_back(
    ui: httpx.AsyncClient,
) -> None:
    page = await ui.get("/ui/workflows?status=FAILED")
    assert page.status_code == 303
    assert page.headers["location"] == "/ui/login?next=%2Fui%2Fworkflows%3Fstatus%3DFAILED"
    login = await ui.get(page.headers["location"])
    assert login.status_code == 200
    assert 'value="/ui/workflows?status=FAILED"' in login.text
    done = await ui.post(
        "/ui/login",
        data={
            "csrf": csrf_of(login.text),
            "token": OPERATOR,
            "next": "/ui/workflows?status=FAILED",
        },
    )
    assert done.status_code == 303 and done.headers["location"] == "/ui/workflows?status=FAILED"
    assert (await ui.get("/ui/workflows?status=FAILED")).status_code == 200


async def test_the_session_cookie_is_http_only_same_site_and_holds_no_token(
    ui: httpx.AsyncClient,
) -> None:
    response = await log_in(ui, OPERATOR)
    assert response.status_code == 303
    header = response.headers["set-cookie"]
    assert header.startswith(f"{COOKIE_NAME}=")
    flags = {part.strip().lower() for part in header.split(";")}
    assert "httponly" in flags and "samesite=lax" in flags and "path=/ui" in flags
    value = ui.cookies[COOKIE_NAME]
    payload = base64.urlsafe_b64decode(value.split(".")[0] + "==")
    assert json.loads(payload)["n"] == "otto"  # the token's name and role only
    digest = hashlib.sha256(OPERATOR.encode()).hexdigest()
    for secret in (OPERATOR, digest):
        assert secret not in value and secret.encode() not in payload


async def test_a_wrong_token_or_a_missing_csrf_token_does_not_log_in(
    ui: httpx.AsyncClient,
) -> None:
    wrong = await log_in(ui, "not-a-token")
    assert wrong.status_code == 401 and "This token is not accepted." in wrong.text
    assert "not-a-token" not in wrong.text  # not echoed back into the form
    page = await ui.get("/ui/login")
    forged = await ui.post("/ui/login", data={"csrf": "guess", "token": OPERATOR})
    assert forged.status_code == 403 and "expired" in forged.text
    assert csrf_of(page.text)  # the real one was there to send
    ui.cookies.clear()
    cookieless = await ui.post("/ui/login", data={"csrf": "x", "token": OPERATOR})
    assert cookieless.status_code == 400 and "allow cookies" in cookieless.text
    assert (await ui.get("/ui/workflows")).status_code == 303  # still logged out


async def test_a_forged_or_foreign_cookie_is_no_session(ui: httpx.AsyncClient) -> None:
    await log_in(ui, VIEWER)
    payload_text, _, signature = ui.cookies[COOKIE_NAME].partition(".")
    payload = json.loads(base64.urlsafe_b64decode(payload_text + "=="))
    payload["r"] = int(Role.ADMIN)  # a viewer promoting itself
    raised = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
    ui.cookies.set(COOKIE_NAME, f"{raised}.{signature}", domain="ruvon.test", path="/ui")
    assert (await ui.get("/ui/workflows")).status_code == 303
    other_server = SessionCodec(session_key({}))  # another key: another server's cookie
    foreign = other_server.encode(new_session(Actor("mallory", Role.ADMIN)))
    ui.cookies.set(COOKIE_NAME, foreign, domain="ruvon.test", path="/ui")
    assert (await ui.get("/ui/workflows")).status_code == 303


def test_a_configured_session_secret_is_shared_by_servers_and_expiry_holds() -> None:
    env = {"RUVON_SERVER_SESSION_SECRET": "a long shared secret"}
    one, two = SessionCodec(session_key(env)), SessionCodec(session_key(env))
    session = new_session(Actor("otto", Role.OPERATOR))
    assert two.decode(one.encode(session)) == session
    expired = session.__class__(actor=session.actor, csrf=session.csrf, expires=1.0)
    assert two.decode(one.encode(expired)) is None
    assert two.decode("garbage") is None and two.decode("a.b") is None


async def test_every_operation_form_checks_the_csrf_token(ui: httpx.AsyncClient) -> None:
    await log_in(ui, OPERATOR)
    waiting = await start(ui, "UiApproval", {})
    for action in ("cancel", "resume", "approve", "reject", "retry"):
        refused = await ui.post(f"/ui/workflows/{waiting}/{action}", data={"csrf": "wrong"})
        assert refused.status_code == 403, action
        assert "security token does not match" in refused.text
        missing = await ui.post(f"/ui/workflows/{waiting}/{action}", data={})
        assert missing.status_code == 403, action
    record = await runtime_of(ui).persistence.load_workflow(waiting)
    assert record.status == "WAITING_HUMAN"
    logout = await ui.post("/ui/logout", data={"csrf": "wrong"})
    assert logout.status_code == 403
    assert (await ui.get("/ui/workflows")).status_code == 200  # still logged in


async def test_a_viewer_sees_no_operator_forms_and_its_post_is_a_readable_403(
    ui: httpx.AsyncClient,
) -> None:
    await log_in(ui, VIEWER)
    waiting = await start(ui, "UiReview", {})
    page = await ui.get(f"/ui/workflows/{waiting}")
    assert page.status_code == 200
    for form in ("/resume", "/cancel", "/retry", "/approve"):
        assert f"{waiting}{form}" not in page.text
    refused = await ui.post(f"/ui/workflows/{waiting}/cancel", data={"csrf": csrf_of(page.text)})
    assert refused.status_code == 403
    assert "&#39;vera&#39; has the role viewer; this needs operator" in refused.text
    assert "Traceback" not in refused.text
    record = await runtime_of(ui).persistence.load_workflow(waiting)
    assert record.status == "WAITING_HUMAN"


async def test_the_workflow_page_shows_its_priority(ui: httpx.AsyncClient) -> None:
    await log_in(ui, VIEWER)
    runtime = runtime_of(ui)
    record = await runtime.client.start("UiReview", {}, priority=6, check_broker=False)
    page = await ui.get(f"/ui/workflows/{(await runtime.carry_on(record)).id}")
    assert page.status_code == 200
    assert re.search(r'data-testid="priority">6<', page.text), page.text
    assert 'data-testid="deadline"' not in page.text  # no workflow-level timeout: no deadline


async def test_an_operator_cancels_and_the_audit_log_names_the_session(
    ui: httpx.AsyncClient,
) -> None:
    await log_in(ui, OPERATOR)
    waiting = await start(ui, "UiReview", {})
    page = await ui.get(f"/ui/workflows/{waiting}")
    done = await ui.post(
        f"/ui/workflows/{waiting}/cancel", data={"csrf": csrf_of(page.text), "reason": "dup"}
    )
    assert done.status_code == 303 and done.headers["location"].endswith("?done=cancel")
    runtime = runtime_of(ui)
    assert (await runtime.persistence.load_workflow(waiting)).status == "CANCELLED"
    actions = [
        entry.details
        for entry in await runtime.persistence.get_audit_log(waiting)
        if entry.event_type == "OPERATOR_ACTION"
    ]
    assert {"action": "cancel", "by": "otto"} in actions
    again = await ui.post(f"/ui/workflows/{waiting}/cancel", data={"csrf": csrf_of(page.text)})
    assert again.status_code == 409 and "already CANCELLED" in again.text


async def test_a_bad_resume_value_is_a_422_next_to_its_field_and_changes_nothing(
    ui: httpx.AsyncClient,
) -> None:
    await log_in(ui, OPERATOR)
    waiting = await start(ui, "UiReview", {})
    page = await ui.get(f"/ui/workflows/{waiting}")
    assert 'name="input.amount"' in page.text and 'name="input.urgent"' in page.text
    assert '<option value="high"' in page.text  # the enum's choices
    bad = await ui.post(
        f"/ui/workflows/{waiting}/resume",
        data={"csrf": csrf_of(page.text), "input.reviewer": "ann", "input.amount": "-3"},
    )
    assert bad.status_code == 422
    assert field_errors(bad.text) == ["Input should be greater than or equal to 1"]
    assert 'id="field-amount-error"' in bad.text and 'value="-3"' in bad.text
    record = await runtime_of(ui).persistence.load_workflow(waiting)
    assert record.status == "WAITING_HUMAN" and "review" not in record.state
    good = await ui.post(
        f"/ui/workflows/{waiting}/resume",
        data={"csrf": csrf_of(page.text), "input.reviewer": "ann", "input.amount": "5"},
    )
    assert good.status_code == 303
    record = await runtime_of(ui).persistence.load_workflow(waiting)
    assert record.status == "COMPLETED"
    review = {"reviewer": "ann", "amount": 5, "priority": "low", "urgent": False, "note": None}
    assert record.state["review"] == review


async def test_unknown_ids_and_bad_filters_are_readable_pages(ui: httpx.AsyncClient) -> None:
    await log_in(ui, VIEWER)
    missing = await ui.get("/ui/workflows/no-such-id")
    assert missing.status_code == 404
    assert "&#39;no-such-id&#39; not found" in missing.text and "Traceback" not in missing.text
    assert (await ui.get("/ui/workflows/no-such-id/live")).status_code == 404
    nowhere = await ui.get("/ui/no/such/page")
    assert nowhere.status_code == 404 and "There is no page at /ui/no/such/page" in nowhere.text
    bad = await ui.get("/ui/workflows?status=NOPE&since=yesterday&cursor=zzz")
    assert bad.status_code == 422
    assert field_errors(bad.text) == [
        "&#39;NOPE&#39; is not a status",
        "a date and time like 2026-01-31T09:00 (UTC)",
    ]
    assert "not a cursor of this list" in bad.text
    backwards = await ui.get("/ui/workflows?since=2026-02-01T00:00&until=2026-01-01T00:00")
    assert backwards.status_code == 422 and "must be after" in backwards.text


async def test_injection_like_strings_are_shown_as_text(ui: httpx.AsyncClient) -> None:
    await log_in(ui, VIEWER)
    hostile = "'; DROP TABLE workflows; --<script>alert(1)</script>"
    listing = await ui.get("/ui/workflows", params={"type": hostile, "id": hostile})
    assert listing.status_code == 200
    assert "<script>alert(1)</script>" not in listing.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in listing.text
    workflow_id = await start(ui, "UiReview", {"note": hostile})
    page = await ui.get(f"/ui/workflows/{workflow_id}")
    assert "<script>alert(1)</script>" not in page.text
    assert (await ui.get("/ui/workflows")).status_code == 200  # the table is still there


async def test_the_list_filters_counts_and_pages(ui: httpx.AsyncClient) -> None:
    await log_in(ui, VIEWER)
    ids = [await start(ui, "UiApproval", {}) for _ in range(3)]
    flaky = await start(ui, "UiFlaky", {"marker_dir": "/nonexistent-dir"})
    page = await ui.get("/ui/workflows")
    assert re.search(r'data-testid="count-WAITING_HUMAN">3<', page.text)
    assert re.search(r'data-testid="count-FAILED">1<', page.text)
    failed = await ui.get("/ui/workflows", params={"status": "failed"})
    assert flaky in failed.text and not any(i in failed.text for i in ids)
    by_type = await ui.get("/ui/workflows/rows", params={"type": "UiApproval"})
    assert all(i in by_type.text for i in ids) and flaky not in by_type.text
    prefix = await ui.get("/ui/workflows", params={"id": ids[1][:6]})
    assert ids[1] in prefix.text
    whole = await ui.get("/ui/workflows", params={"id": ids[1]})
    assert whole.status_code == 303 and whole.headers["location"] == f"/ui/workflows/{ids[1]}"


async def test_a_failed_step_shows_its_traceback_in_the_history_and_folded_on_the_page(
    ui: httpx.AsyncClient, tmp_path: Path
) -> None:
    await log_in(ui, VIEWER)
    workflow_id = await start(ui, "UiFlaky", {"marker_dir": str(tmp_path)})
    history = await ui.get(f"/api/v1/workflows/{workflow_id}/history", headers=auth(VIEWER))
    assert history.status_code == 200, history.text
    [failed] = [e for e in history.json()["audit"] if e["event_type"] == "STEP_FAILED"]
    text = failed["details"]["traceback"]
    assert "ui_workflows/steps.py" in text and "in fail_first_time" in text
    assert failed["details"]["error"] == (
        "ConnectionError: the payment service timed out <b>(first try)</b>"
    )
    page = (await ui.get(f"/ui/workflows/{workflow_id}")).text
    folded = re.search(
        r'<details class="failure" data-testid="traceback">(.*?)</details>',
        page,
        re.S,
    )
    assert folded is not None, page
    assert "Failed at Charge" in folded.group(1) and "in fail_first_time" in folded.group(1)
    assert "&lt;b&gt;(first try)&lt;/b&gt;" in folded.group(1)  # shown as text, never markup


async def test_paging_follows_the_cursor(ui: httpx.AsyncClient) -> None:
    await log_in(ui, VIEWER)
    from ruvon.server.ui import routes_list

    ids = [await start(ui, "UiApproval", {}) for _ in range(3)]
    routes_list.PAGE_SIZE, size = 2, routes_list.PAGE_SIZE
    try:
        first = await ui.get("/ui/workflows")
        link = re.search(r'href="(/ui/workflows\?cursor=[^"]+)" rel="next"', first.text)
        assert link
        second = await ui.get(link.group(1).replace("&amp;", "&"))
    finally:
        routes_list.PAGE_SIZE = size
    assert [i in first.text for i in ids] == [False, True, True]
    assert ids[0] in second.text and 'rel="next"' not in second.text


async def test_definitions_schedules_and_the_workflow_page_render(ui: httpx.AsyncClient) -> None:
    await log_in(ui, VIEWER)
    definitions = await ui.get("/ui/definitions")
    assert definitions.status_code == 200
    assert (
        "UiReview" in definitions.text
        and "tests.server.ui_workflows.steps.ReviewInput" in definitions.text
    )
    assert (await ui.get("/ui/schedules")).status_code == 200
    saga = await ui.get(f"/ui/workflows/{await start(ui, 'ExecSaga', {})}")
    assert "Compensation log" in saga.text and "step-compensated" in saga.text
    parent = await ui.get(f"/ui/workflows/{await start(ui, 'ExecParent', {'value': 1})}")
    assert "Children" in parent.text and "ExecChild" in parent.text
    fan_out = await ui.get(f"/ui/workflows/{await start(ui, 'ExecFanOut', {'items': [1, 2]})}")
    assert "PARALLEL branches" in fan_out.text and "2 branches, 2 succeeded" in fan_out.text
    css = await ui.get("/ui/static/ruvon.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


async def test_a_viewer_reads_the_cluster_page_from_the_nav(
    ui: httpx.AsyncClient, database_url: str
) -> None:
    await log_in(ui, VIEWER)
    listing = await ui.get("/ui/workflows")
    assert '<a href="/ui/cluster" >Cluster</a>' in listing.text  # in the nav of every page
    page = await ui.get("/ui/cluster")
    assert page.status_code == 200 and "<title>Cluster · Ruvon</title>" in page.text
    assert '<a href="/ui/cluster" aria-current="page">Cluster</a>' in page.text
    if database_url.startswith("sqlite"):
        assert "Embedded: no cluster" in page.text and "<table" not in page.text
    else:  # PostgreSQL: a cluster client; no heartbeat directory set here, no worker pinged
        assert "Embedded" not in page.text
        assert row_cells(page.text, "data-queue", "default")[2:5] == ["0", "0", "0"]
        assert "RUVON_HEALTH_DIR</code> is not set on this server" in page.text
        assert "No recoveries" in page.text


async def test_a_failing_cluster_read_is_a_500_page_without_a_traceback(
    ui: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    await log_in(ui, VIEWER)

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(ui_cluster, "cluster_view", broken)
    page = await ui.get("/ui/cluster")
    assert page.status_code == 500
    assert "The server failed unexpectedly; its log has the details." in page.text
    assert "secret internals" not in page.text and "Traceback" not in page.text
    assert "secret internals" in caplog.text


async def test_anonymous_access_reads_without_a_login_and_cannot_operate(
    database_url: str,
) -> None:
    tokens = TokenSet([(OPERATOR, Role.OPERATOR, "otto")], anonymous=Role.VIEWER)
    async for client in _client(database_url, tokens):
        listing = await client.get("/ui/workflows")
        assert listing.status_code == 200 and "anonymous" in listing.text
        waiting = await start(client, "UiReview", {})
        page = await client.get(f"/ui/workflows/{waiting}")
        assert f"{waiting}/resume" not in page.text and "Log in" in page.text
        csrf = csrf_of((await client.get("/ui/login")).text)  # the same session's token
        refused = await client.post(f"/ui/workflows/{waiting}/cancel", data={"csrf": csrf})
        assert refused.status_code == 403
        await log_in(client, OPERATOR)  # a token still logs in with more rights
        page = await client.get(f"/ui/workflows/{waiting}")
        assert f"{waiting}/resume" in page.text


def test_the_wheel_carries_the_templates_and_static_files(tmp_path: Path) -> None:
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "-w",
            str(tmp_path),
            str(REPO_ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("ruvon-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    ui = Path(__file__).parents[2] / "ruvon" / "server" / "ui"
    for folder in ("templates", "static"):
        for file in (ui / folder).iterdir():
            assert f"ruvon/server/ui/{folder}/{file.name}" in names


@pytest.mark.parametrize("value", ["0", "soon", "99999"])
def test_a_bad_refresh_interval_is_refused_naming_the_variable(
    value: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("RUVON_SERVER_UI_REFRESH", value)
    with pytest.raises(ConfigurationError, match="RUVON_SERVER_UI_REFRESH="):
        create_app(_settings(f"sqlite:///{tmp_path / 'x.sqlite3'}"), TOKENS)


async def test_over_https_the_cookie_is_secure(database_url: str) -> None:
    async for client in _client(database_url, TOKENS):
        client.base_url = httpx.URL("https://ruvon.test")
        response = await log_in(client, VIEWER)
        flags = {part.strip().lower() for part in response.headers["set-cookie"].split(";")}
        assert "secure" in flags


async def test_an_unexpected_failure_is_a_readable_500_page_without_a_traceback(
    ui: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    await log_in(ui, VIEWER)

    async def broken(workflow_id: str) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(runtime_of(ui).persistence, "load_workflow", broken)
    page = await ui.get("/ui/workflows/any")
    assert page.status_code == 500
    assert "The server failed unexpectedly; its log has the details." in page.text
    assert "secret internals" not in page.text and "Traceback" not in page.text
    assert "secret internals" in caplog.text  # the log has it, for the operator
