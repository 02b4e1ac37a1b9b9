"""The path fast path gives exactly what jq gives, including jq's errors."""

from __future__ import annotations

import json
from typing import Any

import jq
import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from workflow_orchestrator.dsl.expressions import ExpressionEngine, ExpressionError

KEYS = st.sampled_from(["a", "b", "id", "x y", 'q"t', "é"])
SCALARS = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=5)
SCALARS = SCALARS | st.floats(allow_nan=False, allow_infinity=False)
JSON = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=4),
    max_leaves=20,
)
SEGMENTS = st.lists(KEYS | st.integers(-5, 5), max_size=4)


def _segment_text(segment: str | int, style: int) -> str:
    if isinstance(segment, int):
        return f"[{segment}]" if style % 2 else f".[{segment}]"
    if segment.isidentifier() and segment.isascii() and style == 0:
        return f".{segment}"
    return f".[{json.dumps(segment)}]" if style == 1 else f".{json.dumps(segment)}"


@st.composite
def _programs(draw: st.DrawFn) -> tuple[str, str | None]:
    variable = draw(st.sampled_from([None, "input", "context"]))
    segments = draw(SEGMENTS)
    parts = []
    for index, segment in enumerate(segments):
        style = draw(st.integers(0, 2))
        if index == 0 and variable is None and isinstance(segment, int):
            style = 0  # a leading "[0]" is an array literal, not a path
        parts.append(_segment_text(segment, style))
    head = f"${variable}" if variable is not None else ""
    body = "".join(parts)
    if not body and variable is None:
        body = "."
    return head + body, variable


def _jq_outputs(program: str, data: Any, arguments: dict[str, Any]) -> list[Any] | str:
    try:
        return jq.compile(program, args=arguments).input_value(data).all()  # type: ignore[no-any-return]
    except ValueError as error:
        return str(error)


@settings(max_examples=300, deadline=None)
@given(program=_programs(), data=JSON, argument=JSON)
def test_fast_path_matches_jq(program: tuple[str, str | None], data: Any, argument: Any) -> None:
    """A plain path read without jq equals jq's single output or raises jq's error."""
    text, _variable = program
    engine = ExpressionEngine()
    compiled = engine.compile(f"${{ {text} }}")
    assert compiled.tier == "path", text
    arguments = {"input": argument, "context": argument}
    expected = _jq_outputs(text, data, arguments)

    async def evaluate() -> Any:
        return await engine.evaluate(compiled, data, arguments)

    if isinstance(expected, str):
        with pytest.raises(ExpressionError) as caught:
            trio.run(evaluate)
        assert caught.value.detail in expected
    else:
        assert [trio.run(evaluate)] == expected


@pytest.mark.parametrize(
    "source",
    [".a | .b", ".a?", ".a[]", ".[1:2]", "[0]", ".a.b?", ".a, .b", "..", '.a["b"]?'],
)
def test_not_plain_paths(source: str) -> None:
    """Anything beyond a plain path is left to jq."""
    assert ExpressionEngine().compile(source).tier != "path"
