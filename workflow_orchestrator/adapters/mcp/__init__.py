"""``call: mcp``: Model Context Protocol calls through the ``mcp`` SDK (the only package of
ours that imports it).

`McpCaller` serves `ServiceCall` values of kind ``mcp`` behind `Effects.call_service`: one
session per call over streamable HTTP (through the outbound policy) or stdio (a local server
process, where ``workflows.calls.mcp.stdio`` enables it, with a scrubbed environment, its own
process group and a temporary working directory). See ``_caller`` for the output and the
errors, ``_stdio`` and ``_http`` for the transports.
"""

from workflow_orchestrator.adapters.mcp._arguments import DEFAULT_PROTOCOL_VERSION
from workflow_orchestrator.adapters.mcp._caller import McpCaller

__all__ = ["DEFAULT_PROTOCOL_VERSION", "McpCaller"]
