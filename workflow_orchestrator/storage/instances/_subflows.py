"""What storage knows of subflows (``run.workflow``): the event that ends a child, as SQL and
as a value (no I/O).

A child its parent awaits (``parent_awaits``) tells the parent of its end through the parent's
inbox: the transaction that makes the child terminal (its snapshot, or a command's status
change) inserts one row keyed ``subflow:<child id>`` holding an
``io.workflow-orchestrator.subflow.ended.v1`` CloudEvent whose data is ``{childId, status,
output, error}``. Routed events are keyed ``source#id``, so no event from outside can take
(or forge) that key. ``ended_event_sql`` builds the event in SQL (the snapshot statement,
``set_status``); ``subflow_ended_event`` builds the same value in Python (the in-memory store
of the tests).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

__all__ = [
    "SUBFLOW_ENDED_TYPE",
    "SUBFLOW_EVENT_SOURCE",
    "SUBFLOW_KEY_PREFIX",
    "ended_event_sql",
    "subflow_ended_event",
    "subflow_key",
]

#: The CloudEvents type of a child's end, in its parent's inbox.
SUBFLOW_ENDED_TYPE = "io.workflow-orchestrator.subflow.ended.v1"
#: Its ``source``; its ``id`` is the child's id.
SUBFLOW_EVENT_SOURCE = "/workflow-orchestrator/subflows"
#: The ``event_key`` of its inbox row is this prefix and the child's id (no ``#``).
SUBFLOW_KEY_PREFIX = "subflow:"


def subflow_key(child_id: uuid.UUID) -> str:
    """The inbox ``event_key`` of the end of ``child_id``."""
    return f"{SUBFLOW_KEY_PREFIX}{child_id}"


def subflow_ended_event(
    child_id: uuid.UUID, status: str, output: Any, error: Any, at: datetime
) -> dict[str, Any]:
    """The event that tells a parent ``child_id`` ended with ``status``, ``output``, ``error``."""
    return {
        "specversion": "1.0",
        "id": str(child_id),
        "source": SUBFLOW_EVENT_SOURCE,
        "type": SUBFLOW_ENDED_TYPE,
        "time": at.isoformat(),
        "datacontenttype": "application/json",
        "data": {"childId": str(child_id), "status": status, "output": output, "error": error},
    }


def ended_event_sql(*, child_id: str, status: str, output: str, error: str) -> str:
    """``subflow_ended_event`` as an SQL expression of jsonb over the given column
    expressions (``output`` and ``error`` of type jsonb)."""
    return f"""jsonb_build_object(
        'specversion', '1.0',
        'id', {child_id}::text,
        'source', '{SUBFLOW_EVENT_SOURCE}',
        'type', '{SUBFLOW_ENDED_TYPE}',
        'time', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'),
        'datacontenttype', 'application/json',
        'data', jsonb_build_object('childId', {child_id}::text, 'status', {status},
                                   'output', {output}, 'error', {error}))"""
