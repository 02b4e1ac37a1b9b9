"""The Serverless Workflow 1.0.3 spec folder (schema, CTK, examples) beside the project.

It is read from ``../shared/spec/serverless-workflow-1.0.3``, never copied into the project.
Tests that need it FAIL when ``CI`` is set and it is missing, and skip with a reason otherwise.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.services import unavailable

SPEC = Path(__file__).resolve().parents[3] / "shared" / "spec" / "serverless-workflow-1.0.3"


def require_spec() -> Path:
    """The spec folder, or fail (CI) / skip (elsewhere) when it is absent."""
    if not SPEC.is_dir():
        unavailable(f"the DSL spec folder {SPEC} is absent; put ../shared/spec next to the project")
    return SPEC
