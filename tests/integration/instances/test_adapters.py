"""The service hands its adapters to the instance runtime: processes and the expression sandbox."""

from __future__ import annotations

import pytest
import trio

from tests.support.events import INSTANCES, start
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
