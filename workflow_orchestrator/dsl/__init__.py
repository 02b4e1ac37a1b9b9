"""The Serverless Workflow DSL 1.0 engine: model, validation, expressions and interpreter.

A pure library: it does no I/O of its own. Side effects go through an `Effects` implementation
(`InMemoryEffects` for tests; the durable one belongs to the instance actor, which may use the
httpx adapter in ``workflow_orchestrator.dsl.runtime.http_client`` and the process runner in
``workflow_orchestrator.dsl.runtime.processes``).

Typical use::

    workflow = load_workflow(text)                    # validate + build, once per version
    interpreter = Interpreter(workflow, engine)       # shared by the version's instances
    result = await interpreter.start(effects, input)  # or .resume(effects, snapshot)
"""

from workflow_orchestrator.dsl.errors import ErrorType, Problem, WorkflowError
from workflow_orchestrator.dsl.expressions import (
    CompiledExpression,
    ExpressionEngine,
    ExpressionError,
    ExpressionLimits,
    is_runtime_expression,
    open_expression_engine,
)
from workflow_orchestrator.dsl.model import ModelError, Workflow, build_workflow, load_workflow
from workflow_orchestrator.dsl.runtime import (
    CloudEvent,
    EffectRecord,
    Effects,
    ExecutionState,
    HttpRequest,
    HttpResponse,
    InMemoryEffects,
    Interpreter,
    ListenRequest,
    ProcessRequest,
    ProcessResult,
    RuntimeOptions,
    SubflowRequest,
    WorkflowResult,
    run_workflow,
)
from workflow_orchestrator.dsl.validation import (
    DefinitionProblem,
    InvalidDefinition,
    ValidationOptions,
    load_document,
    validate_definition,
    validate_file,
)

__all__ = [
    "CloudEvent",
    "CompiledExpression",
    "DefinitionProblem",
    "EffectRecord",
    "Effects",
    "ErrorType",
    "ExecutionState",
    "ExpressionEngine",
    "ExpressionError",
    "ExpressionLimits",
    "HttpRequest",
    "HttpResponse",
    "InMemoryEffects",
    "Interpreter",
    "InvalidDefinition",
    "ListenRequest",
    "ModelError",
    "Problem",
    "ProcessRequest",
    "ProcessResult",
    "RuntimeOptions",
    "SubflowRequest",
    "ValidationOptions",
    "Workflow",
    "WorkflowError",
    "WorkflowResult",
    "build_workflow",
    "is_runtime_expression",
    "load_document",
    "load_workflow",
    "open_expression_engine",
    "run_workflow",
    "validate_definition",
    "validate_file",
]
