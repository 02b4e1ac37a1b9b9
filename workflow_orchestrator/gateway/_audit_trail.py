"""The audit log of every change asked of the API: a log line now, a table row soon after.

Each ``POST``/``PUT``/``PATCH``/``DELETE`` to the API, refused ones included, becomes an
`AuditEntry` (who, how they authenticated, what, on which target and namespace, the status
and outcome, the client's address and request id). The line goes to the
``workflow_orchestrator.audit`` logger at once; the rows are written in batches by
`AuditTrail.run` (at most ``flush_interval`` later, one statement per batch), so busy event
publishing costs one insert per batch, not per request. ``record`` waits only when
``max_pending`` entries are already waiting (the database is down): the API slows rather than
forgetting. On shutdown what is pending is written within a bounded, shielded time.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import attrs
import trio
from quart import Quart, Response, g, request

from workflow_orchestrator.gateway._access import current_principal
from workflow_orchestrator.storage import AuditEntry, Database, append_audit_entries

__all__ = ["AuditTrail", "install_audit"]

logger = logging.getLogger("workflow_orchestrator.audit")
_CHANGES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Audit action names by Quart endpoint.
_ACTIONS = {
    "v1.definitions.register": "definition.register",
    "v1.definitions.delete": "definition.delete",
    "v1.instances.start": "instance.start",
    "v1.instances.cancel": "instance.cancel",
    "v1.instances.suspend": "instance.suspend",
    "v1.instances.resume": "instance.resume",
    "v1.events.publish_event": "event.publish",
}


def _printable(text: str) -> str:
    """``text`` with control characters escaped: a client's value cannot forge a log line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _outcome(status: int) -> str:
    if status in (401, 403):
        return "denied"
    return "succeeded" if status < 400 else "failed"


@attrs.define(eq=False, kw_only=True)
class AuditTrail:
    """Batches audit entries into the ``audit_log`` table; run with ``nursery.start(run)``."""

    #: None: log lines only (``security.audit.enabled: false``, or the schema is not current).
    database: Database | None
    flush_interval: float = 0.2
    max_batch: int = 500
    max_pending: int = 10_000
    _pending: list[AuditEntry] = attrs.field(factory=list, init=False)
    _wake: trio.Event = attrs.field(factory=trio.Event, init=False)
    _space: trio.Event = attrs.field(factory=trio.Event, init=False)
    written: int = attrs.field(default=0, init=False)

    async def record(self, entry: AuditEntry) -> None:
        """Log ``entry`` and queue its row (waits while ``max_pending`` rows are queued)."""
        logger.info(
            "audit: %s via %s %s %s namespace=%s status=%d %s",
            _printable(entry.principal),
            entry.via,
            _printable(entry.action),
            _printable(entry.target) or "-",
            _printable(entry.namespace or "") or "-",
            entry.status,
            entry.outcome,
        )
        if self.database is None:
            return
        while len(self._pending) >= self.max_pending:
            if self._space.is_set():
                self._space = trio.Event()
            await self._space.wait()
        self._pending.append(entry)
        if len(self._pending) >= self.max_batch:
            self._wake.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Write batches until cancelled; then write what is pending (bounded, shielded)."""
        task_status.started()
        try:
            while True:
                with trio.move_on_after(self.flush_interval):
                    await self._wake.wait()
                self._wake = trio.Event()
                await self._flush()
        finally:
            with trio.move_on_after(5, shield=True):
                await self._flush()

    async def _flush(self) -> None:
        while self._pending and self.database is not None:
            batch = self._pending[: self.max_batch]
            try:
                await append_audit_entries(self.database, batch)
            except Exception as exc:  # the database is down: keep the rows, try again later
                logger.warning("cannot write %d audit rows yet: %s", len(batch), exc)
                await trio.sleep(1)
                return
            del self._pending[: len(batch)]
            self.written += len(batch)
            self._space.set()


def _target() -> str:
    args = request.view_args or {}
    target = str(args.get("raw_id") or args.get("definition_id") or "")
    return str(getattr(g, "audit_target", "") or target)


def install_audit(app: Quart, trail: AuditTrail) -> None:
    """Record every change request of ``app`` (after its answer is made)."""

    @app.after_request
    async def audited(response: Response) -> Response:
        if request.method not in _CHANGES:
            return response
        principal = current_principal()
        known = getattr(g, "principal", None) is not None
        action = _ACTIONS.get(request.endpoint or "", f"{request.method} {request.path}")
        details = getattr(g, "audit_details", None)
        await trail.record(
            AuditEntry(
                at=datetime.now(UTC),
                principal=principal.name if known else "unauthenticated",
                via=principal.via if known else "none",
                action=action[:200],
                target=_target()[:500],
                namespace=getattr(g, "audit_namespace", None),
                status=response.status_code,
                outcome=_outcome(response.status_code),
                remote=(request.remote_addr or "")[:100],
                request_id=request.headers.get("X-Request-Id", "")[:200],
                details=details if isinstance(details, dict) else {},
            )
        )
        return response
