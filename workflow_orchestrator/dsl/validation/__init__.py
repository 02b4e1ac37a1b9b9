"""Definition validation: YAML/JSON loading, the official schema, semantic checks.

``validate_definition`` returns every problem at once, each with a JSON pointer, a sentence
saying what to change, and the rule it breaks; ``InvalidDefinition`` carries them as an error.
"""

from ._loading import load_document
from ._problems import DefinitionProblem, InvalidDefinition
from ._schema import SCHEMA_ENVIRONMENT_VARIABLE, SchemaNotFound, load_dsl_schema
from ._validate import ValidationOptions, validate_definition, validate_file

__all__ = [
    "SCHEMA_ENVIRONMENT_VARIABLE",
    "DefinitionProblem",
    "InvalidDefinition",
    "SchemaNotFound",
    "ValidationOptions",
    "load_document",
    "load_dsl_schema",
    "validate_definition",
    "validate_file",
]
