"""Telling a refusal of one event's data from an outage, and how the dead letter names it."""

from __future__ import annotations

import asyncpg

from workflow_orchestrator.dsl.runtime import CloudEvent
from workflow_orchestrator.events._refusals import REFUSED_BY_DATA, describe_event, refusal_reason
from workflow_orchestrator.storage.events import RoutingRefused


def test_row_errors_are_refusals_and_outages_are_not() -> None:
    """The router's refusal and the driver's row errors route one at a time; a lost
    connection or a serialization failure is retried as a batch."""
    assert isinstance(RoutingRefused("refused"), REFUSED_BY_DATA)
    assert isinstance(asyncpg.ProgramLimitExceededError("index row too large"), REFUSED_BY_DATA)
    assert isinstance(asyncpg.NumericValueOutOfRangeError("out of range"), REFUSED_BY_DATA)
    assert not isinstance(ConnectionResetError("lost"), REFUSED_BY_DATA)
    assert not isinstance(asyncpg.SerializationError("retry"), REFUSED_BY_DATA)


def test_the_reason_is_the_routers_message_or_the_driver_error_on_one_line() -> None:
    """A dead letter's reason names the refusal and says what to change."""
    refused = RoutingRefused("PostgreSQL refused the event (X: y); shorten or change the event")
    assert refusal_reason(refused) == str(refused)
    error = asyncpg.ProgramLimitExceededError("index row size 9024\n exceeds maximum 2704")
    assert refusal_reason(error) == (
        "PostgreSQL refused the event (ProgramLimitExceededError: index row size 9024 exceeds "
        "maximum 2704); shorten or change the event"
    )


def test_a_long_id_is_shortened_in_the_log_line() -> None:
    """An id of megabytes does not flood the log: its start and its length are shown."""
    event = CloudEvent(attributes={"id": "x" * 5000, "source": "/shop", "type": "t"})
    assert describe_event(event) == (
        f"event {'x' * 120!r}... (5000 characters) from source '/shop'"
    )
    assert (
        describe_event(CloudEvent(attributes={"id": "1", "source": "/s"}))
        == "event '1' from source '/s'"
    )
