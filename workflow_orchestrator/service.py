"""The composition root: builds the service from its settings and runs it until shutdown.

Process shape (architecture.md): one trio-asyncio loop for asyncpg; an actor system whose root
supervisor runs the storage (the database, embedded when no URL is configured, with its schema
brought current), the instance supervisor and the API and management listeners on hypercorn.
``Service.run`` reports readiness through ``task_status`` once both listeners are bound, so a
startup failure surfaces at the caller. ``request_shutdown`` drains: the listeners stop
accepting, in-flight requests get ``server.shutdownGracePeriod`` to finish, then the pools close.
"""

from __future__ import annotations

import gc
import logging
import socket
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from functools import partial

import attrs
import trio
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from quart_trio import QuartTrio

from workflow_orchestrator.actors import ActorSystem, open_actor_system
from workflow_orchestrator.adapters import (
    PooledHttpClient,
    ProcessLimits,
    ServiceContext,
    hide_from_processes,
    open_expression_engine,
    open_local_processes,
    open_service_adapters,
)
from workflow_orchestrator.asyncio_bridge import open_asyncio_bridge
from workflow_orchestrator.config import ConfigError, LoadedConfig, Settings, startup_problems
from workflow_orchestrator.definitions import configured_schema, register_definition_files
from workflow_orchestrator.dsl.validation import ValidationOptions
from workflow_orchestrator.events import EventProcessing, OutboxSignal, event_options
from workflow_orchestrator.gateway import (
    AccessPolicy,
    AuditTrail,
    HealthReporter,
    ListenersTls,
    configured_tls,
    create_api_app,
    create_management_app,
    serve_app,
)
from workflow_orchestrator.instances import (
    ConfiguredProcesses,
    DatabaseInstanceRepository,
    InstanceCensus,
    InstanceRuntime,
    WorkflowCatalog,
    expression_limits,
    runtime_options,
    validation_options,
)
from workflow_orchestrator.observability import PoolReading, ServiceMetrics, WorkerGroup
from workflow_orchestrator.scheduler import Scheduler
from workflow_orchestrator.security import (
    NamespacePolicy,
    OutboundPolicy,
    SecretStore,
    open_oidc_verifier,
    resolve_config_secrets,
)
from workflow_orchestrator.storage import (
    Database,
    DatabaseUnavailable,
    NotificationListener,
    PartitionLeases,
    StorageError,
    hold_owner_id,
    migrate,
    open_database,
    open_embedded_postgres,
    run_lease_keeper,
    schema_status,
)
from workflow_orchestrator.storage.instances import (
    ENDED_CHANNEL,
    SnapshotWriter,
    count_unfinished_instances,
)
from workflow_orchestrator.supervision import Backoff, RestartStrategy, ServiceSpec, SupervisorSpec

__all__ = ["Service", "ServiceAddresses", "open_configured_database", "with_config_secrets"]

logger = logging.getLogger(__name__)

#: The cyclic garbage collector's thresholds once the service is up (see ``Service.run``):
#: a young collection every 5,000 net allocations, a middle one every 50 young ones, a full
#: one every 50 middle ones (12.5 million net allocations).
_GC_THRESHOLDS = (5_000, 50, 50)
#: How often a service started on a schema that is not current checks whether it is now.
SCHEMA_RECHECK_INTERVAL = 2.0
#: How often a worker of a group writes its readiness and scrape-time metrics for the others.
GROUP_REPORT_INTERVAL = 1.0


@attrs.frozen(kw_only=True)
class ServiceAddresses:
    """The URLs the two listeners are bound to."""

    api: tuple[str, ...]
    management: tuple[str, ...]


def _log_newer_schema(newer: tuple[int, ...]) -> None:
    logger.warning(
        "the database schema has migrations %s of a newer release, each declared compatible "
        "with the release before it; running on it (a rollback): upgrade again to use them",
        list(newer),
    )


def _binds(started: object) -> tuple[str, ...]:
    """The URLs a listener service passed to ``task_status.started``."""
    if not isinstance(started, list):
        raise TypeError(f"a listener reported {started!r} instead of its bound URLs")
    return tuple(str(url) for url in started)


