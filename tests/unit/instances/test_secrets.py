"""``$secrets`` in durable instances: grants checked at run time, values never stored, and
processes only for the namespaces allowed."""

from __future__ import annotations

import trio
import trio.testing

from tests.support.instances import open_runtime
from workflow_orchestrator.config import SecretGrant
from workflow_orchestrator.instances import EventOptions, StartRequest
from workflow_orchestrator.security import EnvironmentSecrets, NamespacePolicy, SecretStore
from workflow_orchestrator.storage.instances import InstanceStatus

PASSWORD = "pg-very-s3cret"
TOKEN = "tok-0123456789"

READER = """\
use:
  secrets: [dbpass, api]
do:
  - tell:
      emit:
        event:
          with: {source: test, type: com.example.told, data: {p: '${ $secrets.dbpass }'}}
  - read:
      set:
        s: '${ $secrets.dbpass }'
        header: '${ "Bearer " + $secrets.api.token }'
  - pause:
      wait: {seconds: 3}
  - last:
      set: '${ . + {done: true} }'
"""

SHELL = """\
do:
  - run-it:
      run:
        shell: {command: echo}
"""

STORE = SecretStore(
    providers=(
        EnvironmentSecrets(
            environ={
                "WORKFLOW_SECRET_DBPASS": PASSWORD,
                "WORKFLOW_SECRET_API": f'{{"token": "{TOKEN}"}}',
            }
        ),
    )
)


async def test_a_granted_secret_runs_and_no_stored_row_holds_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The run uses the values (its output has them redacted), and neither the snapshots,
    the output, the history nor the outbox hold them, across a park and a resume."""
    policy = NamespacePolicy.from_grants([SecretGrant(namespace="test", secrets=("dbpass", "api"))])
    async with open_runtime(
        secrets=STORE,
        policy=policy,
        event_options=EventOptions(emit_destination="business", lifecycle_to_outbox=True),
    ) as harness:
        harness.register("reader", READER)
        record, _ = await harness.runtime.start_instance(StartRequest(definition_id="reader"))
        await harness.wait_status(record.instance_id, InstanceStatus.WAITING)
        waiting = repr(harness.store.stored(record.instance_id))
        await harness.wait_status(record.instance_id, InstanceStatus.COMPLETED)
        stored = harness.store.stored(record.instance_id)
    assert stored.record.output == {
        "s": "[redacted secret dbpass]",
        "header": "Bearer [redacted secret api]",
        "done": True,
    }
    everything = waiting + repr(stored) + repr(harness.store.outbox)
    assert PASSWORD not in everything and TOKEN not in everything
    assert "[redacted secret dbpass]" in repr(harness.store.outbox)


async def test_an_ungranted_secret_faults_naming_the_setting(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Settings changed since registration: the read faults with an authorization error
    naming security.secrets.grants."""
    policy = NamespacePolicy.from_grants([SecretGrant(namespace="other", secrets=("dbpass",))])
    async with open_runtime(secrets=STORE, policy=policy) as harness:
        harness.register("reader", READER)
        record, _ = await harness.runtime.start_instance(StartRequest(definition_id="reader"))
        await harness.wait_status(record.instance_id, InstanceStatus.FAULTED)
        error = harness.store.stored(record.instance_id).record.error
    assert error["type"].endswith("/authorization")
    assert error["detail"] == (
        "secret 'dbpass' is not granted to namespace 'test'; grant it in security.secrets.grants"
    )


async def test_a_missing_secret_names_where_it_was_looked_for(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A granted secret no provider holds faults naming the places looked in."""
    policy = NamespacePolicy.from_grants([SecretGrant(namespace="*", secrets=("dbpass", "api"))])
    empty = SecretStore(providers=(EnvironmentSecrets(environ={}),))
    async with open_runtime(secrets=empty, policy=policy) as harness:
        harness.register("reader", READER)
        record, _ = await harness.runtime.start_instance(StartRequest(definition_id="reader"))
        await harness.wait_status(record.instance_id, InstanceStatus.FAULTED)
        error = harness.store.stored(record.instance_id).record.error
    assert error["detail"] == (
        "secret 'dbpass' is not defined; looked in: env WORKFLOW_SECRET_DBPASS "
        "(security.secrets.providers lists where secrets come from)"
    )


async def test_a_process_outside_the_allowed_namespaces_faults(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """workflows.run.namespaces checked at run time: a configuration error naming it."""
    policy = NamespacePolicy.from_grants([], ["ops"])
    async with open_runtime(policy=policy) as harness:
        harness.register("shell", SHELL)
        record, _ = await harness.runtime.start_instance(StartRequest(definition_id="shell"))
        await harness.wait_status(record.instance_id, InstanceStatus.FAULTED)
        error = harness.store.stored(record.instance_id).record.error
    assert error["type"].endswith("/configuration")
    assert error["detail"] == (
        "namespace 'test' may not run run.shell processes; add it to workflows.run.namespaces "
        "in the configuration"
    )
