"""The Serverless Workflow DSL 1.0 engine: model, validation, expressions and interpreter.

A pure library: it imports no I/O library and nothing of ours but ``workflow_orchestrator.errors``
(``tests/unit/test_dsl_purity.py`` checks), reads no file, starts no process and opens no
connection (reading a definition file is ``definitions.check_definition_file``). Side effects go
through an `Effects` implementation (`InMemoryEffects` for tests; the durable one belongs to the
instance actor), and expressions that are not proven cheap through the `ExpressionSandbox` the
engine is given. The I/O behind these protocols (the httpx client, the process runner, the jq
sandbox's worker processes) lives in ``workflow_orchestrator.adapters``.

Typical use::

    workflow = load_workflow(text)                        # validate + build, once per version
    async with open_expression_engine() as engine:        # from workflow_orchestrator.adapters
        interpreter = Interpreter(workflow, engine)       # shared by the version's instances
        result = await interpreter.start(effects, input)  # or .resume(effects, snapshot)
"""

from workflow_orchestrator.dsl._lru import LruCache, content_hash
from workflow_orchestrator.dsl.errors import ErrorType, Problem, WorkflowError
from workflow_orchestrator.dsl.expressions import (
    CompiledExpression,
    ExpressionEngine,
    ExpressionError,
    ExpressionLimits,
    ExpressionSandbox,
    is_runtime_expression,
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
    "ExpressionSandbox",
    "HttpRequest",
    "HttpResponse",
    "InMemoryEffects",
    "Interpreter",
    "InvalidDefinition",
    "ListenRequest",
    "LruCache",
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
    "content_hash",
    "is_runtime_expression",
    "load_document",
    "load_workflow",
    "run_workflow",
    "validate_definition",
]
