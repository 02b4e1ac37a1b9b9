"""Definitions a careless or hostile user sends are 4xx problems naming the limit, never 500."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from tests.integration.gateway.test_definitions_api import GREETING, api, post

pytestmark = pytest.mark.integration

HEADER = "document: {dsl: '1.0.3', namespace: demo, name: limits, version: '1.0.0'}\n"


def _tasks(count: int) -> str:
    return (
        HEADER
        + "do:\n"
        + "".join(f"  - t{i}:\n      set: {{v: '${{ .a }}'}}\n" for i in range(count))
    )


def _problems(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(problem["pointer"], problem["rule"]) for problem in body["problems"]]


async def test_poison_definitions_are_422_problems(database_url: str) -> None:
    """NUL, NaN, huge integers, deep nesting and alias bombs are each one 422 problem."""
    laughs = (
        f'line: &line "{"x" * 1000}"\nblock: &block [{", ".join(["*line"] * 100)}]\n'
        f"all: [{', '.join(['*block'] * 1500)}]\n"
    )
    bodies = {
        "nul": GREETING.replace('${ "hello " + .name }', '"a\\0b"'),
        "nan": GREETING.replace('${ "hello " + .name }', ".nan"),
        "digits": GREETING.replace('${ "hello " + .name }', "1" * 5000),
        "deep": '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}",
        "aliases": laughs,
    }
    answers: dict[str, tuple[int, str, dict[str, Any]]] = {}
    with trio.fail_after(120):
        async with api(database_url) as client:
            for name, body in bodies.items():
                response = await post(client, body)
                answers[name] = (
                    response.status_code,
                    response.content_type,
                    await response.get_json(),
                )
    for status, content_type, _ in answers.values():
        assert (status, content_type) == (422, "application/problem+json")
    assert _problems(answers["nul"][2]) == [("/do/0/greet/set/message", "storable")]
    assert _problems(answers["nan"][2]) == [("/do/0/greet/set/message", "syntax")]
    assert _problems(answers["digits"][2]) == [("", "syntax")]
    assert _problems(answers["deep"][2]) == [("", "syntax")]
    assert answers["aliases"][2]["problems"][0]["message"] == (
        "the definition expands to more than 4 MiB of JSON (through YAML aliases?), the limit "
        "set by definitions.maxExpandedSize; write the repeated parts out, make it smaller or "
        "raise the setting"
    )


async def test_too_many_expressions_is_a_422_naming_the_setting(database_url: str) -> None:
    """A definition over definitions.maxExpressions (2000) is refused; one under it registers."""
    with trio.fail_after(120):
        async with api(database_url) as client:
            over = await post(client, _tasks(2001))
            under = await post(client, _tasks(2000))
            body = await over.get_json()
    assert over.status_code == 422
    assert body["problems"] == [
        {
            "pointer": "/do/2000/t2000/set/v",
            "message": "the definition has more than 2000 runtime expressions, the limit set by "
            "definitions.maxExpressions; split it into subflows or raise the setting",
            "rule": "limit",
        }
    ]
    assert under.status_code == 201
