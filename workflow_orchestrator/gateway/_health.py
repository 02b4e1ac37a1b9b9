"""Health of the service for the management port: liveness, readiness and the detailed report.

Liveness means the process answers. Readiness means the database answers within the probe
timeout and its schema is the one this release needs. The documents use the deployment guide's
words and formats: every ``status`` is ``healthy``, ``degraded`` or ``unhealthy``, and every
timestamp is UTC in whole seconds with a ``Z`` (``2023-08-01T15:30:45Z``). A component that is
not running reports ``unhealthy`` with a ``reason`` and ``null`` numbers rather than invented
ones.

Invariant: the overall ``status`` is ``unhealthy`` exactly when the document is served with
HTTP 503 (not ready); a ready service with any component not ``healthy`` is ``degraded``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

import attrs
import trio

from workflow_orchestrator._version import __version__
from workflow_orchestrator.gateway._replica_health import replica_details
from workflow_orchestrator.observability import WorkerGroup
from workflow_orchestrator.storage import Database, StorageError, schema_status

__all__ = [
    "EventHealth",
    "HealthReporter",
    "SchedulerHealth",
    "format_duration_ms",
    "format_timestamp",
    "format_uptime",
]

HEALTHY, DEGRADED, UNHEALTHY = "healthy", "degraded", "unhealthy"


def format_uptime(seconds: float) -> str:
    """``5d 12h 30m`` (whole minutes, always all three parts)."""
    minutes = int(seconds // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    return f"{days}d {hours}h {minutes}m"


def format_duration_ms(seconds: float) -> str:
    """``2ms`` (rounded to whole milliseconds)."""
    return f"{round(seconds * 1000)}ms"


def format_timestamp(moment: datetime) -> str:
    """``2023-08-01T15:30:45Z``: UTC, whole seconds (truncated), ``Z``; a naive time is UTC."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _guide_formats(value: Any) -> Any:
    """``value`` with every ``datetime`` inside it written by ``format_timestamp``."""
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, dict):
        return {key: _guide_formats(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_guide_formats(item) for item in value]
    return value


_NOT_RUNNING = (
    "workflow instances are not running: the schema was not current when the service started; "
    "it starts them within seconds of `workflow-orchestrator migrate`"
)


class EventHealth(Protocol):
    """What the report needs of event processing (``events.EventProcessing``)."""

    @property
    def uses_broker(self) -> bool: ...

    def broker_state(self) -> str: ...

    async def report(self) -> dict[str, Any]: ...


class SchedulerHealth(Protocol):
    """What the report needs of the scheduler (``scheduler.Scheduler``)."""

    async def report(self) -> dict[str, Any]: ...


@attrs.define(eq=False)
class HealthReporter:
    """Computes the health documents from the live service parts.

    ``events`` returns the running event processing (None while it is not running);
    ``broker_required`` makes readiness depend on the broker connection; ``instances_running``
    is False while the service runs without workflow instances (the schema was not current at
    start), which keeps it not ready. ``group`` (a worker of ``server.workers`` > 1) makes
    readiness the group's: ready only while every other running worker last said it was, with
    a ``workers`` component naming those that did not.
    """

    database: Database
    probe_timeout: float = 2.0
    started_at: float = attrs.field(factory=time.monotonic)
    events: Callable[[], EventHealth | None] = lambda: None
    scheduler: Callable[[], SchedulerHealth | None] = lambda: None
    broker_required: bool = False
    instances_running: Callable[[], bool] = lambda: True
    group: WorkerGroup | None = None

    def _broker_down(self) -> bool:
        # A Kafka consumer rejoining its group (``joining``: a rebalance, seconds) is connected
        # to the broker: readiness does not drop on every rebalance of every replica.
        events = self.events()
        return (
            events is not None
            and events.uses_broker
            and events.broker_state() not in ("connected", "joining")
        )

    async def _event_processing(self) -> dict[str, Any]:
        events = self.events()
        if events is None:
            return self._not_built(
                "event processing is not running (the schema is not current, or it is starting)",
                {"subscriptionCount": None, "processingDelay": None},
            )
        try:
            with trio.fail_after(self.probe_timeout):
                details = await events.report()
        except Exception as exc:  # a database failure shows in the database component too
            return {
                "status": UNHEALTHY,
                "details": {
                    "subscriptionCount": None,
                    "processingDelay": None,
                    "error": f"{type(exc).__name__}: {exc}",
                },
            }
        # The status follows the broker state the details show (one sample, no await between).
        degraded = events.uses_broker and details.get("broker") != "connected"
        return {"status": DEGRADED if degraded else HEALTHY, "details": _guide_formats(details)}

    def uptime(self) -> float:
        return time.monotonic() - self.started_at

    async def _database(self) -> dict[str, Any]:
        stats = self.database.statistics()
        details: dict[str, Any] = {
            "connectionPool": f"{stats.used}/{stats.max_size}",
            "latency": None,
            "schema": None,
            **replica_details(self.database),
        }
        try:
            with trio.fail_after(self.probe_timeout):
                latency = await self.database.ping()
                status = await schema_status(self.database)
        except (OSError, StorageError, trio.TooSlowError) as exc:
            reason = (
                f"no answer within {self.probe_timeout:g}s"
                if isinstance(exc, trio.TooSlowError)
                else f"{type(exc).__name__}: {exc}"
            )
            details["error"] = reason
            return {"status": UNHEALTHY, "details": details}
        except Exception as exc:  # asyncpg errors have no common base we import here
            details["error"] = f"{type(exc).__name__}: {exc}"
            return {"status": UNHEALTHY, "details": details}
        details["latency"] = format_duration_ms(latency)
        details["schema"] = "current" if status.current else "outdated"
        if status.current and status.unknown:
            # A rollback: a newer release's migrations, each declared compatible.
            details["newerMigrations"] = list(status.unknown)
        if not status.current:
            details["pendingMigrations"] = list(status.pending)
            details["changedMigrations"] = list(status.mismatched)
            details["unknownMigrations"] = list(status.unknown)
            details["incompatibleMigrations"] = list(status.incompatible)
            return {"status": UNHEALTHY, "details": details}
        return {"status": HEALTHY, "details": details}

    @staticmethod
    def _not_built(reason: str, details: dict[str, Any]) -> dict[str, Any]:
        """A component that is not running: it cannot do its work, so it is not healthy."""
        return {"status": UNHEALTHY, "details": {**details, "reason": reason}}

    async def _scheduler(self) -> dict[str, Any]:
        scheduler = self.scheduler()
        empty = {"pendingTasks": None, "lastExecutionTime": None}
        if scheduler is None:
            return self._not_built(
                "the scheduler is not running (the schema is not current, or it is starting)",
                empty,
            )
        try:
            with trio.fail_after(self.probe_timeout):
                details = await scheduler.report()
        except Exception as exc:  # a database failure shows in the database component too
            return {
                "status": UNHEALTHY,
                "details": {**empty, "error": f"{type(exc).__name__}: {exc}"},
            }
        return {"status": HEALTHY, "details": _guide_formats(details)}

    async def live(self) -> dict[str, Any]:
        """Liveness: the process is serving requests."""
        return {"status": HEALTHY}

    def _workers(self) -> tuple[bool, dict[str, Any] | None]:
        """The group's part: whether every other running worker is ready, and the component
        (None outside a group)."""
        if self.group is None:
            return True, None
        others, lagging = self.group.not_ready()
        details = {"replica": self.group.replica, "workers": len(others) + 1, "notReady": lagging}
        return not lagging, {"status": UNHEALTHY if lagging else HEALTHY, "details": details}

    async def ready(self) -> tuple[bool, dict[str, Any]]:
        """Readiness (of the group, in one): this process's, and in a group every worker's."""
        ready, body = await self.own_ready()
        group_ready, workers = self._workers()
        if workers is not None:
            body["components"]["workers"] = workers
            ready = ready and group_ready
            body["status"] = HEALTHY if ready else UNHEALTHY
        return ready, body

    async def own_ready(self) -> tuple[bool, dict[str, Any]]:
        """Readiness: database reachable, schema current, workflow instances running."""
        database = await self._database()
        ready = database["status"] == HEALTHY
        components: dict[str, Any] = {"database": database}
        if ready and not self.instances_running():
            ready = False
            components["instances"] = {"status": UNHEALTHY, "details": {"reason": _NOT_RUNNING}}
        if self.broker_required and self._broker_down():
            ready = False
            components["broker"] = {"status": UNHEALTHY}
        return ready, {"status": HEALTHY if ready else UNHEALTHY, "components": components}

    async def detailed(self) -> tuple[bool, dict[str, Any]]:
        """The guide's detailed document; the flag is False when the service is not ready."""
        database = await self._database()
        components = {
            "database": database,
            "eventProcessing": await self._event_processing(),
            "scheduler": await self._scheduler(),
        }
        ready = database["status"] == HEALTHY and self.instances_running()
        if self.broker_required and self._broker_down():
            ready = False
        group_ready, workers = self._workers()
        if workers is not None:
            components["workers"] = workers
            ready = ready and group_ready
        status = HEALTHY if ready else UNHEALTHY
        if ready and any(c["status"] != HEALTHY for c in components.values()):
            status = DEGRADED
        return ready, {
            "status": status,
            "components": components,
            "version": __version__,
            "uptime": format_uptime(self.uptime()),
        }
