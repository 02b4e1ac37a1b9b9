"""The steps of ``features/call-mcp.feature``: local MCP servers for ``call: mcp``.

- ``an MCP server at '<origin>' over streamable HTTP``: the test server
  (``tests/support/mcp_server.py``) runs on loopback and ``<origin>`` is mapped to it, as the
  CTK's hosts are mapped to its stub.
- ``the MCP server command '<name>' is installed for stdio``: an executable ``<name>`` that
  starts the test server is put in a temporary directory, which becomes the front of
  ``workflows.calls.mcp.stdioPath``; stdio is enabled (at run time and in validation).

When the scenario runs, the real `McpCaller` serves ``call: mcp`` with those settings. Import
this module to register the steps.
"""

from __future__ import annotations

import re
import tempfile
from contextlib import AsyncExitStack
from pathlib import Path

import attrs

from tests.conformance.steps import World, step
from tests.support.mcp_hosting import LOOPBACK, install_command, mcp_settings, serve_mcp_http
from workflow_orchestrator.adapters.mcp import McpCaller
from workflow_orchestrator.dsl.validation import ValidationOptions


@attrs.define
class _Mcp:
    origins: list[str] = attrs.field(factory=list)
    commands: list[str] = attrs.field(factory=list)


def _mcp(world: World) -> _Mcp:
    state = world.extras.get("mcp")
    if not isinstance(state, _Mcp):
        state = world.extras["mcp"] = _Mcp()
        world.setups.append(_open_mcp)
    return state


async def _open_mcp(world: World, resources: AsyncExitStack) -> None:
    state = _mcp(world)
    host_map: dict[str, str] = {}
    for origin in state.origins:
        endpoint = await resources.enter_async_context(serve_mcp_http())
        host_map[origin] = endpoint.removesuffix("/mcp")
    settings = mcp_settings(stdio=bool(state.commands))
    if state.commands:
        directory = Path(resources.enter_context(tempfile.TemporaryDirectory()))
        for name in state.commands:
            install_command(directory, name)
        settings = attrs.evolve(settings, stdio_path=(str(directory), "/usr/bin", "/bin"))

    def mapped(url: str) -> str:
        for origin, target in host_map.items():
            if url.startswith(origin):
                return target + url[len(origin) :]
        return url

    world.services["mcp"] = McpCaller(settings=settings, outbound=LOOPBACK, map_url=mapped)


@step(r"an MCP server at '(?P<origin>[^']+)' over streamable HTTP")
def _http_server(world: World, match: re.Match[str], doc: str | None) -> None:
    _mcp(world).origins.append(match["origin"])


@step(r"the MCP server command '(?P<name>[\w.-]+)' is installed for stdio")
def _stdio_command(world: World, match: re.Match[str], doc: str | None) -> None:
    _mcp(world).commands.append(match["name"])
    world.validation = ValidationOptions(allow_mcp_stdio=True)
