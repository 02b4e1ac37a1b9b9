"""Reading an AsyncAPI document (2.x or 3.0): the channel, server and message a ``call:
asyncapi`` targets. Pure functions over the parsed document; no I/O.

What a call names and what is resolved from it:

- AsyncAPI 3.0: ``operation`` names an entry of ``operations``; its ``channel`` reference gives
  the channel, whose ``address`` is where messages go (the channel's key when the address is
  null). ``channel`` may name a channel by key or address instead.
- AsyncAPI 2.x: ``channel`` names an entry of ``channels`` (its key is the address);
  ``operation`` may name the ``operationId`` of a channel's ``publish`` or ``subscribe``.
- Which way messages flow is the DSL's choice, not the document's: ``message`` publishes and
  ``subscription`` subscribes (a document's ``send``/``receive`` or ``publish``/``subscribe``
  is written from the point of view of the application it describes, and that differs
  between documents).
- The server: ``server.name`` (it must be one the channel is available on), else the first of
  the channel's servers whose ``protocol`` is the call's ``protocol``, else the first of the
  channel's servers (a channel that lists none is on all of the document's servers). Its URL is
  ``protocol://host[pathname]`` (3.0) or its ``url`` (2.x, ``protocol://`` added when it has no
  scheme), with ``{variables}`` from ``server.variables``, else the variables' defaults; a
  value outside a variable's ``enum`` is refused.
- Bindings of the protocol (``amqp``, ``kafka``, ``ws``) are collected from the server, the
  channel, the operation and the first message, for the adapter; so are the first message's
  ``contentType`` (or the document's ``defaultContentType``) and its ``correlationId``
  location (``$message.header#/...`` or ``$message.payload#/...``).

Only local references (``#/...``) are followed, at most ``_MAX_REFERENCES`` hops each; any
problem is a configuration error naming the document and what to change.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from workflow_orchestrator.dsl.errors import ErrorType, Problem, WorkflowError

__all__ = ["AsyncApiTarget", "correlation_id", "resolve_target"]

_MAX_REFERENCES = 32
_SHOWN = 10
# Protocol names of the AsyncAPI spec, by the binding family that configures them.
_FAMILIES = {
    "amqp": "amqp",
    "amqps": "amqp",
    "kafka": "kafka",
    "kafka-secure": "kafka",
    "ws": "ws",
    "wss": "ws",
}


@attrs.frozen(kw_only=True)
class AsyncApiTarget:
    """Where a call goes: the server's ``url`` and ``protocol``, the channel's ``address``,
    the ``bindings`` of the protocol (``server``, ``channel``, ``operation``, ``message``),
    the message's ``content_type`` and ``correlation`` location (None when not declared)."""

    version: str
    server: str
    protocol: str
    url: str
    channel: str
    address: str
    bindings: Mapping[str, Any]
    content_type: str | None = None
    correlation: str | None = None


class _Document:
    def __init__(self, document: Mapping[str, Any], uri: str, where: str) -> None:
        self.document = document
        self.uri = uri
        self.where = where

    def error(self, detail: str) -> WorkflowError:
        return WorkflowError(
            Problem.standard(
                ErrorType.CONFIGURATION,
                detail=f"the AsyncAPI document {self.uri}: {detail}",
                instance=self.where,
            )
        )

    def resolve(self, value: Any) -> Any:
        """``value`` with its (chain of) local ``$ref`` followed."""
        for _ in range(_MAX_REFERENCES):
            if not (isinstance(value, Mapping) and isinstance(value.get("$ref"), str)):
                return value
            value = self.pointer(value["$ref"])
        raise self.error(f"a reference chain is longer than {_MAX_REFERENCES} hops (a cycle?)")

    def pointer(self, reference: str) -> Any:
        if not reference.startswith("#"):
            raise self.error(
                f"reference {reference!r} points outside the document; only local references "
                "(#/...) are followed: inline it"
            )
        node: Any = self.document
        for raw in reference[1:].split("/")[1:]:
            part = raw.replace("~1", "/").replace("~0", "~")
            if isinstance(node, Mapping) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                raise self.error(f"reference {reference!r} points to nothing")
        return node

    def section(self, name: str) -> Mapping[str, Any]:
        value = self.document.get(name)
        return value if isinstance(value, Mapping) else {}


def _names(keys: Any) -> str:
    names = sorted(str(k) for k in keys)
    more = f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
    return f"{names[:_SHOWN]}{more}" if names else "none"


def _version(document: Mapping[str, Any], doc: _Document) -> str:
    version = str(document.get("asyncapi", ""))
    if not (version.startswith("2.") or version.startswith("3.")):
        raise doc.error(
            f"AsyncAPI version {version or '(none)'!r} is not supported; use a 2.x (2.6) or "
            "3.0 document"
        )
    return version


