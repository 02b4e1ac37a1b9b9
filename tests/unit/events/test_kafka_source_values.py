"""The Kafka source's and adapter's plain values without a broker: dead-letter copies, outbox
records, lag arithmetic and error descriptions."""

from __future__ import annotations

import logging

import aiokafka.errors
import pytest

from workflow_orchestrator.adapters.kafka import (
    KafkaConsumerStatistics,
    KafkaRecord,
    OutgoingRecord,
    PartitionLag,
    _logs,
    describe_kafka_error,
)
from workflow_orchestrator.events import REJECTION_REASON_HEADER
from workflow_orchestrator.events._cloudevents import STRUCTURED_CONTENT_TYPE
from workflow_orchestrator.events._kafka_source import dead_letter_record
from workflow_orchestrator.events._outbox_relay import kafka_outbox_record
from workflow_orchestrator.storage.events import OutboxRow

TOPICS = {"business": "business-events", "system": "system-events"}
STRUCTURED = STRUCTURED_CONTENT_TYPE.encode()


def record(**overrides: object) -> KafkaRecord:
    fields: dict[str, object] = {
        "topic": "orders",
        "partition": 3,
        "offset": 41,
        "key": b"order-7",
        "value": b"not json",
        "headers": (("content-type", STRUCTURED), ("trace", b"t-1")),
        "timestamp": 1_700_000_000_000,
        "generation": 2,
    }
    fields.update(overrides)
    return KafkaRecord(**fields)  # type: ignore[arg-type]


# -- dead-letter copies ------------------------------------------------------------------------


def test_a_dead_letter_copy_keeps_the_record_and_says_where_it_came_from() -> None:
    """Key, value and headers (in order) are kept; the reason and the original topic,
    partition and offset are added."""
    copy = dead_letter_record(record(), "the value is not JSON", "orders.dead-letter")
    assert copy == OutgoingRecord(
        topic="orders.dead-letter",
        key=b"order-7",
        value=b"not json",
        headers=(
            ("content-type", STRUCTURED),
            ("trace", b"t-1"),
            (REJECTION_REASON_HEADER, b"the value is not JSON"),
            ("x-original-topic", b"orders"),
            ("x-original-partition", b"3"),
            ("x-original-offset", b"41"),
        ),
    )


def test_headers_without_a_value_are_dropped_and_a_missing_value_is_empty() -> None:
    """Kafka allows a header without a value and a record without one (a tombstone); the
    copy keeps the headers that have one and an empty value, and no key without one."""
    copy = dead_letter_record(
        record(key=None, value=None, headers=(("empty", None), ("kept", b""), ("empty", None))),
        "a tombstone",
        "dlt",
    )
    assert (copy.key, copy.value) == (None, b"")
    assert [name for name, _ in copy.headers] == [
        "kept",
        REJECTION_REASON_HEADER,
        "x-original-topic",
        "x-original-partition",
        "x-original-offset",
    ]


def test_a_copy_without_content_keeps_the_key_and_says_how_large_the_record_was() -> None:
    """For a record whose copy the broker refused: no value and no original headers, the same
    headers of ours, the size of what was left out (key, value, header names and values) and
    the refusal."""
    copy = dead_letter_record(record(), "too large", "dlt", omitted="refused: too big")
    left_out = len(b"order-7" + b"not json" + b"content-type" + STRUCTURED + b"trace" + b"t-1")
    assert copy == OutgoingRecord(
        topic="dlt",
        key=b"order-7",
        value=b"",
        headers=(
            (REJECTION_REASON_HEADER, b"too large"),
            ("x-original-topic", b"orders"),
            ("x-original-partition", b"3"),
            ("x-original-offset", b"41"),
            ("x-original-size", str(left_out).encode()),
            ("x-value-omitted", b"refused: too big"),
        ),
    )