async def with_config_secrets(loaded: LoadedConfig) -> LoadedConfig:
    """``loaded`` with its ``${secret:NAME}`` references resolved from the secret providers it
    configures (``ConfigError`` naming the key when one cannot be)."""
    store = SecretStore.from_settings(loaded.settings.security.secrets)
    try:
        return await resolve_config_secrets(loaded, store)
    finally:
        store.close()


@asynccontextmanager
async def open_configured_database(loaded: LoadedConfig) -> AsyncIterator[Database]:
    """The configured database, or the embedded one when ``database.url`` is empty.

    Must run inside ``open_asyncio_bridge()``, with ``loaded`` resolved (`with_config_secrets`,
    or the service's own store). A connection failure names the setting (and where it came
    from) that points at the unreachable server.
    """
    settings = loaded.settings.database
    if settings.primary_url:
        key = "database.primary.url" if settings.primary.url else "database.url"
        try:
            async with open_database(settings) as database:
                yield database
        except DatabaseUnavailable as exc:
            raise DatabaseUnavailable(
                f"{exc}; check {key} (from {loaded.source_of(key)}), database.username and "
                "database.password, and that the server is running",
                database=exc.database,
            ) from exc
        return
    if not settings.embedded.enabled:
        raise DatabaseUnavailable(
            "no database configured and the embedded database is disabled; set database.url "
            "(or DATABASE_URL), or set database.embedded.enabled: true",
            database="",
        )
    async with (
        open_embedded_postgres(settings.embedded) as location,
        open_database(settings, location=location) as database,
    ):
        yield database


