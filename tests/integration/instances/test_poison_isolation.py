"""A poison value hurts only its instance: instances whose data PostgreSQL cannot store run
beside innocent ones in the real service; only the poison ones fault, naming the value."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from tests.support.events import INSTANCES, start
from tests.support.fixed_http import serve_fixed_bodies
from tests.support.service import open_service, register_yaml

pytestmark = pytest.mark.integration

INNOCENT = """\
document: {dsl: '1.0.3', namespace: demo, name: innocent, version: '1.0.0'}
do:
  - first:
      set: {step: 1}
  - second:
      set: {step: 2, done: true}
"""

NUL_SETTER = """\
document: {dsl: '1.0.3', namespace: demo, name: nul-setter, version: '1.0.0'}
do:
  - poison:
      set:
        n: '${ "a\\u0000b" }'
"""

CALLER = """\
document: {{dsl: '1.0.3', namespace: demo, name: {name}, version: '1.0.0'}}
do:
  - fetch:
      call: http
      with:
        method: get
        endpoint: {url}
"""

NUL_TEXT = (
    "holds the NUL character (\\u0000), which PostgreSQL cannot store; remove it or encode "
    "the value (for example base64); the instance is faulted at its last committed state"
)


async def _final(app: Any, instance_id: str) -> dict[str, Any]:
    while True:
        body: dict[str, Any] = (
            await app.api.get(f"{INSTANCES}/{instance_id}", params={"wait": "30s"})
        ).json()
        if body["status"] in ("completed", "faulted", "cancelled"):
            return body


async def test_poison_instances_fault_alone_beside_innocent_ones(database_url: str) -> None:
    """40 poison instances (a NUL set by an expression; an HTTP response holding a NUL or NaN)
    started together with 40 innocent ones: every innocent instance completes, every poison
    one ends faulted with an error naming the value and where it is."""
    bodies = {"/nul": b'{"v": "a\\u0000b"}', "/nan": b'{"v": [1, NaN]}'}
    with serve_fixed_bodies(bodies) as root, trio.fail_after(120):
        async with open_service(database_url) as app:
            await register_yaml(app, INNOCENT)
            await register_yaml(app, NUL_SETTER)
            await register_yaml(app, CALLER.format(name="nul-caller", url=f"{root}/nul"))
            await register_yaml(app, CALLER.format(name="nan-caller", url=f"{root}/nan"))
            plan = ["innocent"] * 40 + ["nul-setter"] * 20 + ["nul-caller"] * 10
            plan += ["nan-caller"] * 10
            started: dict[str, list[str]] = {name: [] for name in set(plan)}

            async def one(name: str) -> None:
                started[name].append(await start(app, name))

            async with trio.open_nursery() as nursery:
                for name in plan:
                    nursery.start_soon(one, name)
            final: dict[str, list[dict[str, Any]]] = {name: [] for name in started}

            async def finish(name: str, instance_id: str) -> None:
                final[name].append(await _final(app, instance_id))

            async with trio.open_nursery() as nursery:
                for name, ids in started.items():
                    for instance_id in ids:
                        nursery.start_soon(finish, name, instance_id)
            alive = await app.management.get("/health/live")
    assert [i["status"] for i in final["innocent"]] == ["completed"] * 40
    assert all(i["output"] == {"step": 2, "done": True} for i in final["innocent"])
    poison = final["nul-setter"] + final["nul-caller"] + final["nan-caller"]
    assert [i["status"] for i in poison] == ["faulted"] * 40
    assert {i["error"]["title"] for i in poison} == {"Unstorable Data"}
    assert {i["error"]["detail"] for i in final["nul-setter"]} == {
        f"the workflow data at /output/n {NUL_TEXT}"
    }
    assert {i["error"]["detail"] for i in final["nul-caller"]} == {
        f"the workflow data at /frames/~1do/data/v {NUL_TEXT}"
    }
    assert {i["error"]["detail"] for i in final["nan-caller"]} == {
        "the workflow data at /frames/~1do/data/v/1 holds nan, which JSON does not allow; use a number, "
        "null or a string; the instance is faulted at its last committed state"
    }
    assert alive.status_code == 200
