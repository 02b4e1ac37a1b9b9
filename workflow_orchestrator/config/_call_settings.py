"""Settings of the calls beyond HTTP (``workflows.calls``) and of ``run.container``
(``workflows.run.container``): which are enabled, and the limits of each.

gRPC, AsyncAPI and A2A calls reach other services over the network like ``call: http`` and go
through the same outbound policy, so they are on by default; MCP's stdio transport starts a
local process and is off unless enabled; containers need a runtime named here.
"""

from __future__ import annotations

import attrs

from workflow_orchestrator.config._meta import setting as _meta

__all__ = [
    "A2aCallSettings",
    "AsyncApiCallSettings",
    "CallSettings",
    "ContainerSettings",
    "GrpcCallSettings",
    "McpCallSettings",
]

_TIMEOUT = _meta(kind="duration", minimum=0.1, help="a duration such as 30s")


@attrs.frozen(kw_only=True)
class GrpcCallSettings:
    """``call: grpc``: unary calls to gRPC services.

    ``proto_directory``: the only folder ``file://`` proto endpoints may name (empty: they are
    refused). ``descriptor_source``: ``proto`` compiles ``proto.endpoint``; ``reflection``
    asks the called server's reflection service instead. ``tls``: connect with TLS, trusting
    ``ca_file`` (PEM; empty: the system's CAs). ``max_message_size`` bounds a request and a
    response; ``max_proto_size`` the proto files of one call together.
    """

    enabled: bool = True
    timeout: float = attrs.field(default=30.0, metadata=_TIMEOUT)
    proto_directory: str = attrs.field(
        default="", metadata=_meta(help="a folder of .proto files; empty refuses file://")
    )
    descriptor_source: str = attrs.field(
        default="proto",
        metadata=_meta(choices=("proto", "reflection"), help="proto or reflection"),
    )
    tls: bool = False
    ca_file: str = attrs.field(
        default="", metadata=_meta(help="a PEM file of trusted CAs; empty: the system's")
    )
    max_message_size: int = attrs.field(
        default=4 * 1024 * 1024,
        metadata=_meta(kind="size", minimum=1024, maximum=1024**3, help="a size such as 4MB"),
    )
    max_proto_size: int = attrs.field(
        default=1024 * 1024,
        metadata=_meta(kind="size", minimum=1024, maximum=64 * 1024**2, help="a size such as 1MB"),
    )


@attrs.frozen(kw_only=True)
class AsyncApiCallSettings:
    """``call: asyncapi``: publishing and subscribing over the service's broker adapters.

    ``timeout`` bounds connecting and each publish (not the life of a subscription, which the
    workflow bounds); ``max_message_size`` a message published or received (in bytes);
    ``max_messages`` the messages one subscription keeps (0: no bound); ``max_connections``
    the broker connections the calls hold at once (each publish and each subscription holds
    one while it lasts; a call past it fails); ``buffered_messages`` the messages a
    subscription receives ahead of the workflow.
    """

    enabled: bool = True
    timeout: float = attrs.field(default=30.0, metadata=_TIMEOUT)
    max_message_size: int = attrs.field(
        default=1024 * 1024,
        metadata=_meta(kind="size", minimum=1024, maximum=1024**3, help="a size such as 1MB"),
    )
    max_messages: int = attrs.field(
        default=1000, metadata=_meta(minimum=0, help="a number of messages (0: no bound)")
    )
    max_connections: int = attrs.field(
        default=100, metadata=_meta(minimum=1, help="a number of connections >= 1")
    )
    buffered_messages: int = attrs.field(
        default=16, metadata=_meta(minimum=1, maximum=10_000, help="a number of messages >= 1")
    )


