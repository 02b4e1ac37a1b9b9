"""Event processing of one replica: the router, the configured source, the outbox relay, wake-ups.

``eventProcessing.source`` decides where events come from:

- ``rabbitmq``: the consumer group's queue (``eventProcessing.rabbitmq.queue``) bound to the
  business exchange (the first of ``exchanges``); emitted events go to the business exchange
  and lifecycle events to the system exchange (the second) through the outbox relay. The broker
  connection is (re)established in the background: the service runs, and reports the broker
  as down, while RabbitMQ is unreachable.
- ``kafka``: the consumer group ``eventProcessing.kafka.consumerGroup`` on the business topic
  (the first of ``topics``); emitted events go to the business topic and lifecycle events to
  the system topic (the second), keyed by instance id, through the outbox relay; what cannot be
  routed goes to the dead-letter topic. Missing topics are created first (``createTopics``).
  The connection is (re)established in the background, as for RabbitMQ.
- ``database``: the ``events`` table (``workflow_publish_event``); emitted events are inserted
  there by the snapshot that emits them, lifecycle events stay in the instance history.

``POST /api/v1/events`` reaches ``router.submit`` whatever the source.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import attrs
import trio

from workflow_orchestrator.adapters._broker_errors import BrokerError
from workflow_orchestrator.adapters.kafka import (
    KafkaConsumer,
    KafkaConsumerStatistics,
    client_options,
    describe_brokers,
    ensure_topics,
    missing_topics,
    open_kafka_consumer,
    open_kafka_producer,
)
from workflow_orchestrator.config import EventProcessingSettings
from workflow_orchestrator.dsl import ExpressionEngine
from workflow_orchestrator.errors import exception_leaves
from workflow_orchestrator.events._database_source import DatabaseEventSource
from workflow_orchestrator.events._kafka_source import consume_kafka
from workflow_orchestrator.events._outbox_relay import OutboxRelay, Publisher, kafka_outbox_record
from workflow_orchestrator.events._outbox_signal import OutboxSignal
from workflow_orchestrator.events._rabbitmq import RabbitMQConnection, open_rabbitmq
from workflow_orchestrator.events._rabbitmq_source import consume_rabbitmq
from workflow_orchestrator.events._router import EventRouter
from workflow_orchestrator.events._wake_listener import WakeListener
from workflow_orchestrator.instances import EventOptions, InstanceRuntime, WorkflowCatalog
from workflow_orchestrator.observability import ServiceMetrics
from workflow_orchestrator.retrying import RetryBackoff
from workflow_orchestrator.storage import Database, PartitionLeases
from workflow_orchestrator.storage.events import count_outbox, count_subscribed_instances

__all__ = ["BROKER_SOURCES", "EventProcessing", "event_options"]

logger = logging.getLogger(__name__)

#: The sources that consume from a broker and publish the outbox to it.
BROKER_SOURCES = ("rabbitmq", "kafka")

_RECONNECT_INITIAL = 1.0
_RECONNECT_MAX = 30.0


def event_options(settings: EventProcessingSettings, lifecycle_events: bool) -> EventOptions:
    """Where the instances' emitted and lifecycle events go under ``settings``."""
    broker = settings.source in BROKER_SOURCES
    return EventOptions(
        emit_destination="business" if broker else "events",
        lifecycle_to_outbox=broker and lifecycle_events,
        task_events=settings.task_events,
    )


