"""OTP-style supervision: strategies, restart types, restart intensity, backoff, inspection.

Pure Trio, no I/O.
"""

from workflow_orchestrator.supervision._errors import (
    ChildStartFailed,
    DuplicateChild,
    RestartIntensityExceeded,
    SupervisorStopped,
)
from workflow_orchestrator.supervision._snapshot import ChildSnapshot
from workflow_orchestrator.supervision._spec import (
    ActorSpec,
    Backoff,
    ChildSpec,
    Restart,
    RestartStrategy,
    ServiceSpec,
    SupervisorSpec,
)
from workflow_orchestrator.supervision._supervisor import Supervisor

__all__ = [
    "ActorSpec",
    "Backoff",
    "ChildSnapshot",
    "ChildSpec",
    "ChildStartFailed",
    "DuplicateChild",
    "Restart",
    "RestartIntensityExceeded",
    "RestartStrategy",
    "ServiceSpec",
    "Supervisor",
    "SupervisorSpec",
    "SupervisorStopped",
]