@attrs.define(eq=False)
class Service:
    """One replica of workflow-orchestrator: a supervision tree of its parts.

    ``/user`` (rest_for_one) starts, in order: ``storage`` (pools, schema, definition files),
    ``leases`` (this replica's partitions), ``snapshots`` (the group-commit writer),
    ``instances`` (the instance supervisor, one_for_one, one actor per running instance),
    ``runtime`` (recovery, wake-ups, commands), ``scheduler`` (durable timers, schedules,
    leader election), ``events`` (event router, sources, outbox relay), ``api`` and
    ``management`` (the listeners). A
    part that fails is restarted with every part started after it, so later parts always use
    the current ones; too many failures in a minute stop the service. Stopping goes the other
    way: the listeners drain first, the instances are stopped (their last commits are written),
    the pools close last.
    """

    loaded: LoadedConfig
    #: Rewrites ``scheme://host[:port]`` prefixes of the workflows' outbound calls (HTTP and the
    #: service adapters) before the outbound policy sees them. Tests map the official examples'
    #: hosts to local stand-ins with it; the service the CLI builds maps nothing.
    host_map: Mapping[str, str] = attrs.field(factory=dict, kw_only=True)
    #: The worker group this service is one worker of (``server.workers`` > 1), else None.
    group: WorkerGroup | None = attrs.field(default=None, kw_only=True)
    _shutdown: trio.Event = attrs.field(factory=trio.Event, init=False)
    _database: Database | None = attrs.field(default=None, init=False)
    _leases: PartitionLeases | None = attrs.field(default=None, init=False)
    _writer: SnapshotWriter | None = attrs.field(default=None, init=False)
    _runtime: InstanceRuntime | None = attrs.field(default=None, init=False)
    _catalog: WorkflowCatalog | None = attrs.field(default=None, init=False)
    # Rung by the snapshot writer after commits with outbox rows; the relay waits on it.
    _outbox: OutboxSignal = attrs.field(factory=OutboxSignal, init=False)
    _events: EventProcessing | None = attrs.field(default=None, init=False)
    _scheduler: Scheduler | None = attrs.field(default=None, init=False)
    _census: InstanceCensus | None = attrs.field(default=None, init=False)
    api_app: QuartTrio | None = attrs.field(default=None, init=False)
    _schema_current: bool = attrs.field(default=False, init=False)
    _metrics: ServiceMetrics = attrs.field(init=False)
    _validation: ValidationOptions = attrs.field(init=False)
    _access: AccessPolicy = attrs.field(init=False)
    _tls: ListenersTls = attrs.field(init=False)
    # The $secrets providers (and those of ${secret:NAME} in the configuration) and grants.
    _secrets: SecretStore = attrs.field(init=False)
    _policy: NamespacePolicy = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._metrics = ServiceMetrics(group=self.group)
        self._secrets = SecretStore.from_settings(self.settings.security.secrets)
        self._policy = NamespacePolicy.from_settings(self.settings)
        # Read the optional official schema (definitions.schema) before anything starts: a
        # wrong file is a configuration error (SchemaFileError), not a failure at registration.
        self._validation = validation_options(
            self.settings.workflows,
            official_schema=configured_schema(self.loaded),
            definitions=self.settings.definitions,
            policy=self._policy,
        )
        # The TLS files too (server.tls, server.managementTls): TlsFileError names the setting.
        self._tls = configured_tls(self.loaded)

    @property
    def settings(self) -> Settings:
        return self.loaded.settings

    @property
    def owner_id(self) -> str:
        """This replica's lease owner id: ``cluster.replicaId``, else the host name."""
        return self.settings.cluster.replica_id or socket.gethostname()

    def request_shutdown(self) -> None:
        """Begin the graceful stop (idempotent)."""
        self._shutdown.set()

    async def run(
        self, *, task_status: trio.TaskStatus[ServiceAddresses] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Run until ``request_shutdown``; readiness is reported once both ports are bound.

        ``${secret:NAME}`` references in the settings are resolved first, before the database
        is opened and before the API keys are known (a missing secret, or authentication on with
        no usable credential, is a ``ConfigError`` naming the key)."""
        try:
            self.loaded = await resolve_config_secrets(self.loaded, self._secrets)
            problems = startup_problems(self.settings, self.loaded.source_of)
            if problems:
                raise ConfigError(problems)
            await self._run(task_status)
        finally:
            self._secrets.close()

    async def _run(self, task_status: trio.TaskStatus[ServiceAddresses]) -> None:
        """Run the service's parts until the shutdown request.

        When the schema is not current at start (``database.migrateOnStartup: false`` and no
        ``migrate`` yet), the parts run without workflow instances and readiness says so; once
        someone migrates, they stop and start again with them, so a replica never stays up
        without running instances."""
        server = self.settings.server
        listener_timeout = server.shutdown_grace_period + 1.0
        guardian = SupervisorSpec(
            name="user",
            strategy=RestartStrategy.REST_FOR_ONE,
            max_restarts=3,
            within_seconds=60.0,
        )
        self._metrics.add_pool_reader(self._pool_readings)
        self._metrics.add_gauges(self._event_gauges)
        self._metrics.add_gauges(self._read_metrics)
        self._metrics.add_gauges(self._instance_gauges)
        async with self._open_token_verifier(), open_asyncio_bridge():
            # Readiness is reported by the first run only.
            while await self._run_parts(guardian, listener_timeout, task_status):
                task_status = trio.TASK_STATUS_IGNORED
                logger.info(
                    "the database schema is current now; starting the service's parts again, "
                    "with workflow instances"
                )
                # The stopped parts were frozen with the rest (below): let them be collected.
                gc.unfreeze()
                gc.collect()

    async def _run_parts(
        self,
        guardian: SupervisorSpec,
        listener_timeout: float,
        task_status: trio.TaskStatus[ServiceAddresses],
    ) -> bool:
        """One run of the actor system; True when it stopped because the schema became current."""
        server = self.settings.server
        async with open_actor_system(
            guardian=guardian, shutdown_timeout=listener_timeout + 20
        ) as system:
            await system.start_child(
                ServiceSpec(name="storage", run=self._run_storage, shutdown_timeout=15.0)
            )
            if self._schema_current:
                await self._start_instance_parts(system)
            else:
                logger.warning(
                    "workflow instances are not run until the schema is current; run "
                    "`workflow-orchestrator migrate` (the service checks every %gs and starts "
                    "them then)",
                    SCHEMA_RECHECK_INTERVAL,
                )
            api_binds = await system.start_child(
                ServiceSpec(
                    name="api",
                    run=self._run_api,
                    graceful=True,
                    shutdown_timeout=listener_timeout,
                )
            )
            management_binds = await system.start_child(
                ServiceSpec(
                    name="management",
                    run=partial(self._run_management, system),
                    graceful=True,
                    shutdown_timeout=listener_timeout,
                )
            )
            task_status.started(
                ServiceAddresses(api=_binds(api_binds), management=_binds(management_binds))
            )
            # Everything allocated while starting lives as long as the process: keep it out
            # of the garbage collector's full passes (measured: ~40% more instances/s).
            gc.freeze()
            # Instances in flight keep many objects alive for a few milliseconds; with the
            # default thresholds (700, 10, 10) they are traversed again and again by the
            # young and middle collections (a third of a replica's CPU when 1,500 timers
            # fall due per second; benchmarks/timers.py: fire p99 395 ms against 14 ms).
            gc.set_threshold(*_GC_THRESHOLDS)
            logger.info("workflow-orchestrator is ready")
            if await self._schema_became_current():
                return True
            logger.info(
                "shutting down: draining requests for up to %.0fs", server.shutdown_grace_period
            )
        # Leaving the actor system stops the children in reverse order (drain, then cancel).
        return False

    async def _schema_became_current(self) -> bool:
        """Wait for the shutdown request; with a schema that was not current at start, return
        True instead as soon as it is."""
        if self._schema_current:
            await self._shutdown.wait()
            return False
        became_current = False
        async with trio.open_nursery() as nursery:

            async def recheck() -> None:
                nonlocal became_current
                while not became_current:
                    await trio.sleep(SCHEMA_RECHECK_INTERVAL)
                    database = self._database
                    if database is None:  # storage is being restarted by its supervisor
                        continue
                    try:
                        status = await schema_status(database)
                    except (OSError, StorageError) as exc:
                        logger.debug("schema check failed: %s", exc)  # health reports it
                        continue
                    became_current = status.current
                nursery.cancel_scope.cancel()

            nursery.start_soon(recheck)
            await self._shutdown.wait()
            nursery.cancel_scope.cancel()
        return became_current and not self._shutdown.is_set()

    @asynccontextmanager
    async def _open_token_verifier(self) -> AsyncIterator[None]:
        """The access policy of both listeners, from the resolved settings; with
        ``security.authentication.oidc`` on, the OIDC verifier (its JWKS client) lives as long
        as the service and the policy checks tokens with it."""
        oidc = self.settings.security.authentication.oidc
        if not oidc.enabled:
            self._access = AccessPolicy.from_settings(self.settings)
            yield
            return
        async with open_oidc_verifier(oidc) as verifier:
            self._access = AccessPolicy.from_settings(self.settings, tokens=verifier)
            yield

    async def _run_leases(
        self, *, task_status: trio.TaskStatus[PartitionLeases] = trio.TASK_STATUS_IGNORED
    ) -> None:
        database = self._current_database()
        ttl = self.settings.cluster.lease_ttl

        async def keep(*, task_status: trio.TaskStatus[PartitionLeases]) -> None:
            async with hold_owner_id(database, self.owner_id):
                await run_lease_keeper(database, self.owner_id, ttl=ttl, task_status=task_status)

        async with trio.open_nursery() as nursery:
            self._leases = await nursery.start(keep)
            logger.info(
                "holding %d partitions as %s",
                len(self._leases.current().partitions),
                self.owner_id,
            )
            task_status.started(self._leases)

    async def _run_writer(
        self, *, task_status: trio.TaskStatus[SnapshotWriter] = trio.TASK_STATUS_IGNORED
    ) -> None:
        if self._leases is None:
            raise RuntimeError("leases are not held")  # started before, so this is a bug
        writer = SnapshotWriter(
            database=self._current_database(), leases=self._leases, on_outbox=self._outbox.notify
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(writer.run)
            self._writer = writer
            task_status.started(writer)

    async def _run_runtime(
        self,
        system: ActorSystem,
        *,
        task_status: trio.TaskStatus[InstanceRuntime] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        if self._leases is None or self._writer is None:
            raise RuntimeError("leases and snapshot writer are not running")  # a bug
        workflows, server = self.settings.workflows, self.settings.server
        if workflows.run.shell or workflows.run.script or workflows.calls.mcp.stdio:
            hide_from_processes()  # they run as our user: keep them out of /proc/<our pid>
        # Calls to this service's own ports are refused on every address of this machine.
        outbound_policy = OutboundPolicy.from_settings(
            self.settings.security.outbound,
            own_ports={server.port: "server.port", server.management_port: "server.managementPort"},
        )
        async with (
            open_expression_engine(expression_limits(workflows)) as engine,
            PooledHttpClient(
                policy=outbound_policy,
                default_timeout=workflows.http_timeout,
                max_response_size=workflows.max_response_size,
                host_map=self.host_map,
                proxy=self.settings.security.outbound.proxy,
            ) as http_client,
            open_local_processes(ProcessLimits.from_settings(workflows.run)) as local_processes,
            open_service_adapters(
                ServiceContext(
                    workflows=workflows,
                    outbound=outbound_policy,
                    http=http_client,
                    host_map=self.host_map,
                    proxy=self.settings.security.outbound.proxy,
                )
            ) as services,
            trio.open_nursery() as nursery,
        ):
            leases = self._leases
            # New instances get ids in this replica's partitions: it runs what it starts.
            repository = DatabaseInstanceRepository(
                database=self._current_database(),
                local_partitions=lambda: leases.current().partitions,
            )
            catalog = WorkflowCatalog(
                definitions=repository, engine=engine, options=runtime_options(workflows)
            )
            runtime = InstanceRuntime(
                repository=repository,
                snapshots=self._writer,
                leases=self._leases,
                catalog=catalog,
                supervisor=system.lookup_supervisor("/user/instances"),
                http=http_client,
                processes=ConfiguredProcesses(
                    run=local_processes.run_process,
                    shell=workflows.run.shell,
                    script=workflows.run.script,
                ),
                event_options=event_options(
                    self.settings.event_processing, workflows.lifecycle_events
                ),
                unmatched_retention=self.settings.event_processing.unmatched_retention,
                max_state_size=workflows.limits.state_size,
                commit_every=workflows.limits.commit_every,
                subflow_depth=workflows.limits.subflow_depth,
                timer_lookahead=Scheduler.lookahead_for(self.settings.scheduler),
                wake_concurrency=self.settings.scheduler.thread_pool_size,
                max_active=workflows.max_active_instances,
                on_timer_fired=Scheduler.on_timer_fired(self._metrics),
                long_poll_recheck=self.settings.server.long_poll_recheck_interval,
                secrets=self._secrets,
                policy=self._policy,
                metrics=self._metrics.instances,
                services=services,
            )
            # Long polls held here for instances that end on another replica.
            await nursery.start(
                NotificationListener(
                    database=self._current_database(),
                    channel=ENDED_CHANNEL,
                    on_payload=runtime.ended_elsewhere,
                    name="long polls",
                ).run
            )
            await nursery.start(runtime.run)
            census = InstanceCensus(
                count=partial(count_unfinished_instances, self._current_database()),
                leases=self._leases,
            )
            await nursery.start(census.run)
            self._runtime, self._catalog, self._census = runtime, catalog, census
            task_status.started(runtime)
            try:
                await trio.sleep_forever()
            finally:
                self._census = None
                if self._shutdown.is_set():
                    # Stopping waits for no workflow: running instances resume from their
                    # last commit (the instance actors are stopped right after this part).
                    runtime.abandon_runs()

    async def _run_events(
        self, *, task_status: trio.TaskStatus[EventProcessing] = trio.TASK_STATUS_IGNORED
    ) -> None:
        runtime, catalog, leases = self._runtime, self._catalog, self._leases
        if runtime is None or catalog is None or leases is None:
            raise RuntimeError("the instance runtime is not running")  # started before: a bug
        processing = EventProcessing(
            settings=self.settings.event_processing,
            database=self._current_database(),
            runtime=runtime,
            leases=leases,
            catalog=catalog,
            engine=catalog.engine,
            owner_id=self.owner_id,
            metrics=self._metrics,
            outbox=self._outbox,
        )
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(processing.run)
                self._events = processing
                task_status.started(processing)
        finally:
            self._events = None

    async def _run_scheduler(
        self, *, task_status: trio.TaskStatus[Scheduler] = trio.TASK_STATUS_IGNORED
    ) -> None:
        runtime, catalog, leases = self._runtime, self._catalog, self._leases
        if runtime is None or catalog is None or leases is None:
            raise RuntimeError("the instance runtime is not running")  # started before: a bug
        scheduler = Scheduler(
            settings=self.settings.scheduler,
            runtime=runtime,
            database=self._current_database(),
            leases=leases,
            catalog=catalog,
            wake_timers=runtime.timers,
            owner_id=self.owner_id,
            metrics=self._metrics,
            retention=self.settings.retention,
            audit_retention=self.settings.security.audit.retention,
        )
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(scheduler.run)
                self._scheduler = scheduler
                task_status.started(scheduler)
        finally:
            self._scheduler = None

    def _event_gauges(self) -> Iterator[Metric]:
        events = self._events
        backlog = GaugeMetricFamily(
            "workflow_orchestrator_outbox_backlog",
            "Outbox rows of this replica's partitions not published yet (last relay read)",
        )
        broker = GaugeMetricFamily(
            "workflow_orchestrator_broker_connected",
            "1 while the RabbitMQ or Kafka connection is up (0 otherwise; absent without a broker)",
        )
        lag = GaugeMetricFamily(
            "workflow_orchestrator_kafka_consumer_lag",
            "Records of each assigned partition not yet routed and committed (high watermark "
            "minus the group's committed offset, at the last fetch)",
            labels=["topic", "partition"],
        )
        rebalances = CounterMetricFamily(
            "workflow_orchestrator_kafka_rebalances",
            "Partition assignments this replica's Kafka consumers received",
        )
        if events is not None and events.relay is not None:
            backlog.add_metric([], events.relay.statistics().backlog)
        if events is not None and events.uses_broker:
            broker.add_metric([], 1.0 if events.broker_state() == "connected" else 0.0)
        kafka = events.kafka_statistics() if events is not None else None
        if kafka is not None:
            for partition in kafka.partitions:
                if partition.lag is not None:
                    lag.add_metric([partition.topic, str(partition.partition)], partition.lag)
        if events is not None and events.settings.source == "kafka":
            rebalances.add_metric([], events.kafka_rebalances)
        yield backlog
        yield broker
        yield lag
        yield rebalances

    def _read_metrics(self) -> Iterator[Metric]:
        lag = GaugeMetricFamily(
            "workflow_orchestrator_db_replica_lag_seconds",
            "How far each read replica is behind the primary, at its last check",
            labels=["pool"],
        )
        serving = GaugeMetricFamily(
            "workflow_orchestrator_db_replica_serving_reads",
            "1 while the read replica takes reads (healthy and PREFER_REPLICA), else 0",
            labels=["pool"],
        )
        reads = CounterMetricFamily(
            "workflow_orchestrator_db_reads",
            "Read-only API queries by the pool that served them (primary, replica-N)",
            labels=["pool"],
        )
        database = self._database
        if database is not None:
            statistics = database.read_statistics()
            for replica in statistics.replicas:
                if replica.lag is not None:
                    lag.add_metric([replica.name], replica.lag)
                serving.add_metric([replica.name], 1.0 if replica.serving_reads else 0.0)
            for pool, count in statistics.reads.items():
                reads.add_metric([pool], count)
        yield lag
        yield serving
        yield reads

    def _instance_gauges(self) -> Iterator[Metric]:
        instances = GaugeMetricFamily(
            "workflow_orchestrator_instances",
            "Unfinished instances of this replica's partitions by definition and status "
            "(pending, running, waiting, suspended), at the last count",
            labels=["definition", "status"],
        )
        leader = GaugeMetricFamily(
            "workflow_orchestrator_scheduler_leader",
            "1 while this replica fires schedules (the elected leader, or every enabled "
            "replica without scheduler.distributed), else 0; absent with schedules disabled",
        )
        census = self._census
        if census is not None:
            # Definitions past the label's cap share "other": one sample per label pair.
            bounded = self._metrics.instances.definition
            samples: dict[tuple[str, str], int] = {}
            for (definition, status), count in census.counts().items():
                key = (bounded(definition), status)
                samples[key] = samples.get(key, 0) + count
            for labels, count in samples.items():
                instances.add_metric(list(labels), count)
        scheduler = self._scheduler
        leading = scheduler.is_leader() if scheduler is not None else None
        if leading is not None:
            leader.add_metric([], 1.0 if leading else 0.0)
        yield instances
        yield leader

    async def _start_instance_parts(self, system: ActorSystem) -> None:
        """Leases, the snapshot writer, the instance supervisor, the runtime and event
        processing, in order."""
        await system.start_child(
            ServiceSpec(name="leases", run=self._run_leases, shutdown_timeout=10.0)
        )
        await system.start_child(
            ServiceSpec(name="snapshots", run=self._run_writer, shutdown_timeout=10.0)
        )
        await system.start_child(
            SupervisorSpec(
                name="instances",
                strategy=RestartStrategy.ONE_FOR_ONE,
                # Each instance bounds its own retries (MAX_ATTEMPTS, then faulted), so a
                # burst of failing instances must not take the whole supervisor down.
                max_restarts=10_000,
                within_seconds=60.0,
                backoff=Backoff(initial=0.5, maximum=10.0),
            )
        )
        await system.start_child(
            ServiceSpec(
                name="runtime",
                run=partial(self._run_runtime, system),
                shutdown_timeout=10.0,
            )
        )
        await system.start_child(
            ServiceSpec(name="scheduler", run=self._run_scheduler, shutdown_timeout=10.0)
        )
        await system.start_child(
            ServiceSpec(name="events", run=self._run_events, shutdown_timeout=10.0)
        )

    def _current_database(self) -> Database:
        if self._database is None:  # the storage child starts first, so this is a bug
            raise RuntimeError("storage is not running")
        return self._database

    def _pool_readings(self) -> list[PoolReading]:
        database = self._database
        if database is None:
            return []
        return [
            PoolReading(pool=name, size=stats.size, used=stats.used, max_size=stats.max_size)
            for name, stats in database.all_statistics().items()
        ]

    async def _run_storage(
        self, *, task_status: trio.TaskStatus[Database] = trio.TASK_STATUS_IGNORED
    ) -> None:
        async with open_configured_database(self.loaded) as database:
            database.observe_work(self._metrics.observe_database)
            await self._prepare_schema(database)
            if self._schema_current:
                await self._register_definition_files(database)
            self._database = database
            try:
                async with trio.open_nursery() as nursery:
                    # Replica health for read routing, checked before the API opens.
                    await nursery.start(database.run_replica_checks)
                    task_status.started(database)
                    await trio.sleep_forever()
            finally:
                self._database = None

    async def _prepare_schema(self, database: Database) -> None:
        if self.settings.database.migrate_on_startup:
            report = await migrate(database)
            if report.applied:
                logger.info("applied schema migrations %s", list(report.applied))
            if report.newer:
                _log_newer_schema(report.newer)
            self._schema_current = True
            return
        status = await schema_status(database)
        self._schema_current = status.current
        if status.current and status.unknown:
            _log_newer_schema(status.unknown)
        elif status.incompatible:
            logger.warning(
                "the database schema has migrations %s of a newer release that do not declare "
                "that the release before them runs on it; the service will report not ready "
                "until it is upgraded to that release",
                list(status.incompatible),
            )
        elif not status.current:
            logger.warning(
                "the database schema is not current (pending %s); the service will report "
                "not ready until `workflow-orchestrator migrate` runs",
                list(status.pending),
            )

    async def _register_definition_files(self, database: Database) -> None:
        paths = self.settings.definitions.paths
        if not paths:
            return
        results = await register_definition_files(database, paths, self._validation)
        created = [
            f"{r.definition.definition_id}@{r.definition.version}" for r in results if r.created
        ]
        logger.info(
            "definitions from %s: %d registered, %d unchanged%s",
            ", ".join(paths),
            len(created),
            len(results) - len(created),
            f" ({', '.join(created)})" if created else "",
        )

    def _metrics_enabled(self) -> bool:
        return self.settings.metrics.enabled and self.settings.metrics.prometheus.enabled

    async def _run_api(
        self,
        *,
        stop_requested: trio.Event,
        task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        server = self.settings.server
        async with trio.open_nursery() as nursery:
            # The audit lines are always written; the rows when the table is on and exists.
            table = self.settings.security.audit.enabled and self._schema_current
            audit = AuditTrail(database=self._current_database() if table else None)
            await nursery.start(audit.run)
            app = create_api_app(
                database=self._current_database(),
                metrics=self._metrics,
                metrics_enabled=self._metrics_enabled(),
                context_path=server.context_path,
                validation=self._validation,
                runtime=self._runtime,
                catalog=self._catalog,
                events=self._events.router if self._events is not None else None,
                max_body_bytes=server.max_request_size,
                access=self._access,
                audit=audit,
            )
            self.api_app = app
            await self._listen(
                app, "API", server.port, "server.port (SERVER_PORT)", stop_requested, task_status
            )
            nursery.cancel_scope.cancel()  # the audit trail writes what is pending, then ends

    async def _run_management(
        self,
        system: ActorSystem,
        *,
        stop_requested: trio.Event,
        task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        server = self.settings.server
        health = HealthReporter(
            database=self._current_database(),
            events=lambda: self._events,
            scheduler=lambda: self._scheduler,
            broker_required=self.settings.event_processing.ready_requires_broker,
            instances_running=lambda: self._schema_current,
            group=self.group,
        )
        app = create_management_app(
            health=health,
            metrics=self._metrics,
            metrics_enabled=self._metrics_enabled(),
            system=system,
            access=self._access,
        )
        failure: Exception | None = None
        async with trio.open_nursery() as nursery:
            if self.group is not None:
                nursery.start_soon(self._report_to_group, self.group, health, stop_requested)
            try:
                await self._listen(
                    app,
                    "management listener",
                    server.management_port,
                    "server.managementPort (MANAGEMENT_PORT)",
                    stop_requested,
                    task_status,
                    management=True,
                )
            except Exception as error:  # raised below, alone (a ListenerError names a setting)
                failure = error
            nursery.cancel_scope.cancel()
        if failure is not None:
            raise failure

    async def _report_to_group(
        self, group: WorkerGroup, health: HealthReporter, stop_requested: trio.Event
    ) -> None:
        """Write this worker's readiness (and scrape-time metrics) for the other workers and
        the parent, every ``GROUP_REPORT_INTERVAL``; not ready from the stop request on."""
        try:
            while not stop_requested.is_set():
                ready, _ = await health.own_ready()
                if self._metrics_enabled():
                    self._metrics.publish_to_group()
                group.write_status(ready=ready and not stop_requested.is_set())
                with trio.move_on_after(GROUP_REPORT_INTERVAL):
                    await stop_requested.wait()
        finally:
            group.write_status(ready=False)

    async def _listen(
        self,
        app: QuartTrio,
        name: str,
        port: int,
        port_setting: str,
        stop_requested: trio.Event,
        task_status: trio.TaskStatus[list[str]],
        *,
        management: bool = False,
    ) -> None:
        """Serve ``app`` until ``stop_requested``, draining within the grace period; the
        management listener binds ``server.managementHost`` (when set) and serves with
        ``server.managementTls`` (when set)."""
        server = self.settings.server
        host, host_setting = server.host, "server.host"
        if management and server.management_host:
            host, host_setting = server.management_host, "server.managementHost"
        await serve_app(
            app,
            name=name,
            host=host,
            port=port,
            port_setting=port_setting,
            host_setting=host_setting,
            tls=self._tls.management if management else self._tls.api,
            reuse_port=self.group is not None,
            shutdown=stop_requested,
            grace_period=server.shutdown_grace_period,
            task_status=task_status,
        )
