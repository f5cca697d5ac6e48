"""Option types shared by the read commands: moments, list cursors and output formats.

A bad value is a ``click.BadParameter``: click names the option, prints the usage line and
exits 2, before anything opens the database.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

import click

from ruvon.clock import utc_now
from ruvon.records import ListPosition

F = TypeVar("F", bound=Callable[..., Any])

_AGE = re.compile(r"^\s*(?P<amount>\d+(?:\.\d+)?)\s*(?P<unit>s|m|h|d|w)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_MOMENT_HELP = "an ISO timestamp (2024-05-01, 2024-05-01T12:00, ...+02:00) or an age: 15m, 2h, 1d"

OUTPUT_FORMATS = ("table", "json", "jsonl")

json_result_option = click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the result as JSON on stdout (id, status, state, current step); the progress "
    "lines go to stderr.",
)


class MomentType(click.ParamType[datetime, Any]):
    """A point in time: ISO-8601 (no zone: local time) or an age before now (``15m``, ``2h``)."""

    name = "TIME"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        if isinstance(value, datetime):
            return value
        text = str(value)
        age = _AGE.match(text)
        if age:
            seconds = float(age["amount"]) * _UNIT_SECONDS[age["unit"].lower()]
            return utc_now() - timedelta(seconds=seconds)
        try:
            moment = datetime.fromisoformat(text.strip())
        except ValueError:
            self.fail(f"{text!r} is not a time: give {_MOMENT_HELP}", param, ctx)
        return moment.astimezone() if moment.tzinfo is None else moment


class CursorType(click.ParamType[ListPosition, Any]):
    """The opaque cursor ``ruvon list`` prints: where the previous page stopped."""

    name = "CURSOR"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> ListPosition:
        if isinstance(value, ListPosition):
            return value
        try:
            position = decode_cursor(str(value))
        except ValueError:
            self.fail(
                f"{value!r} is not a cursor printed by `ruvon list` (copy the one from its "
                "'Next page' line, or a row's \"cursor\" field)",
                param,
                ctx,
            )
        return position


def encode_cursor(position: ListPosition) -> str:
    """URL-safe text for a listing position (:meth:`ListPosition.to_cursor`)."""
    return position.to_cursor()


def decode_cursor(text: str) -> ListPosition:
    """The position :func:`encode_cursor` wrote; ``ValueError`` for anything else."""
    return ListPosition.from_cursor(text)


def output_option(default_help: str) -> Callable[[F], F]:
    """``--output table|json|jsonl`` plus ``--json`` (short for ``--output json``)."""

    def decorate(function: F) -> F:
        function = click.option(
            "--json", "as_json", is_flag=True, help="Print JSON instead of tables."
        )(function)
        return click.option(
            "--output",
            "-o",
            type=click.Choice(OUTPUT_FORMATS, case_sensitive=False),
            default=None,
            help=f"table ({default_help}), json (one array) or jsonl (one object a line).",
        )(function)

    return decorate


def output_format(output: str | None, as_json: bool) -> str:
    """The chosen format; ``--json`` with a different ``--output`` is a usage error."""
    if as_json and output not in (None, "json"):
        raise click.UsageError(f"--json and --output {output} disagree: give one of them")
    return "json" if as_json else (output or "table").lower()
