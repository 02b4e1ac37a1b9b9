"""Runtime options of the interpreter: identity of the runtime and what it may do."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from workflow_orchestrator.dsl.runtime._limits import RuntimeLimits


@attrs.frozen(kw_only=True)
class RuntimeOptions:
    """How an interpreter behaves; shared by all instances of a runtime.

    ``lifecycle_events`` turns the spec's workflow/task lifecycle CloudEvents on (the default);
    ``event_source`` is their ``source``. ``http_timeout`` bounds every outbound call in seconds.
    ``limits`` are the per-instance budgets (``workflows.limits``).
    ``max_document_size`` bounds a document a workflow fetches (a ``schema.resource``, an
    OpenAPI document, an A2A agent card, a cataloged function's document): its body, and what
    its YAML aliases expand to, in bytes.
    ``enabled_calls`` are the calls beyond ``http``/``openapi`` that configuration enables
    (``workflows.calls.<kind>.enabled``); the interpreter checks it for the calls it performs
    itself over the HTTP effect (``a2a``), adapters answer for the others. ``a2a_timeout``
    bounds one A2A request in seconds (``workflows.calls.a2a.timeout``), a streamed answer
    included. ``default_catalog`` is the root URI of the catalog named ``default``
    (``workflows.defaultCatalog``; empty: none, unless a definition declares one).
    OpenAPI document): its body, and what its YAML aliases expand to, in bytes.
    ``asyncapi_max_messages`` bounds the messages one AsyncAPI subscription keeps (0: no
    bound; ``workflows.calls.asyncapi.maxMessages``).
    """

    runtime_name: str = "workflow-orchestrator"
    runtime_version: str = "0"
    runtime_metadata: Mapping[str, Any] = attrs.field(factory=dict)
    event_source: str = "urn:workflow-orchestrator"
    lifecycle_events: bool = True
    http_timeout: float = 30.0
    process_timeout: float = 60.0
    limits: RuntimeLimits = attrs.field(factory=RuntimeLimits)
    max_document_size: int = 10 * 1024 * 1024
    enabled_calls: frozenset[str] = frozenset({"grpc", "asyncapi", "a2a", "mcp"})
    a2a_timeout: float = 30.0
    default_catalog: str = ""
    asyncapi_max_messages: int = 1000
