"""Validation entry points: the schema first, then the semantic checks, all problems at once."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from workflow_orchestrator.dsl.expressions import ExpressionEngine

from ._loading import load_document
from ._problems import DefinitionProblem, InvalidDefinition
from ._schema import schema_problems
from ._semantic import SemanticChecker

_COMPILE_ONLY_ENGINE = ExpressionEngine()


@attrs.frozen(kw_only=True)
class ValidationOptions:
    """What the runtime that will run the definition supports.

    ``container_runtime``: a container runtime is configured (``run.container`` allowed).
    ``allow_shell`` / ``allow_script``: ``run.shell`` / ``run.script`` are enabled (off by
    default). ``expression_engine``: the engine whose compile cache to use and warm (a shared
    compile-only engine when None).
    """

    container_runtime: bool = False
    allow_shell: bool = False
    allow_script: bool = False
    expression_engine: ExpressionEngine | None = attrs.field(default=None, eq=False)


_DEFAULT_OPTIONS = ValidationOptions()


def validate_definition(
    document: Mapping[str, Any], options: ValidationOptions = _DEFAULT_OPTIONS
) -> list[DefinitionProblem]:
    """Every problem of a loaded definition (schema and semantic), in document order.

    An empty list means the definition is valid for a runtime with ``options``. Raises
    ``SchemaNotFound`` if the DSL schema cannot be located (see ``load_dsl_schema``).
    """
    problems = schema_problems(document)
    checker = SemanticChecker(
        document=document,
        engine=options.expression_engine or _COMPILE_ONLY_ENGINE,
        container_runtime=options.container_runtime,
        allow_shell=options.allow_shell,
        allow_script=options.allow_script,
    )
    problems.extend(checker.run())
    return _in_document_order(document, problems)


def _in_document_order(
    document: Mapping[str, Any], problems: list[DefinitionProblem]
) -> list[DefinitionProblem]:
    """Sort problems by where their pointer appears in the document (stable otherwise)."""
    order: dict[str, int] = {}
    stack: list[tuple[str, Any]] = [("", document)]
    while stack:
        pointer, node = stack.pop()
        order[pointer] = len(order)
        if isinstance(node, Mapping):
            children = [(f"{pointer}/{_escape(str(key))}", item) for key, item in node.items()]
        elif isinstance(node, list):
            children = [(f"{pointer}/{index}", item) for index, item in enumerate(node)]
        else:
            continue
        stack.extend(reversed(children))

    def position(problem: DefinitionProblem) -> int:
        pointer = problem.pointer
        while pointer not in order and pointer:
            pointer = pointer.rsplit("/", 1)[0]
        return order.get(pointer, 0)

    return sorted(problems, key=position)


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def validate_file(
    path: str | Path, options: ValidationOptions = _DEFAULT_OPTIONS
) -> list[DefinitionProblem]:
    """Read, load and validate the definition in ``path``; unreadable files are a problem too.

    Print each problem as ``str(problem)``: ``POINTER: message (rule)``.
    """
    try:
        text = Path(path).read_bytes()
    except OSError as error:
        reason = error.strerror or str(error)
        return [
            DefinitionProblem(
                pointer="", message=f"cannot read {str(path)!r}: {reason.lower()}", rule="file"
            )
        ]
    try:
        document = load_document(text, filename=str(path))
    except InvalidDefinition as invalid:
        return invalid.problems
    return validate_definition(document, options)
