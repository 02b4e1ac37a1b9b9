"""Durable workflow instances: one supervised actor per running instance, on the DSL engine."""

from workflow_orchestrator.instances._options import (
    expression_limits,
    runtime_options,
    validation_options,
)

__all__ = ["expression_limits", "runtime_options", "validation_options"]
