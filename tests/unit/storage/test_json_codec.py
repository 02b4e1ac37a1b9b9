"""decode_json reads what json.loads reads (orjson where that is the same)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from workflow_orchestrator.storage._json_codec import decode_json

CASES: list[Any] = [
    {"a": 1, "b": [1.5, -0.0, None, True, False], "c": "é ✓ 😀", "d": {}},
    [2**63 - 1, -(2**63), 2**64 - 1],
    {"big": 2**64, "neg": -(2**70), "in": [123456789012345678901234567890]},
    {"float": 1.2345678901234567890123e-5, "exp": 1e300, "small": 5e-324},
    {"digits in a string": "1234567890123456789012"},
    {"ordered": {"z": 1, "a": 2, "m": 3}},
    "plain",
    12,
]


@pytest.mark.parametrize("value", CASES)
def test_same_as_json_loads(value: Any) -> None:
    for text in (json.dumps(value), json.dumps(value, ensure_ascii=False)):
        decoded = decode_json(text)
        assert decoded == json.loads(text)
        assert json.dumps(decoded) == json.dumps(json.loads(text))  # types and order too
        assert decode_json(text.encode()) == json.loads(text)


def test_big_integers_stay_exact() -> None:
    text = '{"n": 18446744073709551616, "m": -9223372036854775809}'
    decoded = decode_json(text)
    assert decoded == {"n": 2**64, "m": -(2**63) - 1}
    assert all(type(v) is int for v in decoded.values())


def test_what_orjson_refuses_or_reads_otherwise_falls_back() -> None:
    deep = "[" * 900 + "]" * 900  # deep nesting reads the same
    assert decode_json(deep) == json.loads(deep)
    assert decode_json('"\\ud800"') == "\ud800"  # a lone surrogate escape
    assert decode_json("1e400") == float("inf")
    with pytest.raises(json.JSONDecodeError):
        decode_json("{not json")
