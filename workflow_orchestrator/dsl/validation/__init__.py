"""Definition validation: YAML/JSON loading, the DSL grammar, semantic checks.

The project's own grammar of the DSL 1.0.3 (``structural_problems``) refuses exactly what the
official JSON schema refuses and needs no schema file; the semantic checks add what a schema
cannot say (references, expressions) and what this runtime will not run. The official schema
is an optional extra check (``OfficialSchema``, from a document the caller read).

``check_definition`` returns a ``ValidationReport`` (problems, and what will not run here);
``validate_definition`` returns both as one list. Each ``DefinitionProblem`` has a JSON
pointer, a sentence saying what to change, and the rule it breaks; ``InvalidDefinition``
carries them as an error.

Definitions and the documents workflows fetch are untrusted: ``load_data``/``load_document``
count what YAML aliases expand to in bytes, and ``ValidationOptions`` carries the limits of one
validation (expanded size, number of expressions, a ``Deadline``).
"""

from ._grammar import STRUCTURAL_RULES, structural_problems
from ._limits import MAX_EXPRESSIONS, Deadline
from ._loading import MAX_EXPANDED_SIZE, load_data, load_document
from ._official import SCHEMA_ID, OfficialSchema, WrongSchema
from ._problems import DefinitionProblem, InvalidDefinition
from ._semantic import UNSUPPORTED_RULES
from ._validate import (
    ValidationOptions,
    ValidationReport,
    check_definition,
    validate_definition,
)

__all__ = [
    "MAX_EXPANDED_SIZE",
    "MAX_EXPRESSIONS",
    "SCHEMA_ID",
    "STRUCTURAL_RULES",
    "UNSUPPORTED_RULES",
    "Deadline",
    "DefinitionProblem",
    "InvalidDefinition",
    "OfficialSchema",
    "ValidationOptions",
    "ValidationReport",
    "WrongSchema",
    "check_definition",
    "load_data",
    "load_document",
    "structural_problems",
    "validate_definition",
]
