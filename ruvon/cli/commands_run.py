"""``ruvon run FILE`` and ``ruvon start TYPE``: create a workflow and run it here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ruvon.builder import WorkflowBuilder
from ruvon.cli.commands_cluster import start_on_cluster
from ruvon.cli.driver import Driver
from ruvon.cli.failures import CommandError
from ruvon.cli.inputs import input_options, read_json_input
from ruvon.cli.live import LiveObserver
from ruvon.cli.params import json_result_option
from ruvon.cli.render import Output
from ruvon.cli.runtime import (
    REGISTRY_FILE_NAME,
    CliConfig,
    Engine,
    add_import_paths,
    check_child_types,
    load_file_into,
    open_engine,
    run_async,
)
from ruvon.cli.session import interruptible, print_outcome
from ruvon.definitions.registry_file import load_registry
from ruvon.implementations.observability.tracing_setup import with_tracing

_IDEMPOTENCY_HELP = "Reuse the workflow already started with this key instead of a new one."


async def create_and_drive(
    engine: Engine,
    builder: WorkflowBuilder,
    observer: LiveObserver,
    output: Output,
    config: CliConfig,
    workflow_type: str,
    data: dict[str, Any],
    idempotency_key: str | None,
    version: str | None = None,
    priority: int | None = None,
) -> int:
    """Create a workflow of ``workflow_type`` (``version``, or the latest), run it to its next
    stop, report it."""
    check_child_types(builder, workflow_type, version)
    driver = Driver(builder, output, config)
    async with interruptible(output, engine, config, lambda: driver.current_id or observer.primary):
        wf = await builder.create_workflow(
            workflow_type,
            data,
            idempotency_key=idempotency_key,
            workflow_version=version,
            priority=priority,
        )
        if observer.primary != wf.id:
            # The idempotency key matched an existing workflow: no start event was emitted.
            observer.primary = wf.id
            output.line(
                ("Existing workflow for this idempotency key: ", "bold"),
                (wf.id, "bold cyan"),
                f" ({wf.status})",
            )
        result = await driver.drive(wf)
    return print_outcome(output, config, result, observer)


@click.command("run")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@input_options(noun="initial data")
@click.option("--idempotency-key", metavar="KEY", help=_IDEMPOTENCY_HELP)
@json_result_option
@click.pass_context
def run_command(
    ctx: click.Context,
    file: Path,
    input_json: str | None,
    input_file: str | None,
    idempotency_key: str | None,
    as_json: bool,
) -> None:
    """Create a workflow from FILE (a workflow YAML) and run it here, step by step.

    A workflow_registry.yaml next to FILE makes sub-workflow types available. Timers are
    slept through; the run stops when the workflow completes, fails, or waits for a person
    (then it prints the `ruvon resume` command). Exits 1 if the workflow fails.
    """
    config: CliConfig = ctx.obj
    data = read_json_input(input_json, input_file) or {}
    add_import_paths(file.parent)
    output = Output(json_result=as_json)

    async def main() -> int:
        observer = LiveObserver(output)
        async with open_engine(config.settings(), observer) as engine:
            builder = engine.builder(config_dir=file.parent)
            workflow_type = load_file_into(builder, file)
            return await create_and_drive(
                engine, builder, observer, output, config, workflow_type, data, idempotency_key
            )

    ctx.exit(run_async(main()))


def find_registry(config_dir: Path | None, registry: Path | None, default: Path) -> Path:
    """The registry file ``start`` reads: --registry, --config-dir, or the configured one."""
    if registry is not None and config_dir is not None:
        raise CommandError("give either --registry or --config-dir, not both")
    path = registry or (config_dir / REGISTRY_FILE_NAME if config_dir is not None else default)
    if not path.is_file():
        raise CommandError(
            f"workflow registry {path} not found (pass --config-dir DIR or --registry FILE, "
            "or set WORKFLOW_CONFIG_DIR)"
        )
    return path


@click.command("start")
@click.argument("workflow_type")
@input_options(noun="initial data")
@click.option(
    "--config-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help=f"Directory holding {REGISTRY_FILE_NAME} (default: $WORKFLOW_CONFIG_DIR or config/).",
)
@click.option(
    "--registry",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Path of the registry file itself.",
)
@click.option("--idempotency-key", metavar="KEY", help=_IDEMPOTENCY_HELP)
@click.option(
    "--version",
    "workflow_version",
    metavar="VERSION",
    help="Start this workflow_version of the type (default: the latest registered).",
)
@click.option(
    "--priority",
    type=click.IntRange(0, 9),
    default=None,
    help="0 (lowest) to 9 (served first); default: the workflow file's priority, else 0.",
)
@click.option(
    "--cluster",
    is_flag=True,
    help="Start it on the worker cluster (shared PostgreSQL + broker) instead of running it here.",
)
@click.option(
    "--wait",
    is_flag=True,
    help="With --cluster (implied): wait until it completes, fails or waits for a person.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=300.0,
    show_default=True,
    help="Seconds --wait waits (exit code 5 when they run out).",
)
@click.pass_context
def start_command(
    ctx: click.Context,
    workflow_type: str,
    input_json: str | None,
    input_file: str | None,
    config_dir: Path | None,
    registry: Path | None,
    idempotency_key: str | None,
    workflow_version: str | None,
    priority: int | None,
    cluster: bool,
    wait: bool,
    timeout: float,
) -> None:
    """Start a workflow of WORKFLOW_TYPE from the registry and run it here, like `run`.

    With --cluster the workers run it (RUVON_DATABASE_URL must be the cluster's PostgreSQL,
    RUVON_BROKER_URL its broker); --wait also waits for the outcome and exits 1 if it failed.
    """
    config: CliConfig = ctx.obj
    data = read_json_input(input_json, input_file) or {}
    settings = config.settings()
    # Absolute, so the workflow's snapshot records where its YAML (and step modules) live.
    registry_path = find_registry(config_dir, registry, settings.registry_file).resolve()
    entry = load_registry(registry_path).get(workflow_type)
    add_import_paths(registry_path.parent, Path(entry.config_file).parent if entry else None)
    output = Output()
    if cluster or wait:
        # RUVON_OTEL: the start span is recorded here, the workers' step spans under it.
        builder = WorkflowBuilder(registry_path, settings=settings, observer=with_tracing(None))
        ctx.exit(
            run_async(
                start_on_cluster(
                    builder,
                    config,
                    output,
                    workflow_type,
                    data,
                    idempotency_key=idempotency_key,
                    version=workflow_version,
                    priority=priority,
                    wait=wait,
                    timeout=timeout,
                )
            )
        )

    async def main() -> int:
        observer = LiveObserver(output)
        async with open_engine(settings, observer) as engine:
            builder = engine.builder(registry=registry_path)
            return await create_and_drive(
                engine,
                builder,
                observer,
                output,
                config,
                workflow_type,
                data,
                idempotency_key,
                workflow_version,
                priority,
            )

    ctx.exit(run_async(main()))
