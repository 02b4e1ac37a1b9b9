"""Actor core: actors with bounded mailboxes, references, the actor system.

Pure Trio, no I/O. An idle actor holds no task and no channel (see ``_cell``), so a process
can keep hundreds of thousands of them.
"""

from workflow_orchestrator.actors._actor import Actor
from workflow_orchestrator.actors._cell import ActorContext
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
