"""The official DSL examples run by one in-process service, its calls sent to the stand-ins.

`serve_examples` runs the whole service (`tests.support.service`) in a thread of its own (its
own Trio run) on a database of its own, with ``host_map`` pointing every host the examples name
at `ExampleHosts`, the ``files`` secrets provider on a folder the tests write, and polls short
enough that timers, schedules and database events move within a test. Tests drive it over its
HTTP API like any client (`ExampleService`): an example is registered under its file name
(``?id=``; several examples share a document name) exactly as it is written, and events are
published through ``POST /v1/events``, the service's event path (router, inbox, waiting
instances, ``schedule.on`` starts).

One service serves the whole module, so a test leaves nothing behind that another could see:
``finish`` cancels the instances it left unfinished and deletes the definitions that start
instances on their own (``schedule``).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import httpx
import trio

from tests.support.events import INSTANCES, STRUCTURED_HEADERS, cloud_event
from tests.support.example_hosts import ExampleHosts
from tests.support.service import InProcessService, open_service
from tests.support.services import psql
from tests.support.spec import require_spec

__all__ = ["DEFINITIONS", "TERMINAL", "ExampleService", "definition_id", "serve_examples"]

DEFINITIONS = "/v1/workflow-definitions"
TERMINAL = ("completed", "faulted", "cancelled")
#: Timers, schedules and the database event source look every 0.2 s (the defaults are 1 s).
FAST = {"scheduler.pollInterval": "0.2s", "eventProcessing.pollInterval": "0.2s"}
_STARTUP_LIMIT = 60.0
_WAIT_LIMIT = 20.0
_NO_INPUT: Any = object()


def definition_id(stem: str) -> str:
    """The id an example is registered under: its file name (a space becomes ``-``)."""
    return stem.replace(" ", "-")


@attrs.define(eq=False)
class ExampleService:
    """A client of the running service, and what a test needs around it."""

    api: httpx.Client
    database_url: str
    hosts: ExampleHosts
    secrets: Path
    _registered: set[str] = attrs.field(factory=set, init=False)
    _started: list[str] = attrs.field(factory=list, init=False)
    _scheduled: set[str] = attrs.field(factory=set, init=False)

    def register(self, stem: str) -> None:
        """Register the official example ``stem`` as it is written (once per module)."""
        if stem in self._registered:
            return
        text = (require_spec() / "examples" / f"{stem}.yaml").read_text(encoding="utf-8")
        response = self.api.post(
            DEFINITIONS,
            params={"id": definition_id(stem)},
            content=text,
            headers={"Content-Type": "application/yaml"},
        )
        assert response.status_code == 201, response.text
        self._registered.add(stem)
        if "\nschedule:" in text:
            self._scheduled.add(stem)

    def start(self, stem: str, input: Any = _NO_INPUT) -> str:
        """Start an instance of the example ``stem`` (registered first); its id."""
        self.register(stem)
        body: dict[str, Any] = {"workflowDefinitionId": definition_id(stem)}
        if input is not _NO_INPUT:
            body["input"] = input
        response = self.api.post(INSTANCES, json=body)
        assert response.status_code == 201, response.text
        instance_id: str = response.json()["id"]
        self._started.append(instance_id)
        return instance_id

    def instance(self, instance_id: str) -> dict[str, Any]:
        body: dict[str, Any] = self.api.get(f"{INSTANCES}/{instance_id}").json()
        return body

    def ended(self, instance_id: str) -> dict[str, Any]:
        """The instance once it ended (long poll); fails if it has not within 20 s."""
        response = self.api.get(f"{INSTANCES}/{instance_id}", params={"wait": "20s"})
        body: dict[str, Any] = response.json()
        assert body["status"] in TERMINAL, body
        return body

    def wait_status(self, instance_id: str, status: str) -> dict[str, Any]:
        """Poll the instance until it has ``status`` (at most 20 s); returns it then."""
        deadline = time.monotonic() + _WAIT_LIMIT
        while (body := self.instance(instance_id))["status"] != status:
            assert time.monotonic() < deadline, f"not {status} within {_WAIT_LIMIT:g}s: {body}"
            time.sleep(0.05)  # nothing to wait on across the API
        return body

    def history(self, instance_id: str) -> list[dict[str, Any]]:
        """The instance's history entries (``kind``, ``taskRef``, ``at``, ``details``)."""
        response = self.api.get(f"{INSTANCES}/{instance_id}/history", params={"limit": 500})
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    def steps(self, instance_id: str) -> list[tuple[str, str | None]]:
        """The instance's history as (kind, task reference), oldest first."""
        return [(item["kind"], item["taskRef"]) for item in self.history(instance_id)]

    def publish(
        self, event_type: str, data: Any, *, source: str = "/tests/official-examples", **extra: str
    ) -> dict[str, Any]:
        """POST one CloudEvent (a new id, ``extra`` attributes) to ``/v1/events``; returns
        the 202 receipt (``deliveredTo``, ``startedInstances``)."""
        event = cloud_event(event_type, data, event_id=str(uuid.uuid4()), source=source)
        event.update(extra)
        response = self.api.post(
            "/v1/events", content=json.dumps(event), headers=STRUCTURED_HEADERS
        )
        assert response.status_code == 202, response.text
        receipt: dict[str, Any] = response.json()
        self._started.extend(receipt["startedInstances"])
        return receipt

    def sql(self, query: str) -> str:
        """``query`` on the service's database (``psql -tA`` output)."""
        return psql(query, database_url=self.database_url)

    def wait_sql(self, query: str) -> str:
        """Poll ``query`` until its output is not empty (at most 20 s); returns it."""
        deadline = time.monotonic() + _WAIT_LIMIT
        while not (found := self.sql(query)):
            assert time.monotonic() < deadline, f"nothing within {_WAIT_LIMIT:g}s: {query}"
            time.sleep(0.05)  # what the service does in the database signals nothing here
        return found

    def write_secret(self, name: str, value: Any) -> None:
        """Set secret ``name`` (JSON) for the ``files`` provider (read at each use)."""
        (self.secrets / name).write_text(json.dumps(value), encoding="utf-8")

    def finish(self) -> None:
        """Cancel what this test left unfinished and delete its scheduled definitions."""
        for instance_id in self._started:
            if self.instance(instance_id)["status"] not in TERMINAL:
                response = self.api.post(f"{INSTANCES}/{instance_id}/cancel")
                assert response.status_code in (200, 409), response.text
        self._started.clear()
        for stem in self._scheduled:
            response = self.api.delete(f"{DEFINITIONS}/{definition_id(stem)}")
            assert response.status_code in (200, 204), response.text
            self._registered.discard(stem)
        self._scheduled.clear()
        self.hosts.forget()


