"""The optional official schema file: read once, and a wrong one is a one-line config error."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.spec import require_spec
from workflow_orchestrator.config import ConfigError, load_config
from workflow_orchestrator.definitions import (
    SchemaFileError,
    check_definition_file,
    configured_schema,
    read_official_schema,
)
from workflow_orchestrator.dsl.validation import OfficialSchema, ValidationOptions

ADVICE = (
    "point it at the official Serverless Workflow 1.0.3 schema/workflow.yaml, or leave it "
    "empty (definitions are validated without it)"
)


def test_no_schema_by_default(tmp_path: Path) -> None:
    """Without definitions.schema the service validates with its own grammar only."""
    assert configured_schema(load_config(cwd=tmp_path, environ={})) is None


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "the schema file {path} does not exist"),
        ("[1, 2]\n", "the schema file {path} is not a YAML or JSON mapping"),
        (
            "$id: https://example.com/x.yaml\n",
            "the schema file {path} is not the Serverless Workflow 1.0.3 schema ($id is "
            "'https://example.com/x.yaml', expected "
            "'https://serverlessworkflow.io/schemas/1.0.3/workflow.yaml')",
        ),
        (
            "$id: https://serverlessworkflow.io/schemas/1.0.3/workflow.yaml\ntype: 5\n",
            "the schema file {path} is not a valid JSON schema: 5 is not valid under any of the "
            "schemas listed in the 'anyOf' keyword",
        ),
    ],
)
def test_wrong_file_names_the_setting(tmp_path: Path, content: str | None, reason: str) -> None:
    """Each wrong file is a SchemaFileError (a ConfigError) of one line naming the setting."""
    path = tmp_path / "workflow.yaml"
    if content is not None:
        path.write_text(content)
    loaded = load_config(cwd=tmp_path, environ={"WORKFLOW_DSL_SCHEMA": str(path)})
    with pytest.raises(SchemaFileError) as caught:
        configured_schema(loaded)
    assert isinstance(caught.value, ConfigError)
    assert str(caught.value) == (
        f"env WORKFLOW_DSL_SCHEMA: definitions.schema: {reason.format(path=path)}; {ADVICE}"
    )


def test_a_folder_is_not_a_schema_file(tmp_path: Path) -> None:
    """A folder given as the schema says so."""
    with pytest.raises(SchemaFileError) as caught:
        read_official_schema(str(tmp_path), key="", source="--schema")
    assert str(caught.value) == f"--schema: {tmp_path} is a folder, not the schema file; {ADVICE}"


def test_the_official_schema_is_read(tmp_path: Path) -> None:
    """The spec's workflow.yaml (from ../shared, tests only) is accepted and used."""
    schema = require_spec() / "schema" / "workflow.yaml"
    config = tmp_path / "application.yaml"
    config.write_text(f"definitions:\n  schema: {schema}\n")
    official = configured_schema(load_config(config_path=config, environ={}))
    assert isinstance(official, OfficialSchema)
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        "document: {dsl: '1.0.3', namespace: t, name: f, version: '1.0.0'}\n"
        "do:\n  - a:\n      set: {x: 1}\n"
    )
    report = check_definition_file(flow, ValidationOptions(official_schema=official))
    assert report.valid and report.unsupported == ()
