"""An event PostgreSQL refuses hurts only its own submission: posted together with innocent
events, it alone is answered 400 and the others are routed."""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest
import trio

from tests.support.events import STRUCTURED_HEADERS, cloud_event
from tests.support.service import open_service

pytestmark = pytest.mark.integration


async def test_a_refused_event_fails_alone_among_concurrent_posts(database_url: str) -> None:
    """An event whose id is too large for the deduplication index (it passes every check,
    PostgreSQL refuses it) posted beside 20 innocent events: it alone answers 400 naming the
    refusal, the 20 others are routed (202), and the service keeps routing."""
    huge = cloud_event("com.example.ping", {"n": 0}, event_id=secrets.token_urlsafe(9_000))
    events = [huge] + [cloud_event("com.example.ping", {"n": n}) for n in range(1, 21)]
    answers: list[Any] = [None] * len(events)
    with trio.fail_after(60):
        async with open_service(database_url) as app:

            async def post(index: int) -> None:
                answers[index] = await app.api.post(
                    "/v1/events", content=json.dumps(events[index]), headers=STRUCTURED_HEADERS
                )

            async with trio.open_nursery() as nursery:
                for index in range(len(events)):
                    nursery.start_soon(post, index)
            later = await app.api.post(
                "/v1/events",
                content=json.dumps(cloud_event("com.example.ping", {})),
                headers=STRUCTURED_HEADERS,
            )
    assert answers[0].status_code == 400, answers[0].text
    assert (
        answers[0]
        .json()["detail"]
        .startswith("PostgreSQL refused the event (ProgramLimitExceededError: index row")
    )
    assert answers[0].json()["detail"].endswith("; shorten or change the event")
    assert [a.status_code for a in answers[1:]] == [202] * 20
    assert later.status_code == 202