def _reference_key(reference: Any, section: str) -> str | None:
    """The key of ``#/<section>/<key>`` references (None for other forms)."""
    if isinstance(reference, Mapping) and isinstance(reference.get("$ref"), str):
        prefix = f"#/{section}/"
        ref: str = reference["$ref"]
        if ref.startswith(prefix) and "/" not in ref[len(prefix) :]:
            return ref[len(prefix) :].replace("~1", "/").replace("~0", "~")
    return None


def _v3_channel(
    doc: _Document, operation: str | None, channel: str | None
) -> tuple[str, Mapping[str, Any], Mapping[str, Any]]:
    """(channel key, channel, operation) of a 3.0 document."""
    channels = doc.section("channels")
    if operation is not None:
        operations = doc.section("operations")
        found = doc.resolve(operations.get(operation))
        if not isinstance(found, Mapping):
            raise doc.error(
                f"operation {operation!r} is not declared; declared: {_names(operations)}"
            )
        key = _reference_key(found.get("channel"), "channels") or ""
        target = doc.resolve(found.get("channel"))
        if not isinstance(target, Mapping):
            raise doc.error(f"operation {operation!r} has no channel")
        return key, target, found
    assert channel is not None
    for key, value in channels.items():
        item = doc.resolve(value)
        if isinstance(item, Mapping) and (key == channel or item.get("address") == channel):
            return str(key), item, {}
    raise doc.error(f"channel {channel!r} is not declared; declared: {_names(channels)}")


def _v2_channel(
    doc: _Document, operation: str | None, channel: str | None, action: str
) -> tuple[str, Mapping[str, Any], Mapping[str, Any]]:
    """(channel name, channel item, operation) of a 2.x document; ``action`` is the DSL's
    (publish or subscribe)."""
    channels = doc.section("channels")
    if channel is not None:
        item = doc.resolve(channels.get(channel))
        if not isinstance(item, Mapping):
            raise doc.error(f"channel {channel!r} is not declared; declared: {_names(channels)}")
        found = item.get(action)
        if not isinstance(found, Mapping):
            other = "subscribe" if action == "publish" else "publish"
            found = item.get(other)
        return channel, item, found if isinstance(found, Mapping) else {}
    ids = []
    for name, value in channels.items():
        item = doc.resolve(value)
        if not isinstance(item, Mapping):
            continue
        for verb in (action, "subscribe" if action == "publish" else "publish"):
            found = item.get(verb)
            if isinstance(found, Mapping) and "operationId" in found:
                ids.append(found["operationId"])
                if found["operationId"] == operation:
                    return str(name), item, found
    raise doc.error(
        f"no channel has an operation with operationId {operation!r}; found: {_names(ids)}"
    )


def _server_names(doc: _Document, version: str, channel: Mapping[str, Any]) -> list[str]:
    """The names of the servers the channel is available on, in order."""
    servers = doc.section("servers")
    listed = channel.get("servers")
    if not isinstance(listed, list) or not listed:
        return [str(name) for name in servers]
    names = []
    for entry in listed:
        name = _reference_key(entry, "servers") if version.startswith("3.") else entry
        if isinstance(name, str) and name in servers:
            names.append(name)
    return names


def _pick_server(
    doc: _Document, names: list[str], server: Mapping[str, Any] | None, protocol: str | None
) -> str:
    servers = doc.section("servers")
    if server is not None:
        name = str(server.get("name"))
        if name not in servers:
            raise doc.error(f"server {name!r} is not declared; declared: {_names(servers)}")
        if name not in names:
            raise doc.error(
                f"the channel is not available on server {name!r}; it is on {_names(names)}"
            )
        return name
    if not names:
        raise doc.error("it declares no server for the channel; add one under servers")
    if protocol is not None:
        for name in names:
            found = doc.resolve(servers[name])
            if isinstance(found, Mapping) and found.get("protocol") == protocol:
                return name
        raise doc.error(
            f"no server of the channel uses protocol {protocol!r}; its servers: {_names(names)}"
        )
    return names[0]


def _substitute(
    doc: _Document, text: str, declared: Mapping[str, Any], given: Mapping[str, Any], name: str
) -> str:
    out = text
    for _ in range(_MAX_REFERENCES):
        start = out.find("{")
        if start < 0:
            return out
        end = out.find("}", start)
        if end < 0:
            break
        variable = out[start + 1 : end]
        spec = doc.resolve(declared.get(variable))
        spec = spec if isinstance(spec, Mapping) else {}
        if variable in given:
            value = str(given[variable])
        elif "default" in spec:
            value = str(spec["default"])
        else:
            raise doc.error(
                f"server {name!r} needs variable {variable!r}; set it under with.server.variables"
            )
        allowed = spec.get("enum")
        if isinstance(allowed, list) and value not in [str(a) for a in allowed]:
            raise doc.error(
                f"variable {variable!r} of server {name!r} is {value!r}, not one of {allowed}"
            )
        out = out[:start] + value + out[end + 1 :]
    raise doc.error(f"server {name!r} has a malformed URL template {text!r}")


