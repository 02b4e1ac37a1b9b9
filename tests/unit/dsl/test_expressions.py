"""Runtime expressions: strict/loose mode, arguments, tiers, errors and the public surface."""

from __future__ import annotations

import pickle
from collections.abc import AsyncIterator
from typing import Any

import pytest

import workflow_orchestrator.dsl.expressions as expressions
from workflow_orchestrator.adapters import open_expression_engine
from workflow_orchestrator.dsl.expressions import (
    EXPRESSION_ERROR_STATUS,
    EXPRESSION_ERROR_TYPE,
    CompiledExpression,
    ExpressionEngine,
    ExpressionError,
    ExpressionLimits,
    is_runtime_expression,
)
from workflow_orchestrator.errors import OrchestratorError


@pytest.fixture
async def engine() -> AsyncIterator[ExpressionEngine]:
    async with open_expression_engine(ExpressionLimits(cpu_seconds=0.2)) as engine:
        yield engine


def test_public_surface() -> None:
    """The names the interpreter codes against stay exported."""
    assert sorted(expressions.__all__) == sorted(
        [
            "ARGUMENT_NAMES",
            "EXPRESSION_ERROR_STATUS",
            "EXPRESSION_ERROR_TYPE",
            "CompiledExpression",
            "ExpressionEngine",
            "ExpressionError",
            "ExpressionLimits",
            "ExpressionSandbox",
            "is_runtime_expression",
            "jq_detail",
            "json_size_exceeds",
        ]
    )
    assert ExpressionLimits() == ExpressionLimits(cpu_seconds=1.0, max_output_bytes=10_000_000)


def test_expression_error_is_the_spec_error() -> None:
    """ExpressionError maps to the spec's expression error and refines ValueError."""
    error = ExpressionError("${ .a }", "boom")
    assert isinstance(error, OrchestratorError)
    assert isinstance(error, ValueError)
    assert error.type == EXPRESSION_ERROR_TYPE
    assert EXPRESSION_ERROR_TYPE == "https://serverlessworkflow.io/spec/1.0.0/errors/expression"
    assert error.status == EXPRESSION_ERROR_STATUS == 400
    assert (error.expression, error.detail) == ("${ .a }", "boom")
    assert str(error) == "expression '${ .a }': boom"
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.expression, copy.detail) == ("${ .a }", "boom")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("${ .a }", True),
        ("  ${.a}  ", True),
        ("${\n  .a\n}", True),
        (".a", False),
        ("hello ${ .a }", False),
        ("${ .a", False),
        (42, False),
        (None, False),
    ],
)
def test_is_runtime_expression(value: object, expected: bool) -> None:
    """Only strings enclosed in ${ } are strict runtime expressions."""
    assert is_runtime_expression(value) is expected


async def test_strict_and_loose_mode(engine: ExpressionEngine) -> None:
    """${ ... } and bare jq text evaluate the same program."""
    data = {"order": {"id": "o-1", "total": 3}}
    assert await engine.evaluate("${ .order.id }", data, {}) == "o-1"
    assert await engine.evaluate(".order.id", data, {}) == "o-1"
    assert await engine.evaluate("${ .order.total + 1 }", data, {}) == 4


async def test_all_arguments_are_bound(engine: ExpressionEngine) -> None:
    """Every standard argument is readable as $name; unset ones are null."""
    names = ["context", "input", "output", "secrets", "task", "workflow", "runtime"]
    names.append("authorization")
    arguments = {name: {"name": name} for name in names}
    for name in names:
        assert await engine.evaluate(f"${{ ${name}.name }}", None, arguments) == name
        assert await engine.evaluate(f"${{ [${name}.name] }}", None, arguments) == [name]
    assert await engine.evaluate("${ $secrets }", None, {}) is None


async def test_result_convention(engine: ExpressionEngine) -> None:
    """No output gives None, one output the value, several outputs a list."""
    assert await engine.evaluate("${ empty }", {}, {}) is None
    assert await engine.evaluate("${ 1 }", {}, {}) == 1
    assert await engine.evaluate("${ 1, 2 }", {}, {}) == [1, 2]


