"""The composition root: builds the service from its settings and runs it until shutdown.

Process shape (architecture.md): one trio-asyncio loop for asyncpg; an actor system whose root
supervisor runs the storage (the database, embedded when no URL is configured, with its schema
brought current), the instance supervisor and the API and management listeners on hypercorn.
``Service.run`` reports readiness through ``task_status`` once both listeners are bound, so a
startup failure surfaces at the caller. ``request_shutdown`` drains: the listeners stop
accepting, in-flight requests get ``server.shutdownGracePeriod`` to finish, then the pools close.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import attrs
import trio

from workflow_orchestrator.actors import ActorSystem, open_actor_system
from workflow_orchestrator.asyncio_bridge import open_asyncio_bridge
from workflow_orchestrator.config import LoadedConfig, Settings
from workflow_orchestrator.definitions import register_definition_files
from workflow_orchestrator.gateway import (
    HealthReporter,
    create_api_app,
    create_management_app,
    serve_app,
)
from workflow_orchestrator.instances import validation_options
from workflow_orchestrator.observability import PoolReading, ServiceMetrics
from workflow_orchestrator.storage import (
    Database,
    DatabaseUnavailable,
    migrate,
    open_database,
    open_embedded_postgres,
    schema_status,
)
from workflow_orchestrator.supervision import RestartStrategy, ServiceSpec, SupervisorSpec

__all__ = ["Service", "ServiceAddresses", "open_configured_database"]

logger = logging.getLogger(__name__)


@attrs.frozen(kw_only=True)
class ServiceAddresses:
    """The URLs the two listeners are bound to."""

    api: tuple[str, ...]
    management: tuple[str, ...]


def _binds(started: object) -> tuple[str, ...]:
    """The URLs a listener service passed to ``task_status.started``."""
    if not isinstance(started, list):
        raise TypeError(f"a listener reported {started!r} instead of its bound URLs")
    return tuple(str(url) for url in started)


@asynccontextmanager
async def open_configured_database(loaded: LoadedConfig) -> AsyncIterator[Database]:
    """The configured database, or the embedded one when ``database.url`` is empty.

    Must run inside ``open_asyncio_bridge()``. A connection failure names the setting (and
    where it came from) that points at the unreachable server.
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

    ``/user`` (rest_for_one) starts, in order: ``storage`` (pools and schema), ``instances``
    (the instance supervisor, one_for_one), ``api`` and ``management`` (the listeners). A part
    that fails is restarted with every part started after it, so the listeners always use the
    current database; too many failures in a minute stop the service. Stopping goes the other
    way: the listeners drain first, the pools close last.
    """

    loaded: LoadedConfig
    _shutdown: trio.Event = attrs.field(factory=trio.Event, init=False)
    _database: Database | None = attrs.field(default=None, init=False)
    _metrics: ServiceMetrics = attrs.field(factory=ServiceMetrics, init=False)

    @property
    def settings(self) -> Settings:
        return self.loaded.settings

    def request_shutdown(self) -> None:
        """Begin the graceful stop (idempotent)."""
        self._shutdown.set()

    async def run(
        self, *, task_status: trio.TaskStatus[ServiceAddresses] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Run until ``request_shutdown``; readiness is reported once both ports are bound."""
        server = self.settings.server
        listener_timeout = server.shutdown_grace_period + 1.0
        guardian = SupervisorSpec(
            name="user",
            strategy=RestartStrategy.REST_FOR_ONE,
            max_restarts=3,
            within_seconds=60.0,
        )
        self._metrics.add_pool_reader(self._pool_readings)
        async with (
            open_asyncio_bridge(),
            open_actor_system(guardian=guardian, shutdown_timeout=listener_timeout + 20) as system,
        ):
            await system.start_child(
                ServiceSpec(name="storage", run=self._run_storage, shutdown_timeout=15.0)
            )
            await system.start_child(
                SupervisorSpec(name="instances", strategy=RestartStrategy.ONE_FOR_ONE)
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
            logger.info("workflow-orchestrator is ready")
            await self._shutdown.wait()
            logger.info(
                "shutting down: draining requests for up to %.0fs", server.shutdown_grace_period
            )
        # Leaving the actor system stops the children in reverse order (drain, then cancel).

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
            await self._prepare_schema(database)
            await self._register_definition_files(database)
            self._database = database
            try:
                task_status.started(database)
                await trio.sleep_forever()
            finally:
                self._database = None

    async def _prepare_schema(self, database: Database) -> None:
        if self.settings.database.migrate_on_startup:
            report = await migrate(database)
            if report.applied:
                logger.info("applied schema migrations %s", list(report.applied))
            return
        status = await schema_status(database)
        if not status.current:
            logger.warning(
                "the database schema is not current (pending %s); the service will report "
                "not ready until `workflow-orchestrator migrate` runs",
                list(status.pending),
            )

    async def _register_definition_files(self, database: Database) -> None:
        paths = self.settings.definitions.paths
        if not paths:
            return
        results = await register_definition_files(
            database, paths, validation_options(self.settings.workflows)
        )
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
        app = create_api_app(
            database=self._current_database(),
            metrics=self._metrics,
            metrics_enabled=self._metrics_enabled(),
            context_path=server.context_path,
            validation=validation_options(self.settings.workflows),
        )
        await serve_app(
            app,
            name="API",
            host=server.host,
            port=server.port,
            port_setting="server.port (SERVER_PORT)",
            shutdown=stop_requested,
            grace_period=server.shutdown_grace_period,
            task_status=task_status,
        )

    async def _run_management(
        self,
        system: ActorSystem,
        *,
        stop_requested: trio.Event,
        task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        server = self.settings.server
        app = create_management_app(
            health=HealthReporter(database=self._current_database()),
            metrics=self._metrics,
            metrics_enabled=self._metrics_enabled(),
            system=system,
        )
        await serve_app(
            app,
            name="management listener",
            host=server.host,
            port=server.management_port,
            port_setting="server.managementPort (MANAGEMENT_PORT)",
            shutdown=stop_requested,
            grace_period=server.shutdown_grace_period,
            task_status=task_status,
        )
