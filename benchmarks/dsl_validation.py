"""Definition validation on the registration path: the grammar against the official schema.

Run: ``.venv/bin/python benchmarks/dsl_validation.py``. It reads the official examples and the
schema from ../shared (benchmarks may; the service never does) and prints microseconds per
example, averaged over all of them: the grammar alone (``structural_problems``), jsonschema-rs
on the official schema (``is_valid``, and with errors explained as the optional extra check
does), the semantic checks, and the whole ``validate_definition`` a registration runs (also
with the official schema on). One core; figures assert nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workflow_orchestrator.dsl.validation import (
    OfficialSchema,
    ValidationOptions,
    check_definition,
    load_document,
    structural_problems,
    validate_definition,
)

SPEC = Path(__file__).resolve().parents[2] / "shared/spec/serverless-workflow-1.0.3"


def _per_document(label: str, call: Callable[[Any], Any], documents: list[Any]) -> None:
    for document in documents:  # warm caches (compiled expressions, validators)
        call(document)
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(20):
            for document in documents:
                call(document)
        best = min(best, (time.perf_counter() - started) / (20 * len(documents)))
    print(f"{label:<60} {best * 1e6:>8.1f} us/definition")


def main() -> None:
    """Print the figures."""
    paths = sorted((SPEC / "examples").glob("*.yaml"))
    if not paths:
        print(f"the official examples are not at {SPEC}/examples")
        return
    documents = [load_document(path.read_bytes()) for path in paths]
    texts = [path.read_bytes() for path in paths]
    official = OfficialSchema.from_document(
        load_document((SPEC / "schema" / "workflow.yaml").read_bytes())
    )
    with_schema = ValidationOptions(official_schema=official)
    print(f"{len(documents)} official examples")
    _per_document("grammar: structural_problems", structural_problems, documents)
    _per_document(
        "jsonschema-rs: official schema, is_valid", official.validator.is_valid, documents
    )
    _per_document(
        "jsonschema-rs: official schema, explained problems", official.problems, documents
    )
    _per_document(
        "check_definition (grammar and semantic checks)",
        lambda document: check_definition(document),
        documents,
    )
    _per_document("validate_definition (registration)", validate_definition, documents)
    _per_document(
        "validate_definition with definitions.schema set",
        lambda document: validate_definition(document, with_schema),
        documents,
    )
    _per_document(
        "load_document + validate_definition",
        lambda text: validate_definition(load_document(text)),
        texts,
    )


if __name__ == "__main__":
    main()
