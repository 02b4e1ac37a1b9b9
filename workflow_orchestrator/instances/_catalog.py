"""Interpreters of the registered definition versions, built once and shared by their instances.

A definition version never changes once registered (a changed document is a conflict), so its
id and version name its content: the typed model and its interpreter, and its input validator,
are kept in bounded LRU caches (the ``MAX_CACHED_VERSIONS`` versions used last; an evicted one
is read and built again when next used). Soft-deleted versions are still found: their running
instances must go on.
"""

from __future__ import annotations

from typing import Any, Protocol

import attrs
import jsonschema_rs

from workflow_orchestrator.dsl import (
    ExpressionEngine,
    Interpreter,
    LruCache,
    Workflow,
    build_workflow,
)
from workflow_orchestrator.dsl.runtime import RuntimeOptions

__all__ = ["MAX_CACHED_VERSIONS", "DefinitionSource", "WorkflowCatalog"]

_MAX_INPUT_PROBLEMS = 10
MAX_CACHED_VERSIONS = 1000


class DefinitionSource(Protocol):
    """The documents of registered definition versions (``DatabaseInstanceRepository`` in
    the service, ``instances.testing.InMemoryInstanceStore`` in tests)."""

    async def definition_document(self, definition_id: str, version: str) -> dict[str, Any]:
        """The document of ``definition_id`` at ``version``, also when soft-deleted (its
        running instances go on); raises ``DefinitionNotFound``."""
        ...


@attrs.define(eq=False)
class WorkflowCatalog:
    """Finds (and caches) the interpreter of a definition version."""

    definitions: DefinitionSource
    engine: ExpressionEngine
    options: RuntimeOptions
    max_cached: int = MAX_CACHED_VERSIONS
    _interpreters: LruCache[tuple[str, str], Interpreter] = attrs.field(init=False)
    _input_validators: LruCache[tuple[str, str], Any] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._interpreters = LruCache(self.max_cached)
        self._input_validators = LruCache(self.max_cached)

    async def interpreter(self, definition_id: str, version: str) -> Interpreter:
        """The interpreter of ``definition_id`` at ``version``; raises ``DefinitionNotFound``."""
        key = (definition_id, version)
        found = self._interpreters.get(key)
        if found is None:
            document = await self.definitions.definition_document(definition_id, version)
            # The definition owns its evaluations: the sandbox takes turns between definitions.
            engine = self.engine.for_owner(f"definition:{definition_id}")
            found = Interpreter(build_workflow(document), engine, self.options)
            self._interpreters.put(key, found)
        return found

    def input_problems(
        self, definition_id: str, version: str, workflow: Workflow, value: Any
    ) -> list[dict[str, str]]:
        """Why ``value`` does not match the workflow's inline ``input.schema`` (empty if it does).

        Schemas given as external resources are checked when the instance starts instead.
        """
        schema = workflow.input.schema if workflow.input is not None else None
        if schema is None or schema.document is None:
            return []
        key = (definition_id, version)
        validator = self._input_validators.get(key)
        if validator is None:
            validator = jsonschema_rs.validator_for(dict(schema.document))
            self._input_validators.put(key, validator)
        problems = []
        for error in list(validator.iter_errors(value))[:_MAX_INPUT_PROBLEMS]:
            path = "".join(f"/{part}" for part in error.instance_path)
            problems.append({"pointer": path, "message": error.message, "rule": "schema"})
        return problems
