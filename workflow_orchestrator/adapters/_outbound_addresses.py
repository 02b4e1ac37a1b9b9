"""Where an outbound connection may go: the addresses of a host the outbound policy allows.

Both HTTP clients connect through this: `allowed_addresses` resolves the host once (trio's
``getaddrinfo``), asks `OutboundPolicy.check` about every address and returns the allowed ones
in the resolver's order, so the caller connects *by address* to what was checked (no
DNS-rebinding gap between a check and a second resolution). A refusal is logged and raised as
`OutboundRefused`; a name that does not resolve raises `AddressUnavailable`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import trio

from workflow_orchestrator.errors import OrchestratorError
from workflow_orchestrator.security import (
    IPAddress,
    OutboundPolicy,
    OutboundRefused,
    normalize_address,
)

logger = logging.getLogger(__name__)


class AddressUnavailable(OrchestratorError):
    """The host has no address to connect to (it does not resolve, or to nothing)."""


async def allowed_addresses(policy: OutboundPolicy, host: str, port: int) -> list[str]:
    """The addresses of ``host`` that ``policy`` allows for ``port``, as text, in order.

    Raises `OutboundRefused` (logged) when the name itself or every address is refused.
    """
    refusal = policy.check_name(host, port)
    if refusal is not None:
        raise refused(OutboundRefused(refusal))
    allowed: list[str] = []
    first_refusal: OutboundRefused | None = None
    for text, address in await _resolve(host, port):
        refusal = policy.check(host, address, port)
        if refusal is None:
            allowed.append(text)
        elif first_refusal is None:
            first_refusal = OutboundRefused(refusal)
    if allowed:
        return allowed
    if first_refusal is None:  # getaddrinfo answered, but with nothing
        raise AddressUnavailable(f"{host} resolved to no address")
    raise refused(first_refusal)


def refused(error: OutboundRefused) -> OutboundRefused:
    """``error``, logged as a refusal (host, address and port as fields)."""
    refusal = error.refusal
    logger.warning(
        "outbound call refused: %s",
        refusal.describe(),
        extra={"host": refusal.host, "address": refusal.address, "port": refusal.port},
    )
    return error


async def _resolve(host: str, port: int) -> list[tuple[str, IPAddress]]:
    """The addresses of ``host`` as (text to connect to, normalised address), in order."""
    literal = normalize_address(host)
    if literal is not None:
        return [(str(literal), literal)]
    try:
        infos = await trio.socket.getaddrinfo(host, port, type=trio.socket.SOCK_STREAM)
    except trio.socket.gaierror as error:
        raise AddressUnavailable(f"cannot resolve {host}: {error.strerror}") from None
    found: list[tuple[str, IPAddress]] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        text = str(sockaddr[0])
        address = normalize_address(text)
        if address is not None and all(text != seen for seen, _ in found):
            found.append((text, address))
    return found


def mapped_url(host_map: Mapping[str, str], url: str) -> str:
    """``url`` with the first ``scheme://host[:port]`` prefix of ``host_map`` that starts it
    replaced by its target (the clients' ``host_map``: where a call goes before the policy
    sees it); ``url`` itself when none does."""
    for prefix, target in host_map.items():
        if url.startswith(prefix):
            return target + url[len(prefix) :]
    return url
