"""Workflow definitions as users submit them: parsing, validation, folder registration.

``parse_submission`` turns a submitted body (YAML/JSON, or an ``{"id", "definition"}``
wrapper) into a validated ``Submission``; ``register_definition_files`` registers the
``definitions.paths`` folders at startup.
"""

from workflow_orchestrator.definitions._folders import (
    DefinitionFilesInvalid,
    find_definition_files,
    register_definition_files,
)
from workflow_orchestrator.definitions._submission import (
    DEFINITION_ID_PATTERN,
    InvalidSubmission,
    Submission,
    parse_submission,
    register_submission,
    schedule_problems,
)

__all__ = [
    "DEFINITION_ID_PATTERN",
    "DefinitionFilesInvalid",
    "InvalidSubmission",
    "Submission",
    "find_definition_files",
    "parse_submission",
    "register_definition_files",
    "register_submission",
    "schedule_problems",
]
