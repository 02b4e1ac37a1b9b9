"""Connections and unary calls of ``call: grpc``: the outbound policy, channels, cancellation.

Where a call may connect is the outbound policy's decision, as for HTTP
(``adapters/_outbound_addresses.allowed_addresses``, shared with HTTP and AsyncAPI): every
address is checked, and the channel is opened to the allowed *addresses* (an ``ipv4:`` or
``ipv6:`` target), so the address checked is the one connected to. TLS still verifies the
certificate against the host name (``grpc.ssl_target_name_override``), and the ``:authority``
is the host name. Channels never use a proxy from the environment (``grpc.enable_http_proxy``
off: a proxy would connect on our behalf, past the check) and never retry by themselves
(``grpc.enable_retries`` off: the DSL's ``retry`` decides).

`call_unary` uses grpcio's synchronous API without holding a thread: the call's future
reports its end from grpcio's own thread to the trio loop (``TrioToken.run_sync_soon``), and a
cancelled task cancels the RPC before it unwinds, so no call outlives its task. Payloads are
bytes both ways (no serializer runs on grpcio's threads).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from typing import cast

import attrs
import grpc
import trio

from workflow_orchestrator.adapters._outbound_addresses import (
    AddressUnavailable,
    allowed_addresses,
)
from workflow_orchestrator.dsl import ErrorType, Problem, WorkflowError
from workflow_orchestrator.errors import OrchestratorError
from workflow_orchestrator.security import (
    IPAddress,
    OutboundPolicy,
    OutboundRefusal,
    OutboundRefused,
    normalize_address,
)

__all__ = ["RpcFailed", "Target", "call_unary", "open_channel", "resolve_target"]

logger = logging.getLogger(__name__)

BACKSTOP = 5.0


@attrs.frozen(kw_only=True)
class Target:
    """Where a call goes: the host as named (after the host map), its port and the allowed
    addresses to connect to, all of one address family, in the resolver's order."""

    host: str
    port: int
    addresses: tuple[IPAddress, ...]

    @property
    def name(self) -> str:
        """``host:port`` for messages (IPv6 literals bracketed)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def channel_target(self) -> str:
        """The gRPC target naming the addresses (``ipv4:a:p,b:p`` or ``ipv6:[a]:p``)."""
        if self.addresses[0].version == 4:
            return "ipv4:" + ",".join(f"{a}:{self.port}" for a in self.addresses)
        return "ipv6:" + ",".join(f"[{a}]:{self.port}" for a in self.addresses)


class RpcFailed(OrchestratorError):
    """A call that ended with a status other than OK."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


def _refused(refusal: OutboundRefusal, what: str, where: str) -> WorkflowError:
    """The 403 of a refusal (already logged by ``allowed_addresses``)."""
    return WorkflowError(
        Problem.standard(
            ErrorType.COMMUNICATION,
            status=403,
            title="Outbound Call Refused",
            detail=f"gRPC call {what}: {refusal.describe()}",
            instance=where,
        )
    )


def _unreachable(detail: str, where: str) -> WorkflowError:
    return WorkflowError(
        Problem.standard(ErrorType.COMMUNICATION, status=503, detail=detail, instance=where)
    )


async def resolve_target(
    policy: OutboundPolicy, host: str, port: int, what: str, where: str
) -> Target:
    """The addresses of ``host`` the policy allows, of one family (IPv4 if any); none
    allowed is a communication error (403) naming the refusal and the setting to change."""
    try:
        texts = await allowed_addresses(policy, host, port)
    except OutboundRefused as refused:
        raise _refused(refused.refusal, what, where) from None
    except AddressUnavailable as unavailable:
        raise _unreachable(f"gRPC call {what}: {unavailable}", where) from None
    allowed = [address for text in texts if (address := normalize_address(text)) is not None]
    # One target holds one family: IPv4 where allowed (a name often resolves to ::1 and
    # 127.0.0.1 while a server listens on one of them; IPv4 is the likelier).
    family = 4 if any(a.version == 4 for a in allowed) else 6
    return Target(host=host, port=port, addresses=tuple(a for a in allowed if a.version == family))


def open_channel(
    target: Target, *, credentials: grpc.ChannelCredentials | None, max_message_size: int
) -> grpc.Channel:
    """A channel to ``target``'s addresses: TLS with ``credentials`` (verified against the
    host name), plaintext without."""
    options: list[tuple[str, str | int]] = [
        ("grpc.max_receive_message_length", max_message_size),
        ("grpc.max_send_message_length", max_message_size),
        ("grpc.enable_http_proxy", 0),
        ("grpc.enable_retries", 0),
    ]
    if normalize_address(target.host) is None:
        options.append(("grpc.default_authority", target.name))
        if credentials is not None:
            options.append(("grpc.ssl_target_name_override", target.host))
    if credentials is None:
        return grpc.insecure_channel(target.channel_target(), options=options)
    return grpc.secure_channel(target.channel_target(), credentials, options=options)


async def call_unary(
    channel: grpc.Channel,
    path: str,
    payload: bytes,
    *,
    metadata: Mapping[str, str],
    time_limit: float,
) -> bytes:
    """The response of the unary method ``path`` to ``payload``, within ``time_limit``
    seconds (the gRPC deadline). A status other than OK raises `RpcFailed`; cancellation of
    the calling task cancels the RPC.

    grpcio enforces the deadline; should it ever not report the end, the wait still ends
    ``BACKSTOP`` seconds later, as DEADLINE_EXCEEDED.
    """
    multicallable: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(path)
    token = trio.lowlevel.current_trio_token()
    done = trio.Event()

    def finished(_: object) -> None:
        # After the run ended nobody waits for this call any more.
        with contextlib.suppress(trio.RunFinishedError):
            token.run_sync_soon(done.set)

    future = multicallable.future(payload, timeout=time_limit, metadata=tuple(metadata.items()))
    future.add_done_callback(finished)
    try:
        with trio.move_on_after(time_limit + BACKSTOP):
            await done.wait()
    finally:
        if not done.is_set():
            future.cancel()  # cancelled or past the backstop: the RPC must not outlive its task
    if not done.is_set():
        raise RpcFailed(grpc.StatusCode.DEADLINE_EXCEEDED, "grpcio did not end the call")
    try:
        return future.result()
    except grpc.RpcError as error:
        call = cast(grpc.Call, error)
        raise RpcFailed(call.code(), call.details() or "") from None
    except grpc.FutureCancelledError:
        raise RpcFailed(grpc.StatusCode.CANCELLED, "the call was cancelled") from None
