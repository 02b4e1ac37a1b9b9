"""Registration refuses what a definition's namespace is not granted: a secret in
``use.secrets`` (security.secrets.grants) and a process (workflows.run.namespaces)."""

from __future__ import annotations

from pathlib import Path

import pytest

from workflow_orchestrator.config import RunTaskSettings, SecretGrant, WorkflowSettings
from workflow_orchestrator.definitions import check_definition_file, parse_submission
from workflow_orchestrator.dsl.validation import InvalidDefinition
from workflow_orchestrator.instances import validation_options
from workflow_orchestrator.security import NamespacePolicy

SECRETS = """\
document: {dsl: '1.0.3', namespace: shop, name: pay, version: '1.0.0'}
use:
  secrets: [shared, dbpass]
do:
  - read:
      set: {s: '${ $secrets.dbpass }'}
"""

SHELL = """\
document: {dsl: '1.0.3', namespace: shop, name: sh, version: '1.0.0'}
do:
  - first:
      set: {a: 1}
  - run-it:
      run:
        shell: {command: echo}
"""

POLICY = NamespacePolicy.from_grants(
    [
        SecretGrant(namespace="billing", secrets=("dbpass",)),
        SecretGrant(namespace="*", secrets=("shared",)),
    ],
    ["ops"],
)
WORKFLOWS = WorkflowSettings(run=RunTaskSettings(shell=True))


def test_a_secret_not_granted_to_the_namespace_is_refused_at_its_pointer() -> None:
    """dbpass is granted to billing only: 422 at /use/secrets/1 with the setting named;
    shared (granted to *) passes."""
    options = validation_options(WORKFLOWS, policy=POLICY)
    with pytest.raises(InvalidDefinition) as refused:
        parse_submission(SECRETS, options=options)
    assert [(p.pointer, p.rule, p.message) for p in refused.value.problems] == [
        (
            "/use/secrets/1",
            "secret-not-granted",
            "secret 'dbpass' is not granted to namespace 'shop'; grant it in "
            "security.secrets.grants (an entry with this namespace, or *, listing the secret), "
            "or remove it",
        )
    ]
    billing = SECRETS.replace("namespace: shop", "namespace: billing")
    assert parse_submission(billing, options=options).namespace == "billing"


def test_a_process_outside_workflows_run_namespaces_is_refused_at_the_task() -> None:
    """run.shell enabled, but only for ops: shop's task is refused at its pointer."""
    options = validation_options(WORKFLOWS, policy=POLICY)
    with pytest.raises(InvalidDefinition) as refused:
        parse_submission(SHELL, options=options)
    assert [(p.pointer, p.rule, p.message) for p in refused.value.problems] == [
        (
            "/do/1/run-it",
            "process-not-allowed",
            "namespace 'shop' may not run run.shell processes; add it to "
            "workflows.run.namespaces in the configuration, or remove this task",
        )
    ]
    ops = SHELL.replace("namespace: shop", "namespace: ops")
    assert parse_submission(ops, options=options).namespace == "ops"


def test_without_a_policy_nothing_is_refused_and_the_cli_warns(tmp_path: Path) -> None:
    """No policy (definitions validate without a configuration) checks no grant; with one,
    `definitions validate` reports the refusal as what will not run."""
    assert parse_submission(SECRETS, options=validation_options(WORKFLOWS)).name == "pay"
    path = tmp_path / "pay.yaml"
    path.write_text(SECRETS)
    report = check_definition_file(path, validation_options(WORKFLOWS, policy=POLICY))
    assert report.valid
    assert [p.rule for p in report.unsupported] == ["secret-not-granted"]
