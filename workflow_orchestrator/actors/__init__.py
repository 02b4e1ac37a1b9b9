"""The actor runtime: actors with bounded mailboxes, references, OTP supervision, the system.

Pure Trio, no I/O. An idle actor holds no task and no channel (see ``_cell``), so a process
can keep hundreds of thousands of them.

One package, two public namespaces (trio's ``_core`` model): the whole runtime is
implemented in the private modules here, this module re-exports the actor half and
``workflow_orchestrator.supervision`` re-exports the supervision half (specs,
``Supervisor``, snapshots, supervision errors). The two halves cannot be separate packages:
the system (here) starts the guardian supervisor, and a supervisor makes actor cells and
hands out ``ActorRef``s, so each would import the other. ``supervision`` imports this
package; nothing here imports ``supervision``.

Inside the package, run-time imports go one way (``tests/unit/test_architecture.py``
checks it):

- values: ``_lifecycle``, ``_errors``, ``_messages``, ``_spec``, ``_metrics``, ``_snapshot``;
- actor core: ``_parent`` (the ``Parent`` protocol), ``_record`` (``ChildRecord``, with
  ``start``/``stop``/``terminate`` per kind), ``_ref``, ``_context`` (``ActorContext``, what
  handlers see), ``_cell`` (``ActorCell``, the supervisor's record of an actor), ``_actor``;
  the core knows its supervisor only through ``Parent``;
- supervision: ``_passivation``, ``_children`` (service and nested-supervisor records),
  ``_supervisor``;
- root: ``_system`` (``ActorSystem``, ``open_actor_system``) and ``testing``.
"""

from workflow_orchestrator.actors._actor import Actor
from workflow_orchestrator.actors._context import ActorContext
from workflow_orchestrator.actors._errors import (
    ActorNotFound,
    ActorStopped,
    AskFailed,
    AskTimeout,
    MailboxFull,
)
from workflow_orchestrator.actors._lifecycle import (
    FailureInfo,
    LifecycleState,
    StopKind,
    StopReason,
    Terminated,
)
from workflow_orchestrator.actors._ref import ActorRef
from workflow_orchestrator.actors._system import ActorSystem, open_actor_system

__all__ = [
    "Actor",
    "ActorContext",
    "ActorNotFound",
    "ActorRef",
    "ActorStopped",
    "ActorSystem",
    "AskFailed",
    "AskTimeout",
    "FailureInfo",
    "LifecycleState",
    "MailboxFull",
    "StopKind",
    "StopReason",
    "Terminated",
    "open_actor_system",
]
