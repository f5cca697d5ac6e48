"""``ruvon db``: the schema's migrations (upgrade, downgrade, current, check).

Every subcommand works on the database of the global ``--db`` / ``RUVON_DATABASE_URL``
(PostgreSQL or SQLite) through :mod:`ruvon.db_schema.migrations`. A database that cannot be
reached is one line naming host and database (never the password), exit 3.
"""

from __future__ import annotations

import click

from ruvon.cli.failures import EXIT_FAILURE
from ruvon.cli.render import Output
from ruvon.cli.runtime import CliConfig
from ruvon.db_schema import migrations
from ruvon.errors import ConfigurationError


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
    if before == after:
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
    found = migrations.current_revision(url)
    head = migrations.head_revision()
    if as_json:
        output.json({"database": migrations.describe_url(url), "current": found, "head": head})
    elif found == head:
        output.line(found, ("  (head)", "green"))
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
