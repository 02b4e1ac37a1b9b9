"""json_size_exceeds: an upper estimate of a value's JSON text that stops early."""

from __future__ import annotations

import json
from typing import Any

import pytest

from workflow_orchestrator.dsl.expressions import json_size_exceeds


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        12345678,
        1.5,
        "",
        "text",
        [],
        {},
        [1, "a", None, {"b": [True, 2.5]}],
        {"order": {"id": "A-1", "lines": [{"sku": "x", "qty": 2}] * 5}},
    ],
)
def test_the_estimate_is_never_below_the_json_text(value: Any) -> None:
    """Below the estimate means below the real size: no value slips under the limit."""
    size = len(json.dumps(value, separators=(",", ":")))
    assert json_size_exceeds(value, size - 1)


def test_small_values_are_within_a_limit_of_a_few_times_their_size() -> None:
    """The estimate is close enough that small inputs stay small."""
    value = {"order": {"id": "A-1", "amount": 42, "lines": [{"sku": "x"}]}}
    size = len(json.dumps(value))
    assert not json_size_exceeds(value, 2 * size)


def test_huge_values_are_recognised_without_walking_them() -> None:
    """A 4 MB string, ten million elements or a million keys exceed 64 KB (and the walk stops
    at the limit; nesting costs no recursion)."""
    assert json_size_exceeds("x" * 4_000_000, 65536)
    assert json_size_exceeds([0] * 10_000_000, 65536)
    assert json_size_exceeds({str(i): i for i in range(1_000_000)}, 65536)
    nested: Any = []
    for _ in range(100_000):
        nested = [nested]
    assert json_size_exceeds(nested, 65536)
    assert not json_size_exceeds(nested, 1_000_000)
