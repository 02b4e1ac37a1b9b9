"""Validation entry points: the grammar, the semantic checks and (if given) the official
schema, every problem at once.

``check_definition`` keeps apart what breaks the DSL (``problems``) and what is valid DSL that
this runtime will not run with the given options (``unsupported``: calls and containers,
shell and script tasks while disabled). ``validate_definition`` lists both, for callers that
refuse either (registration).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

from workflow_orchestrator.dsl.expressions import ExpressionEngine

from ._grammar import structural_problems
from ._limits import MAX_EXPRESSIONS, Deadline
from ._loading import MAX_EXPANDED_SIZE
from ._official import OfficialSchema
from ._problems import DefinitionProblem, InvalidDefinition
from ._semantic import SERVICE_CALLS, SemanticChecker

_COMPILE_ONLY_ENGINE = ExpressionEngine()


@attrs.frozen(kw_only=True)
class ValidationOptions:
    """What the runtime that will run the definition supports, and how to check.

    ``container_runtime``: a container runtime is configured (``run.container`` runs).
    ``enabled_calls``: the calls beyond http/openapi configuration enables (all by default).
    ``allow_shell`` / ``allow_script``: ``run.shell`` / ``run.script`` are enabled (off by
    default). ``allow_mcp_stdio``: ``call: mcp`` may start its server over stdio (off by
    default). ``secret_granted(namespace, name)`` / ``process_allowed(namespace)``: the
    configuration's grants (``security.secrets.grants``, ``workflows.run.namespaces``); a
    refusal is reported as unsupported at ``/use/secrets/<i>`` or the task (None: no rule).
    ``expression_engine``: the engine whose compile cache to use and warm (a shared
    compile-only engine when None). ``official_schema``: the official DSL schema, an optional
    extra check; the project's own grammar needs no schema file.
    """

    container_runtime: bool = False
    allow_shell: bool = False
    allow_script: bool = False
    allow_mcp_stdio: bool = False
    enabled_calls: frozenset[str] = SERVICE_CALLS
    secret_granted: Callable[[str, str], bool] | None = attrs.field(default=None, eq=False)
    process_allowed: Callable[[str], bool] | None = attrs.field(default=None, eq=False)
    expression_engine: ExpressionEngine | None = attrs.field(default=None, eq=False)
    official_schema: OfficialSchema | None = attrs.field(default=None, eq=False)
    max_expanded_size: int = MAX_EXPANDED_SIZE
    max_expressions: int = MAX_EXPRESSIONS
    timeout: float | None = None

    def deadline(self) -> Deadline | None:
        """The deadline of a validation starting now (None without a ``timeout``)."""
        return None if self.timeout is None else Deadline.after(self.timeout)


@attrs.frozen(kw_only=True)
class ValidationReport:
    """The result of checking one definition.

    ``problems``: how the document breaks the DSL (structure, references, expressions), in
    document order; ``unsupported``: valid DSL this runtime will not run with the options
    used, one entry per task, each naming the setting that enables it where one exists.
    """

    problems: tuple[DefinitionProblem, ...] = ()
    unsupported: tuple[DefinitionProblem, ...] = ()

    @property
    def valid(self) -> bool:
        """The document is valid DSL (it may still use what this runtime will not run)."""
        return not self.problems


_DEFAULT_OPTIONS = ValidationOptions()


def check_definition(
    document: Mapping[str, Any],
    options: ValidationOptions = _DEFAULT_OPTIONS,
    *,
    deadline: Deadline | None = None,
) -> ValidationReport:
    """Check a loaded definition: its problems and what this runtime will not run.

    ``deadline`` (default: ``options.deadline()``) bounds the time taken; past it, or past
    ``options.max_expressions``, the report ends with one ``limit`` problem.
    """
    deadline = deadline or options.deadline()
    problems = structural_problems(document)
    if options.official_schema is not None:
        problems.extend(_uncovered(options.official_schema.problems(document), problems))
    checker = SemanticChecker(
        document=document,
        engine=options.expression_engine or _COMPILE_ONLY_ENGINE,
        container_runtime=options.container_runtime,
        allow_shell=options.allow_shell,
        allow_script=options.allow_script,
        allow_mcp_stdio=options.allow_mcp_stdio,
        enabled_calls=options.enabled_calls,
        secret_granted=options.secret_granted,
        process_allowed=options.process_allowed,
        max_expressions=options.max_expressions,
        deadline=deadline,
    )
    try:
        if deadline is not None:
            deadline.check()
        problems.extend(checker.run())
    except InvalidDefinition as limit:
        return ValidationReport(problems=(*_in_document_order(document, problems), *limit.problems))
    return ValidationReport(
        problems=tuple(_in_document_order(document, problems)),
        unsupported=tuple(_in_document_order(document, checker.unsupported)),
    )


def validate_definition(
    document: Mapping[str, Any],
    options: ValidationOptions = _DEFAULT_OPTIONS,
    *,
    deadline: Deadline | None = None,
) -> list[DefinitionProblem]:
    """Every problem of a loaded definition, and everything this runtime will not run with
    ``options``, in document order. An empty list means the definition can be registered."""
    report = check_definition(document, options, deadline=deadline)
    if not report.unsupported:
        return list(report.problems)
    return _in_document_order(document, [*report.problems, *report.unsupported])


def _uncovered(
    official: list[DefinitionProblem], ours: list[DefinitionProblem]
) -> list[DefinitionProblem]:
    """The official schema's problems where the grammar found none at or below (the two agree,
    so normally none; kept as a safety net when an operator configures the schema)."""
    pointers = [problem.pointer for problem in ours]
    return [
        DefinitionProblem(
            pointer=problem.pointer,
            message=f"the official schema refuses this: {problem.message}",
            rule=problem.rule,
        )
        for problem in official
        if not any(_at_or_below(pointer, problem.pointer) for pointer in pointers)
    ]


def _at_or_below(pointer: str, ancestor: str) -> bool:
    return pointer == ancestor or pointer.startswith(ancestor + "/")


def _in_document_order(
    document: Mapping[str, Any], problems: list[DefinitionProblem]
) -> list[DefinitionProblem]:
    """Sort problems by where their pointer appears in the document (stable otherwise)."""
    if len(problems) < 2:
        return list(problems)
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
