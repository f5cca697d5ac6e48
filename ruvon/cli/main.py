"""The ``ruvon`` command group: global options, command registration, error handling."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import click

from ruvon import __version__
from ruvon.cli.commands_beat import beat_command, scan_zombies_command
from ruvon.cli.commands_concurrency import concurrency_command
from ruvon.cli.commands_control import cancel_command, resume_command, retry_command
from ruvon.cli.commands_db import db_group
from ruvon.cli.commands_flower import flower_command
from ruvon.cli.commands_health import health_command
from ruvon.cli.commands_inspect import list_command, logs_command, show_command, steps_command
from ruvon.cli.commands_run import run_command, start_command
from ruvon.cli.commands_schedules import schedules_group
from ruvon.cli.commands_server import server_command
from ruvon.cli.commands_signal import signal_command
from ruvon.cli.commands_validate import validate_command
from ruvon.cli.commands_worker import worker_command
from ruvon.cli.failures import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    Interrupted,
    debug_enabled,
    describe,
    exit_code_for,
    format_traceback,
)
from ruvon.cli.logs_to_terminal import engine_logs_to_terminal
from ruvon.cli.render import Output, silence_stdout
from ruvon.cli.runtime import CliConfig


class RuvonGroup(click.Group):
    """A group that turns every error a command raises into one line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            with engine_logs_to_terminal():
                return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except BrokenPipeError:
            # The reader went away (`ruvon list --json | head -1`): nothing left to say.
            silence_stdout()
            raise click.exceptions.Exit(EXIT_FAILURE) from None
        except (Interrupted, KeyboardInterrupt) as exc:
            if isinstance(exc, KeyboardInterrupt):
                Output().err.print("\ninterrupted", style="yellow")
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
        except Exception as exc:
            output = Output()
            if debug_enabled():
                output.err.print(format_traceback(exc), markup=False, highlight=False)
            message, hint = describe(exc)
            output.error(message, hint)
            raise click.exceptions.Exit(exit_code_for(exc)) from None


_EPILOG = """\b
Exit codes: 0 ok (completed, or waiting for a person), 1 workflow failed or other error,
2 bad usage / definition / input, 3 database error, 4 workflow not found, 130 Ctrl-C.
"""


@click.group(
    cls=RuvonGroup,
    epilog=_EPILOG,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, "--version", "-V", prog_name="ruvon")
@click.option(
    "--db",
    "db_url",
    metavar="URL",
    help="Database URL (sqlite:///FILE, memory://) or a SQLite file path; "
    "overrides RUVON_DATABASE_URL (default: sqlite:///ruvon.sqlite3 in the current directory).",
)
@click.pass_context
def cli(ctx: click.Context, db_url: str | None) -> None:
    """Ruvon: durable workflows from YAML and plain Python step functions.

    Run a workflow file with `ruvon run FILE.yaml`; inspect what ran with `ruvon list`,
    `ruvon show ID` and `ruvon logs ID`; continue one with `ruvon resume ID`.
    Set RUVON_DEBUG=1 for tracebacks of unexpected errors.
    """
    ctx.obj = CliConfig(db_url=db_url)


for _command in (
    run_command,
    start_command,
    resume_command,
    signal_command,
    retry_command,
    cancel_command,
    list_command,
    show_command,
    logs_command,
    steps_command,
    concurrency_command,
    validate_command,
    db_group,
    worker_command,
    beat_command,
    flower_command,
    scan_zombies_command,
    schedules_group,
    health_command,
    server_command,
):
    cli.add_command(_command)


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point (``ruvon``); exits with the command's exit code."""
    cli.main(args=list(argv) if argv is not None else sys.argv[1:], prog_name="ruvon")


if __name__ == "__main__":
    main()
