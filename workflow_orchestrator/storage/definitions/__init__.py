"""Storage for the definitions audience: register, read, list and soft-delete definitions.

Used by ``definitions/`` (registration from the API and from folders), the gateway's
definition routes and the instances' ``WorkflowCatalog``.
"""

from workflow_orchestrator.storage.definitions._repository import (
    DefinitionPage,
    DefinitionSummary,
    InvalidCursor,
    RegistrationOutcome,
    RegistrationResult,
    StoredDefinition,
    content_hash,
    delete_definition,
    get_definition,
    list_definitions,
    list_versions,
    register_definition,
    resolve_workflow,
)

__all__ = [
    "DefinitionPage",
    "DefinitionSummary",
    "InvalidCursor",
    "RegistrationOutcome",
    "RegistrationResult",
    "StoredDefinition",
    "content_hash",
    "delete_definition",
    "get_definition",
    "list_definitions",
    "list_versions",
    "register_definition",
    "resolve_workflow",
]
