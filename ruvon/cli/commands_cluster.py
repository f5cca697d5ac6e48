"""``ruvon start TYPE --cluster`` / ``--wait``: start a workflow on the worker cluster.

The workflow is stored in the cluster's PostgreSQL with its start run and announced to the
workers through the broker (:class:`ruvon.Client`); nothing runs in this process. ``--wait``
prints each step as it commits (see :mod:`ruvon.cli.follow`) until the workflow settles (a
terminal status, or waiting for a person) or the timeout passes.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text

from ruvon.builder import WorkflowBuilder
from ruvon.cli.failures import EXIT_FAILURE, CommandError
from ruvon.cli.follow import follow_on_cluster
from ruvon.cli.render import Output, fields_grid, status_text
from ruvon.cli.runtime import CliConfig
from ruvon.cli.session import exit_code_of
from ruvon.client import Client
from ruvon.errors import WaitTimeout
from ruvon.models import WorkflowStatus

__all__ = ["EXIT_TIMEOUT", "start_on_cluster"]

#: ``--wait`` ran out of time (the workflow goes on; ``ruvon show ID`` tells how it ends).
EXIT_TIMEOUT = 5


async def start_on_cluster(
    builder: WorkflowBuilder,
    config: CliConfig,
    output: Output,
    workflow_type: str,
    data: dict[str, Any],
    *,
    idempotency_key: str | None,
    wait: bool,
    timeout: float,
    version: str | None = None,
    priority: int | None = None,
) -> int:
    """Start ``workflow_type`` on the cluster; with ``wait``, report how it settled."""
    if not builder.settings.database_url.split("://", 1)[0].startswith("postgres"):
        raise CommandError(
            "--cluster/--wait start the workflow on the worker cluster, which shares a "
            "PostgreSQL database: set RUVON_DATABASE_URL (or --db) to postgresql://..."
        )
    async with Client(builder, settings=builder.settings) as client:
        record = await client.start(
            workflow_type, data, idempotency_key=idempotency_key, version=version, priority=priority
        )
        started = workflow_type + (
            f" v{record.workflow_version}" if record.workflow_version else ""
        )
        output.line(("Started ", "bold"), (record.id, "bold cyan"), f" ({started}) on the cluster")
        if not wait:
            output.line(
                ("Follow it with: ", "dim"), (config.command_line("show", record.id), "bold")
            )
            return 0
        try:
            done = await follow_on_cluster(client, record.id, output, timeout=timeout)
        except WaitTimeout as exc:
            output.error(str(exc), hint=config.command_line("show", record.id))
            return EXIT_TIMEOUT
    rows: list[tuple[str, Text | str]] = [("Status", status_text(str(done.status)))]
    if done.error:
        rows.append(("Error", Text(done.error, style="red")))
    output.print(fields_grid(rows))
    output.line(("Final state:" if done.status.is_terminal else "State:", "dim"))
    output.pretty_json(done.state)
    if done.status is WorkflowStatus.WAITING_HUMAN:
        command = config.command_line("resume", done.id, "--input", "'{...}'")
        output.line(("Waiting for a person; resume with: ", "dim"), (command, "bold"))
    code = exit_code_of(done.status)
    return EXIT_FAILURE if code else 0