def _server_url(
    doc: _Document, version: str, name: str, given: Mapping[str, Any]
) -> tuple[str, str, Mapping[str, Any]]:
    """(protocol, URL, server object) of server ``name``."""
    server = doc.resolve(doc.section("servers")[name])
    if not isinstance(server, Mapping):
        raise doc.error(f"server {name!r} is not an object")
    protocol = str(server.get("protocol", "")).lower()
    declared = server.get("variables")
    declared = declared if isinstance(declared, Mapping) else {}
    if version.startswith("3."):
        template = f"{server.get('host', '')}{server.get('pathname') or ''}"
    else:
        template = str(server.get("url", ""))
    url = _substitute(doc, template, declared, given, name)
    if "://" not in url:
        url = f"{protocol}://{url}"
    return protocol, url, server


def _bindings(doc: _Document, owner: Mapping[str, Any], family: str) -> Any:
    bindings = doc.resolve(owner.get("bindings"))
    if not isinstance(bindings, Mapping):
        return {}
    found = doc.resolve(bindings.get(family))
    return found if isinstance(found, Mapping) else {}


def _first_message(
    doc: _Document, version: str, channel: Mapping[str, Any], operation: Mapping[str, Any]
) -> Mapping[str, Any]:
    if version.startswith("3."):
        candidates = operation.get("messages")
        if not (isinstance(candidates, list) and candidates):
            messages = doc.resolve(channel.get("messages"))
            candidates = list(messages.values()) if isinstance(messages, Mapping) else []
    else:
        message = doc.resolve(operation.get("message"))
        if isinstance(message, Mapping) and isinstance(message.get("oneOf"), list):
            candidates = message["oneOf"]
        else:
            candidates = [message]
    message = doc.resolve(candidates[0]) if candidates else None
    return message if isinstance(message, Mapping) else {}


def resolve_target(
    document: Any,
    *,
    uri: str,
    operation: str | None,
    channel: str | None,
    server: Mapping[str, Any] | None,
    protocol: str | None,
    action: str,
    where: str,
) -> AsyncApiTarget:
    """The target of a call on ``document`` (fetched from ``uri``); see the module docstring.

    ``action`` is ``publish`` or ``subscribe``. Raises a configuration `WorkflowError` naming
    what the document lacks.
    """
    doc = _Document(document if isinstance(document, Mapping) else {}, uri, where)
    if not isinstance(document, Mapping):
        raise doc.error("it is not an object")
    version = _version(document, doc)
    if operation is None and channel is None:
        raise doc.error("the call names neither an operation nor a channel; set one")
    if version.startswith("3."):
        key, found, op = _v3_channel(doc, operation, channel)
        address = found.get("address")
        address = str(address) if address is not None else key
    else:
        key, found, op = _v2_channel(doc, operation, channel, action)
        address = key
    if "{" in address:
        raise doc.error(
            f"the address {address!r} of channel {key!r} has parameters, which a call cannot "
            "set; use a channel with a fixed address"
        )
    names = _server_names(doc, version, found)
    name = _pick_server(doc, names, server, protocol)
    variables = (server or {}).get("variables")
    given = variables if isinstance(variables, Mapping) else {}
    server_protocol, url, server_object = _server_url(doc, version, name, given)
    family = _FAMILIES.get(server_protocol, server_protocol)
    message = _first_message(doc, version, found, op)
    correlation = doc.resolve(message.get("correlationId"))
    location = correlation.get("location") if isinstance(correlation, Mapping) else None
    content_type = message.get("contentType") or document.get("defaultContentType")
    return AsyncApiTarget(
        version=version,
        server=name,
        protocol=server_protocol,
        url=url,
        channel=key,
        address=address,
        bindings={
            "server": _bindings(doc, server_object, family),
            "channel": _bindings(doc, found, family),
            "operation": _bindings(doc, op, family),
            "message": _bindings(doc, message, family),
        },
        content_type=str(content_type) if content_type else None,
        correlation=str(location) if isinstance(location, str) else None,
    )


def correlation_id(location: str, message: Mapping[str, Any]) -> Any:
    """The value at a correlation ``location`` (``$message.header#/a/b`` or
    ``$message.payload#/x``) in a received message; None when it is not there."""
    source, _, pointer = location.partition("#")
    node: Any
    if source.strip() == "$message.header":
        node = message.get("headers")
    elif source.strip() == "$message.payload":
        node = message.get("payload")
    else:
        return None
    for raw in pointer.split("/")[1:]:
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node