@pytest.mark.parametrize("character", ["x", "é", "€", "😀"])
def test_a_long_reason_is_cut_at_4096_bytes_of_valid_utf_8(character: str) -> None:
    """A reason may quote a long value: its header stops at 4096 bytes, on a character
    boundary (characters of 1 to 4 bytes), so it is still valid UTF-8."""
    reason = character * 5000
    [value] = [
        v
        for n, v in dead_letter_record(record(), reason, "dlt").headers
        if n == REJECTION_REASON_HEADER
    ]
    assert 4096 - len(character.encode()) < len(value) <= 4096
    assert value.decode("utf-8") == character * (len(value) // len(character.encode()))


def test_a_short_reason_is_kept_whole() -> None:
    reason = "€" * 1365  # 4095 bytes
    copy = dead_letter_record(record(), reason, "dlt")
    assert dict(copy.headers)[REJECTION_REASON_HEADER] == reason.encode()


# -- outbox records ----------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "topic"), sorted(TOPICS.items()))
def test_an_outbox_row_becomes_a_structured_record_keyed_by_its_instance(
    kind: str, topic: str
) -> None:
    """The topic of the row's kind, the instance id as key (an instance's events share a
    partition), the CloudEvent JSON as value and the structured content type."""
    row = OutboxRow(
        outbox_seq=9,
        instance_id="inst-ä-1",
        exchange=kind,
        routing_key="order.paid",
        event_id="evt-9",
        body='{"id":"evt-9","note":"ä"}',
    )
    assert kafka_outbox_record(row, TOPICS) == OutgoingRecord(
        topic=topic,
        key="inst-ä-1".encode(),
        value='{"id":"evt-9","note":"ä"}'.encode(),
        headers=(("content-type", STRUCTURED_CONTENT_TYPE.encode()),),
    )


# -- lag ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("committed", "end", "lag"),
    [
        (None, None, None),  # not fetched yet
        (5, None, None),
        (None, 7, 7),  # no commit: everything from offset 0
        (0, 7, 7),
        (4, 7, 3),
        (7, 7, 0),
        (9, 7, 0),  # a commit beyond the end as last fetched
    ],
)
def test_the_lag_of_a_partition(committed: int | None, end: int | None, lag: int | None) -> None:
    assert PartitionLag(topic="t", partition=0, committed=committed, end=end).lag == lag


def test_the_consumer_lag_sums_what_is_known() -> None:
    statistics = KafkaConsumerStatistics(
        state="connected",
        brokers="k1:9092",
        group="g",
        topics=("t",),
        partitions=(
            PartitionLag(topic="t", partition=0, committed=2, end=5),
            PartitionLag(topic="t", partition=1, committed=None, end=None),
            PartitionLag(topic="t", partition=2, committed=None, end=4),
        ),
        received_total=9,
        committed_total=1,
        rebalances_total=1,
    )
    assert statistics.lag == 7
    assert (
        KafkaConsumerStatistics(
            state="joining",
            brokers="k1:9092",
            group="g",
            topics=("t",),
            partitions=(),
            received_total=0,
            committed_total=0,
            rebalances_total=0,
        ).lag
        == 0
    )


# -- error descriptions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "described"),
    [
        (aiokafka.errors.KafkaTimeoutError(), "KafkaTimeoutError"),
        (aiokafka.errors.NodeNotReadyError("no connection"), "NodeNotReadyError: no connection"),
        (
            aiokafka.errors.UnknownError(),
            "[Error -1] UnknownError (An unexpected server error.)",
        ),
        (
            aiokafka.errors.TopicAuthorizationFailedError(),
            "[Error 29] TopicAuthorizationFailedError (Returned "
            "by the broker when the client is not authorized to access the requested topic.)",
        ),
        (ValueError("bad value"), "ValueError: bad value"),
        (ValueError(), "ValueError"),
    ],
)
def test_errors_are_described_in_a_line(error: BaseException, described: str) -> None:
    assert describe_kafka_error(error) == described


def test_a_failed_bootstrap_says_what_aiokafka_only_logged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """aiokafka's "Unable to bootstrap" does not say why; the last connection trouble it
    logged is added, and only once it logged one."""
    monkeypatch.setattr(_logs._RULES, "last_trouble", None)
    monkeypatch.setattr(_logs._RULES, "_last_reported", float("-inf"))  # put back afterwards
    failed = aiokafka.errors.KafkaConnectionError("Unable to bootstrap from [('k1', 9092, 0)]")
    assert describe_kafka_error(failed) == (
        "KafkaConnectionError: Unable to bootstrap from [('k1', 9092, 0)]"
    )
    _logs.install_kafka_log_rules()
    logging.getLogger("aiokafka").error(
        "Unable connect to %r: %s", "k1:9092", "[Errno 111] Connect call failed"
    )
    assert describe_kafka_error(failed) == (
        "KafkaConnectionError: Unable to bootstrap from [('k1', 9092, 0)] (last: Unable connect "
        "to 'k1:9092': [Errno 111] Connect call failed)"
    )
