"""Test helpers for code built on the actor runtime (as ``trio.testing`` is for Trio).

``open_checked_actor_system`` is ``open_actor_system`` plus a leak check on exit: every task
the system started has ended, and every actor it ever created is stopped with an empty
mailbox, no blocked senders, no unanswered asks and no watchers left.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import trio

from workflow_orchestrator.actors._record import ChildRecord
from workflow_orchestrator.actors._system import ActorSystem, open_actor_system


def _all_tasks() -> set[trio.lowlevel.Task]:
    tasks: set[trio.lowlevel.Task] = set()
    pending = [trio.lowlevel.current_root_task()]
    while pending:
        task = pending.pop()
        if task is None or task in tasks:
            continue
        tasks.add(task)
        for nursery in task.child_nurseries:
            pending.extend(nursery.child_tasks)
    return tasks


def leaks(system: ActorSystem, tasks_before: set[trio.lowlevel.Task]) -> list[str]:
    """Describe what the (closed) ``system`` left behind; empty when nothing leaked."""
    found = [f"task {task.name!r} still running" for task in _all_tasks() - tasks_before]
    for record in list(system.tracked or ()):
        found.extend(record.leftovers())
    return found


@contextlib.asynccontextmanager
async def open_checked_actor_system(**kwargs: Any) -> AsyncIterator[ActorSystem]:
    """``open_actor_system(**kwargs)`` that raises ``AssertionError`` on exit if it leaked."""
    before = _all_tasks()
    async with open_actor_system(**kwargs) as system:
        tracked: list[ChildRecord] = []
        # The guardian's initial children started before tracking could begin.
        pending = [system.guardian]
        while pending:
            for record in pending.pop().child_records():
                tracked.append(record)
                if record.nested is not None:
                    pending.append(record.nested)
        system.tracked = tracked
        yield system
    problems = leaks(system, before)
    if problems:
        raise AssertionError("actor system leaked: " + "; ".join(problems))
