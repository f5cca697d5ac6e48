"""Versions side by side: their order, the registry's checks, and which one a builder hands out."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ruvon.builder import WorkflowBuilder
from ruvon.definitions.registry_file import load_registry, load_registry_versions
from ruvon.definitions.versions import latest_version, ordered_versions, version_key
from ruvon.errors import DefinitionError, WorkflowTypeNotFound, WorkflowVersionNotFound
from tests.unit.test_definition_errors import OK, assert_readable, line_of


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def version_file(tmp_path: Path, name: str, version: str | None, last_step: str = "last") -> Path:
    header = f"workflow_version: '{version}'\n" if version is not None else ""
    return write(
        tmp_path,
        name,
        f"workflow_type: Order\n{header}steps:\n"
        f"  - name: first\n    function: {OK}\n"
        f"  - name: {last_step}\n    function: {OK}\n",
    )


def registry(tmp_path: Path, *files: str) -> Path:
    entries = "".join(f"  - type: Order\n    config_file: {name}\n" for name in files)
    return write(tmp_path, "workflow_registry.yaml", f"workflows:\n{entries}")


@pytest.mark.parametrize(
    ("older", "newer"),
    [
        ("1.9.0", "1.10.0"),
        ("1.0.0", "2.0.0"),
        ("2.0.0-rc.1", "2.0.0"),
        ("2.0.0-alpha", "2.0.0-alpha.1"),
        ("2.0.0-alpha.2", "2.0.0-alpha.10"),
        ("2.0.0-alpha.10", "2.0.0-beta"),
        ("1.2", "1.2.1"),
        ("v1.9", "v1.10"),
        ("9", "10"),
    ],
)
def test_versions_order_semantically(older: str, newer: str) -> None:
    assert latest_version([newer, older]) == newer
    assert ordered_versions([newer, older]) == [older, newer]


def test_equal_precedence_and_what_is_not_a_version() -> None:
    assert version_key("2.0") == version_key("2.0.0") == version_key("v2") == version_key("2+b1")
    for text in ("", "latest", "1.x", "1..2", "1.0-", "1.0.0+"):
        assert version_key(text) is None, text


def test_a_registry_with_two_versions_hands_out_the_latest_and_either_by_name(
    tmp_path: Path,
) -> None:
    version_file(tmp_path, "v9.yaml", "1.9.0", last_step="old_last")
    version_file(tmp_path, "v10.yaml", "1.10.0", last_step="new_last")
    path = registry(tmp_path, "v10.yaml", "v9.yaml")  # listing order does not matter
    versions = load_registry_versions(path)["Order"]
    assert [version for version, _ in versions] == ["1.9.0", "1.10.0"]
    assert load_registry(path)["Order"].config_file == str(tmp_path / "v10.yaml")

    builder = WorkflowBuilder(path)
    assert builder.workflow_types == ["Order"]
    assert builder.versions("Order") == ["1.9.0", "1.10.0"]
    assert builder.get_definition("Order").steps[-1].name == "new_last"
    assert builder.get_definition("Order", "1.9.0").steps[-1].name == "old_last"
    assert [d.spec.workflow_version for d in builder.definitions_of("Order")] == ["1.9.0", "1.10.0"]
    assert len(builder.validate_all()) == 2


def test_an_unknown_version_is_a_typed_error_listing_the_known_ones(tmp_path: Path) -> None:
    version_file(tmp_path, "a.yaml", "1.0.0")
    version_file(tmp_path, "b.yaml", "2.0.0")
    builder = WorkflowBuilder(registry(tmp_path, "a.yaml", "b.yaml"))
    with pytest.raises(WorkflowVersionNotFound) as info:
        builder.get_definition("Order", "3.0.0")
    exc = info.value
    assert isinstance(exc, WorkflowTypeNotFound)  # callers that catch the type error still do
    assert (exc.workflow_type, exc.version, exc.known) == ("Order", "3.0.0", ("1.0.0", "2.0.0"))
    assert "known: 1.0.0, 2.0.0" in str(exc)
    assert_readable(exc)


def registry_error(path: Path) -> DefinitionError:
    with pytest.raises(DefinitionError) as info:
        load_registry_versions(path)
    assert type(info.value) is DefinitionError
    assert_readable(info.value)
    return info.value


def test_the_same_version_twice_names_both_entries_and_both_files(tmp_path: Path) -> None:
    first = version_file(tmp_path, "first.yaml", "2.0")
    second = version_file(tmp_path, "second.yaml", "2.0.0")
    path = registry(tmp_path, "first.yaml", "second.yaml")
    exc = registry_error(path)
    assert (exc.file, exc.field, exc.line) == (str(path), "type", 4)
    assert "'2.0.0' (the same as '2.0') is registered twice" in exc.reason
    assert f"{path}:2 ({first}:2)" in exc.reason
    assert f"{path}:4 ({second}:2)" in exc.reason


def test_several_versions_each_need_a_semantic_workflow_version(tmp_path: Path) -> None:
    version_file(tmp_path, "a.yaml", "1.0.0")
    unversioned = version_file(tmp_path, "b.yaml", None)
    exc = registry_error(registry(tmp_path, "a.yaml", "b.yaml"))
    assert (exc.file, exc.field) == (str(unversioned), "workflow_version")
    assert "must declare its own 'workflow_version'" in exc.reason

    named = version_file(tmp_path, "c.yaml", "newest")
    exc = registry_error(registry(tmp_path, "a.yaml", "c.yaml"))
    assert (exc.file, exc.field, exc.line) == (str(named), "workflow_version", 2)
    assert line_of(named, "workflow_version") == 2
    assert "'newest'" in exc.reason and "not a semantic version" in exc.reason


def test_a_schedule_may_sit_on_one_version_only(tmp_path: Path) -> None:
    version_file(tmp_path, "a.yaml", "1.0.0")
    version_file(tmp_path, "b.yaml", "2.0.0")
    path = write(
        tmp_path,
        "workflow_registry.yaml",
        """
        workflows:
          - {type: Order, config_file: a.yaml, schedule: "0 * * * *"}
          - {type: Order, config_file: b.yaml, schedule: "0 * * * *"}
        """,
    )
    exc = registry_error(path)
    assert (exc.field, exc.line) == ("schedule", 3)
    single = write(
        tmp_path,
        "workflow_registry.yaml",
        """
        workflows:
          - {type: Order, config_file: a.yaml, schedule: "0 * * * *"}
          - {type: Order, config_file: b.yaml}
        """,
    )
    assert WorkflowBuilder(single).registry_schedules() == [("Order", "0 * * * *")]


def test_a_type_listed_once_keeps_any_version_text(tmp_path: Path) -> None:
    version_file(tmp_path, "a.yaml", "spring edition")
    builder = WorkflowBuilder(registry(tmp_path, "a.yaml"))
    assert builder.versions("Order") == ["spring edition"]
    assert builder.get_definition("Order", "spring edition") is builder.get_definition("Order")


def test_registering_definitions_puts_versions_side_by_side(tmp_path: Path) -> None:
    builder = WorkflowBuilder(config_dir=tmp_path)
    steps = [{"name": "only", "function": OK}]
    builder.register_workflow_inline("Inline", steps, workflow_version="1.0.0")
    builder.register_workflow_inline("Inline", steps, workflow_version="1.1.0")
    replaced = builder.register_workflow_inline("Inline", steps, workflow_version="1.0.0")
    assert builder.versions("Inline") == ["1.0.0", "1.1.0"]
    assert builder.get_definition("Inline", "1.0.0") is replaced
    assert builder.get_definition("Inline").spec.workflow_version == "1.1.0"
    with pytest.raises(DefinitionError, match="each must declare its own 'workflow_version'"):
        builder.register_workflow_inline("Inline", steps)
    with pytest.raises(DefinitionError, match=r"'1\.1' is the same version as '1\.1\.0'"):
        builder.register_workflow_inline("Inline", steps, workflow_version="1.1")
    assert builder.versions("Inline") == ["1.0.0", "1.1.0"]  # a refused one changes nothing
