"""Custom expression variables ($item, $index, caught errors) next to the standard arguments."""

from __future__ import annotations

from workflow_orchestrator.dsl.expressions import ExpressionEngine
from workflow_orchestrator.dsl.runtime._arguments import custom_scope


async def test_custom_variable_is_bound_by_the_engine() -> None:
    """A strict expression using $item evaluates with the value passed in the arguments."""
    result = await ExpressionEngine().evaluate(
        "${ .base + $item }", {"base": 40}, {"runtime": {"name": "x"}, "item": 2}
    )
    assert result == 42


def test_custom_scope_keeps_only_custom_names() -> None:
    """Nested tasks inherit the custom variables, not the standard arguments."""
    assert custom_scope({"context": {}, "task": {}, "item": 1, "err": {}}) == {"item": 1, "err": {}}
