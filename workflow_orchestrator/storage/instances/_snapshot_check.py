"""A snapshot checked before it joins a batch: what PostgreSQL cannot store fails it alone.

A group commit writes many instances' snapshots in one statement, so one value PostgreSQL
refuses (the NUL character, a lone surrogate, NaN or an infinity, nesting too deep for JSON, a
non-JSON type) would fail every snapshot of the batch. ``encode_snapshot`` encodes each JSON
value of one snapshot (state, output, error, context, history details, subscription
attributes, the input of child instances) once with ``storage.storable_json`` and checks its
text columns (task references, correlation keys, event ids and bodies, timer keys); it raises
``SnapshotUnstorable`` naming what holds the value and where (a JSON pointer), and otherwise
returns the encoded texts, which the statement reuses instead of encoding again.

``refused_by_database`` is the same error for a snapshot PostgreSQL refused on its own (the
writer retries a failed batch one snapshot at a time to find it).
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from workflow_orchestrator.storage._errors import SnapshotWriteFailed
from workflow_orchestrator.storage._storable import (
    Unstorable,
    check_json_text,
    check_text,
    storable_json,
)
from workflow_orchestrator.storage.instances._snapshot_rows import InstanceSnapshot

__all__ = [
    "JsonTexts",
    "SnapshotUnstorable",
    "check_snapshot",
    "encode_snapshot",
    "refused_by_database",
]

#: Encoded JSON by ``id`` of the value, with the value itself (so the id cannot be reused).
JsonTexts = dict[int, tuple[Any, str]]

_UNPRINTABLE = re.compile(r"[\x00-\x1f\ud800-\udfff]")
_MAX_POINTER = 200


class SnapshotUnstorable(SnapshotWriteFailed, ValueError):
    """The snapshot holds a value PostgreSQL cannot store; it was not written and retrying
    cannot help. ``reason`` is ``nul``, ``surrogate``, ``non-finite``, ``depth``, ``type``,
    ``size`` or ``database`` (PostgreSQL refused it), ``what`` names the value and ``pointer``
    where it is in it; ``problem`` is the sentence for the instance's error."""

    def __init__(
        self, problem: str, *, instance_id: uuid.UUID, reason: str, what: str, pointer: str = ""
    ) -> None:
        super().__init__(
            f"the snapshot of workflow instance {instance_id} was not written: {problem}",
            instance_id=instance_id,
        )
        self.problem = problem
        self.reason = reason
        self.what = what
        self.pointer = pointer


def printable(text: str, limit: int = _MAX_POINTER) -> str:
    """``text`` with control characters and surrogates escaped (``\\u0000``), cut at
    ``limit`` characters: safe to log and to store in an error."""
    shown = _UNPRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def _unstorable(snapshot: InstanceSnapshot, problem: Unstorable, strip: str = "") -> Exception:
    pointer = problem.pointer
    if strip and pointer.startswith(strip):
        pointer = pointer[len(strip) :]
    # Unstorable's message is "<what> <detail>[ at <pointer>]": rebuild it with the pointer
    # first and printable, so it can be stored in the instance's error.
    detail = str(problem)[len(problem.what) + 1 :]
    if problem.pointer:
        detail = detail.removesuffix(f" at {problem.pointer}")
    where = f" at {printable(pointer)}" if pointer else ""
    return SnapshotUnstorable(
        f"{problem.what}{where} {detail}",
        instance_id=snapshot.instance_id,
        reason=problem.reason,
        what=problem.what,
        pointer=pointer,
    )


def encode_snapshot(snapshot: InstanceSnapshot) -> JsonTexts:
    """The JSON texts of ``snapshot``'s values by ``id``; raises ``SnapshotUnstorable`` for the
    first value PostgreSQL cannot store (see the module docstring)."""
    texts: JsonTexts = {}

    def value(item: Any, what: str, strip: str = "") -> None:
        if item is None or id(item) in texts:
            return
        try:
            texts[id(item)] = (item, storable_json(item, what=what))
        except Unstorable as problem:
            raise _unstorable(snapshot, problem, strip) from None

    def text(item: str, what: str) -> None:
        try:
            check_text(item, what=what)
        except Unstorable as problem:
            raise _unstorable(snapshot, problem) from None

    wrapper = snapshot.snapshot
    if snapshot.encoded_state is not None and wrapper.keys() == {"state", "wakeAt"}:
        # The author encoded and checked the state: compose the wrapper around its text.
        wake = json.dumps(wrapper["wakeAt"])
        texts[id(wrapper)] = (wrapper, f'{{"state":{snapshot.encoded_state},"wakeAt":{wake}}}')
    else:
        value(wrapper, "the workflow data", strip="/state")
    value(snapshot.output, "the workflow output")
    value(snapshot.error, "the workflow error")
    value(snapshot.context, "the workflow context")
    for row in snapshot.history:
        where = f" of {printable(row.task_ref)}" if row.task_ref else ""
        value(row.details, f"the history entry {printable(row.kind)}{where}")
        text(row.kind, "a history entry's kind")
        text(row.task_ref, "a history entry's task reference")
    for sub in snapshot.subscriptions or ():
        what = f"the listen of {printable(sub.task_ref)}"
        value(sub.attributes, f"the event filter of {what}")
        text(sub.corr_key, f"the correlation key of {what}")
        text(sub.event_type, f"the event type of {what}")
        text(sub.task_ref, "a listen's task reference")
    for event in snapshot.outgoing:
        what = f"the outgoing event {printable(event.event_id)}"
        text(event.event_id, "an outgoing event's id")
        text(event.routing_key, f"the type of {what}")
        text(event.body, what)
        if event.destination == "events":
            try:
                check_json_text(event.body, what=what)
            except Unstorable as problem:
                raise _unstorable(snapshot, problem) from None
    for timer in snapshot.timers or ():
        text(timer.timer_key, "a timer's key")
    for child in snapshot.children:
        value(child.input, f"the input of child workflow instance {child.child_id}")
    return texts


def check_snapshot(snapshot: InstanceSnapshot) -> None:
    """Raise ``SnapshotUnstorable`` when ``encode_snapshot`` would (for other snapshot sinks,
    such as the in-memory store of the tests)."""
    encode_snapshot(snapshot)


def refused_by_database(snapshot: InstanceSnapshot, error: BaseException) -> SnapshotUnstorable:
    """PostgreSQL refused ``snapshot`` on its own with ``error`` (a data error, a limit)."""
    message = printable(" ".join(str(error).split()), limit=300)
    return SnapshotUnstorable(
        f"PostgreSQL refused a value of the instance ({type(error).__name__}: {message}); "
        "change the data the workflow keeps, or encode it (for example base64)",
        instance_id=snapshot.instance_id,
        reason="database",
        what="the snapshot",
    )
