"""The status of a workflow instance: one enum for the database, the runtime and the API.

The values are stored in ``workflow_instances.status`` (a CHECK constraint lists them) and shown
as the API's ``status`` field, so they never change. ``InstanceStatus`` is a ``StrEnum``: a
member equals its value (``InstanceStatus.WAITING == "waiting"``), so rows read from the
database and states of the DSL interpreter (whose statuses are the same words) compare with it
directly.
"""

from __future__ import annotations

import enum

__all__ = ["INSTANCE_STATUSES", "TERMINAL_SQL", "TERMINAL_STATUSES", "InstanceStatus"]


class InstanceStatus(enum.StrEnum):
    """Where an instance is in its life; ``terminal`` ones never change again."""

    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting"
    SUSPENDED = "suspended"
    CANCELLED = "cancelled"
    FAULTED = "faulted"
    COMPLETED = "completed"

    @property
    def terminal(self) -> bool:
        """Completed, faulted or cancelled: nothing runs or wakes the instance any more."""
        return self in TERMINAL_STATUSES


#: Every status, in the order the API documents them.
INSTANCE_STATUSES: tuple[InstanceStatus, ...] = tuple(InstanceStatus)
TERMINAL_STATUSES: frozenset[InstanceStatus] = frozenset(
    {InstanceStatus.CANCELLED, InstanceStatus.FAULTED, InstanceStatus.COMPLETED}
)

#: The terminal statuses as an SQL list, ``('completed', 'cancelled', 'faulted')``: the text of
#: the partial index of active instances (migration V001), which queries repeat so that the
#: planner uses it.
TERMINAL_SQL = "({})".format(
    ", ".join(
        f"'{status}'"
        for status in (InstanceStatus.COMPLETED, InstanceStatus.CANCELLED, InstanceStatus.FAULTED)
    )
)
