"""JSON given on the command line (``--input``/``--data``) or in a file (``--input-file``)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ruvon.cli.failures import CommandError

F = TypeVar("F", bound=Callable[..., Any])


def input_options(*, noun: str = "input") -> Callable[[F], F]:
    """``--input/--data/-d JSON`` and ``--input-file/--data-file PATH`` on one command."""

    def decorate(function: F) -> F:
        function = click.option(
            "--input-file",
            "--data-file",
            "input_file",
            metavar="PATH",
            help=f"Read the {noun} (a JSON object) from a file; '-' reads stdin.",
        )(function)
        function = click.option(
            "--input",
            "--data",
            "-d",
            "input_json",
            metavar="JSON",
            help=f"The {noun} as a JSON object, e.g. '{{\"amount\": 10}}'.",
        )(function)
        return function

    return decorate


def _parse(text: str, source: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandError(
            f"{source} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    if not isinstance(value, dict):
        raise CommandError(
            f'{source} must be a JSON object like \'{{"key": "value"}}\', '
            f"not a {type(value).__name__}"
        )
    return value


def read_json_input(input_json: str | None, input_file: str | None) -> dict[str, Any] | None:
    """The JSON object from whichever option was given; None when neither was."""
    if input_json is not None and input_file is not None:
        raise CommandError("give either --input or --input-file, not both")
    if input_json is not None:
        return _parse(input_json, "--input")
    if input_file is None:
        return None
    if input_file == "-":
        return _parse(sys.stdin.read(), "--input-file - (stdin)")
    path = Path(input_file)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CommandError(f"--input-file {path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"--input-file {path}: cannot read it: {exc}") from None
    return _parse(text, f"--input-file {path}")
