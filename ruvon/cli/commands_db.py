"""``ruvon db``: the schema's migrations (upgrade, downgrade, current, check, wait).

Every subcommand works on the database of the global ``--db`` / ``RUVON_DATABASE_URL``
(PostgreSQL or SQLite) through :mod:`ruvon.db_schema.migrations`. A database that cannot be
reached is one line naming host and database (never the password), exit 3.
"""

from __future__ import annotations

import time

import click

from ruvon.cli.failures import EXIT_FAILURE
from ruvon.cli.render import Output
from ruvon.cli.runtime import CliConfig
from ruvon.db_schema import migrations
from ruvon.errors import ConfigurationError, DatabaseUnavailable, SchemaOutOfDate


def _database_url(config: CliConfig) -> str:
    url = config.settings().database_url
    if url.startswith("memory"):
        raise ConfigurationError(
            "memory:// has no schema to migrate: pass --db sqlite:///FILE or --db "
            "postgresql://USER@HOST/DB (or set RUVON_DATABASE_URL)"
        )
    migrations.async_url(url)  # an unsupported scheme is a usage error, before connecting
    return url


def _revision_text(revision: str | None) -> str:
    return revision if revision is not None else "none (no Ruvon schema)"


@click.group("db")
def db_group() -> None:
    """Migrate the database schema (PostgreSQL or SQLite) with Ruvon's Alembic migrations.

    The database is --db or RUVON_DATABASE_URL, as for every command.
    """


@db_group.command("upgrade")
@click.option(
    "--revision",
    "-r",
    default="head",
    show_default=True,
    metavar="REVISION",
    help="Revision to migrate to.",
)
@click.pass_obj
def upgrade_command(config: CliConfig, revision: str) -> None:
    """Create or migrate the schema up to REVISION (default: the newest)."""
    output = Output()
    url = _database_url(config)
    where = migrations.describe_url(url)
    before = migrations.current_revision(url)
    migrations.upgrade(url, revision)
    after = migrations.current_revision(url)
    if after is not None and after not in migrations.known_revisions():
        output.line(
            f"{where} is at {after}, newer than this Ruvon's {migrations.SCHEMA_REVISION} and "
            "compatible with it: nothing to upgrade."
        )
    elif before == after:
        output.line(f"{where} is already at {_revision_text(after)}.")
    else:
        output.line(
            ("Upgraded ", "bold green"), f"{where} from {_revision_text(before)} to {after}."
        )


@db_group.command("downgrade")
@click.argument("revision")
@click.pass_obj
def downgrade_command(config: CliConfig, revision: str) -> None:
    """Migrate the schema down to REVISION ('base' drops every Ruvon table and its data)."""
    output = Output()
    url = _database_url(config)
    where = migrations.describe_url(url)
    before = migrations.current_revision(url)
    migrations.downgrade(url, revision)
    after = migrations.current_revision(url)
    if before == after:
        output.line(f"{where} is already at {_revision_text(after)}.")
    else:
        output.line(
            ("Downgraded ", "bold yellow"),
            f"{where} from {_revision_text(before)} to {_revision_text(after)}.",
        )


@db_group.command("current")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def current_command(config: CliConfig, as_json: bool) -> None:
    """Print the database's schema revision and whether it is the newest."""
    output = Output()
    url = _database_url(config)
    found, declared = migrations.read_schema(url)
    head = migrations.head_revision()
    problem = migrations.compatibility_problem(found, declared)
    if as_json:
        data = {"database": migrations.describe_url(url), "current": found, "head": head}
        output.json({**data, "compatible": problem is None})
    elif found == head:
        output.line(found, ("  (head)", "green"))
    elif found is not None and found not in migrations.known_revisions():
        ok = problem is None
        verdict = "declared compatible with it" if ok else "incompatible: upgrade Ruvon"
        note = f"  (newer than this Ruvon's head {head}, {verdict})"
        output.line(found, (note, "green" if ok else "yellow"))
    else:
        note = f"  (head is {head}: run `ruvon db upgrade`)"
        output.line(_revision_text(found), (note, "yellow"))


@db_group.command("check")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def check_command(config: CliConfig, as_json: bool) -> None:
    """Compare the live schema with ruvon.db_schema; list any drift and exit 1 if there is some."""
    output = Output()
    url = _database_url(config)
    where = migrations.describe_url(url)
    drift = migrations.check(url)
    if as_json:
        output.json({"database": where, "drift": drift})
    elif not drift:
        output.line(("OK", "bold green"), f"  {where} matches the schema (no drift).")
    else:
        output.line(("Drift", "bold red"), f" in {where}:")
        for item in drift:
            output.line(f"  - {item}")
    if drift:
        raise click.exceptions.Exit(EXIT_FAILURE)


@db_group.command("wait")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=300.0,
    show_default=True,
    metavar="SECONDS",
    help="Give up (exit 3) after this long.",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=2.0,
    show_default=True,
    metavar="SECONDS",
    help="Pause between two looks at the database.",
)
@click.pass_obj
def wait_command(config: CliConfig, timeout: float, interval: float) -> None:
    """Wait until this Ruvon's code can run against the database's schema, then exit 0.

    The schema must be at this code's revision, or at a newer one declared compatible with it.
    Meanwhile an unreachable database is waited for too. On timeout: exit 3, with the last
    reason (e.g. which revision the database is at, which one the code needs, what to run).
    Kubernetes runs it as the worker and beat pods' init container.
    """
    output = Output()
    url = _database_url(config)
    where = migrations.describe_url(url)
    deadline = time.monotonic() + timeout
    reported: str | None = None
    while True:
        try:
            found, declared = migrations.read_schema(url)
            problem = migrations.compatibility_problem(found, declared, database=where)
            unreachable = False
        except DatabaseUnavailable as exc:
            problem, unreachable = str(exc), True
        if problem is None:
            output.line(("OK", "bold green"), f"  {where} is at {found}: this Ruvon can run on it.")
            return
        if problem != reported:
            output.warn(f"waiting: {problem}")
            reported = problem
        left = deadline - time.monotonic()
        if left <= 0:
            error = DatabaseUnavailable if unreachable else SchemaOutOfDate
            raise error(f"gave up after {timeout:g} s waiting for {where}: {problem}")
        time.sleep(min(interval, left))
