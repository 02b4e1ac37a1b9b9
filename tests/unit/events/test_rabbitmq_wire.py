"""The publication frames ``_wire`` writes are byte for byte pamqp's."""

from __future__ import annotations

import datetime
import itertools

import pamqp.frame
import pytest

from workflow_orchestrator.events._rabbitmq import OutgoingMessage
from workflow_orchestrator.events._rabbitmq._internals import _encoded, _frames
from workflow_orchestrator.events._rabbitmq._wire import publication_bytes


def _pamqp(message: OutgoingMessage, channel: int, max_content_size: int) -> bytes:
    return b"".join(
        pamqp.frame.marshal(frame, channel) for frame in _frames(message, max_content_size)
    )


@pytest.mark.parametrize(
    ("content_type", "message_type", "persistent", "body", "exchange", "key"),
    list(
        itertools.product(
            [None, "", "application/cloudevents+json"],
            [None, "", "io.serverlessworkflow.task.completed.v1"],
            [True, False],
            [b"", b"{}", "é✓".encode() * 50, b"x" * 1000],
            ["system-events", "", "a:b@c#d,e/f+g h"],
            ["", "routing.key", "ü" * 127],
        )
    ),
)
def test_same_bytes_as_pamqp(
    content_type: str | None,
    message_type: str | None,
    persistent: bool,
    body: bytes,
    exchange: str,
    key: str,
) -> None:
    message = OutgoingMessage(
        exchange=exchange,
        routing_key=key,
        body=body,
        content_type=content_type,
        message_id="0b1c-event@task.completed",
        message_type=message_type,
        persistent=persistent,
    )
    for max_content_size in (131_064, 300):
        fast = publication_bytes(message, 7, max_content_size)
        assert fast is not None
        assert fast == _pamqp(message, 7, max_content_size)


def test_a_message_without_id_gets_a_fresh_one() -> None:
    message = OutgoingMessage(exchange="x", routing_key="k", body=b"{}")
    first, second = (publication_bytes(message, 1, 4096) for _ in range(2))
    assert first is not None and second is not None and first != second
    assert len(first) == len(_pamqp(message, 1, 4096))


@pytest.mark.parametrize(
    "message",
    [
        OutgoingMessage(exchange="x", routing_key="k", body=b"", headers={"h": 1}),
        OutgoingMessage(exchange="x", routing_key="k", body=b"", correlation_id="c"),
        OutgoingMessage(
            exchange="x",
            routing_key="k",
            body=b"",
            timestamp=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
        ),
        OutgoingMessage(exchange="bad!name", routing_key="k", body=b""),
        OutgoingMessage(exchange="x" * 128, routing_key="k", body=b""),
        OutgoingMessage(exchange="x", routing_key="k" * 256, body=b""),
        OutgoingMessage(exchange="x", routing_key="k", body=b"", message_id="i" * 256),
        OutgoingMessage(exchange="x", routing_key="k", body=b"", message_type="t" * 256),
        OutgoingMessage(exchange="x", routing_key="k", body=b"", content_type="c" * 256),
    ],
)
def test_what_it_does_not_write_is_left_to_pamqp(message: OutgoingMessage) -> None:
    assert publication_bytes(message, 1, 4096) is None


def test_encoded_falls_back_to_pamqp_with_its_errors() -> None:
    with_headers = OutgoingMessage(
        exchange="x", routing_key="k", body=b"b", headers={"h": "v"}, message_id="m"
    )
    assert _encoded(with_headers, 3, 4096) == _pamqp(with_headers, 3, 4096)
    with pytest.raises(ValueError, match="Invalid value for exchange"):
        _encoded(OutgoingMessage(exchange="bad!name", routing_key="k", body=b""), 3, 4096)
    with pytest.raises(ValueError, match="routing key longer than 255 bytes"):
        _encoded(OutgoingMessage(exchange="x", routing_key="k" * 256, body=b""), 3, 4096)
