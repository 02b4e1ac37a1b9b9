"""The outbound policy: default refusals, allow and deny entries, address normalisation."""

from __future__ import annotations

import ipaddress

import pytest

from workflow_orchestrator.config import OutboundSettings
from workflow_orchestrator.security import (
    IPAddress,
    OutboundPolicy,
    OutboundRefusal,
    is_address_of_this_machine,
    normalize_address,
)

OWN_PORTS = {8080: "server.port", 8081: "server.managementPort"}
THIS_MACHINE = ipaddress.ip_address("10.1.2.3")


def _is_local(address: IPAddress) -> bool:
    """This test's machine: loopback and 10.1.2.3."""
    return address.is_loopback or address == THIS_MACHINE


def _policy(
    allow: tuple[str, ...] = (), deny: tuple[str, ...] = (), default: str = "allow"
) -> OutboundPolicy:
    return OutboundPolicy.from_settings(
        OutboundSettings(allow=allow, deny=deny, default=default),
        own_ports=OWN_PORTS,
        is_local=_is_local,
    )


def _check(
    policy: OutboundPolicy, host: str, address: str, port: int = 443
) -> OutboundRefusal | None:
    return policy.check(host, ipaddress.ip_address(address), port)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "127.0.0.1 is a loopback address"),
        ("127.255.0.9", "127.255.0.9 is a loopback address"),
        ("::1", "::1 is a loopback address"),
        ("0.0.0.0", "0.0.0.0 is an unspecified (this host) address"),
        ("0.1.2.3", "0.1.2.3 is an unspecified (this host) address"),
        ("::", ":: is an unspecified (this host) address"),
        ("169.254.1.1", "169.254.1.1 is a link-local address"),
        ("fe80::1", "fe80::1 is a link-local address"),
        ("169.254.169.254", "169.254.169.254 is a cloud metadata address"),
        ("fd00:ec2::254", "fd00:ec2::254 is a cloud metadata address"),
        ("100.100.100.200", "100.100.100.200 is a cloud metadata address"),
        ("::ffff:127.0.0.1", "127.0.0.1 is a loopback address"),
        ("::ffff:169.254.169.254", "169.254.169.254 is a cloud metadata address"),
        ("::127.0.0.1", "127.0.0.1 is a loopback address"),
    ],
)
def test_default_refusals(address: str, reason: str) -> None:
    """Loopback, this-host, link-local and metadata addresses are refused by default."""
    refusal = _check(_policy(), "api.example.com", address)
    assert refusal is not None
    assert refusal.reason == reason
    assert refusal.setting == "security.outbound.allow"
    assert "security.outbound.allow" in refusal.describe()


@pytest.mark.parametrize("address", ["93.184.215.14", "10.0.0.1", "192.168.1.1", "2606:4700::1"])
def test_other_addresses_are_allowed_by_default(address: str) -> None:
    """Everything else is allowed with the default settings."""
    assert _check(_policy(), "api.example.com", address) is None


def test_refusal_message_names_host_address_reason_and_setting() -> None:
    """The message says what was refused, why, and which setting opens it."""
    refusal = _check(_policy(), "localhost", "127.0.0.1", 8081)
    assert refusal is not None
    assert refusal.describe() == (
        "the outbound policy refuses localhost (127.0.0.1) port 8081: 127.0.0.1 is a loopback "
        "address; add 127.0.0.1 or a range holding it (a host name does not open it) to "
        "security.outbound.allow if workflows must reach it"
    )


def test_allow_by_address_or_range_opens_a_default_refusal() -> None:
    """An address or range in allow opens loopback, link-local and metadata addresses."""
    policy = _policy(allow=("127.0.0.1", "169.254.0.0/16", "::1"))
    assert _check(policy, "localhost", "127.0.0.1") is None
    assert _check(policy, "localhost", "::1") is None
    assert _check(policy, "169.254.169.254", "169.254.169.254") is None
    assert _check(policy, "localhost", "127.0.0.2") is not None


