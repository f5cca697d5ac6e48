"""docs/tutorials/parallel-execution.md: a PARALLEL step of three checks on a thread pool."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs_tutorials.tutorials import (
    Erratum,
    documented_output,
    failure_report,
    lay_out,
    normalized_lines,
    run_script,
)

pytestmark = pytest.mark.slow

# validate_order() returns {"step": "validate_order"}, a key OrderState does not declare. The
# SDK documentation merges a result with `setattr(state, key, value)` and has pydantic validate
# every change (explanation/state-management.md), and pydantic refuses to set a field a model
# does not declare; Ruvon keeps that contract and fails the step with a StateValidationError
# naming the step and the key. The tutorial's fix is to declare what its step returns.
DECLARE_STEP = Erratum(
    "order_processor/models.py",
    "    ready_to_ship: bool = False\n",
    "    ready_to_ship: bool = False\n    step: Optional[str] = None\n",
    why="validate_order returns 'step', which OrderState does not declare",
)

FIX_ANY = (
    # `items: List[Dict[str, any]]` names the builtin function any(), not typing.Any: pydantic
    # refuses to build OrderState at import ("Unable to generate pydantic-core schema for
    # <built-in function any>"), before any Ruvon code runs.
    Erratum(
        "order_processor/models.py",
        "from typing import Optional, List, Dict",
        "from typing import Any, Optional, List, Dict",
        why="typing.Any is not imported",
    ),
    Erratum(
        "order_processor/models.py",
        "Dict[str, any]",
        "Dict[str, Any]",
        why="the builtin any() is not a type",
    ),
)

ERRATA = (*FIX_ANY, DECLARE_STEP)

# Run-specific values: the fraud score is `hash(customer_id)` (PYTHONHASHSEED below fixes it
# to one that passes the 0.8 threshold, as the documented run did) and the timings.
_VOLATILE = (
    (r"Fraud Score: \d\.\d\d", "Fraud Score: <score>"),
    (r"\(score: \d\.\d\d\)", "(score: <score>)"),
    (r"Execution Time: \d+\.\d\d seconds", "Execution Time: <t> seconds"),
    (r"Speedup: \d+\.\dx faster!", "Speedup: <n>x faster!"),
)


def test_parallel_run_prints_the_documented_output(tmp_path: Path) -> None:
    project = lay_out("parallel_execution", tmp_path / "ruvon-parallel-demo", ERRATA)

    result = run_script(project, "main.py", env={"PYTHONHASHSEED": "0"})

    assert result.returncode == 0, failure_report(result)
    documented = normalized_lines(documented_output("parallel_execution"), *_VOLATILE)
    printed = normalized_lines(result.stdout, *_VOLATILE)
    # The three tasks run concurrently, so their lines interleave differently on every run
    # (the documented block shows one interleaving): compare that stretch as a multiset.
    # The stretch ends where the join step starts, in each output on its own.
    start = documented.index("📦 Checking inventory for order ORD-12345")
    end = documented.index("✅ Checking validation results...")
    printed_end = printed.index("✅ Checking validation results...")
    assert printed[:start] == documented[:start], failure_report(result)
    # print() writes a line and its newline apart, so two threads can also share one line
    # ("A" "B" "\n" "\n"): each documented line must appear whole, and nothing else.
    stretch, expected = printed[start:printed_end], documented[start:end]
    assert all(line in "\n".join(stretch) for line in expected), failure_report(result)
    assert sorted("".join(stretch)) == sorted("".join(expected)), failure_report(result)
    assert printed[printed_end:] == documented[end:], failure_report(result)
    # Concurrent, not one after the other: 1 s + 1.5 s + 2 s of sleeps take ~2 s, not 4.5 s.
    elapsed = float(result.stdout.split("Execution Time: ")[1].split(" ")[0])
    assert elapsed < 4.0, failure_report(result)


def test_undeclared_key_fails_the_step_naming_step_and_key(tmp_path: Path) -> None:
    project = lay_out("parallel_execution", tmp_path / "ruvon-parallel-demo", FIX_ANY)

    result = run_script(project, "main.py")

    assert result.returncode == 1, failure_report(result)
    last = result.stderr.strip().splitlines()[-1]
    assert last == (
        "ruvon.errors.StateValidationError: step 'Validate_Order' returned key(s) step that "
        "state model OrderState does not declare; add the field(s) to the model (or set "
        "model_config extra='allow')"
    ), failure_report(result)
