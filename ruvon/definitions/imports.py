"""Import user code by dotted path, once: the function import cache."""

from __future__ import annotations

import importlib
import inspect
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ruvon.errors import FunctionImportError

_cache: dict[str, Any] = {}
_lock = threading.Lock()


def register_object(path: str, obj: Any) -> None:
    """Make ``obj`` importable as ``path`` in this process (inline-registered callables)."""
    with _lock:
        _cache[path] = obj


def callable_path(fn: Callable[..., Any]) -> str:
    """A stable dotted name for ``fn``, registered so it resolves even if it is a local."""
    path = f"{fn.__module__}.{fn.__qualname__}"
    register_object(path, fn)
    return path


def import_object(path: str) -> Any:
    """Return the object at ``module.attr[.attr…]``; raise ``ImportError`` with a clear reason."""
    cached = _cache.get(path)
    if cached is not None:
        return cached
    if path in ("builtins.dict", "dict"):
        return dict
    module_name, _, attr_path = path.rpartition(".")
    if not module_name:
        raise ImportError(f"'{path}' is not a dotted path like 'package.module.function'")
    module: Any = None
    # Walk back from the longest module prefix so nested attributes (Class.method) work.
    parts = path.split(".")
    for split in range(len(parts) - 1, 0, -1):
        candidate = ".".join(parts[:split])
        try:
            module = importlib.import_module(candidate)
        except ModuleNotFoundError as exc:
            if exc.name and not candidate.startswith(exc.name):
                raise ImportError(f"importing '{candidate}' failed: {exc}") from exc
            continue
        attr_path = ".".join(parts[split:])
        break
    if module is None:
        raise ImportError(f"no module found for '{path}' (is it on PYTHONPATH?)")
    obj: Any = module
    for attr in attr_path.split("."):
        try:
            obj = getattr(obj, attr)
        except AttributeError as exc:
            raise ImportError(f"module '{module.__name__}' has no attribute '{attr_path}'") from exc
    register_object(path, obj)
    return obj


@dataclass(frozen=True)
class FunctionShape:
    """What the engine needs to know about a step function's signature."""

    is_async: bool
    accepts_var_kwargs: bool
    keyword_names: frozenset[str]

    def select_kwargs(self, values: dict[str, Any]) -> dict[str, Any]:
        """The subset of ``values`` this function can receive as keyword arguments."""
        if self.accepts_var_kwargs or not values:
            return values
        return {key: value for key, value in values.items() if key in self.keyword_names}


_shapes: dict[Callable[..., Any], FunctionShape] = {}


def function_shape(fn: Callable[..., Any]) -> FunctionShape:
    """Inspect ``fn`` once and remember the answer."""
    shape = _shapes.get(fn)
    if shape is None:
        params = inspect.signature(fn).parameters.values()
        names = frozenset(
            p.name
            for p in params
            if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        )
        shape = FunctionShape(
            is_async=inspect.iscoroutinefunction(fn),
            accepts_var_kwargs=any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params),
            keyword_names=names,
        )
        _shapes[fn] = shape
    return shape


def resolve_step_function(
    path: str | Callable[..., Any],
    *,
    file: str | None,
    step: str | None,
    field: str,
    arity: int = 2,
) -> Callable[..., Any]:
    """Import a step function and check it can be called as ``fn(state, context)``.

    ``arity`` is the number of positional arguments the engine passes (2 for steps).
    """
    if callable(path):
        fn: Any = path
    else:
        try:
            fn = import_object(path)
        except ImportError as exc:
            raise FunctionImportError(
                f"cannot import '{path}': {exc}", file=file, step=step, field=field
            ) from exc
    if not callable(fn):
        raise FunctionImportError(
            f"'{path}' is a {type(fn).__name__}, not a function", file=file, step=step, field=field
        )
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins without a signature: trust them
        return fn  # type: ignore[no-any-return]
    try:
        # Partial: parameters after (state, context) may be required, the engine fills them by
        # keyword (the PARALLEL/LOOP item variable, a human step's input fields).
        signature.bind_partial(*([None] * arity))
        # ...but a required positional-only one beyond them could never be passed at all.
        stranded = [
            p.name
            for p in list(signature.parameters.values())[arity:]
            if p.kind is inspect.Parameter.POSITIONAL_ONLY and p.default is inspect.Parameter.empty
        ]
        if stranded:
            raise TypeError(f"required positional-only parameter '{stranded[0]}' is never passed")
    except TypeError as exc:
        expected = "(state, context)" if arity == 2 else f"{arity} positional arguments"
        raise FunctionImportError(
            f"'{path}' has signature {signature}, but step functions are called as "
            f"fn{expected}: {exc}",
            file=file,
            step=step,
            field=field,
        ) from exc
    return fn  # type: ignore[no-any-return]


_resolved: dict[tuple[str, int], Callable[..., Any]] = {}


def cached_step_function(
    path: str, *, step: str | None = None, arity: int = 2
) -> Callable[..., Any]:
    """``resolve_step_function`` with its answer cached per path (the engine's hot path)."""
    key = (path, arity)
    fn = _resolved.get(key)
    if fn is None:
        fn = resolve_step_function(path, file=None, step=step, field="function", arity=arity)
        _resolved[key] = fn
    return fn
