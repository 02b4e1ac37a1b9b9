"""The DSL engine's options, derived from the ``workflows`` settings."""

from __future__ import annotations

from workflow_orchestrator._version import __version__
from workflow_orchestrator.config import DefinitionsSettings, WorkflowSettings
from workflow_orchestrator.dsl.expressions import ExpressionLimits
from workflow_orchestrator.dsl.runtime import RuntimeLimits, RuntimeOptions
from workflow_orchestrator.dsl.validation import OfficialSchema, ValidationOptions
from workflow_orchestrator.security import NamespacePolicy

__all__ = ["expression_limits", "runtime_options", "validation_options"]


def validation_options(
    settings: WorkflowSettings,
    official_schema: OfficialSchema | None = None,
    definitions: DefinitionsSettings | None = None,
    policy: NamespacePolicy | None = None,
) -> ValidationOptions:
    """What definitions may use on this service (``run.shell``/``run.script`` and MCP stdio
    servers when enabled, and with ``policy`` the secrets and processes granted to their
    namespace), the official schema as an extra check when one is configured, and the limits
    of one validation (``definitions.maxExpandedSize``, ``maxExpressions``,
    ``validationTimeout``)."""
    limits = definitions or DefinitionsSettings()
    return ValidationOptions(
        container_runtime=settings.run.container.runtime != "none",
        enabled_calls=settings.calls.enabled(),
        allow_shell=settings.run.shell,
        allow_script=settings.run.script,
        allow_mcp_stdio=settings.calls.mcp.stdio,
        secret_granted=policy.secret_granted if policy is not None else None,
        process_allowed=policy.process_allowed if policy is not None else None,
        official_schema=official_schema,
        max_expanded_size=limits.max_expanded_size,
        max_expressions=limits.max_expressions,
        timeout=limits.validation_timeout,
    )


def expression_limits(settings: WorkflowSettings) -> ExpressionLimits:
    """The budget of one runtime-expression evaluation."""
    expressions = settings.expressions
    return ExpressionLimits(
        cpu_seconds=expressions.cpu_budget,
        max_output_bytes=expressions.max_output_size,
        max_memory_bytes=expressions.max_memory,
        max_workers=expressions.workers,
        max_queued_per_owner=expressions.max_queued_per_definition,
        max_inline_input_bytes=expressions.max_inline_input_size,
    )


def runtime_options(settings: WorkflowSettings) -> RuntimeOptions:
    """How the interpreter identifies itself, bounds outbound work and each instance, and
    what it may call (``workflows.calls``, ``workflows.defaultCatalog``)."""
    limits = settings.limits
    return RuntimeOptions(
        runtime_name="workflow-orchestrator",
        runtime_version=__version__,
        lifecycle_events=settings.lifecycle_events,
        http_timeout=settings.http_timeout,
        max_document_size=settings.max_document_size,
        asyncapi_max_messages=settings.calls.asyncapi.max_messages,
        process_timeout=settings.run.timeout,
        enabled_calls=settings.calls.enabled(),
        a2a_timeout=settings.calls.a2a.timeout,
        default_catalog=settings.default_catalog,
        limits=RuntimeLimits(
            tasks_per_run=limits.tasks_per_run,
            total_tasks=limits.total_tasks,
            history_rows=limits.history_rows,
            loop_iterations=limits.loop_iterations,
        ),
    )
