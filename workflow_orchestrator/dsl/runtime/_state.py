"""The serializable execution state of one workflow instance.

Progress is kept in *frames*, keyed by execution keys: a task's JSON pointer extended with loop
iterations (``[2]``), retry attempts (``#1``) and revisits through ``then`` (``~1``), so a key
names one execution of one task. A task list's frame says which task runs next and with what
data; composite and waiting tasks keep their own frame (loop position, retry attempt, timer due
time, consumed events). A frame is removed when its task completes, so the state holds only
what is in flight.

Invariant: frame values are never mutated in place; code replaces them. That makes `to_json`
a cheap two-level copy.

The budget counters (``tasks``: tasks started, ``history_rows``: lifecycle and emitted events
recorded) are kept under ``budget`` so the limits of ``_limits`` hold across resumes; a state
stored before they existed reads them as 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

STATE_FORMAT = 1


@attrs.define(eq=False, kw_only=True)
class ExecutionState:
    """What a fresh interpreter needs to continue an instance where it stopped."""

    instance_id: str
    namespace: str
    name: str
    version: str
    status: str = "pending"
    input: Any = None
    started_at: str = ""
    context: Any = attrs.field(factory=dict)
    frames: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    consumed: list[str] = attrs.field(factory=list)
    output: Any = None
    error: dict[str, Any] | None = None
    active: dict[str, str] = attrs.field(factory=dict)
    tasks: int = 0
    history_rows: int = 0

    def to_json(self) -> dict[str, Any]:
        """A JSON-compatible copy, independent of later changes to this state."""
        return {
            "format": STATE_FORMAT,
            "instanceId": self.instance_id,
            "workflow": {"namespace": self.namespace, "name": self.name, "version": self.version},
            "status": self.status,
            "input": self.input,
            "startedAt": self.started_at,
            "context": self.context,
            "frames": {key: dict(frame) for key, frame in self.frames.items()},
            "consumed": list(self.consumed),
            "output": self.output,
            "error": self.error,
            "active": dict(self.active),
            "budget": {"tasks": self.tasks, "historyRows": self.history_rows},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ExecutionState:
        """Rebuild a state from `to_json` output (for example after a JSON round trip)."""
        if data.get("format") != STATE_FORMAT:
            raise ValueError(
                f"execution state format {data.get('format')!r} is not supported; "
                f"expected {STATE_FORMAT}"
            )
        workflow = data["workflow"]
        budget = data.get("budget") or {}
        return cls(
            instance_id=data["instanceId"],
            namespace=workflow["namespace"],
            name=workflow["name"],
            version=workflow["version"],
            status=data["status"],
            input=data.get("input"),
            started_at=data.get("startedAt", ""),
            context=data.get("context", {}),
            frames={key: dict(frame) for key, frame in data.get("frames", {}).items()},
            consumed=list(data.get("consumed", ())),
            output=data.get("output"),
            error=data.get("error"),
            active=dict(data.get("active", {})),
            tasks=int(budget.get("tasks", 0)),
            history_rows=int(budget.get("historyRows", 0)),
        )

    def drop_frames(self, key: str) -> None:
        """Forget the frames of execution ``key`` and everything nested in it."""
        frames = self.frames
        if len(frames) <= 1 and key not in frames:
            # The common case: only the enclosing list's frame exists.
            return
        prefix = key + "/"
        stale = [k for k in frames if k == key or k.startswith(prefix)]
        for k in stale:
            del frames[k]
