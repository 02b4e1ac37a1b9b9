"""Starting an instance with an input PostgreSQL cannot store is the client's mistake: 422
problem+json naming the field, never a 500, and the service goes on starting instances."""

from __future__ import annotations

import json

import pytest
import trio

from tests.support.events import INSTANCES
from tests.support.service import open_service, register_yaml

pytestmark = pytest.mark.integration

SETTER = """\
document: {dsl: '1.0.3', namespace: demo, name: setter, version: '1.0.0'}
do:
  - only:
      set: {done: true}
"""


async def test_unstorable_input_and_business_key_answer_422(database_url: str) -> None:
    """A NUL in the input (first start and remembered-version start) or in the businessKey
    answers 422 naming the field; a clean start right after answers 201."""
    bodies = [
        {"workflowDefinitionId": "setter", "input": {"a": "x\u0000y"}},
        {"workflowDefinitionId": "setter", "input": {"a": "x\u0000y"}},
        {"workflowDefinitionId": "setter", "businessKey": "k\u0000"},
    ]
    with trio.fail_after(60):
        async with open_service(database_url) as app:
            await register_yaml(app, SETTER)
            answers = []
            for body in bodies:
                answers.append(
                    await app.api.post(
                        INSTANCES,
                        content=json.dumps(body),
                        headers={"Content-Type": "application/json"},
                    )
                )
                if len(answers) == 1:  # the next start takes the batched path
                    ok = await app.api.post(INSTANCES, json={"workflowDefinitionId": "setter"})
                    assert ok.status_code == 201, ok.text
            clean = await app.api.post(INSTANCES, json={"workflowDefinitionId": "setter"})
    for answer in answers:
        assert answer.status_code == 422, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        assert "NUL character (\\u0000)" in answer.json()["detail"]
    assert answers[0].json()["pointer"] == "/input/a", answers[0].text
    assert answers[2].json()["pointer"] == "/businessKey", answers[2].text
    assert clean.status_code == 201
