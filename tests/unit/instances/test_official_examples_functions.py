"""The official examples of functions and extensions run in durable instances, over the real
HTTP client, with their hosts mapped to a local server: call-custom-function-cataloged (a
function document from the catalog, run as a Python script), call-custom-function-inline and
mock-service-extension."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import trio

from tests.support.document_server import Document, DocumentServer, serve_documents
from tests.support.instances import Runtime, open_runtime
from tests.support.spec import SPEC, require_spec
from workflow_orchestrator.adapters import PooledHttpClient, run_local_process
from workflow_orchestrator.config import OutboundSettings
from workflow_orchestrator.dsl.validation import load_document
from workflow_orchestrator.instances import ConfiguredProcesses, StartRequest
from workflow_orchestrator.security import OutboundPolicy
from workflow_orchestrator.storage.instances import InstanceStatus

LOOPBACK = OutboundPolicy.from_settings(OutboundSettings(allow=("127.0.0.0/8", "::1")))
LOG_PATH = "/serverlessworkflow/catalog/main/functions/log/1.0.0/function.yaml"

# What serverlessworkflow/catalog's functions/log/1.0.0/function.yaml does, written for DSL
# 1.0.3: the published document passes its script's arguments as a map (an older draft of the
# DSL), which 1.0.3 refuses (run.script.arguments is a list). The same input and output
# schemas; a Python script that formats the message the same way and prints it.
LOG_FUNCTION = """\
input:
  schema:
    document:
      type: object
      properties:
        message: {type: string}
        level:
          type: string
          enum: [trace, debug, information, warning, error, critical]
          default: information
        context: {type: string}
        timestamp: {type: boolean}
        format:
          type: string
          default: '{TIMESTAMP} [{LEVEL}] ({CONTEXT}): {MESSAGE}'
      required: [message]
output:
  schema:
    document:
      type: string
      description: The formatted log message.
run:
  script:
    language: python
    arguments:
      - '${ .message }'
      - '${ .level // "information" }'
      - '${ .format // "{TIMESTAMP} [{LEVEL}] ({CONTEXT}): {MESSAGE}" }'
      - '${ if .timestamp then "yes" else "no" end }'
      - '${ .context // "" }'
    code: |
      import datetime
      import sys

      message, level, template, stamped, context = sys.argv[1:6]
      names = {"trace": "DEBUG", "debug": "DEBUG", "information": "INFO",
               "warning": "WARNING", "error": "ERROR", "critical": "CRITICAL"}
      now = datetime.datetime.now().astimezone().isoformat() if stamped == "yes" else ""
      line = template.replace("{TIMESTAMP}", now)
      if not context:
          line = line.replace(" ({CONTEXT})", "")
      line = line.strip(":").strip()
      line = line.replace("{LEVEL}", names[level]).replace("{CONTEXT}", context)
      print(line.replace("{MESSAGE}", message))
"""


def example(name: str) -> dict[str, Any]:
    """The official example ``name`` (fails in CI, skips elsewhere, without the spec)."""
    require_spec()
    return load_document((SPEC / "examples" / f"{name}.yaml").read_text(encoding="utf-8"))


@asynccontextmanager
async def durable(hosts: Mapping[str, str], *, scripts: bool = False) -> AsyncIterator[Runtime]:
    """A durable runtime whose HTTP goes through the real client to ``hosts``' local stand-ins
    and that runs run.script processes when ``scripts``."""
    processes = ConfiguredProcesses(run=run_local_process, script=scripts)
    async with (
        PooledHttpClient(host_map=hosts, default_timeout=10, policy=LOOPBACK) as client,
        open_runtime(processes=processes) as harness,
    ):
        harness.http.respond = client.http
        yield harness


async def run_example(harness: Runtime, name: str) -> Any:
    """Start the official example ``name`` and wait for its end; its stored record."""
    harness.store.register(name, "1.0.0", example(name))
    record, _ = await harness.runtime.start_instance(StartRequest(definition_id=name))
    with trio.fail_after(30):
        await harness.wait_status(
            record.instance_id, InstanceStatus.COMPLETED, InstanceStatus.FAULTED
        )
    return harness.store.stored(record.instance_id).record


def served(server: DocumentServer, path: str, content: Any) -> None:
    server.documents[path] = Document(json.dumps(content).encode())


async def test_the_cataloged_function_example_runs_the_catalogs_log_function() -> None:
    """The function document is fetched from the (mapped) raw GitHub URL, validated, and its
    Python script formats the log line; the output is the line."""
    with serve_documents() as server:
        server.documents[LOG_PATH] = Document(LOG_FUNCTION.encode(), "application/yaml")
        async with durable(
            {"https://raw.githubusercontent.com": server.url}, scripts=True
        ) as harness:
            record = await run_example(harness, "call-custom-function-cataloged")
    assert record.status == InstanceStatus.COMPLETED, record.error
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+[+-]\d\d:\d\d \[INFO\]: Hello, world!\n",
        record.output,
    ), record.output


async def test_the_cataloged_function_example_faults_where_scripts_are_disabled() -> None:
    """The catalog's function runs a script: a service without run.script says which
    setting enables it."""
    with serve_documents() as server:
        server.documents[LOG_PATH] = Document(LOG_FUNCTION.encode(), "application/yaml")
        async with durable({"https://raw.githubusercontent.com": server.url}) as harness:
            record = await run_example(harness, "call-custom-function-cataloged")
    assert record.status == InstanceStatus.FAULTED
    assert record.error["type"].endswith("/configuration")
    assert record.error["detail"] == (
        "run.script is disabled; set workflows.run.script: true in the configuration"
    )


async def test_the_inline_function_example_calls_the_petstore() -> None:
    """call-custom-function-inline: the declared function's input schema holds, and the call
    goes to the (mapped) petstore."""
    pet = {"id": 69, "name": "Rex", "status": "available"}
    with serve_documents() as server:
        served(server, "/v2/pet/69", pet)
        async with durable({"https://petstore.swagger.io": server.url}) as harness:
            record = await run_example(harness, "call-custom-function-inline")
    assert record.status == InstanceStatus.COMPLETED, record.error
    assert record.output == pet


async def test_the_mock_service_extension_example_calls_the_unmocked_service() -> None:
    """mock-service-extension: the call's endpoint is not the mocked service, so the extension
    does not apply and the (mapped) https://fake.com/sample answers."""
    answer = {"real": True, "id": str(uuid.uuid4())}
    with serve_documents() as server:
        served(server, "/sample", answer)
        async with durable({"https://fake.com": server.url}) as harness:
            record = await run_example(harness, "mock-service-extension")
    assert record.status == InstanceStatus.COMPLETED, record.error
    assert record.output == answer