@attrs.frozen(kw_only=True)
class McpCallSettings:
    """``call: mcp``: Model Context Protocol calls, one session per call.

    ``timeout`` bounds a whole call (starting the server or connecting, ``initialize``, the
    method) and is the most a task's ``with.timeout`` may ask for. The streamable HTTP
    transport goes through the outbound policy like ``call: http``. The stdio transport
    starts the named command as a local process, so it is off unless ``stdio`` is true, and
    then only for the namespaces of ``workflows.run.namespaces``; the command is looked up in
    ``stdioPath`` (the process's ``PATH``), and the process gets that ``PATH``, ``LANG`` and
    the variables its task declares, never the service's own environment.
    """

    enabled: bool = True
    timeout: float = attrs.field(default=30.0, metadata=_TIMEOUT)
    stdio: bool = False
    stdio_path: tuple[str, ...] = ("/usr/local/bin", "/usr/bin", "/bin")


@attrs.frozen(kw_only=True)
class A2aCallSettings:
    """``call: a2a``: Agent2Agent calls (JSON-RPC over the HTTP client)."""

    enabled: bool = True
    timeout: float = attrs.field(default=30.0, metadata=_TIMEOUT)


@attrs.frozen(kw_only=True)
class CallSettings:
    """``workflows.calls``: one section per call kind beyond ``http`` and ``openapi``."""

    grpc: GrpcCallSettings = attrs.field(factory=GrpcCallSettings)
    asyncapi: AsyncApiCallSettings = attrs.field(factory=AsyncApiCallSettings)
    mcp: McpCallSettings = attrs.field(factory=McpCallSettings)
    a2a: A2aCallSettings = attrs.field(factory=A2aCallSettings)

    def enabled(self) -> frozenset[str]:
        """The call kinds enabled."""
        enabled = {
            "grpc": self.grpc.enabled,
            "asyncapi": self.asyncapi.enabled,
            "mcp": self.mcp.enabled,
            "a2a": self.a2a.enabled,
        }
        return frozenset(kind for kind, on in enabled.items() if on)


@attrs.frozen(kw_only=True)
class ContainerSettings:
    """``workflows.run.container``: the runtime that runs ``run.container`` tasks (``none``:
    they are refused) and what a container may use.

    A container gets no network (``network: none``) unless configured, the resource limits
    below, and host directories only under ``allowedHostPaths``; ``timeout`` bounds each
    container (a detached one too), ``sweepInterval`` is how often containers whose
    ``lifetime`` has ended are removed. ``namespaces`` are the definition namespaces whose
    workflows may run containers (``*``: all).
    """

    runtime: str = attrs.field(
        default="none",
        metadata=_meta(choices=("none", "podman", "docker"), help="none, podman or docker"),
    )
    timeout: float = attrs.field(
        default=600.0, metadata=_meta(kind="duration", minimum=1, help="a duration such as 10m")
    )
    binary: str = attrs.field(
        default="",
        metadata=_meta(
            help="the path of the podman or docker program (empty: found on PATH by the "
            "runtime's name)"
        ),
    )
    network: str = attrs.field(
        default="none",
        metadata=_meta(help="a network name for --network, e.g. none, bridge or slirp4netns"),
    )
    port_address: str = attrs.field(
        default="127.0.0.1",
        metadata=_meta(help="the host address published ports listen on, e.g. 127.0.0.1"),
    )
    allowed_host_paths: tuple[str, ...] = attrs.field(
        default=(), metadata=_meta(help="a list of absolute directories (empty: no host path)")
    )
    memory: int = attrs.field(
        default=512 * 1024 * 1024,
        metadata=_meta(kind="size", minimum=0, help="a size such as 512MB (0: no limit)"),
    )
    cpus: float = attrs.field(
        default=1.0, metadata=_meta(minimum=0, help="a number of CPUs such as 1.5 (0: no limit)")
    )
    pids_limit: int = attrs.field(
        default=256, metadata=_meta(minimum=0, help="a number of processes (0: no limit)")
    )
    sweep_interval: float = attrs.field(
        default=60.0,
        metadata=_meta(kind="duration", minimum=1, help="a duration such as 1m"),
    )
    namespaces: tuple[str, ...] = ("*",)
