"""The outbox relay's decisions without a broker: messages of rows, failure text, retry pauses."""

from __future__ import annotations

import random

from workflow_orchestrator.events._cloudevents import STRUCTURED_CONTENT_TYPE
from workflow_orchestrator.events._outbox_relay import (
    outbox_message,
    publish_failure,
    retry_delay,
)
from workflow_orchestrator.events._rabbitmq import OutgoingMessage, PublishFailed
from workflow_orchestrator.storage.events import OutboxRow

EXCHANGES = {"business": "business-events", "system": "system-events"}


def row(seq: int, exchange: str = "business") -> OutboxRow:
    return OutboxRow(
        outbox_seq=seq,
        exchange=exchange,
        routing_key="order.paid",
        event_id=f"evt-{seq}",
        body=f'{{"id":"evt-{seq}"}}',
    )


def test_a_row_becomes_a_persistent_structured_message_with_its_stable_id() -> None:
    """The message goes to the exchange of the row's kind, with the CloudEvent id as id."""
    message = outbox_message(row(3, "system"), EXCHANGES)
    assert message == OutgoingMessage(
        exchange="system-events",
        routing_key="order.paid",
        body=b'{"id":"evt-3"}',
        content_type=STRUCTURED_CONTENT_TYPE,
        message_id="evt-3",
        message_type="order.paid",
        persistent=True,
    )


def test_a_refused_message_names_its_exchange() -> None:
    """A publish refused by the broker names the exchange that refused it."""
    messages = [outbox_message(row(1), EXCHANGES), outbox_message(row(2, "system"), EXCHANGES)]
    refused = PublishFailed("NOT_FOUND", destination="system-events", routing_key="order.paid")
    assert publish_failure(messages, refused) == (
        "publishing 2 outbox rows to exchange 'system-events' failed: NOT_FOUND"
    )


def test_a_lost_broker_names_every_exchange_of_the_batch() -> None:
    """Without a refusing exchange every exchange of the batch is named, sorted."""
    messages = [outbox_message(row(1, "system"), EXCHANGES), outbox_message(row(2), EXCHANGES)]
    assert publish_failure(messages, ConnectionResetError()) == (
        "publishing 2 outbox rows to exchange 'business-events', 'system-events' failed: "
        "ConnectionResetError"
    )


def test_retry_pauses_grow_to_the_maximum_with_half_of_each_step_random() -> None:
    """Each pause lies between half its step and the step; steps double up to the maximum."""
    rng = random.Random(7)
    for attempt, step in [(1, 0.2), (2, 0.4), (3, 0.8), (10, 10.0), (60, 10.0)]:
        pause = retry_delay(attempt, initial=0.2, maximum=10.0, rng=rng)
        assert step / 2 <= pause <= step
