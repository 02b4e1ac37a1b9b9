"""The official DSL schema file, when an operator asks for it as an extra check.

The service validates definitions with its own grammar and needs no file. ``definitions.schema``
(or ``WORKFLOW_DSL_SCHEMA``, or ``definitions validate --schema``) may name the official
Serverless Workflow 1.0.3 ``workflow.yaml``; it is read once, at startup, before anything runs.
A file that is missing, unreadable, not YAML/JSON or not the 1.0.3 schema is a configuration
error of one line naming the setting, where its value came from, and what to do.
"""

from __future__ import annotations

from pathlib import Path

from workflow_orchestrator.config import ConfigError, ConfigProblem, LoadedConfig
from workflow_orchestrator.dsl.validation import (
    InvalidDefinition,
    OfficialSchema,
    WrongSchema,
    load_document,
)

__all__ = ["SchemaFileError", "configured_schema", "read_official_schema"]

_ADVICE = (
    "point it at the official Serverless Workflow 1.0.3 schema/workflow.yaml, or leave it "
    "empty (definitions are validated without it)"
)


class SchemaFileError(ConfigError):
    """The official schema file named by a setting cannot be used; its message is one line."""

    def __init__(self, problem: ConfigProblem) -> None:
        super().__init__([problem])

    def __str__(self) -> str:
        return str(self.problems[0])


def read_official_schema(path: str, *, key: str, source: str) -> OfficialSchema:
    """Read and compile the official schema at ``path``.

    ``key`` and ``source`` name the setting and where its value came from (``env
    WORKFLOW_DSL_SCHEMA``, a file, ``--schema``) for the error. Raises ``SchemaFileError``.
    """

    def fail(reason: str) -> SchemaFileError:
        return SchemaFileError(
            ConfigProblem(source=source, key=key, message=f"{reason}; {_ADVICE}")
        )

    file = Path(path).expanduser()
    try:
        text = file.read_bytes()
    except FileNotFoundError:
        raise fail(f"the schema file {path} does not exist") from None
    except IsADirectoryError:
        raise fail(f"{path} is a folder, not the schema file") from None
    except OSError as exc:
        reason = (exc.strerror or type(exc).__name__).lower()
        raise fail(f"cannot read the schema file {path}: {reason}") from None
    try:
        document = load_document(text, filename=path)
    except InvalidDefinition:
        raise fail(f"the schema file {path} is not a YAML or JSON mapping") from None
    try:
        return OfficialSchema.from_document(document)
    except WrongSchema as exc:
        raise fail(f"the schema file {path} {exc}") from None


def configured_schema(loaded: LoadedConfig) -> OfficialSchema | None:
    """The schema named by ``definitions.schema``, or None when the setting is empty."""
    path = loaded.settings.definitions.schema
    if not path:
        return None
    key = "definitions.schema"
    return read_official_schema(path, key=key, source=loaded.source_of(key))
