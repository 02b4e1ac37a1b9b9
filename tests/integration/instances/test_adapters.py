"""The service hands its adapters to the instance runtime: processes and the expression sandbox."""

from __future__ import annotations

import pytest
import trio

from tests.support.events import INSTANCES, start, wait_for
from tests.support.http_stub import run_http_stub
from tests.support.service import open_service, register_yaml

pytestmark = pytest.mark.integration

SHELL_AND_SANDBOX = """\
document: {dsl: '1.0.3', namespace: demo, name: sheller, version: '1.0.0'}
do:
  - echo:
      run:
        shell: {command: 'echo hello'}
        return: all
  - total:
      set:
        out: ${ .stdout }
        sum: '${ reduce ([.code, 1, 2] | .[]) as $x (0; . + $x) }'
"""


async def test_shell_task_and_sandboxed_expression_run_in_the_service(database_url: str) -> None:
    """With run.shell enabled a shell task runs, and an expression that needs the sandbox too."""
    with trio.fail_after(60):
        async with open_service(database_url, settings={"workflows.run.shell": True}) as app:
            await register_yaml(app, SHELL_AND_SANDBOX)
            instance_id = await start(app, "sheller")
            done = (await app.api.get(f"{INSTANCES}/{instance_id}", params={"wait": "30s"})).json()
    assert done["status"] == "completed", done
    assert done["output"] == {"out": "hello\n", "sum": 3}


FETCHER = """\
document: {{dsl: '1.0.3', namespace: demo, name: {name}, version: '1.0.0'}}
do:
  - fetch:
      call: http
      with:
        method: get
        endpoint: {url}
"""


async def test_a_response_over_max_response_size_faults_only_its_instance(
    database_url: str,
) -> None:
    """call: http to a body larger than workflows.maxResponseSize ends that instance faulted
    with a communication error naming the limit and the setting; a call within it completes."""
    with run_http_stub() as stub, trio.fail_after(60):
        async with open_service(database_url, settings={"workflows.maxResponseSize": "2KB"}) as app:
            await register_yaml(app, FETCHER.format(name="big", url=f"{stub.url}/size/100000"))
            await register_yaml(app, FETCHER.format(name="small", url=f"{stub.url}/size/2048"))
            big = await start(app, "big")
            small = await start(app, "small")
            faulted = await wait_for(app, big, "faulted")
            completed = await wait_for(app, small, "completed")
    error = faulted["error"]
    assert error["type"] == "https://serverlessworkflow.io/spec/1.0.0/errors/communication"
    assert error["status"] == 502
    assert error["detail"] == (
        f"GET {stub.url}/size/100000 answered with a body of 100000 bytes, more than the limit "
        "of 2048 bytes; raise the setting workflows.maxResponseSize or ask for less"
    )
    assert completed["output"] == "x" * 2046
