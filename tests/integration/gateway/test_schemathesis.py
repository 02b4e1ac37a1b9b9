"""Schemathesis against the in-process service: a few hundred requests, not one 5xx.

The short run of ``benchmarks/schemathesis_run.py`` (which sends 10,000 and more): schemathesis
reads ``GET /api/openapi.json`` from the running service and sends the documented examples,
coverage cases (boundaries, negative values, wrong media types, unexpected methods), fuzzed
requests and stateful sequences along the document's links (register a definition, start an
instance of it, read, command and page its history). Schemathesis runs in a worker thread
(it is synchronous); the service runs in the test's Trio run.
"""

from __future__ import annotations

import functools

import pytest
import trio

from tests.support.schemathesis_campaign import run_campaign
from tests.support.service import open_service, register_yaml

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# The definition the document's examples start (as in its requestBody examples).
GREETING = """\
document: {dsl: '1.0.3', namespace: demo, name: greeting, version: '1.0.0'}
do:
  - greet:
      set:
        message: ${ "hello " + .name }
"""


async def test_schemathesis_finds_no_server_error(database_url: str) -> None:
    with trio.fail_after(240):
        async with open_service(database_url) as app:
            await register_yaml(app, GREETING)
            url = f"{app.api.base_url}/openapi.json"
            run = functools.partial(
                run_campaign,
                url,
                max_examples=8,
                stateful_steps=10,
                workers=2,
                seed=13,
                max_time=20,
                request_timeout=30,
            )
            result = await trio.to_thread.run_sync(run)
    assert result.requests >= 300, result.report()
    assert result.server_errors == (), result.report()
    # Both kinds of request were made: answers that worked and refusals of bad input.
    assert result.by_class.get("2xx", 0) > 0 and result.by_class.get("4xx", 0) > 0
    # The stateful sequences reached the instances: one was started (201) and read back.
    assert result.statuses.get(201, 0) > 0, result.report()
