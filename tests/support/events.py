"""CloudEvents, workflow instances over the HTTP API of an in-process service, and the event
definitions several tests register."""

from __future__ import annotations

import json
import uuid
from typing import Any

import trio

from tests.support.service import InProcessService

INSTANCES = "/v1/workflow-instances"
STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
STRUCTURED_HEADERS = {"Content-Type": STRUCTURED_CONTENT_TYPE}

# Waits for the payment of its order, then outputs ``{"paid": amount}``.
PAYMENT_WAITER = """\
document: {dsl: '1.0.3', namespace: shop, name: payment-waiter, version: '1.0.0'}
do:
  - waitForPayment:
      listen:
        to:
          one:
            with:
              type: payment.received
            correlate:
              orderId:
                from: ${ .data.orderId }
                expect: ${ .orderId }
  - done:
      set:
        paid: ${ .[0].amount }
"""

# The same name and wait, but it outputs ``{"orderId": order, "paid": amount}``.
PAYMENT_WAITER_WITH_ORDER = """\
document: {dsl: '1.0.3', namespace: shop, name: payment-waiter, version: '1.0.0'}
do:
  - waitForPayment:
      listen:
        to:
          one:
            with:
              type: payment.received
            correlate:
              orderId:
                from: ${ .data.orderId }
                expect: ${ .orderId }
  - done:
      set:
        orderId: ${ .[0].orderId }
        paid: ${ .[0].amount }
"""

# Waits for its payment, then announces it: events flow into and out of the service. The
# output of ``emit`` is the event as emitted.
PAYMENT_CONFIRMER = """\
document: {dsl: '1.0.3', namespace: shop, name: payment-confirmer, version: '1.0.0'}
do:
  - waitForPayment:
      listen:
        to:
          one:
            with:
              type: payment.received
            correlate:
              orderId:
                from: ${ .data.orderId }
                expect: ${ .orderId }
  - remember:
      set:
        orderId: ${ .[0].orderId }
        paid: ${ .[0].amount }
  - confirm:
      emit:
        event:
          with:
            source: https://shop.example/confirmer
            type: payment.confirmed
            data:
              orderId: ${ .orderId }
              paid: ${ .paid }
  - done:
      set:
        orderId: ${ .data.orderId }
        paid: ${ .data.paid }
"""

# Emits ``shipment.ready`` carrying its input's ``orderId``.
EMITTER = """\
document: {dsl: '1.0.3', namespace: shop, name: emitter, version: '1.0.0'}
do:
  - announce:
      emit:
        event:
          with:
            source: https://shop.example/emitter
            type: shipment.ready
            data:
              orderId: ${ .orderId }
"""

_NO_INPUT: Any = object()


def cloud_event(
    event_type: str, data: Any, *, event_id: str | None = None, source: str = "/tests"
) -> dict[str, Any]:
    """A structured CloudEvent with JSON ``data`` (a random id unless ``event_id`` is given)."""
    return {
        "specversion": "1.0",
        "id": event_id or str(uuid.uuid4()),
        "source": source,
        "type": event_type,
        "datacontenttype": "application/json",
        "data": data,
    }


async def start(app: InProcessService, definition_id: str, payload: Any = _NO_INPUT) -> str:
    """Start an instance of ``definition_id`` (with ``payload`` as input if given); its id."""
    body: dict[str, Any] = {"workflowDefinitionId": definition_id}
    if payload is not _NO_INPUT:
        body["input"] = payload
    response = await app.api.post(INSTANCES, json=body)
    assert response.status_code == 201, response.text
    instance_id: str = response.json()["id"]
    return instance_id


async def wait_for(app: InProcessService, instance_id: str, status: str) -> dict[str, Any]:
    """Poll the instance until it has ``status``; returns its representation then."""
    while True:
        body: dict[str, Any] = (await app.api.get(f"{INSTANCES}/{instance_id}")).json()
        if body["status"] == status:
            return body
        await trio.sleep(0.05)


async def post_event(app: InProcessService, event: dict[str, Any]) -> dict[str, Any]:
    """POST ``event`` in structured mode to ``/v1/events``; returns the 202 receipt."""
    response = await app.api.post(
        "/v1/events", content=json.dumps(event), headers=STRUCTURED_HEADERS
    )
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body
