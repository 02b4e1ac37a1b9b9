"""Compile-time checks of expressions: forbidden builtins are refused, look-alikes are not."""

from __future__ import annotations

import pytest

from workflow_orchestrator.dsl.expressions import ExpressionEngine, ExpressionError


@pytest.mark.parametrize(
    ("source", "names"),
    [
        ("${ env }", "env"),
        ("${ $ENV.HOME }", "$ENV"),
        ("${ env.PATH }", "env"),
        ("${ input }", "input"),
        ("${ [inputs] }", "inputs"),
        ('${ import "a" as a; . }', "import"),
        ('${ include "a"; . }', "include"),
        ("${ halt }", "halt"),
        ('${ "bye" | halt_error }', "halt_error"),
        ("${ input_filename }", "input_filename"),
        ("${ debug }", "debug"),
        ("${ stderr }", "stderr"),
        ("${ get_search_list }", "get_search_list"),
        ('${ "\\(env.HOME)" }', "env"),
        ("${ {a: (1, env)} }", "env"),
        ("${ [1, env, 2] }", "env"),
        ("${ input, env }", "input, env"),
    ],
)
def test_forbidden_builtins_are_rejected(source: str, names: str) -> None:
    """Builtins that read the host or the process are rejected at compile time."""
    with pytest.raises(ExpressionError) as caught:
        ExpressionEngine().compile(source)
    assert caught.value.detail == (
        f"uses {names}, which runtime expressions may not use "
        "(no environment, input, module, halt or debug builtins); remove it"
    )


@pytest.mark.parametrize(
    "source",
    [
        "${ .env }",
        '${ ."input" }',
        "${ {env: 1} }",
        "${ {a: 1, env} }",
        '${ "env input halt" }',
        "${ .input as $env | $env }",
        "${ $input }",
        "# env\n.a",
    ],
)
def test_lookalikes_are_allowed(source: str) -> None:
    """Fields, keys, variables, strings and comments named like forbidden builtins are fine."""
    ExpressionEngine().compile(source)
