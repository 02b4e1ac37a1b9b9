"""The arguments (``with``) of each kind of ``call``: http, openapi, grpc, asyncapi, a2a, mcp,
and functions (any other name: declared, cataloged or remote).

``CALL_ARGUMENTS`` maps the built-in call names to ``(noun, arguments)``; a function's
arguments are any mapping. The MCP arguments are open (the schema does not close them).
"""

from __future__ import annotations

from collections.abc import Mapping

from ._events import SUBSCRIPTION_ITERATOR
from ._nodes import Boolean, ByType, Choice, Integer, Node, Record, Text, show, text_matching
from ._policies import AUTHENTICATION, ENDPOINT, EXTERNAL_RESOURCE
from ._values import ANY, DURATION, EXPRESSION, MAPPING, TEXT, TEXT_LIST, TEXT_MAP

_OUTPUT = Choice(("raw", "content", "response"))

HTTP = Record(
    noun="an http call's 'with'",
    fields={
        "method": TEXT,
        "endpoint": ENDPOINT,
        "headers": ByType(
            noun="a mapping of header names to strings, or a runtime expression",
            mapping=TEXT_MAP,
            string=EXPRESSION,
        ),
        "body": ANY,
        "query": ByType(
            noun="a mapping of query parameters to strings, or a runtime expression",
            mapping=TEXT_MAP,
            string=EXPRESSION,
        ),
        "output": _OUTPUT,
        "redirect": Boolean(),
    },
    required=("method", "endpoint"),
)

OPENAPI = Record(
    noun="an openapi call's 'with'",
    fields={
        "document": EXTERNAL_RESOURCE,
        "operationId": TEXT,
        "parameters": MAPPING,
        "authentication": AUTHENTICATION,
        "output": _OUTPUT,
        "redirect": Boolean(),
    },
    required=("document", "operationId"),
)

GRPC = Record(
    noun="a grpc call's 'with'",
    fields={
        "proto": EXTERNAL_RESOURCE,
        "service": Record(
            noun="a grpc service",
            fields={
                "name": TEXT,
                "host": text_matching(
                    "a host name",
                    r"[a-zA-Z0-9](?:[a-zA-Z0-9-.]{0,61}[a-zA-Z0-9])?\Z",
                    lambda value: (
                        f"{show(value)} is not a host name; use letters, digits, "
                        "'-' and '.' (at most 63), such as grpc.example.com"
                    ),
                ),
                "port": Integer(minimum=0, maximum=65535),
                "authentication": AUTHENTICATION,
            },
            required=("name", "host"),
        ),
        "method": TEXT,
        "arguments": MAPPING,
    },
    required=("proto", "service", "method"),
)

_PROTOCOLS = [
    "amqp",
    "amqp1",
    "anypointmq",
    "googlepubsub",
    "http",
    "ibmmq",
    "jms",
    "kafka",
    "mercure",
    "mqtt",
    "mqtt5",
    "nats",
    "pulsar",
    "redis",
    "sns",
    "solace",
    "sqs",
    "stomp",
    "ws",
]
ASYNCAPI = Record(
    noun="an asyncapi call's 'with'",
    fields={
        "document": EXTERNAL_RESOURCE,
        "channel": TEXT,
        "operation": TEXT,
        "server": Record(
            noun="an AsyncAPI server",
            fields={"name": TEXT, "variables": MAPPING},
            required=("name",),
        ),
        "protocol": Choice(tuple(_PROTOCOLS)),
        "message": Record(
            noun="an AsyncAPI message", fields={"payload": MAPPING, "headers": MAPPING}
        ),
        "subscription": Record(
            noun="an AsyncAPI subscription",
            fields={
                "filter": EXPRESSION,
                "consume": Record(
                    noun="a consumption policy",
                    fields={
                        "for": DURATION,
                        "amount": Integer(),
                        "while": EXPRESSION,
                        "until": EXPRESSION,
                    },
                    exclusive=(("amount", "while", "until"),),
                ),
                "foreach": SUBSCRIPTION_ITERATOR,
            },
            required=("consume",),
        ),
        "authentication": AUTHENTICATION,
    },
    required=("document",),
    exclusive=(("operation", "channel"), ("message", "subscription")),
)

# The A2A methods DSL 1.0.3 names (the runtime's `call: a2a` accepts exactly these).
A2A_METHODS = (
    "message/send",
    "message/stream",
    "tasks/get",
    "tasks/list",
    "tasks/cancel",
    "tasks/resubscribe",
    "tasks/pushNotificationConfig/set",
    "tasks/pushNotificationConfig/get",
    "tasks/pushNotificationConfig/list",
    "tasks/pushNotificationConfig/delete",
    "agent/getAuthenticatedExtendedCard",
)
A2A = Record(
    noun="an a2a call's 'with'",
    fields={
        "agentCard": EXTERNAL_RESOURCE,
        "server": ENDPOINT,
        "method": Choice(A2A_METHODS),
        "parameters": ByType(
            noun="a mapping or a string",
            mapping=Record(noun="the parameters", closed=False, min_keys=1),
            string=TEXT,
        ),
    },
    required=("method",),
)

_MCP_METHODS = [
    "tools/list",
    "tools/call",
    "prompts/list",
    "prompts/get",
    "resources/list",
    "resources/read",
    "resources/templates/list",
]
MCP = Record(
    noun="an mcp call's 'with'",
    fields={
        "protocolVersion": TEXT,
        "method": Choice(tuple(_MCP_METHODS)),
        "parameters": ByType(noun="a mapping or a string", mapping=MAPPING, string=TEXT),
        "timeout": DURATION,
        "transport": Record(
            noun="an MCP transport",
            fields={
                "http": Record(
                    noun="an MCP HTTP transport",
                    fields={"endpoint": ENDPOINT, "headers": TEXT_MAP},
                    required=("endpoint",),
                    closed=False,
                ),
                "stdio": Record(
                    noun="an MCP stdio transport",
                    fields={"command": TEXT, "arguments": TEXT_LIST, "environment": TEXT_MAP},
                    required=("command",),
                    closed=False,
                ),
                "options": TEXT_MAP,
            },
            exclusive=(("http", "stdio"),),
            closed=False,
        ),
        "client": Record(
            noun="an MCP client",
            fields={"name": TEXT, "description": TEXT},
            required=("name", "version"),
            closed=False,
        ),
    },
    required=("method", "transport"),
    closed=False,
)

CALL_ARGUMENTS: Mapping[str, tuple[str, Node]] = {
    "http": ("an http call", HTTP),
    "openapi": ("an openapi call", OPENAPI),
    "grpc": ("a grpc call", GRPC),
    "asyncapi": ("an asyncapi call", ASYNCAPI),
    "a2a": ("an a2a call", A2A),
    "mcp": ("an mcp call", MCP),
}
FUNCTION_ARGUMENTS: Node = MAPPING
CALL_NAME: Text = TEXT
