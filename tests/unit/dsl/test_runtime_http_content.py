"""Reading response bodies of ``call: http``: what JSON parsing makes of hostile bodies, and
large bodies decoded off the event loop."""

from __future__ import annotations

import json
import math

from workflow_orchestrator.dsl.runtime import HttpResponse
from workflow_orchestrator.dsl.runtime._http_call import OFF_LOOP_BYTES, read_content

JSON = {"content-type": "application/json"}


async def test_nan_and_nul_in_json_are_data() -> None:
    """NaN and \\u0000 parse as values; whether they can be stored is the durable layer's call."""
    content = await read_content(
        HttpResponse(status=200, headers=JSON, body=b'{"n": NaN, "s": "a\\u0000b", "i": -Infinity}')
    )
    assert math.isnan(content["n"])
    assert content["s"] == "a\x00b"
    assert content["i"] == -math.inf


async def test_json_nested_beyond_the_parser_is_kept_as_text() -> None:
    """A body nested 100,000 deep does not crash the caller: it becomes the text it is."""
    body = b"[" * 100_000 + b"]" * 100_000
    for headers in (JSON, {}):
        content = await read_content(HttpResponse(status=200, headers=headers, body=body))
        assert content == body.decode()


async def test_large_bodies_are_decoded_the_same_way() -> None:
    """A body larger than OFF_LOOP_BYTES (decoded in a worker thread) gives the same value."""
    value = {"items": [{"id": index, "name": f"item {index}"} for index in range(10_000)]}
    body = json.dumps(value).encode()
    assert len(body) > OFF_LOOP_BYTES
    assert await read_content(HttpResponse(status=200, headers=JSON, body=body)) == value
    text = b"x" * (OFF_LOOP_BYTES + 1)
    plain = {"content-type": "text/plain"}
    assert await read_content(HttpResponse(status=200, headers=plain, body=text)) == text.decode()
