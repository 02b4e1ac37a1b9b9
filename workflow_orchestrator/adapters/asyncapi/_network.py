"""Where an AsyncAPI call may connect: the server URL taken apart (``parse_endpoint``).

The host is then resolved and checked by the outbound policy address by address with
``adapters._outbound_addresses.allowed_addresses``, as for the HTTP clients and gRPC: the
caller connects to one of the allowed addresses (by address), so the address checked is the
address connected to (no DNS-rebinding gap).
"""

from __future__ import annotations

import attrs

__all__ = ["Endpoint", "parse_endpoint"]

_DEFAULT_PORTS = {"amqp": 5672, "amqps": 5671, "kafka": 9092, "kafka-secure": 9093}
_DEFAULT_PORTS |= {"ws": 80, "wss": 443}


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
