"""Safe evaluation of route conditions such as ``state.amount > 10000 and state.country == 'US'``.

A condition is parsed once with :func:`ast.parse` (``mode="eval"``), checked against a whitelist of
node types, and then interpreted by walking the tree. Nothing is ever handed to ``eval``/``exec``.

What a condition may use:

* literals (numbers, strings, ``True``/``False``/``None`` and the YAML-friendly ``true``/``false``/
  ``null``), tuples, lists, sets and dicts built from allowed expressions;
* comparisons (chained too), ``in``/``not in``, ``is``/``is not``, ``and``/``or``/``not``;
* unary ``-``/``+`` and the arithmetic operators ``+ - * / // %``;
* ``a if cond else b``;
* the name ``state`` plus any names passed in ``extra``; ``state.x.y``, ``state['x']``,
  ``state.items[0]`` and slices.

The lookup rule, identical for attribute and subscript access, is: *a dict key or a pydantic
model's field (declared, computed or extra) gives its value; anything missing gives* ``None``.
Looking into ``None`` gives ``None`` too, so ``state.customer.zip is None`` works while
``customer`` is unset. A list/tuple/str index out of range also gives ``None``. Attributes of
other plain data (``str``, numbers, lists) raise :class:`ExpressionError`; attributes of any
other object raise :class:`UnsafeExpressionError`, since only declared data is reachable.
``'x' in state`` asks whether a key or field exists, for dicts and models alike.

Rejected when compiling, with :class:`UnsafeExpressionError`: every call, names and attributes
starting with ``_``, lambdas, comprehensions, ``:=``, starred and ``**`` unpacking, f-strings,
``await``/``yield``, ``**`` (power) and bitwise operators. Sequence repetition (``'a' * n``) and
``%`` string formatting are rejected when evaluating. Expressions are capped at
:data:`MAX_EXPRESSION_LENGTH` characters and :data:`MAX_DEPTH` levels of nesting.
"""

from __future__ import annotations

import ast
import functools
import operator
import warnings
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

from pydantic import BaseModel

from ruvon.errors import ExpressionError, UnsafeExpressionError

__all__ = [
    "MAX_DEPTH",
    "MAX_EXPRESSION_LENGTH",
    "CompiledExpression",
    "compile_expression",
    "evaluate_expression",
]

MAX_EXPRESSION_LENGTH = 2000
MAX_DEPTH = 50

_LITERAL_ALIASES: dict[str, Any] = {"true": True, "false": False, "null": None}
_RESERVED_NAMES = frozenset({"state", *_LITERAL_ALIASES})
_CONSTANT_TYPES = (str, int, float, bool, type(None))
_PLAIN_DATA = (str, bytes, int, float, bool, list, tuple, set, frozenset)
_SEQUENCES = (str, bytes, list, tuple)

_BINARY_OPS: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}

_COMPARE_OPS: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
}

_ALLOWED_NODES: frozenset[type[ast.AST]] = frozenset({
    ast.Expression, ast.Constant, ast.Name, ast.Load, ast.Attribute, ast.Subscript, ast.Slice,
    ast.Tuple, ast.List, ast.Set, ast.Dict, ast.Compare, ast.BoolOp, ast.And, ast.Or,
    ast.UnaryOp, ast.Not, ast.USub, ast.UAdd, ast.BinOp, ast.IfExp, *_BINARY_OPS, *_COMPARE_OPS,
})  # fmt: skip

# Friendlier wording for the forbidden nodes people actually try.
_FORBIDDEN_NAMES: dict[type[ast.AST], str] = {
    ast.Call: "function calls",
    ast.Lambda: "lambda",
    **dict.fromkeys((ast.ListComp, ast.SetComp, ast.DictComp), "comprehensions"),
    ast.GeneratorExp: "generator expressions",
    ast.NamedExpr: "assignment expressions (:=)",
    ast.Starred: "starred unpacking",
    ast.JoinedStr: "f-strings",
    ast.Await: "await",
    **dict.fromkeys((ast.Yield, ast.YieldFrom), "yield"),
    ast.Pow: "the power operator (**)",
    **dict.fromkeys(
        (ast.Invert, ast.BitAnd, ast.BitOr, ast.BitXor, ast.LShift, ast.RShift),
        "bitwise operators",
    ),
}


