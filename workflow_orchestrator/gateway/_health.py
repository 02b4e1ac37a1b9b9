"""Health of the service for the management port: liveness, readiness and the detailed report.

Liveness means the process answers. Readiness means the database answers within the probe
timeout and its schema is the one this release needs. The detailed report follows the
deployment guide's JSON shape; a component that does not exist in this release says so in its
status and reports ``null`` rather than an invented number.
"""

from __future__ import annotations

import time
from typing import Any

import attrs
import trio

from workflow_orchestrator._version import __version__
from workflow_orchestrator.storage import Database, StorageError, schema_status

__all__ = ["HealthReporter", "format_duration_ms", "format_uptime"]

UP, DOWN, DEGRADED = "UP", "DOWN", "DEGRADED"
NOT_AVAILABLE = "NOT_AVAILABLE"


def format_uptime(seconds: float) -> str:
    """``5d 12h 30m`` (whole minutes, always all three parts)."""
    minutes = int(seconds // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    return f"{days}d {hours}h {minutes}m"


def format_duration_ms(seconds: float) -> str:
    """``2ms`` (rounded to whole milliseconds)."""
    return f"{round(seconds * 1000)}ms"


@attrs.define(eq=False)
class HealthReporter:
    """Computes the health documents from the live service parts."""

    database: Database
    probe_timeout: float = 2.0
    started_at: float = attrs.field(factory=time.monotonic)

    def uptime(self) -> float:
        return time.monotonic() - self.started_at

    async def _database(self) -> dict[str, Any]:
        stats = self.database.statistics()
        details: dict[str, Any] = {
            "connectionPool": f"{stats.used}/{stats.max_size}",
            "latency": None,
            "schema": None,
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
            return {"status": DOWN, "details": details}
        except Exception as exc:  # asyncpg errors have no common base we import here
            details["error"] = f"{type(exc).__name__}: {exc}"
            return {"status": DOWN, "details": details}
        details["latency"] = format_duration_ms(latency)
        details["schema"] = "current" if status.current else "outdated"
        if not status.current:
            details["pendingMigrations"] = list(status.pending)
            details["changedMigrations"] = list(status.mismatched)
            details["unknownMigrations"] = list(status.unknown)
            return {"status": DOWN, "details": details}
        return {"status": UP, "details": details}

    @staticmethod
    def _not_built(reason: str, details: dict[str, Any]) -> dict[str, Any]:
        return {"status": NOT_AVAILABLE, "details": {**details, "reason": reason}}

    async def live(self) -> dict[str, Any]:
        """Liveness: the process is serving requests."""
        return {"status": UP}

    async def ready(self) -> tuple[bool, dict[str, Any]]:
        """Readiness: database reachable and schema current."""
        database = await self._database()
        ready = database["status"] == UP
        return ready, {"status": UP if ready else DOWN, "components": {"database": database}}

    async def detailed(self) -> tuple[bool, dict[str, Any]]:
        """The guide's detailed document; the flag is False when the service is not ready."""
        database = await self._database()
        components = {
            "database": database,
            "eventProcessing": self._not_built(
                "event processing is not part of this release yet",
                {"subscriptionCount": None, "processingDelay": None},
            ),
            "scheduler": self._not_built(
                "the scheduler is not part of this release yet",
                {"pendingTasks": None, "lastExecutionTime": None},
            ),
        }
        ready = database["status"] == UP
        return ready, {
            "status": UP if ready else DOWN,
            "components": components,
            "version": __version__,
            "uptime": format_uptime(self.uptime()),
        }