def test_tiers() -> None:
    """Paths skip jq, cheap programs run in-process, the rest in the sandbox."""
    engine = ExpressionEngine()
    tiers = {
        source: engine.compile(source).tier
        for source in [
            "${ .a.b[0] }",
            "${ $input.x }",
            "${ . }",
            "${ .a + 1 }",
            "${ [.items[] | select(.ok)] }",
            "${ {a: .x, b: $input.y} }",
            "${ .items[] | $input }",
            "${ reduce .[] as $x (0; . + $x) }",
            "${ [range(3)] }",
            '${ "x" * 3 }',
            '${ "x" * 1000 }',
            "${ .amount * 2 }",
            "${ 1.5 * .amount }",
            "${ .quantity * .price }",
            '${ test("a+") }',
            "${ def f: 1; f }",
            "${ .. }",
            "${ [.,.] | [.,.] | [.,.] | [.,.] | [.,.] | [.,.] | [.,.] }",
            "${ .a | tojson | tojson | tojson }",
            '${ ltrimstr("' + "x" * 300 + '") }',
            '${ .tags | join(", ") }',
            "${ .tags | join(tojson) }",
            "${ .total - 1 }",
            "${ -.total }",
            "${ .a - .b }",
        ]
    }
    assert tiers == {
        "${ .a.b[0] }": "path",
        "${ $input.x }": "path",
        "${ . }": "path",
        "${ .a + 1 }": "inline",
        "${ [.items[] | select(.ok)] }": "inline",
        "${ {a: .x, b: $input.y} }": "inline",
        "${ .items[] | $input }": "sandbox",
        "${ reduce .[] as $x (0; . + $x) }": "sandbox",
        "${ [range(3)] }": "sandbox",
        '${ "x" * 3 }': "inline",
        '${ "x" * 1000 }': "sandbox",
        "${ .amount * 2 }": "inline",
        "${ 1.5 * .amount }": "inline",
        "${ .quantity * .price }": "sandbox",
        '${ test("a+") }': "sandbox",
        "${ def f: 1; f }": "sandbox",
        "${ .. }": "sandbox",
        "${ [.,.] | [.,.] | [.,.] | [.,.] | [.,.] | [.,.] | [.,.] }": "sandbox",
        "${ .a | tojson | tojson | tojson }": "sandbox",
        '${ ltrimstr("' + "x" * 300 + '") }': "sandbox",
        '${ .tags | join(", ") }': "inline",
        "${ .tags | join(tojson) }": "sandbox",
        "${ .total - 1 }": "inline",
        "${ -.total }": "inline",
        "${ .a - .b }": "sandbox",
    }


async def test_engine_without_a_sandbox_refuses_only_the_sandbox_tier() -> None:
    """Without a sandbox the engine compiles everything and runs paths and cheap programs."""
    engine = ExpressionEngine()
    source = "${ reduce .[] as $x (0; . + $x) }"
    assert engine.compile(source).tier == "sandbox"
    assert await engine.evaluate("${ .a }", {"a": 1}, {}) == 1
    assert await engine.evaluate("${ .a + 1 }", {"a": 1}, {}) == 2
    with pytest.raises(RuntimeError) as caught:
        await engine.evaluate(source, [1, 2], {})
    assert str(caught.value) == (
        f"expression {source!r} needs the sandbox and this engine has none; build the engine "
        "with a sandbox (workflow_orchestrator.adapters.open_expression_engine)"
    )


def test_compile_is_cached() -> None:
    """Compiling the same text twice returns the same compiled object."""
    engine = ExpressionEngine()
    first = engine.compile("${ .a + 1 }")
    assert isinstance(first, CompiledExpression)
    assert engine.compile("${ .a + 1 }") is first


async def test_all_tiers_give_the_same_results(engine: ExpressionEngine) -> None:
    """The same program gives the same value whichever tier runs it."""
    data = {"items": [{"n": 1, "ok": True}, {"n": 2, "ok": False}, {"n": 3, "ok": True}]}
    inline = "${ [.items[] | select(.ok) | .n] }"
    sandbox = "${ [.items[] | select(.ok) | .n] as $ns | $ns }"
    assert engine.compile(inline).tier == "inline"
    assert engine.compile(sandbox).tier == "sandbox"
    assert await engine.evaluate(inline, data, {}) == [1, 3]
    assert await engine.evaluate(sandbox, data, {}) == [1, 3]


