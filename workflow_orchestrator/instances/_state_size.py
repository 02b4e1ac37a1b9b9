"""The size limit of an instance's state (``workflows.limits.stateSize``), checked per commit.

The execution state is measured as the compact JSON the snapshot stores, with
``storage.storable_json``. A state over the limit is never written: a running instance is
faulted through the interpreter (`LimitExceeded`), and the faulted (or otherwise final) state
that follows is committed *without its data* (frames, context, output, consumed events; the
input too when even that is over the limit), so the fault itself is always committable.
A state PostgreSQL cannot store for another reason (NUL, NaN, depth) is not this module's
business: the snapshot writer's checks report it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workflow_orchestrator.dsl.runtime import LimitExceeded, limit_exceeded
from workflow_orchestrator.storage import Unstorable, storable_json

__all__ = ["encoded_state", "oversized", "state_size_exceeded", "without_data"]

# What a final state keeps when its data is dropped: who it is and what it counted.
_IDENTITY = ("format", "instanceId", "workflow", "startedAt", "budget")


def encoded_state(state: Mapping[str, Any]) -> str | None:
    """The compact JSON of ``state`` (what its snapshot stores), or None when PostgreSQL could
    not store it (the snapshot writer's checks then report why)."""
    try:
        return storable_json(state, what="the instance state")
    except Unstorable:
        return None


def oversized(state: Mapping[str, Any], limit: int) -> int | None:
    """The JSON size of ``state`` in bytes when it is over ``limit`` (0: no limit), else None."""
    if limit <= 0:
        return None
    try:
        size = len(storable_json(state, what="the instance state"))
    except Unstorable:
        return None
    return size if size > limit else None


def state_size_exceeded(size: int, limit: int, where: str | None = None) -> LimitExceeded:
    """The error of a state of ``size`` bytes over ``limit``."""
    return limit_exceeded(
        "stateSize",
        f"the instance state is {size:,} bytes of JSON ({limit:,} allowed)",
        "keep less data in the instance (output.as, export.as)",
        instance=where,
    )


def without_data(
    state: Mapping[str, Any],
    *,
    status: str,
    error: Mapping[str, Any] | None,
    fallback_error: Mapping[str, Any],
    limit: int,
) -> dict[str, Any]:
    """``state`` with ``status`` and ``error`` and none of its data; the input is dropped too,
    and ``error`` replaced by ``fallback_error``, when the result is still over ``limit``."""
    reduced: dict[str, Any] = {key: state[key] for key in _IDENTITY if key in state}
    reduced.update(
        status=status,
        input=state.get("input"),
        context={},
        frames={},
        consumed=[],
        output=None,
        error=error,
        active={},
    )
    if oversized(reduced, limit) is not None:
        reduced["input"] = None
    if oversized(reduced, limit) is not None:
        reduced["error"] = dict(fallback_error)
    return reduced