class CompiledExpression:
    """A parsed and validated condition; evaluate it any number of times, from any thread."""

    __slots__ = ("_source", "_tree")

    def __init__(self, source: str, tree: ast.Expression) -> None:
        self._source = source
        self._tree = tree

    @property
    def source(self) -> str:
        """The expression text as written."""
        return self._source

    def __repr__(self) -> str:
        return f"CompiledExpression({self._source!r})"

    def evaluate(self, state: Any, extra: Mapping[str, Any] | None = None) -> Any:
        """Evaluate against ``state`` (a pydantic model or dict) and the names in ``extra``."""
        names = extra or {}
        clash = _RESERVED_NAMES.intersection(names)
        if clash:
            raise ExpressionError(f"extra names {sorted(clash)} are reserved in expressions")
        try:
            return _Evaluator(self._source, state, names).eval(self._tree.body)
        except ExpressionError:
            raise
        except Exception as exc:
            raise ExpressionError(
                f"expression {self._source!r} failed: {type(exc).__name__}: {exc}"
            ) from exc


def compile_expression(source: str) -> CompiledExpression:
    """Parse and validate ``source``; raise ExpressionError or UnsafeExpressionError if bad."""
    if not isinstance(source, str):  # YAML turns `condition: true` into a bool
        raise ExpressionError(f"expression must be a string, got {type(source).__name__}")
    if len(source) > MAX_EXPRESSION_LENGTH:
        raise ExpressionError(
            f"expression is {len(source)} characters, over the limit of {MAX_EXPRESSION_LENGTH}"
        )
    # YAML block scalars bring a trailing newline and indentation; neither means anything here.
    text = source.strip()
    try:
        # Invalid escapes ('\d') only warn on parse; make that an error so the outcome doesn't
        # depend on the process's warning filters.
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise ExpressionError(f"invalid expression {source!r}: {exc}") from exc
    _validate(text, tree)
    return CompiledExpression(source, tree)


_compile_cached = functools.lru_cache(maxsize=1024)(compile_expression)


def evaluate_expression(source: str, state: Any, extra: Mapping[str, Any] | None = None) -> Any:
    """Compile ``source`` (cached) and evaluate it against ``state``."""
    return _compile_cached(source).evaluate(state, extra)


def _validate(source: str, tree: ast.Expression) -> None:
    # Iterative walk: a recursive one could itself be driven into RecursionError. Operator nodes
    # (``**``, ``~``) carry no position, so a rejection quotes their parent's text instead.
    stack: list[tuple[ast.AST, ast.AST, int]] = [(tree, tree, 0)]
    while stack:
        node, parent, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ExpressionError(f"expression {source!r} nests deeper than {MAX_DEPTH} levels")
        shown = node if hasattr(node, "lineno") else parent
        if type(node) not in _ALLOWED_NODES:
            what = _FORBIDDEN_NAMES.get(type(node), f"'{type(node).__name__}' syntax")
            _reject(source, shown, what)
        if isinstance(node, ast.Name) and node.id.startswith("_"):
            _reject(source, shown, f"private name '{node.id}'")
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            _reject(source, shown, f"private attribute '{node.attr}'")
        if isinstance(node, ast.Constant) and not isinstance(node.value, _CONSTANT_TYPES):
            _reject(source, shown, f"{type(node.value).__name__} literal")
        if isinstance(node, ast.Dict) and any(key is None for key in node.keys):
            _reject(source, shown, "'**' unpacking")
        stack.extend((child, node, depth + 1) for child in ast.iter_child_nodes(node))


def _reject(source: str, node: ast.AST, what: str) -> NoReturn:
    fragment = ast.get_source_segment(source, node) or source
    raise UnsafeExpressionError(f"unsafe expression {source!r}: {what} not allowed: `{fragment}`")


def _lookup(container: Any, key: Any, source: str) -> Any:
    """Read ``key`` from data: dict key or model field; missing gives None (module docstring)."""
    if container is None:
        return None
    if isinstance(container, Mapping):
        return container.get(key)
    if isinstance(container, BaseModel):
        if not isinstance(key, str) or key.startswith("_"):
            return None
        model = type(container)
        if key in model.model_fields or key in model.model_computed_fields:
            return getattr(container, key)
        return (container.model_extra or {}).get(key)
    if isinstance(container, _PLAIN_DATA):
        raise ExpressionError(
            f"expression {source!r}: a {type(container).__name__} value has no field {key!r}"
        )
    raise UnsafeExpressionError(
        f"expression {source!r}: cannot read {key!r} from a {type(container).__name__} object; "
        "only dicts and pydantic models can be looked into"
    )


