"""The outbound policy: which addresses the engine's calls may reach (``security.outbound``).

Every call the engine makes (``call: http``, ``call: openapi``, OAuth2 token endpoints, schema
and OpenAPI documents) connects through the HTTP adapter, which resolves the host itself and
asks `OutboundPolicy.check` about every address before it connects, for the first request and
for every redirect. The decision is a pure function of the host name, the resolved address and
the port, so a name that resolves to a public address at check time and to ``127.0.0.1`` at
connect time (DNS rebinding) cannot slip through: the address checked is the one connected to.

The rules, in order:

1. ``deny`` always wins: an entry naming the host (``api.bad.example``, ``*.bad.example``) or
   containing the address (``10.0.99.0/24``) refuses the call.
2. The default refusals: loopback (127.0.0.0/8, ::1), "this host" (0.0.0.0/8, ::), link-local
   (169.254.0.0/16, fe80::/10), cloud metadata (169.254.169.254, fd00:ec2::254,
   100.100.100.200, 168.63.129.16, 192.0.0.192, and ``metadata.google.internal`` by name) and
   this service's own ports on any address of this machine. An ``allow`` entry of the same
   kind opens them: an address or range for the address refusals, the name for the metadata
   name. A host *name* in ``allow`` never opens an address refusal, so whoever controls an
   allowed name's DNS records cannot point it at loopback or the metadata service.
3. ``default: deny`` refuses what no ``allow`` entry names (by host name or address).

Addresses are normalised first: IPv4-mapped and IPv4-compatible IPv6 (``::ffff:127.0.0.1``)
become the IPv4 address they carry, and the spellings ``inet_aton`` accepts (``127.1``,
``0x7f.1``, ``2130706433``, ``0177.0.0.1``) are read as the address they mean.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable, Mapping

import attrs

from workflow_orchestrator.config import OutboundSettings
from workflow_orchestrator.errors import OrchestratorError

__all__ = [
    "IPAddress",
    "OutboundPolicy",
    "OutboundRefusal",
    "OutboundRefused",
    "is_address_of_this_machine",
    "normalize_address",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOW_SETTING = "security.outbound.allow"
DENY_SETTING = "security.outbound.deny"
DEFAULT_SETTING = "security.outbound.default"
PROXY_SETTING = "security.outbound.proxy"

#: Addresses refused unless ``allow`` names them, with the reason a refusal gives. Checked in
#: this order, so the metadata addresses are named as such rather than as link-local.
_DEFAULT_REFUSALS: tuple[tuple[_Network, str], ...] = tuple(
    (ipaddress.ip_network(network), reason)
    for network, reason in (
        ("169.254.169.254/32", "a cloud metadata address"),
        ("fd00:ec2::254/128", "a cloud metadata address"),
        ("100.100.100.200/32", "a cloud metadata address"),
        ("168.63.129.16/32", "a cloud metadata address"),
        ("192.0.0.192/32", "a cloud metadata address"),
        ("127.0.0.0/8", "a loopback address"),
        ("::1/128", "a loopback address"),
        ("0.0.0.0/8", "an unspecified (this host) address"),
        ("::/128", "an unspecified (this host) address"),
        ("169.254.0.0/16", "a link-local address"),
        ("fe80::/10", "a link-local address"),
    )
)
#: Host names of cloud metadata services, refused by name before they are resolved.
_METADATA_NAMES = frozenset({"metadata.google.internal"})
# What inet_aton reads as an IPv4 address: decimal, octal or hex parts joined by dots.
# A host name entry (configuration checks the exact shape; this only keeps out nonsense).
_NAME_ENTRY = re.compile(r"(\*\.)?[a-z0-9_-]+(\.[a-z0-9_-]+)*")
_IPV4_SPELLING = re.compile(r"^(0[xX][0-9a-fA-F]*|[0-9]+)(\.(0[xX][0-9a-fA-F]*|[0-9]+)){0,3}$")


class OutboundRefused(OrchestratorError):
    """A connection the outbound policy refused; ``refusal`` says which and why."""

    def __init__(self, refusal: OutboundRefusal) -> None:
        super().__init__(refusal.describe())
        self.refusal = refusal


@attrs.frozen(kw_only=True)
class OutboundRefusal:
    """Why a connection to ``host`` (resolved to ``address``, if it was) on ``port`` is refused.

    ``setting`` is the key to change to allow it; ``remedy`` says how.
    """

    host: str
    address: str | None
    port: int
    reason: str
    setting: str
    remedy: str

    def describe(self) -> str:
        """One line naming the host, the address, the reason and the setting to change."""
        where = self.host if self.address in (None, self.host) else f"{self.host} ({self.address})"
        return f"the outbound policy refuses {where} port {self.port}: {self.reason}; {self.remedy}"


@attrs.frozen
class _Entry:
    """One ``allow`` or ``deny`` entry: an address range, an exact name or ``*.suffix``."""

    text: str
    network: _Network | None = None
    name: str | None = None
    suffix: str | None = None

    def matches_name(self, host: str) -> bool:
        if self.name is not None:
            return host == self.name
        return self.suffix is not None and host.endswith(self.suffix)

    def matches_address(self, address: IPAddress) -> bool:
        return self.network is not None and address in self.network


def _host_name(host: str) -> str:
    return host.strip("[]").lower().rstrip(".")


def _unwrap(address: IPAddress) -> IPAddress:
    """The IPv4 address inside an IPv4-mapped or IPv4-compatible IPv6 address."""
    if isinstance(address, ipaddress.IPv6Address):
        address = ipaddress.IPv6Address(int(address))  # drops a scope id (fe80::1%eth0)
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        value = int(address)
        if value >> 32 == 0 and value > 1:  # ::a.b.c.d (compatible); :: and ::1 stay IPv6
            return ipaddress.IPv4Address(value)
    return address


def normalize_address(host: str) -> IPAddress | None:
    """The address ``host`` spells, normalised (None for a host name).

    Accepts ``[::1]`` brackets, scope ids, IPv4-mapped/compatible IPv6 (returned as IPv4) and
    every IPv4 spelling ``inet_aton`` reads (``127.1``, ``0x7f000001``, ``0177.0.0.1``).
    """
    text = host.strip().strip("[]")
    try:
        return _unwrap(ipaddress.ip_address(text))
    except ValueError:
        pass
    if _IPV4_SPELLING.match(text):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(text))
        except OSError:
            return None
    return None


def is_address_of_this_machine(address: IPAddress) -> bool:
    """Whether ``address`` belongs to this machine (a socket can be bound to it)."""
    address = _unwrap(address)
    if address.is_loopback or address.is_unspecified:
        return True
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((str(address), 0))
        except OSError:
            return False
    return True


def _parse_entry(text: str, key: str) -> _Entry:
    entry = text.strip()
    if "/" in entry:
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ValueError(f"{key}: {text!r} is not a CIDR range such as 10.0.0.0/8") from None
        if isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= 96:
            inner = _unwrap(network.network_address)
            if inner.version == 4:
                network = ipaddress.IPv4Network((int(inner), network.prefixlen - 96))
        return _Entry(text=text, network=network)
    address = normalize_address(entry)
    if address is not None:
        return _Entry(text=text, network=ipaddress.ip_network(address))
    name = _host_name(entry)
    if not _NAME_ENTRY.fullmatch(name):
        raise ValueError(
            f"{key}: {text!r} is not an IP address, a CIDR range (10.0.0.0/8) or a host name "
            "(api.example.com, *.example.com)"
        )
    if name.startswith("*."):
        return _Entry(text=text, suffix=name[1:])
    return _Entry(text=text, name=name)


def _parse_entries(entries: Iterable[str], key: str) -> tuple[_Entry, ...]:
    return tuple(_parse_entry(text, f"{key}[{i}]") for i, text in enumerate(entries))


@attrs.frozen(kw_only=True)
class OutboundPolicy:
    """Decides whether a connection to a host's address and port is allowed.

    Build it with `from_settings`; the default instance refuses loopback, link-local and
    metadata addresses and allows the rest. ``own_ports`` maps this service's ports to the
    setting that holds them (``{8080: "server.port"}``); ``is_local`` says whether an address
    belongs to this machine (only asked for an own port).
    """

    allow: tuple[_Entry, ...] = ()
    deny: tuple[_Entry, ...] = ()
    default_allow: bool = True
    own_ports: Mapping[int, str] = attrs.field(factory=dict)
    is_local: Callable[[IPAddress], bool] = is_address_of_this_machine

    @classmethod
    def from_settings(
        cls,
        settings: OutboundSettings,
        *,
        own_ports: Mapping[int, str] | None = None,
        is_local: Callable[[IPAddress], bool] = is_address_of_this_machine,
    ) -> OutboundPolicy:
        """The policy of ``security.outbound``; raises ValueError naming a bad entry's key."""
        if settings.default not in ("allow", "deny"):
            raise ValueError(f"{DEFAULT_SETTING}: {settings.default!r} is not allow or deny")
        return cls(
            allow=_parse_entries(settings.allow, ALLOW_SETTING),
            deny=_parse_entries(settings.deny, DENY_SETTING),
            default_allow=settings.default == "allow",
            own_ports={port: key for port, key in (own_ports or {}).items() if port > 0},
            is_local=is_local,
        )

    def check_name(self, host: str, port: int) -> OutboundRefusal | None:
        """The refusal decided by the host name alone (before resolving it), or None.

        A host that spells an address is checked as that address.
        """
        address = normalize_address(host)
        if address is not None:
            return self.check(host, address, port)
        name = _host_name(host)
        for entry in self.deny:
            if entry.matches_name(name):
                return self._denied(host, None, port, entry)
        if name in _METADATA_NAMES and not self._allows_name(name):
            return OutboundRefusal(
                host=host,
                address=None,
                port=port,
                reason="it is a cloud metadata service",
                setting=ALLOW_SETTING,
                remedy=f"add {name} to {ALLOW_SETTING} if workflows must reach it",
            )
        return None

    def check_proxied(self, host: str, port: int) -> OutboundRefusal | None:
        """The refusal of a target reached through the egress proxy, or None.

        The proxy resolves the target's name, so only the name (or a literal address) can be
        checked: `check_name`, and under ``default: deny`` a name that no entry of ``allow``
        names is refused (an allowed *range* cannot open a name it does not see resolved).
        """
        refusal = self.check_name(host, port)
        if refusal is not None or normalize_address(host) is not None or self.default_allow:
            return refusal
        if self._allows_name(_host_name(host)):
            return None
        return OutboundRefusal(
            host=host,
            address=None,
            port=port,
            reason=f"{DEFAULT_SETTING} is deny and no entry of {ALLOW_SETTING} names the host "
            f"(through {PROXY_SETTING} only names and literal addresses are checked)",
            setting=ALLOW_SETTING,
            remedy=f"add the host name to {ALLOW_SETTING}",
        )

    def check(self, host: str, address: IPAddress, port: int) -> OutboundRefusal | None:
        """The refusal of a connection to ``address`` (which ``host`` resolved to), or None."""
        name = _host_name(host)
        address = _unwrap(address)
        shown = str(address)
        refusal = self.check_name(host, port) if normalize_address(host) is None else None
        if refusal is not None:
            return refusal
        for entry in self.deny:
            if entry.matches_address(address):
                return self._denied(host, shown, port, entry)
        address_allowed = any(entry.matches_address(address) for entry in self.allow)
        if not address_allowed:
            reason = _default_refusal(address)
            if reason is not None:
                reason = f"{shown} is {reason}"
            elif port in self.own_ports and self.is_local(address):
                reason = (
                    f"port {port} is this service's own ({self.own_ports[port]}) and {shown} "
                    "is an address of this machine"
                )
            if reason is not None:
                return OutboundRefusal(
                    host=host,
                    address=shown,
                    port=port,
                    reason=reason,
                    setting=ALLOW_SETTING,
                    remedy=f"add {shown} or a range holding it (a host name does not open it) to "
                    f"{ALLOW_SETTING} if workflows must reach it",
                )
        if not self.default_allow and not address_allowed and not self._allows_name(name):
            return OutboundRefusal(
                host=host,
                address=shown,
                port=port,
                reason=f"{DEFAULT_SETTING} is deny and no entry of {ALLOW_SETTING} names the "
                "host or the address",
                setting=ALLOW_SETTING,
                remedy=f"add the host name or the address to {ALLOW_SETTING}",
            )
        return None

    def _allows_name(self, name: str) -> bool:
        return any(entry.matches_name(name) for entry in self.allow)

    @staticmethod
    def _denied(host: str, address: str | None, port: int, entry: _Entry) -> OutboundRefusal:
        return OutboundRefusal(
            host=host,
            address=address,
            port=port,
            reason=f"{DENY_SETTING} holds {entry.text!r}",
            setting=DENY_SETTING,
            remedy=f"remove {entry.text!r} from {DENY_SETTING} if workflows must reach it",
        )


def _default_refusal(address: IPAddress) -> str | None:
    for network, reason in _DEFAULT_REFUSALS:
        if address in network:
            return reason
    return None
