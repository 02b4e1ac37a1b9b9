"""Starting instances on the fast path (a remembered latest version, batched inserts) keeps
the answers of the reading path: new versions, pinned versions, deleted definitions, bad input."""

from __future__ import annotations

import pytest
import trio

from tests.support.service import open_service

pytestmark = pytest.mark.integration

INSTANCES = "/v1/workflow-instances"


def definition(version: str, required: str) -> str:
    return f"""\
document: {{dsl: '1.0.3', namespace: shop, name: versioned, version: '{version}'}}
input:
  schema:
    format: json
    document: {{type: object, required: [{required}]}}
do:
  - only:
      set: {{version: '{version}'}}
"""


async def test_starts_follow_registrations_and_deletions(database_url: str) -> None:
    with trio.fail_after(60):
        async with open_service(database_url) as app:

            async def register(version: str, required: str) -> None:
                response = await app.api.post(
                    "/v1/workflow-definitions",
                    content=definition(version, required),
                    headers={"Content-Type": "application/yaml"},
                )
                assert response.status_code == 201, response.text

            async def started(body: dict[str, object]) -> tuple[int, dict[str, object]]:
                response = await app.api.post(INSTANCES, json=body)
                return response.status_code, response.json()

            await register("1.0.0", "a")
            first = await started({"workflowDefinitionId": "versioned", "input": {"a": 1}})
            second = await started({"workflowDefinitionId": "versioned", "input": {"a": 2}})
            await register("2.0.0", "b")
            # The remembered latest version (1.0.0) is stale now: the start must use 2.0.0 and
            # check the input against it.
            rejected = await started({"workflowDefinitionId": "versioned", "input": {"a": 3}})
            newer = await started({"workflowDefinitionId": "versioned", "input": {"b": 1}})
            pinned = await started(
                {"workflowDefinitionId": "versioned", "version": "1.0.0", "input": {"a": 4}}
            )
            pinned_bad = await started(
                {"workflowDefinitionId": "versioned", "version": "1.0.0", "input": {"b": 4}}
            )
            keyed = [
                await started(
                    {"workflowDefinitionId": "versioned", "input": {"b": 2}, "idempotencyKey": "k"}
                )
                for _ in range(2)
            ]
            deleted = await app.api.delete("/v1/workflow-definitions/versioned")
            assert deleted.status_code in (200, 204), deleted.text
            gone = await started({"workflowDefinitionId": "versioned", "input": {"b": 3}})
    assert (first[0], first[1]["version"]) == (201, "1.0.0")
    assert (second[0], second[1]["version"]) == (201, "1.0.0")
    assert rejected[0] == 422
    assert (newer[0], newer[1]["version"]) == (201, "2.0.0")
    assert (pinned[0], pinned[1]["version"]) == (201, "1.0.0")
    assert pinned_bad[0] == 422
    assert [status for status, _ in keyed] == [201, 200]
    assert keyed[0][1]["id"] == keyed[1][1]["id"]
    assert gone[0] == 404
