"""Workflow definitions as users submit them: parsing, validation, folder registration.

``parse_submission`` turns a submitted body (YAML/JSON, or an ``{"id", "definition"}``
wrapper) into a validated ``Submission`` (``parse_submission_off_loop`` does it in a worker
thread, for the API); ``register_definition_files`` registers the
``definitions.paths`` folders at startup; ``configured_schema`` reads the optional official
schema named by ``definitions.schema``; ``check_definition_file`` is what ``definitions
validate`` reports for a file.
"""

from workflow_orchestrator.definitions._check import check_definition_file
from workflow_orchestrator.definitions._folders import (
    DefinitionFilesInvalid,
    find_definition_files,
    register_definition_files,
)
from workflow_orchestrator.definitions._off_loop import (
    parse_submission_off_loop,
    validation_limiter,
)
from workflow_orchestrator.definitions._schema_file import (
    SchemaFileError,
    configured_schema,
    read_official_schema,
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
    "SchemaFileError",
    "Submission",
    "check_definition_file",
    "configured_schema",
    "find_definition_files",
    "parse_submission",
    "parse_submission_off_loop",
    "read_official_schema",
    "register_definition_files",
    "register_submission",
    "schedule_problems",
    "validation_limiter",
]