def test_allow_by_name_does_not_open_an_address_refusal() -> None:
    """A name in allow cannot be pointed at loopback by whoever controls its DNS records."""
    policy = _policy(allow=("api.partner.example",))
    refusal = _check(policy, "api.partner.example", "127.0.0.1")
    assert refusal is not None
    assert refusal.reason == "127.0.0.1 is a loopback address"


def test_deny_wins_over_allow() -> None:
    """A deny entry inside an allowed range refuses, naming security.outbound.deny."""
    policy = _policy(allow=("10.0.0.0/8", "127.0.0.0/8"), deny=("10.0.99.0/24", "127.0.0.2"))
    assert _check(policy, "a.internal", "10.1.1.1") is None
    refusal = _check(policy, "b.internal", "10.0.99.7")
    assert refusal is not None
    assert refusal.setting == "security.outbound.deny"
    assert refusal.describe() == (
        "the outbound policy refuses b.internal (10.0.99.7) port 443: security.outbound.deny "
        "holds '10.0.99.0/24'; remove '10.0.99.0/24' from security.outbound.deny if workflows "
        "must reach it"
    )
    assert _check(policy, "127.0.0.2", "127.0.0.2") is not None
    assert _check(policy, "127.0.0.1", "127.0.0.1") is None


def test_deny_by_name_and_wildcard() -> None:
    """Names in deny refuse before resolution; ``*.x`` covers subdomains, not x itself."""
    policy = _policy(allow=("bad.example",), deny=("api.bad.example", "*.evil.example"))
    assert policy.check_name("API.bad.example.", 443) is not None
    assert policy.check_name("a.b.evil.example", 443) is not None
    assert policy.check_name("evil.example", 443) is None
    refusal = policy.check_name("x.evil.example", 80)
    assert refusal is not None
    assert refusal.address is None
    assert refusal.describe() == (
        "the outbound policy refuses x.evil.example port 80: security.outbound.deny holds "
        "'*.evil.example'; remove '*.evil.example' from security.outbound.deny if workflows "
        "must reach it"
    )


def test_deny_by_range_applies_to_any_name() -> None:
    """A denied range refuses whatever name resolved to it."""
    policy = _policy(deny=("203.0.113.0/24",))
    assert _check(policy, "innocent.example", "203.0.113.9") is not None
    assert _check(policy, "innocent.example", "::ffff:203.0.113.9") is not None


def test_metadata_name_is_refused_before_resolution() -> None:
    """metadata.google.internal is refused by name unless allow names it."""
    refusal = _policy().check_name("metadata.google.internal", 80)
    assert refusal is not None
    assert refusal.reason == "it is a cloud metadata service"
    assert (
        _policy(allow=("metadata.google.internal",)).check_name("metadata.google.internal", 80)
        is None
    )


def test_own_ports_refused_on_this_machine_only() -> None:
    """The service's own ports are refused on this machine's addresses, not elsewhere."""
    policy = _policy()
    refusal = _check(policy, "me.internal", "10.1.2.3", 8081)
    assert refusal is not None
    assert refusal.reason == (
        "port 8081 is this service's own (server.managementPort) and 10.1.2.3 is an address of "
        "this machine"
    )
    assert _check(policy, "me.internal", "10.1.2.3", 9000) is None
    assert _check(policy, "other.internal", "10.1.2.4", 8081) is None
    assert _check(_policy(allow=("10.1.2.3",)), "me.internal", "10.1.2.3", 8081) is None


def test_default_deny_refuses_what_allow_does_not_name() -> None:
    """With default: deny only named hosts and ranges are reachable."""
    policy = _policy(allow=("api.partner.example", "*.corp.example", "10.0.0.0/8"), default="deny")
    assert _check(policy, "api.partner.example", "198.51.100.1") is None
    assert _check(policy, "x.corp.example", "198.51.100.2") is None
    assert _check(policy, "anything.example", "10.2.3.4") is None
    refusal = _check(policy, "other.example", "198.51.100.3")
    assert refusal is not None
    assert refusal.reason == (
        "security.outbound.default is deny and no entry of security.outbound.allow names the "
        "host or the address"
    )
    # A named host still may not reach a default-refused address.
    assert _check(policy, "api.partner.example", "127.0.0.1") is not None


