"""Expression arguments: the spec's standard names and custom variables.

Custom variables are the names a workflow introduces: ``for.each``/``for.at`` (``$item``,
``$index``), ``catch.as`` (``$error``), ``foreach.item``/``foreach.at`` of a listen. They are
carried next to the standard arguments (the expression engine binds any variable an expression
reads) and visible to nested tasks, as are the runtime's markers (names no expression can
read, such as `REMOTE_FUNCTION`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workflow_orchestrator.dsl.expressions import ARGUMENT_NAMES as STANDARD_ARGUMENTS

__all__ = ["REMOTE_FUNCTION", "STANDARD_ARGUMENTS", "custom_scope"]

#: The scope entry of the tasks of a function document fetched at run time (a cataloged
#: function, or one named by its URI): they read no ``$secrets`` and use no authentication
#: policy by name or by secret. Not a jq name: no expression can read or set it.
REMOTE_FUNCTION = "!remote-function"


def custom_scope(args: Mapping[str, Any]) -> dict[str, Any]:
    """The custom variables in ``args`` (what nested tasks inherit)."""
    return {k: v for k, v in args.items() if k not in STANDARD_ARGUMENTS}
