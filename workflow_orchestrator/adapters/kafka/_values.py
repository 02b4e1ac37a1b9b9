"""Plain values that cross out of the Kafka adapter: received records, records to produce, lag
and statistics. No aiokafka type leaves the adapter; these are what Trio code sees."""

from __future__ import annotations

from typing import Literal

import attrs

__all__ = [
    "Header",
    "KafkaConsumerStatistics",
    "KafkaRecord",
    "KafkaState",
    "OutgoingRecord",
    "PartitionLag",
    "TopicPartition",
]

KafkaState = Literal["connecting", "connected", "joining", "reconnecting", "closed"]
Header = tuple[str, bytes | None]
TopicPartition = tuple[str, int]


@attrs.frozen(kw_only=True)
class KafkaRecord:
    """One record of a consumed partition, not yet committed. ``generation`` counts the
    assignments of the consumer (it grows with each rebalance); pass records back to
    ``KafkaConsumer.commit`` unchanged."""

    topic: str
    partition: int
    offset: int
    key: bytes | None = None
    value: bytes | None = None
    headers: tuple[Header, ...] = ()
    timestamp: int = 0  # milliseconds since the epoch, as the producer or the broker set it
    generation: int = 0

    @property
    def topic_partition(self) -> TopicPartition:
        return (self.topic, self.partition)

    def describe(self) -> str:
        """``record <topic>/<partition>@<offset>`` for logs."""
        return f"record {self.topic}/{self.partition}@{self.offset}"


@attrs.frozen(kw_only=True)
class OutgoingRecord:
    """One record to produce. Records with the same ``key`` go to the same partition (the
    default partitioner), so they keep their order."""

    topic: str
    value: bytes
    key: bytes | None = None
    headers: tuple[tuple[str, bytes], ...] = ()


@attrs.frozen(kw_only=True)
class PartitionLag:
    """How far the group is behind on one assigned partition: ``end`` is the partition's high
    watermark as last fetched (None until the first fetch), ``committed`` the group's committed
    offset (None when the group has none)."""

    topic: str
    partition: int
    committed: int | None
    end: int | None

    @property
    def lag(self) -> int | None:
        """Records not yet routed and committed (None while ``end`` is unknown)."""
        if self.end is None:
            return None
        return max(0, self.end - (self.committed or 0))


@attrs.frozen(kw_only=True)
class KafkaConsumerStatistics:
    """A snapshot of the consumer (no I/O)."""

    state: KafkaState
    brokers: str
    group: str
    topics: tuple[str, ...]
    partitions: tuple[PartitionLag, ...]
    received_total: int
    committed_total: int
    rebalances_total: int

    @property
    def lag(self) -> int:
        """The known lag summed over the assigned partitions."""
        return sum(p.lag or 0 for p in self.partitions)
