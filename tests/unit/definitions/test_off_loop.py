"""Submitted definitions are validated in a worker thread, within limits, and storable."""

from __future__ import annotations

import json

import pytest
import trio

from workflow_orchestrator.definitions import (
    parse_submission,
    parse_submission_off_loop,
    validation_limiter,
)
from workflow_orchestrator.dsl.validation import InvalidDefinition, ValidationOptions

HEADER = "document: {dsl: '1.0.3', namespace: t, name: big, version: '1.0.0'}\n"


def _definition(tasks: int) -> str:
    lines = [HEADER.rstrip("\n"), "do:"]
    for i in range(tasks):
        lines.append(f"  - t{i}:\n      set:\n        v: ${{ .a{i} + {i} | tostring }}")
    return "\n".join(lines) + "\n"


async def test_the_event_loop_runs_while_a_big_definition_validates() -> None:
    """Other tasks keep being scheduled while hundreds of expressions compile."""
    ticks = 0
    done = trio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await trio.sleep(0.001)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ticker)
        await trio.lowlevel.checkpoint()
        before = ticks
        submission = await parse_submission_off_loop(
            _definition(400),
            definition_id=None,
            options=ValidationOptions(timeout=60.0),
            limiter=validation_limiter(),
        )
        during = ticks - before
        done.set()
    assert submission.definition_id == "big" and len(submission.document["do"]) == 400
    assert during > 0


async def test_a_validation_past_its_timeout_is_a_limit_problem() -> None:
    """Past definitions.validationTimeout the caller gets one problem naming the setting."""
    with pytest.raises(InvalidDefinition) as caught:
        await parse_submission_off_loop(
            _definition(50),
            definition_id=None,
            options=ValidationOptions(timeout=0.0),
            limiter=validation_limiter(),
        )
    [problem] = caught.value.problems
    assert problem.rule == "limit"
    assert problem.message.startswith(
        "validating the definition takes longer than 0s, the limit set by "
        "definitions.validationTimeout"
    )


@pytest.mark.parametrize(
    ("value", "pointer"),
    [('"a\\0b"', "/do/0/t0/set/v"), ('{"k\\u0000": 1}', "/do/0/t0/set/v/k\x00")],
)
def test_what_postgresql_cannot_store_is_a_problem(value: str, pointer: str) -> None:
    """NUL (in a value or a key) is refused with its pointer before it reaches the database."""
    text = HEADER + f"do:\n  - t0:\n      set:\n        v: {value}\n"
    with pytest.raises(InvalidDefinition) as caught:
        parse_submission(text)
    [problem] = caught.value.problems
    assert (problem.pointer, problem.rule) == (pointer, "storable")
    assert problem.message == (
        "this value holds the NUL character (\\u0000), which PostgreSQL cannot store; remove it "
        "or encode the value (for example base64)"
    )


def test_a_wrapped_definition_is_read_within_the_limits() -> None:
    """The YAML text inside an {"id", "definition"} wrapper has the same expanded-size limit."""
    inner = HEADER + "do:\n  - t0:\n      set:\n        v: &v [1, 2, 3]\n        w: [*v, *v]\n"
    wrapper = {"id": "wrapped", "definition": inner}
    options = ValidationOptions(max_expanded_size=1024)
    assert parse_submission(json.dumps(wrapper), options=options).definition_id == "wrapped"
    with pytest.raises(InvalidDefinition) as caught:
        parse_submission(
            json.dumps({"definition": inner + "x: " + "y" * 2000 + "\n"}), options=options
        )
    assert "the limit set by definitions.maxExpandedSize" in caught.value.problems[0].message
