"""The composition root: builds the service from its settings and runs it until shutdown.

Process shape (architecture.md): one ``trio_asyncio`` loop for asyncpg; the database (embedded
when no URL is configured) with its schema brought current; the API and management apps on
hypercorn. ``Service.run`` reports readiness through ``task_status`` once both listeners are
bound, so a startup failure surfaces at the caller. ``request_shutdown`` drains: the listeners stop
accepting, in-flight requests get ``server.shutdownGracePeriod`` to finish, then the pools close.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import attrs
import trio

from workflow_orchestrator.asyncio_bridge import open_asyncio_bridge
from workflow_orchestrator.config import LoadedConfig, Settings
from workflow_orchestrator.gateway import (
    HealthReporter,
    create_api_app,
    create_management_app,
    serve_app,
)
from workflow_orchestrator.observability import PoolReading, ServiceMetrics
from workflow_orchestrator.storage import (
    Database,
    DatabaseUnavailable,
    migrate,
    open_database,
    open_embedded_postgres,
    schema_status,
)

__all__ = ["Service", "ServiceAddresses", "open_configured_database"]

logger = logging.getLogger(__name__)


@attrs.frozen(kw_only=True)
class ServiceAddresses:
    """The URLs the two listeners are bound to."""

    api: tuple[str, ...]
    management: tuple[str, ...]


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
    """One replica of workflow-orchestrator."""

    loaded: LoadedConfig
    _shutdown: trio.Event = attrs.field(factory=trio.Event, init=False)

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
        async with open_asyncio_bridge(), open_configured_database(self.loaded) as database:
            await self._prepare_schema(database)
            await self._serve(database, task_status)

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

    async def _serve(
        self, database: Database, task_status: trio.TaskStatus[ServiceAddresses]
    ) -> None:
        settings = self.settings
        metrics_enabled = settings.metrics.enabled and settings.metrics.prometheus.enabled
        metrics = ServiceMetrics()
        metrics.add_pool_reader(lambda: _pool_readings(database))
        health = HealthReporter(database=database)
        api = create_api_app(
            database=database,
            metrics=metrics,
            metrics_enabled=metrics_enabled,
            context_path=settings.server.context_path,
        )
        management = create_management_app(
            health=health, metrics=metrics, metrics_enabled=metrics_enabled
        )
        grace = settings.server.shutdown_grace_period
        async with trio.open_nursery() as nursery:
            listen = partial(
                serve_app, host=settings.server.host, shutdown=self._shutdown, grace_period=grace
            )
            api_binds: list[str] = await nursery.start(
                partial(
                    listen,
                    api,
                    name="API",
                    port=settings.server.port,
                    port_setting="server.port (SERVER_PORT)",
                )
            )
            management_binds: list[str] = await nursery.start(
                partial(
                    listen,
                    management,
                    name="management listener",
                    port=settings.server.management_port,
                    port_setting="server.managementPort (MANAGEMENT_PORT)",
                )
            )
            task_status.started(
                ServiceAddresses(api=tuple(api_binds), management=tuple(management_binds))
            )
            logger.info("workflow-orchestrator is ready")
            await self._shutdown.wait()
            logger.info("shutting down: draining requests for up to %.0fs", grace)
            # Drain, then cancel: the listeners finish in-flight requests within the grace
            # period; anything still running after it (plus a margin) is cancelled.
            nursery.cancel_scope.deadline = trio.current_time() + grace + 1.0


def _pool_readings(database: Database) -> list[PoolReading]:
    return [
        PoolReading(pool=name, size=stats.size, used=stats.used, max_size=stats.max_size)
        for name, stats in database.all_statistics().items()
    ]
