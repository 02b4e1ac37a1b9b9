"""Durable workflow instances: one supervised actor per running instance, on the DSL engine.

``InstanceRuntime`` starts instances, routes commands, resumes them after a restart and wakes
parked ones, through an ``InstanceRepository`` (``DatabaseInstanceRepository`` in the
service); ``InstanceActor`` runs one instance with ``DurableEffects``. Both receive what they
use of the service in one frozen ``InstancePorts``; what each commit writes is decided by the
pure ``plan_commit``. ``instances.testing`` has an in-memory instance store for tests.
"""

from workflow_orchestrator.instances._actor import MAX_ATTEMPTS, InstanceActor, start_instance_actor
from workflow_orchestrator.instances._catalog import DefinitionSource, WorkflowCatalog
from workflow_orchestrator.instances._census import InstanceCensus
from workflow_orchestrator.instances._commands import Command
from workflow_orchestrator.instances._commit import CommitAsk, CommitTarget, Pending, plan_commit
from workflow_orchestrator.instances._effects import DurableEffects, Parked
from workflow_orchestrator.instances._fault import fault_instance
from workflow_orchestrator.instances._listening import (
    EventOptions,
    ShapeRegistry,
    ShapeSource,
    correlation_key,
)
from workflow_orchestrator.instances._live import LiveInstances
from workflow_orchestrator.instances._options import (
    expression_limits,
    runtime_options,
    validation_options,
)
from workflow_orchestrator.instances._ports import (
    ConfiguredProcesses,
    HttpPort,
    InstancePorts,
    InterpreterSource,
    ProcessPort,
    SnapshotSink,
)
from workflow_orchestrator.instances._repository import (
    DatabaseInstanceRepository,
    InstanceRepository,
    LeaseView,
)
from workflow_orchestrator.instances._runtime import InputInvalid, InstanceRuntime, StartRequest
from workflow_orchestrator.instances._timers import WakeTimers
from workflow_orchestrator.storage.instances import InstanceStatus

__all__ = [
    "MAX_ATTEMPTS",
    "Command",
    "CommitAsk",
    "CommitTarget",
    "ConfiguredProcesses",
    "DatabaseInstanceRepository",
    "DefinitionSource",
    "DurableEffects",
    "EventOptions",
    "HttpPort",
    "InputInvalid",
    "InstanceActor",
    "InstanceCensus",
    "InstancePorts",
    "InstanceRepository",
    "InstanceRuntime",
    "InstanceStatus",
    "InterpreterSource",
    "LeaseView",
    "LiveInstances",
    "Parked",
    "Pending",
    "ProcessPort",
    "ShapeRegistry",
    "ShapeSource",
    "SnapshotSink",
    "StartRequest",
    "WakeTimers",
    "WorkflowCatalog",
    "correlation_key",
    "expression_limits",
    "fault_instance",
    "plan_commit",
    "runtime_options",
    "start_instance_actor",
    "validation_options",
]
