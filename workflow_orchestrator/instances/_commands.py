"""Commands on an instance (cancel, suspend, resume): which status each asks for, and from
which statuses it is allowed (no I/O).

A command on a running instance goes to its actor, which stops the run and commits the status
itself; otherwise the stored status changes directly (``storage.set_status``), refused with
``InvalidStatusTransition`` from any status not listed here.
"""

from __future__ import annotations

import enum

import attrs

from workflow_orchestrator.storage.instances import InstanceStatus

__all__ = ["Command", "CommandTransition", "command_transition"]


class Command(enum.StrEnum):
    """What the API's ``POST /v1/workflow-instances/{id}/<command>`` asks."""

    CANCEL = "cancel"
    SUSPEND = "suspend"
    RESUME = "resume"


@attrs.frozen(kw_only=True)
class CommandTransition:
    """The status a command sets, the statuses it may leave, and its history row's kind."""

    status: InstanceStatus
    allowed_from: frozenset[InstanceStatus]
    history_kind: str


_TRANSITIONS = {
    Command.CANCEL: CommandTransition(
        status=InstanceStatus.CANCELLED,
        allowed_from=frozenset(
            {
                InstanceStatus.PENDING,
                InstanceStatus.RUNNING,
                InstanceStatus.WAITING,
                InstanceStatus.SUSPENDED,
            }
        ),
        history_kind="workflow.cancelled",
    ),
    Command.SUSPEND: CommandTransition(
        status=InstanceStatus.SUSPENDED,
        allowed_from=frozenset(
            {InstanceStatus.PENDING, InstanceStatus.RUNNING, InstanceStatus.WAITING}
        ),
        history_kind="workflow.suspended",
    ),
    Command.RESUME: CommandTransition(
        status=InstanceStatus.RUNNING,
        allowed_from=frozenset({InstanceStatus.SUSPENDED}),
        history_kind="workflow.resumed",
    ),
}


def command_transition(command: Command) -> CommandTransition:
    """The transition ``command`` asks for."""
    return _TRANSITIONS[command]
