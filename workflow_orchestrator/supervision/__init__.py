"""OTP-style supervision: strategies, restart types, restart intensity, backoff, inspection.

Pure Trio, no I/O. This package is the public namespace of the supervision half of the actor
runtime; the implementation lives in ``workflow_orchestrator.actors`` (one package, trio's
``_core`` model; see that package's docstring for why). This package imports ``actors``
and ``actors`` never imports it, so the two have no import cycle.
"""

from workflow_orchestrator.actors._errors import (
    ChildStartFailed,
    DuplicateChild,
    RestartIntensityExceeded,
    SupervisorStopped,
)
from workflow_orchestrator.actors._snapshot import ChildSnapshot
from workflow_orchestrator.actors._spec import (
    ActorSpec,
    Backoff,
    ChildSpec,
    Restart,
    RestartStrategy,
    ServiceSpec,
    SupervisorSpec,
)
from workflow_orchestrator.actors._supervisor import Supervisor

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
