"""What ``workflow-orchestrator definitions validate`` says about one definition file.

``problems`` are what breaks the DSL (the file is invalid anywhere). ``unsupported`` is what is
valid DSL but this service, configured as the options say, will not run: ``call`` of grpc,
asyncapi, a2a or mcp, ``run.container``, ``run.shell``/``run.script`` while disabled, and
schedules the scheduler cannot read. Registration refuses both (422); the command prints the
second as warnings unless ``--strict``.
"""

from __future__ import annotations

from pathlib import Path

import attrs

from workflow_orchestrator.definitions._submission import schedule_problems, storable_problems
from workflow_orchestrator.dsl.validation import (
    DefinitionProblem,
    InvalidDefinition,
    ValidationOptions,
    ValidationReport,
    check_definition,
    load_document,
)

__all__ = ["check_definition_file"]


def check_definition_file(path: str | Path, options: ValidationOptions) -> ValidationReport:
    """Read and check the definition in ``path`` as this service would register it.

    An unreadable file or text that is not YAML/JSON is a problem (rule ``file`` or
    ``syntax``), never an exception.
    """
    try:
        text = Path(path).read_bytes()
    except OSError as error:
        reason = (error.strerror or type(error).__name__).lower()
        problem = DefinitionProblem(
            pointer="", message=f"cannot read {str(path)!r}: {reason}", rule="file"
        )
        return ValidationReport(problems=(problem,))
    deadline = options.deadline()
    try:
        document = load_document(
            text,
            filename=str(path),
            max_expanded_size=options.max_expanded_size,
            deadline=deadline,
        )
    except InvalidDefinition as invalid:
        return ValidationReport(problems=tuple(invalid.problems))
    unstorable = storable_problems(document)
    if unstorable:
        return ValidationReport(problems=tuple(unstorable))
    report = check_definition(document, options, deadline=deadline)
    if not report.valid:
        return report
    schedules = schedule_problems(document)
    return attrs.evolve(report, unsupported=(*report.unsupported, *schedules))