@pytest.mark.parametrize(
    ("spelling", "address"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("[::1]", "::1"),
        ("::ffff:127.0.0.1", "127.0.0.1"),
        ("::ffff:7f00:1", "127.0.0.1"),
        ("::169.254.169.254", "169.254.169.254"),
        ("fe80::1%eth0", "fe80::1"),
        ("::", "::"),
    ],
)
def test_odd_spellings_are_normalised(spelling: str, address: str) -> None:
    """Every spelling the resolver would accept is read as the address it means."""
    assert normalize_address(spelling) == ipaddress.ip_address(address)


@pytest.mark.parametrize("name", ["api.example.com", "localhost", "1.2.3.4.example", "0x7g", ""])
def test_names_are_not_addresses(name: str) -> None:
    """Host names stay names."""
    assert normalize_address(name) is None


@pytest.mark.parametrize("host", ["127.1", "0x7f000001", "[::ffff:127.0.0.1]", "0.0.0.0"])
def test_literal_hosts_are_checked_as_addresses_before_resolution(host: str) -> None:
    """A host that spells a refused address is refused by check_name alone."""
    refusal = _policy().check_name(host, 80)
    assert refusal is not None
    assert refusal.setting == "security.outbound.allow"


def test_entries_are_normalised_too() -> None:
    """An odd or IPv4-mapped spelling in allow means the address it spells."""
    policy = _policy(allow=("127.1", "::ffff:169.254.169.254"))
    assert _check(policy, "localhost", "127.0.0.1") is None
    assert _check(policy, "x", "169.254.169.254") is None


def test_a_bad_entry_names_its_key() -> None:
    """Policies built from unchecked settings name the entry to fix."""
    with pytest.raises(ValueError, match=r"security\.outbound\.deny\[1\]: '10\.0\.0\.0/40' is not"):
        _policy(deny=("10.0.0.1", "10.0.0.0/40"))
    with pytest.raises(ValueError, match=r"security\.outbound\.allow\[0\]: 'a b' is not an IP"):
        _policy(allow=("a b",))


def test_this_machine_is_recognised_by_binding() -> None:
    """Loopback and the unspecified address are this machine's; a documentation one is not."""
    assert is_address_of_this_machine(ipaddress.ip_address("127.0.0.1"))
    assert is_address_of_this_machine(ipaddress.ip_address("127.0.0.5"))
    assert is_address_of_this_machine(ipaddress.ip_address("0.0.0.0"))
    assert not is_address_of_this_machine(ipaddress.ip_address("192.0.2.1"))


def test_default_instance_is_the_default_policy() -> None:
    """``OutboundPolicy()`` refuses what the default settings refuse."""
    assert OutboundPolicy().check("localhost", ipaddress.ip_address("127.0.0.1"), 80) is not None
    assert OutboundPolicy().check("example.com", ipaddress.ip_address("93.184.215.14"), 80) is None


def test_a_proxied_target_under_default_deny_must_be_named() -> None:
    """Through the egress proxy only the name is seen: under ``default: deny`` a name that
    ``allow`` does not name is refused (an allowed range cannot open it), literal addresses are
    checked as addresses, and ``default: allow`` checks names as before."""
    deny_default = _policy(allow=("api.partner.example", "10.0.0.0/8"), default="deny")
    assert deny_default.check_proxied("api.partner.example", 443) is None
    assert deny_default.check_proxied("10.1.2.3", 443) is None
    refusal = deny_default.check_proxied("other.example", 443)
    assert refusal is not None
    assert refusal.setting == "security.outbound.allow"
    assert "through security.outbound.proxy only names and literal addresses" in refusal.reason
    assert deny_default.check_proxied("192.0.2.1", 443) is not None
    allow_default = _policy(deny=("*.evil.example",))
    assert allow_default.check_proxied("other.example", 443) is None
    assert allow_default.check_proxied("x.evil.example", 443) is not None
    assert allow_default.check_proxied("169.254.169.254", 80) is not None
