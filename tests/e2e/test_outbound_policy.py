"""The outbound policy in the running service: a workflow cannot read the management port.

Issue 14 measured that a definition GETting ``http://127.0.0.1:<management port>/supervisor``
returned the supervision tree as its output. With the default ``security.outbound`` the call
faults the task with an error naming the setting; allowing loopback lets it through.
"""

from __future__ import annotations

import pytest
import trio

from tests.support.events import start, wait_for
from tests.support.service import open_service, register_yaml
from tests.support.services import free_port

pytestmark = pytest.mark.integration

SUPERVISOR_READER = """\
document: {{dsl: '1.0.3', namespace: demo, name: snoop, version: '1.0.0'}}
do:
  - fetch:
      call: http
      with:
        method: get
        endpoint: http://127.0.0.1:{port}/supervisor
"""


async def test_a_workflow_cannot_call_the_management_port_by_default(database_url: str) -> None:
    """GET of the service's own /supervisor faults with a 403 naming security.outbound.allow."""
    port = free_port()
    settings = {"server.managementPort": port, "security.outbound.allow": []}
    with trio.fail_after(60):
        async with open_service(database_url, settings=settings) as app:
            await register_yaml(app, SUPERVISOR_READER.format(port=port))
            faulted = await wait_for(app, await start(app, "snoop"), "faulted")
    error = faulted["error"]
    assert error["type"] == "https://serverlessworkflow.io/spec/1.0.0/errors/communication"
    assert error["status"] == 403
    assert error["title"] == "Outbound Call Refused"
    assert error["detail"] == (
        f"GET http://127.0.0.1:{port}/supervisor: the outbound policy refuses 127.0.0.1 port "
        f"{port}: 127.0.0.1 is a loopback address; add 127.0.0.1 or a range holding it (a host "
        "name does not open it) to security.outbound.allow if workflows must reach it"
    )
    assert "output" not in faulted or faulted["output"] is None


async def test_allowing_loopback_lets_the_call_through(database_url: str) -> None:
    """With allow: [127.0.0.1] the same workflow completes with the supervision tree."""
    port = free_port()
    settings = {"server.managementPort": port, "security.outbound.allow": ["127.0.0.1"]}
    with trio.fail_after(60):
        async with open_service(database_url, settings=settings) as app:
            await register_yaml(app, SUPERVISOR_READER.format(port=port))
            completed = await wait_for(app, await start(app, "snoop"), "completed")
    assert completed["output"]["path"] == "/user", completed["output"]
