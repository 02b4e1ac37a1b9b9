"""Where an AsyncAPI call may connect: the server URL after ``host_map``, resolved here and
checked by the outbound policy address by address.

``allowed_addresses`` resolves a host with trio's resolver and returns only the addresses the
`OutboundPolicy` allows, in the resolver's order; the caller connects to one of *those* (by
address), so the address checked is the address connected to (no DNS-rebinding gap), as the
HTTP client's network backend does. A host with no allowed address raises `OutboundRefused`.
"""

from __future__ import annotations

import logging

import attrs
import trio

from workflow_orchestrator.errors import OrchestratorError
from workflow_orchestrator.security import (
    OutboundPolicy,
    OutboundRefused,
    normalize_address,
)

__all__ = ["Endpoint", "UnresolvedHost", "allowed_addresses", "parse_endpoint"]

logger = logging.getLogger(__name__)

_DEFAULT_PORTS = {"amqp": 5672, "amqps": 5671, "kafka": 9092, "kafka-secure": 9093}
_DEFAULT_PORTS |= {"ws": 80, "wss": 443}


class UnresolvedHost(OrchestratorError, ConnectionError):
    """The host of a server has no address (the resolver said so)."""


@attrs.frozen(kw_only=True)
class Endpoint:
    """A server URL taken apart: ``scheme://[user[:password]@]host[:port][path]``."""

    scheme: str
    host: str
    port: int
    path: str = ""
    user: str | None = None
    password: str | None = None

    def display(self) -> str:
        """``scheme://host:port/path``, without credentials (for messages)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.path}"


def parse_endpoint(url: str) -> Endpoint:
    """The parts of ``url``; raises ValueError naming what is wrong."""
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme:
        raise ValueError(f"{url!r} has no scheme")
    authority, slash, path = rest.partition("/")
    path = slash + path if slash else ""
    user = password = None
    if "@" in authority:
        credentials, authority = authority.rsplit("@", 1)
        user, _, password = credentials.partition(":")
    if authority.startswith("["):
        host, _, tail = authority[1:].partition("]")
        port_text = tail[1:] if tail.startswith(":") else ""
    else:
        host, _, port_text = authority.partition(":")
    if not host:
        raise ValueError(f"{url!r} has no host")
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"{url!r} has an invalid port {port_text!r}")
        port = int(port_text)
    elif scheme.lower() in _DEFAULT_PORTS:
        port = _DEFAULT_PORTS[scheme.lower()]
    else:
        raise ValueError(f"{url!r} has no port")
    return Endpoint(
        scheme=scheme.lower(), host=host, port=port, path=path, user=user, password=password
    )


async def allowed_addresses(policy: OutboundPolicy, host: str, port: int) -> list[str]:
    """The addresses of ``host`` that ``policy`` allows for ``port`` (at least one).

    Raises `OutboundRefused` (the first refusal) when none is allowed and `UnresolvedHost`
    when the host does not resolve.
    """
    refusal = policy.check_name(host, port)
    if refusal is not None:
        raise _refused(OutboundRefused(refusal))
    literal = normalize_address(host)
    if literal is not None:
        candidates = [(str(literal), literal)]
    else:
        try:
            infos = await trio.socket.getaddrinfo(host, port, type=trio.socket.SOCK_STREAM)
        except trio.socket.gaierror as error:
            raise UnresolvedHost(f"cannot resolve {host}: {error.strerror}") from None
        candidates = []
        for *_, sockaddr in infos:
            text = str(sockaddr[0])
            address = normalize_address(text)
            if address is not None and all(text != seen for seen, _ in candidates):
                candidates.append((text, address))
    allowed = []
    first: OutboundRefused | None = None
    for text, address in candidates:
        refusal = policy.check(host, address, port)
        if refusal is None:
            allowed.append(text)
        elif first is None:
            first = OutboundRefused(refusal)
    if allowed:
        return allowed
    if first is None:
        raise UnresolvedHost(f"{host} resolved to no address")
    raise _refused(first)


def _refused(refused: OutboundRefused) -> OutboundRefused:
    refusal = refused.refusal
    logger.warning(
        "outbound call refused: %s",
        refusal.describe(),
        extra={"host": refusal.host, "address": refusal.address, "port": refusal.port},
    )
    return refused
