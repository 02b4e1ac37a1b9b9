"""The official ``run.container`` examples run unmodified as durable instances on real podman.

Their images (``hello-world``, ``alpine``) are the busybox-static stand-ins of
``tests.support.containers``; no registry is reachable here, so the example that asks for
``pullPolicy: always`` faults with the communication error naming the pull, as it does on
any service that cannot reach the image's registry. All ten run at once in one runtime.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import trio

from tests.support.containers import GREETING, Podman
from tests.support.instances import open_runtime
from tests.support.spec import require_spec
from workflow_orchestrator.adapters.containers import LABEL, open_container_runtime
from workflow_orchestrator.config import ContainerSettings
from workflow_orchestrator.dsl.runtime import ServiceAdapters
from workflow_orchestrator.dsl.validation import load_document
from workflow_orchestrator.instances import StartRequest
from workflow_orchestrator.storage.instances import InstanceStatus

pytestmark = pytest.mark.integration

EXAMPLES = (
    "run-container",
    "run-container-cleanup-always",
    "run-container-cleanup-eventually",
    "run-container-stdin-and-arguments",
    "run-container-with-name",
    "run-container-with-pull-policy",
    "run-return-all",
    "run-return-code",
    "run-return-none",
    "run-return-stderr",
)
HELLO = (
    f"\n{GREETING}\nThis message shows that your installation appears to be working correctly.\n"
)


@pytest.fixture
def started(podman: Podman) -> Iterator[list[uuid.UUID]]:
    """The ids of the instances a test starts; their containers are removed afterwards."""
    ids: list[uuid.UUID] = []
    yield ids
    podman.remove_labelled(f"{LABEL}.instance={i}" for i in ids)


def containers_of(podman: Podman, instance_id: uuid.UUID) -> list[dict[str, Any]]:
    """``container inspect`` of the containers of an instance."""
    return [dict(c) for c in podman.labelled(f"{LABEL}.instance={instance_id}")]


async def test_the_official_container_examples(podman: Podman, started: list[uuid.UUID]) -> None:
    """Each example completes with the output its ``return`` asks for, keeps or removes its
    container as its lifetime says, names it as asked; the always-pull one faults naming the
    unreachable registry."""
    spec = require_spec()
    settings = ContainerSettings(runtime="podman")
    async with (
        open_container_runtime(
            settings, max_output=1 << 20, environment=podman.environment
        ) as containers,
        open_runtime(services=ServiceAdapters(callers={"container": containers.call})) as harness,
    ):
        ids: dict[str, uuid.UUID] = {}
        for example in EXAMPLES:
            document = load_document((spec / "examples" / f"{example}.yaml").read_text())
            harness.store.register(example, "0.1.0", document)
            record, _ = await harness.runtime.start_instance(StartRequest(definition_id=example))
            ids[example] = record.instance_id
            started.append(record.instance_id)
        with trio.fail_after(120):
            for instance_id in ids.values():
                await harness.wait_status(
                    instance_id, InstanceStatus.COMPLETED, InstanceStatus.FAULTED
                )
        records = {name: harness.store.stored(i).record for name, i in ids.items()}

    def output(example: str) -> Any:
        record = records[example]
        assert record.status == InstanceStatus.COMPLETED, (example, record.error)
        return record.output

    assert output("run-container") == HELLO
    assert output("run-container-cleanup-always") == HELLO
    assert output("run-container-cleanup-eventually") == HELLO
    assert output("run-container-with-name") == HELLO
    assert output("run-container-stdin-and-arguments") == (
        "STDIN was: Hello World\nARGS are Foo Bar\n"
    )
    assert output("run-return-all") == {"code": 0, "stdout": HELLO, "stderr": ""}
    assert output("run-return-code") == 0
    assert output("run-return-none") is None
    assert output("run-return-stderr") == ""

    pulled = records["run-container-with-pull-policy"]
    assert pulled.status == InstanceStatus.FAULTED
    error = pulled.error or {}
    assert error["type"].endswith("/errors/communication"), error
    assert error["instance"] == "/do/0/runContainer"
    assert error["detail"].startswith(
        "the image 'hello-world' could not be pulled (pullPolicy: always): the registry must be "
        "reachable from podman, or the image present locally and pullPolicy ifNotPresent or "
        "never (podman: "
    ), error

    # Lifetimes: always removed; eventually kept with its time; never (the default) kept.
    assert containers_of(podman, ids["run-container-cleanup-always"]) == []
    (eventually,) = containers_of(podman, ids["run-container-cleanup-eventually"])
    assert eventually["Config"]["Labels"][f"{LABEL}.cleanup-after"] == "1800"
    (kept,) = containers_of(podman, ids["run-container"])
    assert kept["Config"]["Labels"][f"{LABEL}.cleanup"] == "never"
    assert not kept["State"]["Running"]
    # The name expression reads .workflow and .task of the task's input, which has neither.
    (named,) = containers_of(podman, ids["run-container-with-name"])
    assert named["Name"].lstrip("/") == "hello-null-null-null", json.dumps(named["Name"])
