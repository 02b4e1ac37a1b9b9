"""What an AsyncAPI call asks of a broker, and messages to and from bytes.

`AsyncApiRequest` is a `ServiceCall` of kind ``asyncapi`` read once (see
``dsl.runtime._asyncapi_call`` for its arguments): the protocol, the server endpoint after
``host_map``, the channel address, the protocol's bindings, the credentials and the message to
publish. A received message becomes ``{"payload", "headers", "correlationId"}`` (the key only
when the transport carries one).

Payloads: a string is sent as UTF-8 text (``text/plain`` unless the document names a content
type), any other JSON value as JSON (``application/json``). A body is read back as JSON when
its content type says JSON or when it parses as JSON, else as UTF-8 text, else (binary) as
base64 text. Sizes are checked against ``maxMessageSize`` both ways.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

import attrs

from workflow_orchestrator.adapters.asyncapi._network import Endpoint, parse_endpoint
from workflow_orchestrator.dsl import ErrorType, Problem, WorkflowError
from workflow_orchestrator.dsl.runtime import ServiceCall

__all__ = [
    "SIZE_SETTING",
    "AsyncApiRequest",
    "Credentials",
    "decode_body",
    "encode_payload",
    "failure",
    "header_text",
    "too_large",
]

SIZE_SETTING = "workflows.calls.asyncapi.maxMessageSize"
_TLS = frozenset({"amqps", "kafka-secure", "wss", "secure-mqtt"})


def failure(
    kind: str, detail: str, where: str, *, status: int | None = None, title: str | None = None
) -> WorkflowError:
    """The workflow error of a failed call at ``where``."""
    return WorkflowError(
        Problem.standard(kind, status=status, title=title, detail=detail, instance=where)
    )


def too_large(what: str, size: int, limit: int, where: str) -> WorkflowError:
    """A message over ``maxMessageSize``."""
    return failure(
        ErrorType.COMMUNICATION,
        f"{what} has {size:,} bytes, more than the limit of {limit:,} set by {SIZE_SETTING}; "
        "send smaller messages or raise the setting",
        where,
        status=413,
        title="Message Too Large",
    )


@attrs.frozen(kw_only=True)
class Credentials:
    """A user and password (basic) or a token (bearer) from the call's ``authentication``."""

    scheme: str
    user: str = ""
    password: str = ""
    token: str = ""

    def header(self) -> str:
        """The HTTP ``Authorization`` value of these credentials."""
        if self.scheme == "bearer":
            return f"Bearer {self.token}"
        raw = f"{self.user}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


def _credentials(value: Any, where: str) -> Credentials | None:
    if not isinstance(value, Mapping):
        return None
    scheme = str(value.get("scheme", "")).lower()
    parameter = str(value.get("parameter", ""))
    if scheme == "bearer":
        return Credentials(scheme="bearer", token=parameter)
    if scheme == "basic":
        try:
            user, _, password = base64.b64decode(parameter).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise failure(
                ErrorType.CONFIGURATION, "the basic credentials are not user:password", where
            ) from None
        return Credentials(scheme="basic", user=user, password=password)
    raise failure(
        ErrorType.CONFIGURATION,
        f"{scheme!r} authentication cannot be carried by call: asyncapi; use basic or bearer",
        where,
    )


def _shown(url: str) -> str:
    """``url`` without credentials."""
    try:
        return parse_endpoint(url).display()
    except ValueError:
        return url


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


@attrs.frozen(kw_only=True)
class AsyncApiRequest:
    """One ``call: asyncapi`` for a broker; see the module docstring."""

    action: str
    protocol: str
    url: str  # as the document wrote it (messages name it, without credentials)
    endpoint: Endpoint  # where to connect, after host_map
    address: str
    bindings: Mapping[str, Any]
    content_type: str | None
    payload: Any
    headers: Mapping[str, Any]
    credentials: Credentials | None
    key: str
    where: str

    @classmethod
    def read(cls, request: ServiceCall, mapped: str) -> AsyncApiRequest:
        """``request``'s arguments; ``mapped`` is its URL after ``host_map``."""
        arguments = request.arguments
        where = request.task_ref
        url = str(arguments.get("url", ""))
        try:
            endpoint = parse_endpoint(mapped)
        except ValueError as exc:
            raise failure(
                ErrorType.CONFIGURATION, f"the server URL of the AsyncAPI document: {exc}", where
            ) from None
        message = _mapping(arguments.get("message"))
        content_type = arguments.get("contentType")
        return cls(
            action=str(arguments.get("action", "publish")),
            protocol=str(arguments.get("protocol", "")).lower(),
            url=_shown(url),
            endpoint=endpoint,
            address=str(arguments.get("address", "")),
            bindings=_mapping(arguments.get("bindings")),
            content_type=str(content_type) if content_type else None,
            payload=message.get("payload"),
            headers=_mapping(message.get("headers")),
            credentials=_credentials(arguments.get("authorization"), where),
            key=request.key,
            where=where,
        )

    @property
    def tls(self) -> bool:
        """Whether the protocol (or the mapped URL's scheme) asks for TLS."""
        return self.protocol in _TLS or self.endpoint.scheme in _TLS

    def binding(self, part: str) -> Mapping[str, Any]:
        """The protocol binding of ``part`` (server, channel, operation, message)."""
        return _mapping(self.bindings.get(part))

    def describe(self) -> str:
        """``'<address>' on <server URL>`` for messages (the document's URL, no credentials)."""
        return f"{self.address!r} on {self.url}"


def encode_payload(payload: Any, content_type: str | None) -> tuple[bytes, str]:
    """The body and content type of a payload (see the module docstring)."""
    if isinstance(payload, str):
        return payload.encode("utf-8"), content_type or "text/plain; charset=utf-8"
    body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
    return body, content_type or "application/json"


def decode_body(body: bytes, content_type: str | None) -> Any:
    """A received body as JSON, text or base64 (see the module docstring)."""
    if not body:
        return None
    media = (content_type or "").split(";")[0].strip().lower()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(body).decode("ascii")
    if media.endswith("json") or not media:
        try:
            return json.loads(text)
        except (ValueError, RecursionError):
            return text
    return text


def header_text(value: Any) -> str:
    """A header value as text: strings as they are, other values as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))
