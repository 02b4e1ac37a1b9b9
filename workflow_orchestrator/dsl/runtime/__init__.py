"""The Serverless Workflow interpreter, its effects interface and the in-memory effects.

Nothing here does I/O. The two I/O adapters live in their own modules, imported only by the
effects implementations that use them: ``workflow_orchestrator.dsl.runtime.http_client``
(`HttpxClient`, outbound HTTP through httpx) and ``workflow_orchestrator.dsl.runtime.processes``
(`run_local_process`, shell/script tasks where configuration enables them).
"""

from workflow_orchestrator.dsl.runtime._effects import (
    CloudEvent,
    Effects,
    HttpRequest,
    HttpResponse,
    ListenRequest,
    ProcessRequest,
    ProcessResult,
    SubflowRequest,
    SubscriptionFilter,
)
from workflow_orchestrator.dsl.runtime._event_tasks import with_matches
from workflow_orchestrator.dsl.runtime._interpreter import Interpreter, WorkflowResult, run_workflow
from workflow_orchestrator.dsl.runtime._memory import EffectRecord, InMemoryEffects, json_response
from workflow_orchestrator.dsl.runtime._options import RuntimeOptions
from workflow_orchestrator.dsl.runtime._state import ExecutionState

__all__ = [
    "CloudEvent",
    "EffectRecord",
    "Effects",
    "ExecutionState",
    "HttpRequest",
    "HttpResponse",
    "InMemoryEffects",
    "Interpreter",
    "ListenRequest",
    "ProcessRequest",
    "ProcessResult",
    "RuntimeOptions",
    "SubflowRequest",
    "SubscriptionFilter",
    "WorkflowResult",
    "json_response",
    "run_workflow",
    "with_matches",
]
