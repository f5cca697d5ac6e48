"""``ruvon validate FILE``: check a workflow file or a whole registry without running it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from ruvon.builder import WorkflowBuilder
from ruvon.cli.failures import EXIT_FAILURE
from ruvon.cli.render import Output
from ruvon.cli.runtime import CliConfig, add_import_paths, is_registry_file
from ruvon.definitions.definition import WorkflowDefinition
from ruvon.definitions.loader import load_workflow_file
from ruvon.definitions.registry_file import load_registry_versions
from ruvon.errors import DefinitionError, WorkflowTypeNotFound
from ruvon.steps.registry import DEFAULT_HANDLERS


def _definition_data(definition: WorkflowDefinition) -> dict[str, Any]:
    return {
        "workflow_type": definition.workflow_type,
        "workflow_version": definition.spec.workflow_version,
        "file": definition.source_file,
        "steps": [{"name": step.name, "type": str(step.type)} for step in definition.steps],
    }


def _reading_order(problem: DefinitionError) -> tuple[str, int]:
    """Problems file by file, top to bottom (those without a line last in their file)."""
    return (problem.file or "", problem.line if problem.line is not None else 1 << 30)


def _problem_data(problem: DefinitionError) -> dict[str, Any]:
    return {
        "message": problem.reason,
        "file": problem.file,
        "line": problem.line,
        "step": problem.step,
        "field": problem.field,
        "error": problem.describe(),
    }


def _steps_table(definition: WorkflowDefinition) -> Table:
    table = Table.grid(padding=(0, 2))
    for _ in range(4):
        table.add_column()
    for number, step in enumerate(definition.steps, start=1):
        notes = []
        if step.automate_next:
            notes.append("automate_next")
        if step.target_workflow_type:
            notes.append(f"-> {step.target_workflow_type}")
        if step.function:
            notes.append(step.function)
        table.add_row(
            Text(f"  {number}.", style="dim"),
            Text(step.name, style="bold"),
            Text(str(step.type), style="cyan"),
            Text(" ".join(notes), style="dim"),
        )
    return table


def validate_path(path: Path, config: CliConfig) -> tuple[str, list[WorkflowDefinition]]:
    """Load and check ``path``; return its kind ('registry' or 'workflow') and definitions."""
    if is_registry_file(path):
        for versions in load_registry_versions(path).values():
            for _, entry in versions:
                add_import_paths(Path(entry.config_file).parent)
        builder = WorkflowBuilder(path, settings=config.settings())
        return "registry", builder.validate_all()
    definition = load_workflow_file(path, rules=DEFAULT_HANDLERS)
    return "workflow", [definition]


@click.command("validate")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def validate_command(ctx: click.Context, file: Path, as_json: bool) -> None:
    """Check FILE: a workflow YAML, or a registry (a file with a top-level `workflows:` key).

    Step functions and models are imported, routes and conditions checked. Prints OK and the
    steps, or every problem found, each with its file, line, step and field; exits 1 when FILE
    is invalid.
    """
    output = Output()
    add_import_paths(file.parent)
    try:
        kind, definitions = validate_path(file, ctx.obj)
    except DefinitionError as exc:
        problems = sorted(exc.problems, key=_reading_order)
        if as_json:
            output.json(
                {
                    "ok": False,
                    "file": str(file),
                    "error": str(exc),
                    "line": exc.line,
                    "errors": [_problem_data(problem) for problem in problems],
                }
            )
        else:
            for problem in problems:
                output.error(problem.describe())
            if len(problems) > 1:
                output.err.print(Text(f"{len(problems)} problems", style="bold red"))
        ctx.exit(EXIT_FAILURE)
    except WorkflowTypeNotFound as exc:
        if as_json:
            output.json({"ok": False, "file": str(file), "error": str(exc), "line": None})
        else:
            output.error(str(exc))
        ctx.exit(EXIT_FAILURE)
    if as_json:
        output.json(
            {
                "ok": True,
                "file": str(file),
                "kind": kind,
                "workflows": [_definition_data(d) for d in definitions],
            }
        )
        return
    noun = "registry" if kind == "registry" else "workflow file"
    output.line(("OK", "bold green"), f"  {file}: valid {noun}")
    for definition in definitions:
        spec_version = definition.spec.workflow_version
        version = f" (version {spec_version})" if spec_version else ""
        count = len(definition.steps)
        output.line(
            "  ",
            (definition.workflow_type, "bold"),
            f"{version}: {count} step{'s' if count != 1 else ''}",
        )
        output.print(_steps_table(definition))
