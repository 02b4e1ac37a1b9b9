"""``run.container`` through a container runtime's CLI (podman or docker).

`open_container_runtime` builds the runtime ``workflows.run.container`` configures and runs its
sweeper (ended containers whose ``lifetime`` is over, containers running past their deadline)
while it is open; `CliContainerRuntime.call` runs one ``run.container`` task (the
``container`` caller of `ServiceAdapters`). `container_spec` checks a task's arguments against
the limits and the configuration, `CommandLine` builds the CLI's command lines, and
`plan_sweep` decides what a sweep removes: all three pure.
"""

from workflow_orchestrator.adapters.containers._command_line import CommandLine
from workflow_orchestrator.adapters.containers._runtime import (
    CLI_ENVIRONMENT,
    CliContainerRuntime,
    cli_environment,
    container_runtime,
    open_container_runtime,
)
from workflow_orchestrator.adapters.containers._spec import (
    LABEL,
    ContainerSpec,
    Port,
    Volume,
    call_id,
    container_spec,
    default_name,
)
from workflow_orchestrator.adapters.containers._sweep import (
    ContainerState,
    SweepPlan,
    parse_inspect,
    plan_sweep,
)

__all__ = [
    "CLI_ENVIRONMENT",
    "LABEL",
    "CliContainerRuntime",
    "CommandLine",
    "ContainerSpec",
    "ContainerState",
    "Port",
    "SweepPlan",
    "Volume",
    "call_id",
    "cli_environment",
    "container_runtime",
    "container_spec",
    "default_name",
    "open_container_runtime",
    "parse_inspect",
    "plan_sweep",
]
