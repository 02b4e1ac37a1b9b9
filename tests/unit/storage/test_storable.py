"""What PostgreSQL can store: each refusal names its reason and where it is."""

from __future__ import annotations

import json
from typing import Any

import pytest

from workflow_orchestrator.storage import (
    MAX_JSON_DEPTH,
    Unstorable,
    check_depth,
    check_storable,
    check_text,
    storable_json,
)


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


def test_plain_data_is_encoded_once_compactly() -> None:
    value = {"a": [1, 2.5, "x", None, True], "emoji": "\U0001f600", "b": {"c": "d"}}
    assert json.loads(storable_json(value)) == value
    assert storable_json({"a": 1}) == '{"a":1}'


@pytest.mark.parametrize(
    ("value", "reason", "pointer"),
    [
        ({"a": ["ok", "x\x00y"]}, "nul", "/a/1"),
        ({"k\x00": 1}, "nul", "/k\x00"),
        ({"a": float("nan")}, "non-finite", "/a"),
        ({"a": [float("-inf")]}, "non-finite", "/a/0"),
        ({"a/b": {"~": "\ud800"}}, "surrogate", "/a~1b/~0"),
        ({"a": {1, 2}}, "type", "/a"),
    ],
)
def test_refusals_name_reason_and_pointer(value: Any, reason: str, pointer: str) -> None:
    with pytest.raises(Unstorable) as caught:
        storable_json(value, what="the state")
    assert caught.value.reason == reason
    assert caught.value.pointer == pointer
    assert str(caught.value).startswith("the state ")


def test_nesting_json_cannot_encode_is_refused_as_depth() -> None:
    with pytest.raises(Unstorable) as caught:
        check_storable(_nested(5000))
    assert caught.value.reason == "depth"
    assert caught.value.pointer.count("/a") == MAX_JSON_DEPTH


def test_size_limit_counts_the_encoded_text() -> None:
    check_storable({"a": "x" * 90}, max_bytes=100)
    with pytest.raises(Unstorable) as caught:
        check_storable({"a": "x" * 100}, max_bytes=100)
    assert caught.value.reason == "size"
    assert "over the limit of 100 bytes" in str(caught.value)


def test_check_depth_refuses_parsed_input_over_the_limit() -> None:
    check_depth(_nested(MAX_JSON_DEPTH - 1))
    with pytest.raises(Unstorable) as caught:
        check_depth(_nested(MAX_JSON_DEPTH + 5), what="the input")
    assert caught.value.reason == "depth"
    assert str(caught.value).startswith("the input nests deeper than")


def test_plain_text_refuses_nul_and_any_surrogate() -> None:
    """A text column is UTF-8: the NUL character and every surrogate (paired or not) fail."""
    check_text("plain \U0001f600 text")
    for bad, reason in (("a\x00b", "nul"), ("\ud83d\ude00", "surrogate"), ("x\udc00", "surrogate")):
        with pytest.raises(Unstorable) as caught:
            check_text(bad, what="the key")
        assert caught.value.reason == reason
        assert str(caught.value).startswith("the key ")


def test_json_text_encoded_elsewhere_is_parsed_only_when_suspect() -> None:
    """An event body is checked as text: clean text passes unparsed; NaN, NUL or text that is
    not JSON is refused with its reason."""
    from workflow_orchestrator.storage._storable import check_json_text

    check_json_text('{"a": "NaNa is fine", "b": 1}')
    check_json_text('{"a": "\\ud83d\\ude00"}')
    for text, reason in (
        ('{"a": NaN}', "non-finite"),
        ('{"a": "x\\u0000"}', "nul"),
        ('{"a": Infinity', "type"),
    ):
        with pytest.raises(Unstorable) as caught:
            check_json_text(text, what="the event")
        assert caught.value.reason == reason