@attrs.define(eq=False)
class EventProcessing:
    """See the module docstring; run with ``nursery.start(processing.run)``.

    ``runtime`` activates instances; ``leases`` are this replica's partitions, ``catalog`` the
    definitions' interpreters, ``outbox`` the signal the snapshot writer rings after commits
    that added outbox rows (the relay waits on it).
    """

    settings: EventProcessingSettings
    database: Database
    runtime: InstanceRuntime
    leases: PartitionLeases
    catalog: WorkflowCatalog
    engine: ExpressionEngine
    owner_id: str
    metrics: ServiceMetrics | None = None
    outbox: OutboxSignal = attrs.field(factory=OutboxSignal)
    router: EventRouter = attrs.field(init=False)
    broker: RabbitMQConnection | None = attrs.field(default=None, init=False)
    kafka: KafkaConsumer | None = attrs.field(default=None, init=False)
    _past_rebalances: int = attrs.field(default=0, init=False)  # of consumers closed since
    broker_error: str | None = attrs.field(default=None, init=False)
    relay: OutboxRelay | None = attrs.field(default=None, init=False)
    database_source: DatabaseEventSource | None = attrs.field(default=None, init=False)

    def __attrs_post_init__(self) -> None:
        self.router = EventRouter(
            database=self.database,
            runtime=self.runtime,
            leases=self.leases,
            catalog=self.catalog,
            # The router's evaluations take their turn in the sandbox like a definition's.
            engine=self.engine.for_owner("event-router"),
            metrics=self.metrics,
            keep_unmatched_for=self.settings.unmatched_retention,
            deduplication_window=self.settings.deduplication_window,
            correlation_budget=self.settings.correlation_budget,
        )

    @property
    def uses_broker(self) -> bool:
        return self.settings.source in BROKER_SOURCES

    async def run(
        self, *, task_status: trio.TaskStatus[EventProcessing] = trio.TASK_STATUS_IGNORED
    ) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(self.router.run)
            await nursery.start(
                WakeListener(runtime=self.runtime, database=self.database, leases=self.leases).run
            )
            if self.settings.source == "kafka":
                nursery.start_soon(self._run_kafka)
            elif self.uses_broker:
                nursery.start_soon(self._run_broker)
            else:
                source = DatabaseEventSource(
                    database=self.database,
                    router=self.router,
                    owner_id=self.owner_id,
                    poll_interval=self.settings.poll_interval,
                )
                await nursery.start(source.run)
                self.database_source = source
            task_status.started(self)

    async def _keep_connected(
        self, broker: str, session: Callable[[RetryBackoff], Awaitable[None]]
    ) -> None:
        """Run ``session`` (connect, then consume and relay until the connection fails) again
        and again, pausing with a growing backoff between attempts that fail; ``session``
        calls ``backoff.succeeded()`` once connected. Its failure is ``broker_error`` (the
        health's ``brokerError``) and one WARNING naming ``broker``."""
        backoff = RetryBackoff(initial=_RECONNECT_INITIAL, maximum=_RECONNECT_MAX, jitter=0)
        while True:
            try:
                await session(backoff)
            except* (BrokerError, OSError) as group:  # unreachable, refused, consumer failed
                exc = exception_leaves(group)[0]
                self.broker_error = str(exc)
                delay = backoff.failed()
                logger.warning("%s: %s; connecting again in %.0fs", broker, exc, delay)
                await trio.sleep(delay)
            else:
                await trio.sleep(backoff.failed())

    async def _run_broker(self) -> None:
        await self._keep_connected("RabbitMQ", self._rabbitmq_session)

    async def _rabbitmq_session(self, backoff: RetryBackoff) -> None:
        rabbitmq = self.settings.rabbitmq
        business, system = rabbitmq.exchanges[0], rabbitmq.exchanges[1]
        async with open_rabbitmq(
            rabbitmq,
            consumer_group=rabbitmq.queue,
            quorum_queues=rabbitmq.quorum_queues,
            heartbeat=rabbitmq.heartbeat,
            consume_exchanges=(business,),
        ) as connection:
            backoff.succeeded()
            self.broker, self.broker_error = connection, None
            logger.info(
                "consuming events from RabbitMQ at %s (queue '%s')",
                connection.broker,
                rabbitmq.queue,
            )
            self.relay = self._relay(connection, exchanges={"business": business, "system": system})
            try:
                async with trio.open_nursery() as nursery:
                    await nursery.start(self.relay.run)
                    await nursery.start(
                        partial(consume_rabbitmq, connection, self.router, metrics=self.metrics)
                    )
            finally:
                self.broker = None

    def _relay(self, publisher: Publisher, **encoding: Any) -> OutboxRelay:
        """The outbox relay of this replica's partitions publishing with ``publisher``."""
        return OutboxRelay(
            database=self.database,
            publisher=publisher,
            partitions=lambda: self.leases.current().partitions,
            signal=self.outbox,
            metrics=self.metrics,
            **encoding,
        )

    async def _run_kafka(self) -> None:
        kafka = self.settings.kafka
        brokers = describe_brokers(kafka)
        if kafka.security_protocol == "SASL_PLAINTEXT" and kafka.sasl.mechanism == "PLAIN":
            logger.warning(
                "eventProcessing.kafka: SASL PLAIN over SASL_PLAINTEXT sends the password to %s "
                "unencrypted; use securityProtocol SASL_SSL or a SCRAM mechanism",
                brokers,
            )
        options = client_options(kafka)
        await self._keep_connected("Kafka", partial(self._kafka_session, options, brokers))

    async def _kafka_topics(self, options: dict[str, Any], brokers: str) -> None:
        """Create the missing topics (``createTopics``) or refuse to connect without them."""
        kafka = self.settings.kafka
        topics = [*kafka.topics, kafka.dead_letter_topic_name]
        if not kafka.create_topics:
            missing = await missing_topics(options, topics, brokers=brokers)
            if missing:
                raise BrokerError(
                    f"the topics {missing} do not exist at {brokers}; create them, or set "
                    "eventProcessing.kafka.createTopics: true"
                )
            return
        created = await ensure_topics(
            options,
            topics,
            brokers=brokers,
            partitions=kafka.topic_partitions,
            replication_factor=kafka.replication_factor or -1,
        )
        if created:
            logger.info("created Kafka topics %s at %s", created, brokers)

    async def _kafka_session(
        self, options: dict[str, Any], brokers: str, backoff: RetryBackoff
    ) -> None:
        kafka = self.settings.kafka
        business, system = kafka.topics[0], kafka.topics[1]
        await self._kafka_topics(options, brokers)
        async with (
            open_kafka_producer(
                options, brokers=brokers, idempotent=kafka.idempotent_producer
            ) as producer,
            open_kafka_consumer(
                options,
                brokers=brokers,
                group_id=kafka.consumer_group,
                topics=[business],
                max_batch=kafka.max_batch,
                session_timeout=kafka.session_timeout,
            ) as consumer,
        ):
            backoff.succeeded()
            self.kafka, self.broker_error = consumer, None
            logger.info(
                "consuming events from Kafka at %s (group '%s', topic '%s')",
                brokers,
                kafka.consumer_group,
                business,
            )
            topics = {"business": business, "system": system}
            self.relay = self._relay(producer, encode=partial(kafka_outbox_record, topics=topics))
            try:
                async with trio.open_nursery() as nursery:
                    await nursery.start(self.relay.run)
                    await nursery.start(
                        partial(
                            consume_kafka,
                            consumer,
                            producer,
                            self.router,
                            dead_letter_topic=kafka.dead_letter_topic_name,
                            metrics=self.metrics,
                        )
                    )
            finally:
                self.kafka = None
                self._past_rebalances += consumer.statistics().rebalances_total

    def kafka_statistics(self) -> KafkaConsumerStatistics | None:
        """The Kafka consumer's statistics while it runs (no I/O)."""
        return self.kafka.statistics() if self.kafka is not None else None

    @property
    def kafka_rebalances(self) -> int:
        """Partition assignments received by every Kafka consumer of this replica so far."""
        current = self.kafka.statistics().rebalances_total if self.kafka is not None else 0
        return self._past_rebalances + current

    # -- health ---------------------------------------------------------------------------

    def broker_state(self) -> str:
        """``connected``, ``reconnecting``, ``closed`` or ``unreachable`` (no I/O)."""
        if self.broker is not None:
            return self.broker.state
        if self.kafka is not None:
            return self.kafka.state
        return "unreachable" if self.broker_error else "connecting"

    async def report(self) -> dict[str, Any]:
        """The health details: subscriptions, processing delay, source and broker (queries)."""
        subscriptions = await count_subscribed_instances(self.database)
        delay = self.router.oldest_in_flight()
        if self.database_source is not None:
            pending = await self.database_source.oldest_pending_age()
            if pending is not None:
                delay = max(delay or 0.0, pending)
        details: dict[str, Any] = {
            "source": self.settings.source,
            "subscriptionCount": subscriptions,
            "processingDelay": f"{round((delay or 0.0) * 1000)}ms",
            "eventsRouted": self.router.routed_total,
        }
        if self.uses_broker:
            details["outboxBacklog"] = await count_outbox(self.database)
            details["broker"] = self.broker_state()
            if self.broker is not None:
                details["brokerAddress"] = self.broker.broker
            if self.settings.source == "kafka":
                details.update(self._kafka_details())
            if self.broker_error and self.broker is None and self.kafka is None:
                details["brokerError"] = self.broker_error
        return details

    def _kafka_details(self) -> dict[str, Any]:
        kafka = self.settings.kafka
        details: dict[str, Any] = {
            "brokerAddress": describe_brokers(kafka),
            "consumerGroup": kafka.consumer_group,
            "deadLetterTopic": kafka.dead_letter_topic_name,
        }
        statistics = self.kafka_statistics()
        if statistics is not None:
            details["consumerLag"] = statistics.lag
            details["assignedPartitions"] = [
                {
                    "topic": p.topic,
                    "partition": p.partition,
                    "committedOffset": p.committed,
                    "endOffset": p.end,
                    "lag": p.lag,
                }
                for p in statistics.partitions
            ]
            details["rebalances"] = statistics.rebalances_total
        return details
