"""`serialize_request`: the request on the wire, and what HTTP does not allow refused."""

from __future__ import annotations

import pytest

from workflow_orchestrator.adapters._http_connection import InvalidRequest, serialize_request


def test_a_request_is_written_as_given() -> None:
    """Request line, headers in order (values trimmed), blank line, body."""
    wire = serialize_request(
        b"POST", b"/a?b=c", [(b"host", b"x.example"), (b"x-a", b" 1\t")], b"body"
    )
    assert wire == b"POST /a?b=c HTTP/1.1\r\nhost: x.example\r\nx-a: 1\r\n\r\nbody"


@pytest.mark.parametrize(
    ("method", "target", "headers", "what"),
    [
        (b"GET /x", b"/", [], "invalid method"),
        (b"GET", b"/a b", [], "invalid request target"),
        (b"GET", b"", [], "invalid request target"),
        (b"GET", b"/", [(b"x a", b"1")], "invalid header name"),
        (b"GET", b"/", [(b"x-a", b"1\r\nx-b: 2")], "invalid value of the header x-a"),
        (b"GET", b"/", [(b"x-a", b"1\nGET /evil")], "invalid value of the header x-a"),
        (b"GET", b"/", [(b"x-a", b"\x00")], "invalid value of the header x-a"),
    ],
)
def test_what_http_does_not_allow_is_refused(
    method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], what: str
) -> None:
    """No request line or header can be smuggled in through a method, target or header."""
    with pytest.raises(InvalidRequest, match=what):
        serialize_request(method, target, headers, None)