async def test_syntax_error_message(engine: ExpressionEngine) -> None:
    """A syntax error names the expression and jq's reason with the user's positions."""
    with pytest.raises(ExpressionError) as caught:
        engine.compile("${ .a( }")
    assert caught.value.expression == "${ .a( }"
    assert caught.value.detail.startswith(
        "is not valid jq: syntax error, unexpected '(', expecting end of file"
    )
    assert "line 1, column 4" in caught.value.detail


async def test_task_variables_are_arguments(engine: ExpressionEngine) -> None:
    """Variables a task adds ($pet of for.each) are read from arguments; missing ones are null."""
    compiled = engine.compile('${ .pets + [{ "id": $pet.id }] }')
    assert compiled.arguments == {"pet"}
    assert await engine.evaluate(compiled, {"pets": []}, {"pet": {"id": 3}}) == [{"id": 3}]
    assert await engine.evaluate("${ $pet }", None, {}) is None
    own = engine.compile("${ . as [$a, {b: $c}] | reduce .[] as $x ($a; . + $x + $c + $d) }")
    assert own.arguments == {"d"}


async def test_empty_expression(engine: ExpressionEngine) -> None:
    """An empty ${ } says what to write instead."""
    with pytest.raises(ExpressionError) as caught:
        engine.compile("${   }")
    assert caught.value.detail == "the expression is empty; write a jq filter such as .name"


async def test_runtime_error_message(engine: ExpressionEngine) -> None:
    """A jq runtime error becomes an ExpressionError with jq's text, on every tier."""
    for source in ["${ .a.b }", "${ .a.b + 1 }", "${ .a.b as $x | $x }"]:
        with pytest.raises(ExpressionError) as caught:
            await engine.evaluate(source, {"a": 3}, {})
        assert caught.value.detail.startswith("Cannot index number with"), source


async def test_error_builtin(engine: ExpressionEngine) -> None:
    """jq's error() surfaces its message as the detail."""
    with pytest.raises(ExpressionError) as caught:
        await engine.evaluate('${ error("no stock") }', {}, {})
    assert caught.value.detail == 'no stock (not a string): "no stock"' or (
        "no stock" in caught.value.detail
    )


async def test_evaluate_template(engine: ExpressionEngine) -> None:
    """Templates evaluate strict expressions in values and leave everything else alone."""
    template = {
        "id": "${ .order.id }",
        "plain": ".order.id",
        "mixed": "order ${ .order.id }",
        "nested": [{"who": "${ $input.user }"}, 3, None, True],
        "${ .key }": "keys stay",
    }
    result = await engine.evaluate_template(
        template, {"order": {"id": 7}}, {"input": {"user": "u"}}
    )
    assert result == {
        "id": 7,
        "plain": ".order.id",
        "mixed": "order ${ .order.id }",
        "nested": [{"who": "u"}, 3, None, True],
        "${ .key }": "keys stay",
    }


@pytest.mark.parametrize("source", ["${ [range(1)] | .[0] as $x | . }", "${ .a + 1 }"])
async def test_non_json_data_is_rejected(engine: ExpressionEngine, source: str) -> None:
    """Data that is not JSON gives a clear error instead of a crash, on every jq tier."""
    with pytest.raises(ExpressionError) as caught:
        await engine.evaluate(source, {"a": object()}, {})
    assert caught.value.detail.startswith("the data is not JSON")
    assert caught.value.detail.endswith("; pass JSON values only")


@pytest.mark.parametrize(
    "settings",
    [{"cpu_seconds": 0}, {"max_output_bytes": 0}, {"max_memory_bytes": -1}, {"max_workers": 0}],
)
def test_limits_reject_nonsense(settings: dict[str, float]) -> None:
    """Limits that would disable the budget or the pool are refused with the field's name."""
    name = next(iter(settings))
    with pytest.raises(ValueError, match=f"'{name}' must be"):
        ExpressionLimits(**settings)  # type: ignore[arg-type]


async def test_results_nested_too_deeply_are_an_expression_error() -> None:
    """A result deeper than Python converts is the expression's error, not a crash."""
    data: Any = []
    for _ in range(990):
        data = [data]
    source = "${ " + "[" * 20 + "." + "]" * 20 + " }"
    with pytest.raises(ExpressionError) as caught:
        await ExpressionEngine().evaluate(source, data, {})
    assert caught.value.detail == "the data or the result is nested too deeply to convert"