class _Evaluator:
    """One evaluation: tree-walking interpreter over an already-validated tree."""

    __slots__ = ("extra", "source", "state")

    def __init__(self, source: str, state: Any, extra: Mapping[str, Any]) -> None:
        self.source = source
        self.state = state
        self.extra = extra

    def eval(self, node: ast.expr) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return self._name(node.id)
        if isinstance(node, ast.Attribute):
            return _lookup(self.eval(node.value), node.attr, self.source)
        if isinstance(node, ast.Subscript):
            return self._subscript(self.eval(node.value), self.eval(node.slice))
        if isinstance(node, ast.Slice):
            parts = (node.lower, node.upper, node.step)
            return slice(*(None if part is None else self.eval(part) for part in parts))
        if isinstance(node, ast.BoolOp):
            return self._bool_op(node)
        if isinstance(node, ast.Compare):
            return self._compare(node)
        if isinstance(node, ast.UnaryOp):
            operand = self.eval(node.operand)
            if isinstance(node.op, ast.Not):
                return not operand
            return -operand if isinstance(node.op, ast.USub) else +operand
        if isinstance(node, ast.BinOp):
            return self._bin_op(node.op, self.eval(node.left), self.eval(node.right))
        if isinstance(node, ast.IfExp):
            return self.eval(node.body) if self.eval(node.test) else self.eval(node.orelse)
        if isinstance(node, ast.Tuple):
            return tuple(self.eval(item) for item in node.elts)
        if isinstance(node, ast.List):
            return [self.eval(item) for item in node.elts]
        if isinstance(node, ast.Set):
            return {self.eval(item) for item in node.elts}
        if isinstance(node, ast.Dict):
            pairs = zip(node.keys, node.values, strict=True)
            return {self.eval(k): self.eval(v) for k, v in pairs if k is not None}
        # Unreachable after _validate; kept so a whitelist change can't silently fall through.
        raise UnsafeExpressionError(f"expression {self.source!r}: unsupported {node!r}")

    def _name(self, name: str) -> Any:
        if name == "state":
            return self.state
        if name in _LITERAL_ALIASES:
            return _LITERAL_ALIASES[name]
        if name in self.extra:
            return self.extra[name]
        known = ", ".join(["state", *sorted(self.extra)])
        raise ExpressionError(
            f"expression {self.source!r}: unknown name '{name}' (available: {known})"
        )

    def _subscript(self, container: Any, key: Any) -> Any:
        if isinstance(container, _SEQUENCES):
            if not isinstance(key, int | slice):
                raise ExpressionError(
                    f"expression {self.source!r}: cannot index a "
                    f"{type(container).__name__} with {key!r}"
                )
            try:
                return container[key]
            except IndexError:
                return None
        return _lookup(container, key, self.source)

    def _bool_op(self, node: ast.BoolOp) -> Any:
        # Short-circuit and return the deciding operand, exactly like Python.
        value: Any = None
        for item in node.values:
            value = self.eval(item)
            if bool(value) is isinstance(node.op, ast.Or):
                return value
        return value

    def _compare(self, node: ast.Compare) -> bool:
        left = self.eval(node.left)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = self.eval(comparator)
            if isinstance(right, BaseModel) and isinstance(op, ast.In | ast.NotIn):
                # Iterating a model yields (name, value) pairs; `'x' in state` should mean
                # "has field x", as it does for a dict.
                right = {*type(right).model_fields, *(right.model_extra or {})}
            if not _COMPARE_OPS[type(op)](left, right):
                return False
            left = right
        return True

    def _bin_op(self, op: ast.operator, left: Any, right: Any) -> Any:
        # 'x' * 10**9 would exhaust memory, and '%' on a string is a formatting mini-language.
        if isinstance(op, ast.Mult) and (
            isinstance(left, _SEQUENCES) or isinstance(right, _SEQUENCES)
        ):
            raise UnsafeExpressionError(
                f"expression {self.source!r}: repeating a sequence with '*' is not allowed"
            )
        if isinstance(op, ast.Mod) and isinstance(left, str | bytes):
            raise UnsafeExpressionError(
                f"expression {self.source!r}: '%' string formatting is not allowed"
            )
        return _BINARY_OPS[type(op)](left, right)