@contextmanager
def serve_examples(
    database_url: str, hosts: ExampleHosts, secrets: Path, settings: dict[str, Any]
) -> Iterator[ExampleService]:
    """Run the service in a thread until the block exits (``settings`` added to `FAST`)."""
    ready = threading.Event()
    shared: dict[str, Any] = {}

    async def serve() -> None:
        stop = trio.Event()
        merged = {**FAST, **settings}
        async with open_service(database_url, settings=merged, host_map=hosts.host_map) as app:
            shared.update(app=app, stop=stop, token=trio.lowlevel.current_trio_token())
            ready.set()
            await stop.wait()

    def main() -> None:
        try:
            trio.run(serve)
        except BaseException as exc:  # reported to the test thread, which raises it
            shared["error"] = exc
        finally:
            ready.set()

    thread = threading.Thread(target=main, name="examples-service", daemon=True)
    thread.start()
    if not ready.wait(_STARTUP_LIMIT) or "error" in shared:
        raise RuntimeError("the examples' service did not start") from shared.get("error")
    app: InProcessService = shared["app"]
    try:
        with httpx.Client(base_url=f"{app.addresses.api[0]}/api", timeout=30) as api:
            yield ExampleService(api=api, database_url=database_url, hosts=hosts, secrets=secrets)
    finally:
        trio.from_thread.run_sync(shared["stop"].set, trio_token=shared["token"])
        thread.join(30)
