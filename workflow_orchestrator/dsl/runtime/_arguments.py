"""Expression arguments: the spec's standard names and custom variables.

Custom variables are the names a workflow introduces: ``for.each``/``for.at`` (``$item``,
``$index``), ``catch.as`` (``$error``), ``foreach.item``/``foreach.at`` of a listen. They are
carried next to the standard arguments (the expression engine binds any variable an expression
reads) and visible to nested tasks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workflow_orchestrator.dsl.expressions import ARGUMENT_NAMES as STANDARD_ARGUMENTS

__all__ = ["STANDARD_ARGUMENTS", "custom_scope"]


def custom_scope(args: Mapping[str, Any]) -> dict[str, Any]:
    """The custom variables in ``args`` (what nested tasks inherit)."""
    return {k: v for k, v in args.items() if k not in STANDARD_ARGUMENTS}
