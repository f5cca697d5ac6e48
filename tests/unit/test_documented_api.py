"""The Ruvon documentation's API, as its tutorials use it (docs: KamikaziD/ruvon-docs).

Module paths and names it documents (``SimpleExpressionEvaluator``, ``Jinja2TemplateEngine``),
the arguments its examples pass (``workflow_builder=builder``, the evaluator classes) and its
project layouts (a workflow file beside ``config/``; ``config/*.yaml`` without a registry).
"""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ruvon.builder import WorkflowBuilder
from ruvon.errors import ConfigurationError, DefinitionError, UnsafeExpressionError
from ruvon.implementations.execution.sync import SyncExecutionProvider
from ruvon.implementations.expression_evaluator.simple import SimpleExpressionEvaluator
from ruvon.implementations.persistence.memory import MemoryPersistenceProvider
from ruvon.implementations.templating.jinja2 import Jinja2TemplateEngine
from ruvon.models import WorkflowStatus
from tests.unit import documented_api_fixtures as fx

HELLO = """\
workflow_type: "Hello"
initial_state_model: "builtins.dict"
steps:
  - name: "Only"
    type: "STANDARD"
    function: "tests.unit.documented_api_fixtures.returns_a_note"
"""


@pytest.fixture
async def builder() -> AsyncIterator[WorkflowBuilder]:
    builder = WorkflowBuilder(
        workflow_registry={},
        persistence_provider=MemoryPersistenceProvider(),
        execution_provider=SyncExecutionProvider(),
    )
    yield builder
    await builder.close()


# ---------------------------------------------------------------- documented module paths
def test_simple_expression_evaluator_evaluates_like_a_route_condition() -> None:
    evaluator = SimpleExpressionEvaluator()
    assert evaluator.evaluate("state.amount > 10000", {"state": {"amount": 20000}}) is True
    assert evaluator.evaluate("state.amount > 10000", {"state": {"amount": 5}}) is False
    assert evaluator.evaluate("limit > 3", {"limit": 4}) is True
    with pytest.raises(UnsafeExpressionError):
        evaluator.evaluate("__import__('os')", {})


def test_jinja2_template_engine_renders_in_the_sandbox() -> None:
    engine = Jinja2TemplateEngine()
    rendered = engine.render("Hello {{state.user_name}}!", {"state": {"user_name": "Alice"}})
    assert rendered == "Hello Alice!"
    with pytest.raises(UnsafeExpressionError):
        engine.render("{{ ''.__class__ }}", {})


def test_builder_takes_the_documented_classes_without_a_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        WorkflowBuilder(
            workflow_registry={},
            expression_evaluator_cls=SimpleExpressionEvaluator,
            template_engine_cls=Jinja2TemplateEngine,
        )


def test_builder_warns_that_another_evaluator_class_is_not_used() -> None:
    class MyEvaluator:
        pass

    with pytest.warns(DeprecationWarning, match="MyEvaluator.*has no effect"):
        WorkflowBuilder(workflow_registry={}, expression_evaluator_cls=MyEvaluator)


# ---------------------------------------------------------------- create_workflow arguments
async def test_create_workflow_takes_the_documented_arguments(builder: WorkflowBuilder) -> None:
    builder.register_workflow_inline("Note", [{"name": "Only", "function": fx.returns_a_note}])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        workflow = await builder.create_workflow(
            workflow_type="Note",
            workflow_builder=builder,
            expression_evaluator_cls=SimpleExpressionEvaluator,
            template_engine_cls=Jinja2TemplateEngine,
            initial_data={},
        )
    await workflow.next_step()
    assert workflow.status is WorkflowStatus.COMPLETED


async def test_create_workflow_refuses_another_builder(builder: WorkflowBuilder) -> None:
    builder.register_workflow_inline("Note", [{"name": "Only", "function": fx.returns_a_note}])
    with pytest.raises(ConfigurationError, match="create_workflow\\('Note', workflow_builder"):
        await builder.create_workflow("Note", {}, workflow_builder=WorkflowBuilder({}))


# ---------------------------------------------------------------- where the YAML is
def test_registry_config_file_is_also_found_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # getting-started.md: hello_workflow.yaml beside config/, the registry inside it.
    (tmp_path / "config").mkdir()
    (tmp_path / "hello_workflow.yaml").write_text(HELLO)
    (tmp_path / "config/workflow_registry.yaml").write_text(
        "workflows:\n  - type: Hello\n    config_file: hello_workflow.yaml\n"
    )
    monkeypatch.chdir(tmp_path)

    builder = WorkflowBuilder(config_dir="config/")

    assert builder.get_definition("Hello").source_file == str(tmp_path / "hello_workflow.yaml")


def test_registry_config_file_beside_the_registry_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "config").mkdir()
    for path in (tmp_path / "hello_workflow.yaml", tmp_path / "config/hello_workflow.yaml"):
        path.write_text(HELLO)
    (tmp_path / "config/workflow_registry.yaml").write_text(
        "workflows:\n  - type: Hello\n    config_file: hello_workflow.yaml\n"
    )
    monkeypatch.chdir(tmp_path)

    builder = WorkflowBuilder(config_dir="config/")

    assert builder.get_definition("Hello").source_file == "config/hello_workflow.yaml"


def test_missing_config_file_names_both_places_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config/workflow_registry.yaml").write_text(
        "workflows:\n  - type: Hello\n    config_file: hello_workflow.yaml\n"
    )
    monkeypatch.chdir(tmp_path)

    with pytest.raises(DefinitionError) as info:
        WorkflowBuilder(config_dir="config/")

    text = str(info.value)
    assert "config/workflow_registry.yaml:3, field 'config_file'" in text
    assert f"config/hello_workflow.yaml and {tmp_path / 'hello_workflow.yaml'}" in text


def test_without_a_registry_the_config_dir_workflow_files_are_registered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # saga-pattern.md, parallel-execution.md: config/workflow.yaml and `WorkflowBuilder()`.
    (tmp_path / "config").mkdir()
    (tmp_path / "config/workflow.yaml").write_text(HELLO)
    (tmp_path / "config/settings.yaml").write_text("log_level: INFO\n")  # not a workflow
    monkeypatch.chdir(tmp_path)

    builder = WorkflowBuilder()

    assert builder.workflow_types == ["Hello"]
    assert builder.get_definition("Hello").spec.steps[0].name == "Only"


def test_two_workflow_files_of_one_type_without_a_registry_are_an_error(
    tmp_path: Path,
) -> None:
    (tmp_path / "a.yaml").write_text(HELLO)
    (tmp_path / "b.yml").write_text(HELLO)

    with pytest.raises(DefinitionError) as info:
        WorkflowBuilder(config_dir=tmp_path)

    text = str(info.value)
    assert str(tmp_path / "b.yml") in text
    assert str(tmp_path / "a.yaml") in text
    assert "field 'workflow_type'" in text


def test_a_registry_still_decides_which_files_are_registered(tmp_path: Path) -> None:
    (tmp_path / "workflow.yaml").write_text(HELLO)
    (tmp_path / "workflow_registry.yaml").write_text("workflows: []\n")

    assert WorkflowBuilder(config_dir=tmp_path).workflow_types == []
