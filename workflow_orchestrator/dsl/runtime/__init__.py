"""The Serverless Workflow interpreter, its effects interface and the in-memory effects.

Nothing here does I/O. The I/O behind `Effects.http` and `Effects.run_process` lives in
``workflow_orchestrator.adapters`` (`PooledHttpClient`, outbound HTTP over pooled connections;
`LocalProcesses`, sandboxed shell/script processes where configuration enables them); the effects
implementations that use them are handed them by whoever builds them.
"""

from workflow_orchestrator.dsl.runtime._documents import require_success
from workflow_orchestrator.dsl.runtime._effects import (
    CloudEvent,
    Effects,
    HttpRequest,
    HttpResponse,
    ListenRequest,
    ProcessRequest,
    ProcessResult,
    ServiceCall,
    SubflowRequest,
    SubscriptionFilter,
)
from workflow_orchestrator.dsl.runtime._event_tasks import with_matches
from workflow_orchestrator.dsl.runtime._interpreter import Interpreter, WorkflowResult, run_workflow
from workflow_orchestrator.dsl.runtime._limits import (
    LIMIT_EXCEEDED,
    LimitExceeded,
    RuntimeLimits,
    limit_exceeded,
)
from workflow_orchestrator.dsl.runtime._memory import EffectRecord, InMemoryEffects, json_response
from workflow_orchestrator.dsl.runtime._options import RuntimeOptions
from workflow_orchestrator.dsl.runtime._services import (
    MessageConsumer,
    ServiceAdapters,
    ServiceCaller,
    service_disabled,
)
from workflow_orchestrator.dsl.runtime._state import ExecutionState

__all__ = [
    "LIMIT_EXCEEDED",
    "CloudEvent",
    "EffectRecord",
    "Effects",
    "ExecutionState",
    "HttpRequest",
    "HttpResponse",
    "InMemoryEffects",
    "Interpreter",
    "LimitExceeded",
    "ListenRequest",
    "MessageConsumer",
    "ProcessRequest",
    "ProcessResult",
    "RuntimeLimits",
    "RuntimeOptions",
    "ServiceAdapters",
    "ServiceCall",
    "ServiceCaller",
    "SubflowRequest",
    "SubscriptionFilter",
    "WorkflowResult",
    "json_response",
    "limit_exceeded",
    "require_success",
    "run_workflow",
    "service_disabled",
    "with_matches",
]
