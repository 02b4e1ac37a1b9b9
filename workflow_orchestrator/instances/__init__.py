"""Durable workflow instances: one supervised actor per running instance, on the DSL engine.

``InstanceRuntime`` starts instances, routes commands, resumes them after a restart and wakes
parked ones; ``InstanceActor`` runs one instance with ``DurableEffects``.
"""

from workflow_orchestrator.instances._actor import MAX_ATTEMPTS, InstanceActor
from workflow_orchestrator.instances._catalog import WorkflowCatalog
from workflow_orchestrator.instances._effects import DurableEffects, Parked, secret_from_environment
from workflow_orchestrator.instances._listening import (
    EventOptions,
    ShapeRegistry,
    correlation_key,
)
from workflow_orchestrator.instances._options import (
    expression_limits,
    runtime_options,
    validation_options,
)
from workflow_orchestrator.instances._runtime import InputInvalid, InstanceRuntime, StartRequest
from workflow_orchestrator.instances._timers import WakeTimers

__all__ = [
    "MAX_ATTEMPTS",
    "DurableEffects",
    "EventOptions",
    "InputInvalid",
    "InstanceActor",
    "InstanceRuntime",
    "Parked",
    "ShapeRegistry",
    "StartRequest",
    "WakeTimers",
    "WorkflowCatalog",
    "correlation_key",
    "expression_limits",
    "runtime_options",
    "secret_from_environment",
    "validation_options",
]
