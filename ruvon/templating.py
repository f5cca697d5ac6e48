"""Environment-variable substitution for definition files and sandboxed Jinja rendering.

:func:`substitute_env` runs once, when a YAML file is loaded: ``${NAME}`` becomes the variable's
value, ``${NAME:-default}`` falls back to ``default`` when ``NAME`` is unset *or empty* (as in a
POSIX shell), and ``$${NAME}`` is an escape for the literal text ``${NAME}``. Only string values
are substituted, never dict keys.

:func:`render_template` / :func:`render_value` run at step time with Jinja's
``ImmutableSandboxedEnvironment`` and ``StrictUndefined``: templates cannot reach Python
internals (``''.__class__``), cannot mutate their inputs (``list.append``), and a misspelt
variable is an error instead of an empty string. Integer powers over :data:`MAX_POWER_BITS` bits
and repeating a sequence more than :data:`MAX_REPEAT` times are refused too: ``'x' * 10**10``
would otherwise exhaust memory.
Rendering always yields strings.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateSyntaxError
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ruvon.errors import DefinitionError, ExpressionError, UnsafeExpressionError

__all__ = [
    "MAX_POWER_BITS",
    "MAX_REPEAT",
    "check_template",
    "render_template",
    "render_value",
    "substitute_env",
]

MAX_REPEAT = 10_000
MAX_POWER_BITS = 4096

# `$${` is matched first so an escaped reference is never also substituted.
_ENV_REFERENCE = re.compile(
    r"\$\$\{|\$\{(?:(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}|(?P<bad>[^}]*\}?))"
)
_TEMPLATE_MARKERS = ("{{", "{%", "{#")


def substitute_env(
    value: Any, *, environ: Mapping[str, str] | None = None, file: str | None = None
) -> Any:
    """Return ``value`` with ``${NAME}``/``${NAME:-default}`` replaced in every nested string.

    Raise :class:`DefinitionError` (naming ``file`` and the dotted field path) for an unset
    variable without a default or a malformed reference.
    """
    return _substitute(value, os.environ if environ is None else environ, file, "")


def _substitute(value: Any, environ: Mapping[str, str], file: str | None, path: str) -> Any:
    if isinstance(value, str):
        return _substitute_string(value, environ, file, path)
    if isinstance(value, Mapping):
        return {
            key: _substitute(item, environ, file, f"{path}.{key}" if path else str(key))
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        items = [_substitute(item, environ, file, f"{path}[{i}]") for i, item in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    return value


def _substitute_string(text: str, environ: Mapping[str, str], file: str | None, path: str) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        name = match.group("name")
        if name is None:
            raise DefinitionError(
                f"malformed environment reference '{match.group(0)}'; write ${{NAME}} or "
                "${NAME:-default}, or $${...} for a literal '${'",
                file=file,
                field=path or None,
            )
        current = environ.get(name)
        default = match.group("default")
        if default is not None and not current:
            return default
        if current is None:
            raise DefinitionError(
                f"environment variable '{name}' is not set and has no default; set it or "
                f"write ${{{name}:-default}}",
                file=file,
                field=path or None,
            )
        return current

    return _ENV_REFERENCE.sub(replace, text) if "${" in text else text


class _RuvonSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, plus limits on the operators that can exhaust memory or CPU."""

    # Intercepted operators also stop Jinja folding `10**10**10` at compile time.
    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(left, int) and isinstance(right, int):
            if left.bit_length() * right > MAX_POWER_BITS:
                raise SecurityError(f"'{left} ** {right}' would exceed {MAX_POWER_BITS} bits")
        elif operator == "*":
            for sequence, count in ((left, right), (right, left)):
                if isinstance(sequence, str | bytes | list | tuple) and _int_over(
                    count, MAX_REPEAT
                ):
                    raise SecurityError(
                        f"repeating a sequence more than {MAX_REPEAT} times is not allowed"
                    )
        return super().call_binop(context, operator, left, right)


def _int_over(value: Any, limit: int) -> bool:
    return isinstance(value, int) and value > limit


_ENVIRONMENT = _RuvonSandbox(undefined=StrictUndefined, autoescape=False)


@functools.lru_cache(maxsize=1024)
def _compile(template: str) -> Template:
    try:
        return _ENVIRONMENT.from_string(template)
    except TemplateSyntaxError as exc:
        raise DefinitionError(
            f"invalid template {template!r}: {exc.message} (template line {exc.lineno})"
        ) from exc


def check_template(template: str) -> None:
    """Raise :class:`DefinitionError` if ``template`` cannot compile (checked at load time)."""
    _compile(template)


def render_template(template: str, variables: Mapping[str, Any]) -> str:
    """Render ``template`` in the sandbox; each distinct template text is compiled once.

    Raise :class:`DefinitionError` for a syntax error, :class:`UnsafeExpressionError` when the
    sandbox refuses something and :class:`ExpressionError` for any other rendering failure
    (an undefined variable, a type error).
    """
    compiled = _compile(template)
    try:
        return compiled.render(dict(variables))
    except SecurityError as exc:
        raise UnsafeExpressionError(f"template {template!r} is unsafe: {exc}") from exc
    except Exception as exc:
        raise ExpressionError(
            f"template {template!r} failed to render: {type(exc).__name__}: {exc}"
        ) from exc


_SINGLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>(?:(?!\{\{|\}\}).)*)\}\}\s*$", re.DOTALL)


@functools.lru_cache(maxsize=1024)
def _compile_expression(expression: str) -> Any:
    try:
        return _ENVIRONMENT.compile_expression(expression, undefined_to_none=False)
    except TemplateSyntaxError as exc:
        raise DefinitionError(f"invalid template expression {expression!r}: {exc.message}") from exc


def render_native(template: str, variables: Mapping[str, Any]) -> Any:
    """Render a string that is exactly one ``{{ expression }}``, keeping the value's type.

    ``"{{ state.amount }}"`` gives the number, not its text, so templated data (a child
    workflow's initial data, an HTTP JSON body) keeps ints, lists and dicts intact.
    """
    match = _SINGLE_EXPRESSION.match(template)
    if match is None:
        return render_template(template, variables)
    compiled = _compile_expression(match.group("expr"))
    try:
        result = compiled(**dict(variables))
    except SecurityError as exc:
        raise UnsafeExpressionError(f"template {template!r} is unsafe: {exc}") from exc
    except Exception as exc:
        raise ExpressionError(
            f"template {template!r} failed to render: {type(exc).__name__}: {exc}"
        ) from exc
    if isinstance(result, StrictUndefined):
        raise ExpressionError(f"template {template!r} refers to an undefined value")
    return result


def render_value(value: Any, variables: Mapping[str, Any]) -> Any:
    """Render every template string nested in dicts/lists; other values come back unchanged.

    A string that is exactly one ``{{ expression }}`` keeps the expression's type (see
    :func:`render_native`); any other template renders to text.
    """
    if isinstance(value, str):
        # Most strings in a definition are not templates; skip Jinja for them entirely.
        if any(marker in value for marker in _TEMPLATE_MARKERS):
            return render_native(value, variables)
        return value
    if isinstance(value, Mapping):
        return {key: render_value(item, variables) for key, item in value.items()}
    if isinstance(value, list | tuple):
        items = [render_value(item, variables) for item in value]
        return items if isinstance(value, list) else tuple(items)
    return value
