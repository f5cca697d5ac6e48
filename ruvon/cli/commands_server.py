"""``ruvon server``: the REST API (Ruvon Server) over the configured database.

The same database settings as every command (``--db`` / ``RUVON_DATABASE_URL``): the cluster's
PostgreSQL, or an embedded SQLite file. Tokens come from the file ``RUVON_SERVER_TOKENS``
names; without any (and without ``RUVON_SERVER_ANONYMOUS``) the server refuses to start.
"""

from __future__ import annotations

import os

import click

from ruvon.cli.commands_worker import require_module
from ruvon.cli.render import Output
from ruvon.cli.runtime import CliConfig, add_import_paths

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8800


def _check_installed() -> None:
    for module in ("fastapi", "uvicorn"):
        require_module(
            module,
            "ruvon server needs the server extra (FastAPI, uvicorn): pip install 'ruvon[server]'",
        )


@click.command("server")
@click.option("--host", default=DEFAULT_HOST, show_default=True, help="Interface to listen on.")
@click.option(
    "--port",
    "-p",
    type=click.IntRange(1, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="HTTP port.",
)
@click.pass_obj
def server_command(config: CliConfig, host: str, port: int) -> None:
    """Serve the REST API (/api/v1, OpenAPI at /openapi.json) over the configured database.

    Tokens: RUVON_SERVER_TOKENS names a file of `ROLE TOKEN [NAME]` lines (roles viewer,
    operator, admin; a token may be given as sha256:<hex>). RUVON_SERVER_ANONYMOUS=viewer
    lets requests without a token read. Browsers on other origins get no CORS headers unless
    RUVON_SERVER_CORS_ORIGINS lists theirs (scheme://host[:port], comma-separated).
    """
    _check_installed()
    from ruvon.server.app import create_app
    from ruvon.server.serve import serve
    from ruvon.server.tokens import load_token_set

    settings = config.settings()
    tokens = load_token_set(os.environ)  # before anything listens: no tokens, no server
    add_import_paths(settings.config_dir)  # step modules of the registry's workflows
    app = create_app(settings, tokens)
    Output().err.print(
        f"Ruvon Server on http://{host}:{port} ({len(tokens)} tokens"
        + (f", anonymous {tokens.anonymous.label}" if tokens.anonymous is not None else "")
        + f"), database {_describe(settings.database_url)}"
        + (f", CORS for {', '.join(app.state.cors_origins)}" if app.state.cors_origins else ""),
        markup=False,
        highlight=False,
    )
    serve(app, host, port)  # uvicorn, ending the live streams first at shutdown


def _describe(url: str) -> str:
    from ruvon.db_schema import migrations

    return migrations.describe_url(url)
