"""Flattening exception groups: every leaf, in order, nothing else."""

from __future__ import annotations

from workflow_orchestrator.errors import exception_leaves


def test_nested_groups_are_flattened_in_order() -> None:
    """Leaves of nested groups come out depth first, in the groups' order."""
    first, second, third = ValueError("a"), KeyError("b"), OSError("c")
    group = BaseExceptionGroup("outer", [first, ExceptionGroup("inner", [second, third])])
    assert exception_leaves(group) == [first, second, third]


def test_a_plain_error_is_its_own_leaf() -> None:
    """An error that is no group is returned alone; its cause is not followed."""
    error = RuntimeError("x")
    error.__cause__ = ExceptionGroup("cause", [ValueError("y")])
    assert exception_leaves(error) == [error]
