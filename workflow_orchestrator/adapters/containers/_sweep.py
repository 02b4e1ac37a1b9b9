"""What a sweep does to this service's containers: pure decisions on what the runtime reports.

A container's labels carry everything its cleanup needs (see ``_spec``), so a sweep after a
restart, or by another replica sharing the runtime, decides as the service that started it
would have:

- an ended container whose cleanup is ``eventually`` is removed once ``cleanup-after``
  seconds have passed since it ended;
- a container still running ``GRACE`` seconds past its ``deadline`` (its task's timeout from
  when it started: a detached one, or one whose awaiting service died) is removed when its
  cleanup is ``always`` and killed (kept) otherwise.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import attrs

from workflow_orchestrator.adapters.containers._spec import (
    AFTER_LABEL,
    CLEANUP_LABEL,
    DEADLINE_LABEL,
)

#: Seconds past its deadline before a sweep stops a running container: the task awaiting it
#: stops it at the deadline itself, and a sweep must not race it.
GRACE = 30.0

_FRACTION = re.compile(r"(\.\d{6})\d+")


@attrs.frozen(kw_only=True)
class ContainerState:
    """What a sweep needs of one container: its id, whether it runs, when it ended (Unix
    seconds; None when it never did) and its labels."""

    id: str
    running: bool
    finished_at: float | None
    labels: Mapping[str, str]


@attrs.frozen(kw_only=True)
class SweepPlan:
    """The containers to remove and those to kill, by id."""

    remove: tuple[str, ...] = ()
    kill: tuple[str, ...] = ()


def _timestamp(text: Any) -> float | None:
    """Unix seconds of an RFC 3339 time as the runtimes write it (nanoseconds, ``Z``); None
    for a missing or zero time (``0001-01-01...``: the container never ended)."""
    if not isinstance(text, str) or not text or text.startswith("0001-"):
        return None
    try:
        return datetime.fromisoformat(_FRACTION.sub(r"\1", text.replace("Z", "+00:00"))).timestamp()
    except ValueError:
        return None


def parse_inspect(output: str) -> list[ContainerState]:
    """The states in the JSON list ``container inspect`` prints (podman's and docker's
    share these fields); entries it cannot read are left out."""
    try:
        entries = json.loads(output or "[]")
    except ValueError:
        return []
    states = []
    for entry in entries if isinstance(entries, list) else ():
        if not isinstance(entry, Mapping):
            continue
        state = entry.get("State") or {}
        labels = (entry.get("Config") or {}).get("Labels") or {}
        if not isinstance(state, Mapping) or not isinstance(labels, Mapping):
            continue
        states.append(
            ContainerState(
                id=str(entry.get("Id", "")),
                running=bool(state.get("Running")),
                finished_at=_timestamp(state.get("FinishedAt")),
                labels={str(k): str(v) for k, v in labels.items()},
            )
        )
    return [s for s in states if s.id]


def _number(labels: Mapping[str, str], key: str) -> float | None:
    try:
        return float(labels[key])
    except (KeyError, ValueError):
        return None


def plan_sweep(states: Iterable[ContainerState], now: float) -> SweepPlan:
    """What to do at wall-clock time ``now`` (Unix seconds) with ``states`` (see the module
    docstring); containers without this service's labels are left alone."""
    remove: list[str] = []
    kill: list[str] = []
    for state in states:
        cleanup = state.labels.get(CLEANUP_LABEL)
        if cleanup is None:
            continue
        if state.running:
            deadline = _number(state.labels, DEADLINE_LABEL)
            if deadline is not None and now > deadline + GRACE:
                (remove if cleanup == "always" else kill).append(state.id)
        elif cleanup == "eventually" and state.finished_at is not None:
            after = _number(state.labels, AFTER_LABEL)
            if after is not None and now >= state.finished_at + after:
                remove.append(state.id)
    return SweepPlan(remove=tuple(remove), kill=tuple(kill))
