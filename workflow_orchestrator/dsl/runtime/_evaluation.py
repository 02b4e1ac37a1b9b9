"""Expression evaluation and data validation for one running instance.

`Evaluator` is the part of the interpreter's `Runner` that turns runtime expressions, templates,
durations and schemas into values or the spec's errors (expression errors, validation errors).
It holds what every evaluation needs: the engine, the instance's state (``$context``), the
descriptors (``$workflow``, ``$runtime``) and the secrets, fetched once per run and never
stored in the state.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from workflow_orchestrator.dsl.errors import ErrorType, Problem, WorkflowError
from workflow_orchestrator.dsl.expressions import (
    ExpressionEngine,
    ExpressionError,
    is_runtime_expression,
)
from workflow_orchestrator.dsl.model import DataFilter, Duration, SchemaRef, Workflow
from workflow_orchestrator.dsl.model import duration_seconds as _duration_seconds
from workflow_orchestrator.dsl.runtime._documents import fetch_document
from workflow_orchestrator.dsl.runtime._effects import Effects
from workflow_orchestrator.dsl.runtime._options import RuntimeOptions
from workflow_orchestrator.dsl.runtime._schema import validate_against
from workflow_orchestrator.dsl.runtime._state import ExecutionState

_FLAT_TEMPLATES: dict[int, tuple[object, tuple[tuple[str, Any, bool], ...] | None]] = {}


def _flat_template(value: Any) -> tuple[tuple[str, Any, bool], ...] | None:
    """For an object whose values are all scalars: (name, value, is expression) triples.

    Templates live in the shared model, so the analysis is cached by object identity (the
    object itself is kept in the cache, so its id cannot be reused).
    """
    if not isinstance(value, Mapping):
        return None
    cached = _FLAT_TEMPLATES.get(id(value))
    if cached is not None and cached[0] is value:
        return cached[1]
    parts: list[tuple[str, Any, bool]] | None = []
    for name, item in value.items():
        if isinstance(item, Mapping | list | tuple):
            parts = None
            break
        assert parts is not None
        parts.append((name, item, is_runtime_expression(item)))
    flat = None if parts is None else tuple(parts)
    if len(_FLAT_TEMPLATES) > 100_000:
        _FLAT_TEMPLATES.clear()
    _FLAT_TEMPLATES[id(value)] = (value, flat)
    return flat


def _expression_error(exc: ExpressionError, where: str) -> WorkflowError:
    """The spec's expression error for a failed evaluation at ``where``."""
    return WorkflowError(
        Problem.standard(
            ErrorType.EXPRESSION, title="Expression Error", detail=str(exc), instance=where
        )
    )


@attrs.define(eq=False, kw_only=True)
class Evaluator:
    """Evaluates expressions and validates data for one instance (see the module docstring)."""

    workflow: Workflow
    effects: Effects
    engine: ExpressionEngine
    options: RuntimeOptions
    state: ExecutionState
    workflow_descriptor: dict[str, Any] = attrs.field(factory=dict)
    runtime_descriptor: dict[str, Any] = attrs.field(factory=dict)
    documents: dict[str, Any] = attrs.field(factory=dict)
    _secrets: dict[str, Any] | None = None

    # -- expressions ---------------------------------------------------------------------

    async def evaluate(
        self, expression: Any, data: Any, args: Mapping[str, Any], where: str
    ) -> Any:
        """Evaluate a runtime expression; failures become the spec's expression error."""
        try:
            return await self.engine.evaluate(expression, data, args)
        except ExpressionError as exc:
            raise _expression_error(exc, where) from None

    async def evaluate_template(
        self, value: Any, data: Any, args: Mapping[str, Any], where: str
    ) -> Any:
        """Evaluate every ``${...}`` string inside ``value``."""
        flat = _flat_template(value)
        if flat is not None:
            # The common shape (an object of scalars and expressions) without a recursive walk.
            out = {}
            for name, item, is_expression in flat:
                out[name] = await self.evaluate(item, data, args, where) if is_expression else item
            return out
        try:
            return await self.engine.evaluate_template(value, data, args)
        except ExpressionError as exc:
            raise _expression_error(exc, where) from None

    async def transform(
        self, expression: Any, data: Any, args: Mapping[str, Any], where: str
    ) -> Any:
        """Apply a ``from``/``as`` transformation: an expression string or an object template."""
        if isinstance(expression, str):
            return await self.evaluate(expression, data, args, where)
        return await self.evaluate_template(expression, data, args, where)

    async def condition(
        self, expression: str, data: Any, args: Mapping[str, Any], where: str
    ) -> bool:
        """Evaluate a condition; only ``true`` counts as true (null and others are false)."""
        return (await self.evaluate(expression, data, args, where)) is True

    async def seconds(
        self, duration: Duration, data: Any, args: Mapping[str, Any], where: str
    ) -> float:
        """The seconds of a duration, evaluating it if it is an expression."""
        if duration.expression is None:
            return duration.seconds
        value = await self.evaluate(duration.expression, data, args, where)
        try:
            return _duration_seconds(value)
        except ValueError as exc:
            raise WorkflowError(
                Problem.standard(ErrorType.VALIDATION, detail=str(exc), instance=where)
            ) from None

    async def secrets(self) -> dict[str, Any]:
        """The declared secrets, fetched once per run (never stored in the state)."""
        if self._secrets is None:
            self._secrets = {
                name: await self.effects.get_secret(name) for name in self.workflow.secrets
            }
        return self._secrets

    async def base_args(self) -> dict[str, Any]:
        """Arguments every expression sees: ``$context``, ``$workflow``, ``$runtime``."""
        args: dict[str, Any] = {
            "context": self.state.context,
            "workflow": self.workflow_descriptor,
            "runtime": self.runtime_descriptor,
        }
        if self.workflow.secrets:
            args["secrets"] = await self.secrets()
        return args

    # -- schemas -------------------------------------------------------------------------

    async def validate(
        self, data_filter: DataFilter | None, value: Any, where: str, what: str
    ) -> None:
        """Validate ``value`` against the filter's schema, if any."""
        if data_filter is not None and data_filter.schema is not None:
            document = await self.schema_document(data_filter.schema, where)
            validate_against(document, value, where, what)

    async def schema_document(self, schema: SchemaRef, where: str) -> Any:
        """The schema's JSON document: inline, or fetched once per run through the effects."""
        if schema.document is not None:
            return schema.document
        endpoint = (schema.resource or {}).get("endpoint")
        uri = endpoint.get("uri") if isinstance(endpoint, Mapping) else endpoint
        if not isinstance(uri, str):
            raise WorkflowError(
                Problem.standard(
                    ErrorType.CONFIGURATION,
                    detail="a schema resource needs an endpoint URI",
                    instance=where,
                )
            )
        return await fetch_document(
            self.effects,
            self.options,
            self.documents,
            uri,
            what=f"the schema {uri}",
            accept="application/json, application/yaml",
            where=where,
        )
