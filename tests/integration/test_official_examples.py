"""The official DSL 1.0.3 examples, run as written by the whole service on PostgreSQL.

One in-process service (`tests.support.official_examples`) serves the module: real PostgreSQL,
the durable instance runtime, the event router (``POST /v1/events``, the database source), the
scheduler and the ``files`` secrets provider. Every host the examples call is a local stand-in
(`tests.support.example_hosts`), reached through the service's HTTP client with ``host_map`` and
an outbound policy that allows loopback, as the CTK's hosts are. What each test asserts:

- HTTP and OpenAPI calls (do-single, call-http-endpoint-interpolation[-shorthand],
  call-custom-function-inline, call-http-query-parameters, call-http-query-headers-expressions,
  call-openapi, star-wars-homeworld, switch-then-string): the output is what petstore.swagger.io
  or swapi.dev served (star-wars-homeworld follows the character's homeworld URL to the planet),
  and the stand-in received exactly the expected requests (path, query, headers).
- authentication-bearer[-uri-format], authentication-reusable: the petstore checks the bearer
  token (a forged one faults with communication 401). authentication-oauth2: a
  ``client_credentials`` token from ``http://keycloak/realms/fake-authority/auth/token``;
  authentication-oidc: Keycloak's discovery document, then its token endpoint;
  authentication-{oauth2,oidc}-secret: the policy from secret ``mySecret`` (granted to namespace
  ``examples``), a ``password`` grant with HTTP Basic client authentication at
  ``http://myorg.io``. Each time the petstore received the bearer token the endpoint issued,
  and the secret's values are stored nowhere; a wrong password faults with authentication.
- call-http-redirect, call-openapi-redirect: with the resource moved (301), ``redirect: true``
  follows it to the same output; call-http-query-parameters and call-openapi (``redirect``
  false) fault with communication 301 instead, as the reference says.
- conditional-task: under 18 it faults with the example's own error; else it posts the bet.
- fork (``compete``): the doctor's alert is held back, so the nurses' answer wins and the
  instance completes while the doctor's call is still in flight.
- raise-inline, raise-reusable: faulted with the error, its detail interpolated.
- try-catch: a 404 is caught (output: the input); try-catch-retry-{inline,reusable}: one 503 is
  retried after the 3 s delay (a durable retry timer) and the pet is the output; a 404 is not
  retried; try-catch-then: the 404 is caught, the error emitted and exported to the context.
- emit: the event goes out through the event path and completes a waiting listen-to-any.
- listen-*: events published over HTTP complete the listens with the events the filters,
  ``until`` conditions and ``read`` modes select; listen-to-any-forever-foreach posts each
  event to the chat stand-in and keeps listening.
- schedule-cron: once its registration is backdated past a midnight, the scheduler starts the
  tick's instance (idempotency key of the tick) and the backup is started; schedule-event-driven,
  set, set-expression: the triggering event starts an instance whose input is that event.
- wait-duration-inline, wait-duration-iso8601: the instance parks with a ``wait`` timer due 30 s
  after it started (timer row and snapshot agree); with both moved to now, as if the time had
  passed, the timer service claims the row and wakes the instance.

Examples that cannot run as written (each asserts the precise fault):

- do-multiple and try-catch-then (when the pet exists): ``buyPet`` reads ``{petId}`` from its
  input, which is the pet returned by ``getPet`` (no ``petId``); this runtime refuses a URI
  template variable the input lacks (validation error) where the reference substitutes ``''``.
- listen-to-one: ``startup`` reads ``{carId}`` from its input, the listen's output, which is
  an array of events: the same validation error.
- for, accumulate-room-readings: their ``output.as`` reads ``.pets`` / ``.data.reading`` from
  the listen's output, an array: an expression error, after the events were consumed.
- conditional-task: ``body: {customer: .customer, bet: .bet}`` lacks ``${ }``, so the literal
  strings are posted (strict expressions).
- try-catch-then: ``set: {error: $error}`` lacks ``${ }`` too: the output is the string.

listen-to-any-forever-foreach also queues an event that arrives while an iteration runs (its
call held back): the listen keeps its subscriptions stored until it ends, so the router puts
the event in the inbox and the next iteration posts it, in order, as the reference says.

Not here (other kinds, tested with their adapters): call-grpc, call-asyncapi-*, call-mcp,
run-container*, run-return-*, run-script*, run-shell*, run-subflow,
call-custom-function-cataloged, mock-service-extension.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conformance.stub import PETS
from tests.support.example_hosts import (
    CLIENTS,
    PEOPLE,
    PET_69,
    PLANETS,
    STATIC_TOKEN,
    USERS,
    ExampleHosts,
    open_example_hosts,
)
from tests.support.official_examples import ExampleService, serve_examples
from tests.support.services import create_database, drop_database, url_for
from tests.support.spec import SPEC, require_spec

pytestmark = pytest.mark.integration

ERRORS = "https://serverlessworkflow.io/spec/1.0.0/errors/"
T = "com.fake-hospital.vitals.measurements.temperature"
BPM = "com.fake-hospital.vitals.measurements.bpm"
OTHER_HELPERS = (
    "call-grpc",
    "call-asyncapi-",
    "call-mcp",
    "run-container",
    "run-return-",
    "run-script",
    "run-shell",
    "run-subflow",
    "call-custom-function-cataloged",
    "mock-service-extension",
)
MY_SECRET = {
    "authority": "http://myorg.io",
    "grant": "password",
    "client": {
        "id": "orders-app",
        "secret": CLIENTS["orders-app"],
        "authentication": "client_secret_basic",
    },
    "username": "ada",
    "password": USERS["ada"],
}


def person(number: int) -> dict[str, Any]:
    return {**PEOPLE[number], "url": f"https://swapi.dev/api/people/{number}/"}


def search(*numbers: int) -> dict[str, Any]:
    found = [person(n) for n in numbers]
    return {"count": len(found), "next": None, "previous": None, "results": found}


def requests(hosts: ExampleHosts) -> list[tuple[str, str, str]]:
    return [(r.host, r.method, r.path) for r in hosts.received()]


@pytest.fixture(scope="module")
def example_hosts() -> Iterator[ExampleHosts]:
    with open_example_hosts() as hosts:
        yield hosts


@pytest.fixture(scope="module")
def examples(
    example_hosts: ExampleHosts, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ExampleService]:
    """One service for the module, on its own database."""
    name = create_database()
    secrets = tmp_path_factory.mktemp("secrets")
    settings = {
        "security.secrets.providers": ["files"],
        "security.secrets.files.directory": str(secrets),
        "security.secrets.grants": [{"namespace": "examples", "secrets": ["mySecret"]}],
    }
    try:
        with serve_examples(url_for(name), example_hosts, secrets, settings) as service:
            yield service
    finally:
        drop_database(name)


@pytest.fixture
def service(examples: ExampleService) -> Iterator[ExampleService]:
    """The module's service; what the test leaves behind is cleaned up after it."""
    examples.hosts.forget()
    yield examples
    examples.finish()


def covered() -> set[str]:
    """The examples this module runs, from the names its tests use."""
    text = Path(__file__).read_text(encoding="utf-8")
    return {p.stem for p in (SPEC / "examples").glob("*.yaml") if f'"{p.stem}"' in text}


def test_every_example_of_this_kind_is_run() -> None:
    """Every official example outside the other helpers' kinds is run by a test here."""
    require_spec()
    stems = {p.stem for p in (SPEC / "examples").glob("*.yaml")}
    mine = {s for s in stems if not s.startswith(OTHER_HELPERS)}
    assert len(mine) >= 44
    assert mine <= covered(), sorted(mine - covered())


# -- calls -------------------------------------------------------------------------------

CALLS: list[tuple[str, Any, Any, list[tuple[str, str, str, dict[str, list[str]]]]]] = [
    ("do-single", {"petId": 1}, PETS[0], [("petstore.swagger.io", "GET", "/v2/pet/1", {})]),
    (
        "call-http-endpoint-interpolation-shorthand",
        {"petId": 2},
        PETS[1],
        [("petstore.swagger.io", "GET", "/v2/pet/2", {})],
    ),
    (
        "call-http-endpoint-interpolation",
        {"petId": 3},
        PETS[2],
        [("petstore.swagger.io", "GET", "/v2/pet/3", {})],
    ),
    ("call-custom-function-inline", {}, PET_69, [("petstore.swagger.io", "GET", "/v2/pet/69", {})]),
    (
        "call-http-query-parameters",
        {"searchQuery": "luke"},
        search(1),
        [("swapi.dev", "GET", "/api/people/", {"search": ["luke"]})],
    ),
    (
        "call-http-query-headers-expressions",
        {"searchQuery": "Vader"},
        search(4),
        [("swapi.dev", "GET", "/api/people/", {"search": ["Vader"]})],
    ),
    (
        "call-openapi",
        {},
        [pet for pet in PETS if pet["status"] == "available"],
        [
            ("petstore.swagger.io", "GET", "/v2/swagger.json", {}),
            ("petstore.swagger.io", "GET", "/v2/pet/findByStatus", {"status": ["available"]}),
        ],
    ),
    (
        "star-wars-homeworld",
        {"id": 5},
        PLANETS[2],
        [("swapi.dev", "GET", "/api/people/5", {}), ("swapi.dev", "GET", "/api/planets/2/", {})],
    ),
]


@pytest.mark.parametrize(
    ("stem", "given", "expected", "sent"), CALLS, ids=[case[0] for case in CALLS]
)
def test_call_example(
    service: ExampleService,
    stem: str,
    given: Any,
    expected: Any,
    sent: list[tuple[str, str, str, dict[str, list[str]]]],
) -> None:
    """The example completes with what the stand-in served, after exactly these requests."""
    done = service.ended(service.start(stem, given))
    assert (done["status"], done["output"]) == ("completed", expected), done
    received = service.hosts.received()
    assert [(r.host, r.method, r.path, r.query) for r in received] == sent
    if stem == "call-http-endpoint-interpolation":
        assert received[0].headers["content-type"] == "application/json"
    if stem == "call-http-query-headers-expressions":
        assert received[0].headers["accept"] == "application/json"


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        ("electronic", {"validate": True, "status": "fulfilled"}),
        ("physical", {"inventory": "clear", "items": 1, "address": "Elmer St"}),
        ("digital", {"log": "warn", "message": "something's wrong"}),
    ],
)
def test_switch_then_string(service: ExampleService, order: str, expected: Any) -> None:
    """Each case runs its task and exits; an unknown type takes the default."""
    done = service.ended(service.start("switch-then-string", {"orderType": order}))
    assert (done["status"], done["output"]) == ("completed", expected)


# -- authentication ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stem", "given", "pet"),
    [
        ("authentication-bearer", {"token": STATIC_TOKEN}, PETS[0]),
        ("authentication-bearer-uri-format", {"petId": 2, "token": STATIC_TOKEN}, PETS[1]),
        ("authentication-reusable", {"petId": 3, "token": STATIC_TOKEN}, PETS[2]),
    ],
)
def test_bearer_authentication(
    service: ExampleService, stem: str, given: Any, pet: dict[str, Any]
) -> None:
    """The token from the input is sent as a bearer token, which the petstore accepts."""
    done = service.ended(service.start(stem, given))
    assert (done["status"], done["output"]) == ("completed", pet)
    [received] = service.hosts.received("petstore.swagger.io")
    assert received.headers["authorization"] == f"Bearer {STATIC_TOKEN}"


def test_a_forged_bearer_token_is_refused(service: ExampleService) -> None:
    """The petstore refuses a token it does not know: communication error 401."""
    done = service.ended(service.start("authentication-reusable", {"petId": 3, "token": "forged"}))
    assert done["status"] == "faulted"
    assert done["error"] == {
        "type": ERRORS + "communication",
        "title": "Communication Error",
        "status": 401,
        "detail": 'GET https://petstore.swagger.io/v2/pet/3 returned status 401: {"code": 401, '
        '"message": "invalid bearer token"}',
        "instance": "/do/0/getPet",
    }


@pytest.mark.parametrize(
    ("stem", "keycloak"),
    [
        (
            "authentication-oauth2",
            [("POST", "/realms/fake-authority/auth/token")],
        ),
        (
            "authentication-oidc",
            [
                ("GET", "/realms/fake-authority/.well-known/openid-configuration"),
                ("POST", "/realms/fake-authority/protocol/openid-connect/token"),
            ],
        ),
    ],
)
def test_client_credentials_from_keycloak(
    service: ExampleService, stem: str, keycloak: list[tuple[str, str]]
) -> None:
    """The runtime gets a client_credentials token from Keycloak (oidc: through discovery)
    and calls the petstore with it."""
    done = service.ended(service.start(stem, {"petId": 2}))
    assert (done["status"], done["output"]) == ("completed", PETS[1])
    received = service.hosts.received("keycloak")
    assert [(r.method, r.path) for r in received] == keycloak
    assert received[-1].body == {
        "grant_type": "client_credentials",
        "client_id": "workflow-runtime-id",
        "client_secret": "workflow-runtime-secret",
    }
    [(token, holder)] = service.hosts.issued().items()
    assert holder == "keycloak:workflow-runtime-id:client_credentials"
    [call] = service.hosts.received("petstore.swagger.io")
    assert call.headers["authorization"] == f"Bearer {token}"


@pytest.mark.parametrize(
    ("stem", "myorg"),
    [
        ("authentication-oauth2-secret", [("POST", "/oauth2/token")]),
        (
            "authentication-oidc-secret",
            [("GET", "/.well-known/openid-configuration"), ("POST", "/oauth2/token")],
        ),
    ],
)
def test_policy_from_a_secret(
    service: ExampleService, stem: str, myorg: list[tuple[str, str]]
) -> None:
    """``use: mySecret`` reads the policy from the secret store: a password grant with HTTP
    Basic client authentication; no stored row holds the secret's values."""
    service.write_secret("mySecret", MY_SECRET)
    instance_id = service.start(stem, {"petId": 1})
    done = service.ended(instance_id)
    assert (done["status"], done["output"]) == ("completed", PETS[0])
    received = service.hosts.received("myorg.io")
    assert [(r.method, r.path) for r in received] == myorg
    basic = base64.b64encode(f"orders-app:{CLIENTS['orders-app']}".encode()).decode()
    assert received[-1].headers["authorization"] == f"Basic {basic}"
    assert received[-1].body == {
        "grant_type": "password",
        "username": "ada",
        "password": USERS["ada"],
    }
    [(token, holder)] = service.hosts.issued().items()
    assert holder == "myorg.io:orders-app:password"
    [call] = service.hosts.received("petstore.swagger.io")
    assert call.headers["authorization"] == f"Bearer {token}"
    stored = service.sql(
        "SELECT count(*) FROM workflow_instances i JOIN workflow_instance_history h "
        f"USING (instance_id) WHERE i.instance_id = '{instance_id}' AND (i::text LIKE "
        f"'%{USERS['ada']}%' OR h::text LIKE '%{USERS['ada']}%')"
    )
    assert stored == "0"


def test_a_wrong_password_in_the_secret_faults(service: ExampleService) -> None:
    """The authority refuses the grant: an authentication error naming the token URL, whose
    authority came from the secret and is redacted like every value of it."""
    service.write_secret("mySecret", {**MY_SECRET, "password": "not-the-password"})
    done = service.ended(service.start("authentication-oauth2-secret", {"petId": 1}))
    assert done["status"] == "faulted"
    assert done["error"]["type"] == ERRORS + "authentication"
    assert done["error"]["detail"] == (
        "token request to [redacted secret mySecret]/oauth2/token failed with status 400"
    )
    assert service.hosts.received("petstore.swagger.io") == []


# -- redirects ---------------------------------------------------------------------------

MOVES = {
    "call-http-redirect": ("swapi.dev", "/api/people/", "/api/v2/people/"),
    "call-http-query-parameters": ("swapi.dev", "/api/people/", "/api/v2/people/"),
    "call-openapi-redirect": ("petstore.swagger.io", "/v2/pet/", "/v3/pet/"),
    "call-openapi": ("petstore.swagger.io", "/v2/pet/", "/v3/pet/"),
}


@pytest.mark.parametrize(
    ("stem", "given", "expected", "followed"),
    [
        ("call-http-redirect", {"searchQuery": "leia"}, search(5), "/api/v2/people/"),
        (
            "call-openapi-redirect",
            {},
            [pet for pet in PETS if pet["status"] == "available"],
            "/v3/pet/findByStatus",
        ),
    ],
)
def test_redirect_true_follows_a_moved_resource(
    service: ExampleService, stem: str, given: Any, expected: Any, followed: str
) -> None:
    """``redirect: true``: the 301 is followed to the resource's new place."""
    host, old, new = MOVES[stem]
    with service.hosts.moved(host, old, new):
        done = service.ended(service.start(stem, given))
    assert (done["status"], done["output"]) == ("completed", expected)
    paths = [r.path for r in service.hosts.received(host) if not r.path.endswith(".json")]
    assert paths == [old + followed.removeprefix(new), followed]


@pytest.mark.parametrize(
    ("stem", "given", "url"),
    [
        (
            "call-http-query-parameters",
            {"searchQuery": "leia"},
            "https://swapi.dev/api/people/?search=leia",
        ),
        ("call-openapi", {}, "https://petstore.swagger.io/v2/pet/findByStatus?status=available"),
    ],
)
def test_without_redirect_a_moved_resource_faults(
    service: ExampleService, stem: str, given: Any, url: str
) -> None:
    """``redirect`` false (the default): a 301 is a communication error with its status."""
    host, old, new = MOVES[stem]
    with service.hosts.moved(host, old, new):
        done = service.ended(service.start(stem, given))
    assert done["status"] == "faulted"
    error = done["error"]
    assert (error["type"], error["status"]) == (ERRORS + "communication", 301)
    assert error["detail"].startswith(f"GET {url} returned status 301: ")


# -- flow --------------------------------------------------------------------------------


def test_conditional_task(service: ExampleService) -> None:
    """Under 18 the example's error is raised; else the bet is posted (the example's body
    has no ``${ }``, so its strings are posted as they are)."""
    under = service.ended(service.start("conditional-task", {"customer": {"age": 16}}))
    adult = service.ended(
        service.start("conditional-task", {"customer": {"age": 30}, "bet": {"on": "PSG"}})
    )
    assert under["status"] == "faulted"
    assert under["error"] == {
        "type": "https://superbet-casinos.com/customer/access-forbidden",
        "title": "Access Forbidden",
        "status": 400,
        "instance": "/do/0/raiseErrorIfUnderage",
    }
    posted = {"customer": ".customer", "bet": ".bet"}
    assert (adult["status"], adult["output"]) == ("completed", {"betId": "bet-1", "placed": posted})
    [bet] = service.hosts.received("superbet-casinos.com")
    assert (bet.method, bet.path, bet.body) == ("POST", "/api/bet/on/football", posted)


def test_do_multiple_cannot_address_the_pet_it_got(service: ExampleService) -> None:
    """``buyPet``'s input is the pet (no ``petId``): the URI template cannot be expanded."""
    done = service.ended(service.start("do-multiple", {"petId": 1}))
    assert done["status"] == "faulted"
    assert done["error"] == {
        "type": ERRORS + "validation",
        "status": 400,
        "detail": "uri template 'https://petstore.swagger.io/v2/pet/{petId}' needs 'petId' but "
        "the task input has no such property; available: ['category', 'id', 'name', 'status']",
        "instance": "/do/1/buyPet",
    }
    assert requests(service.hosts) == [("petstore.swagger.io", "GET", "/v2/pet/1")]


def test_fork_compete_takes_the_first_answer(service: ExampleService) -> None:
    """Both alerts arrive; the nurses' is answered first and wins the competition, and the
    instance completes while the doctor's call is still unanswered."""
    given = {"patient": {"fullName": "Jane Doe"}, "room": {"number": 12}}
    with service.hosts.held("fake-hospital.com", "/api/v3/alert/doctor"):
        with service.hosts.held("fake-hospital.com", "/api/v3/alert/nurses"):
            instance_id = service.start("fork", given)
            alerts = service.hosts.wait_received("fake-hospital.com", 2)
        done = service.ended(instance_id)
    assert sorted(r.path for r in alerts) == ["/api/v3/alert/doctor", "/api/v3/alert/nurses"]
    assert all(r.body == {"patientId": "Jane Doe", "room": 12} for r in alerts)
    assert (done["status"], done["output"]) == (
        "completed",
        {"alerted": "nurses", "patientId": "Jane Doe", "room": 12},
    )


@pytest.mark.parametrize("stem", ["raise-inline", "raise-reusable"])
def test_raise(service: ExampleService, stem: str) -> None:
    """The instance faults with the error, its detail interpolated from ``$workflow``."""
    done = service.ended(service.start(stem))
    assert done["status"] == "faulted"
    assert done["error"] == {
        "type": "https://serverlessworkflow.io/errors/not-implemented",
        "title": "Not Implemented",
        "status": 500,
        "detail": "The workflow 'raise-not-implemented:0.1.0' is a work in progress and cannot "
        "be run yet",
        "instance": "/do/0/notImplemented",
    }


def test_try_catch(service: ExampleService) -> None:
    """A 404 is caught (the output is the input); a found pet is the output."""
    missing = service.ended(service.start("try-catch", {"petId": 999}))
    found = service.ended(service.start("try-catch", {"petId": 1}))
    assert (missing["status"], missing["output"]) == ("completed", {"petId": 999})
    assert (found["status"], found["output"]) == ("completed", PETS[0])


def test_try_catch_then(service: ExampleService) -> None:
    """A 404 is caught: the error is emitted and exported, so ``buyPet`` is skipped; with a
    pet found, ``buyPet`` cannot address it (its input is the pet, with no ``petId``)."""
    instance_id = service.start("try-catch-then", {"petId": 999})
    missing = service.ended(instance_id)
    found = service.ended(service.start("try-catch-then", {"petId": 2}))
    assert (missing["status"], missing["output"]) == ("completed", {"error": "$error"})
    assert missing["context"]["error"]["status"] == 404
    [emitted] = [h["details"] for h in service.history(instance_id) if h["kind"] == "event.emitted"]
    assert (emitted["type"], emitted["source"]) == (
        "io.swagger.petstore.events.pets.not-found.v1",
        "https://petstore.swagger.io",
    )
    assert emitted["data"] == missing["context"]["error"]
    assert found["status"] == "faulted"
    assert (found["error"]["type"], found["error"]["instance"]) == (
        ERRORS + "validation",
        "/do/1/buyPet",
    )
    assert [p for _, m, p in requests(service.hosts) if m != "GET"] == []


@pytest.mark.parametrize("stem", ["try-catch-retry-inline", "try-catch-retry-reusable"])
def test_try_catch_retry(service: ExampleService, stem: str) -> None:
    """A 503 is retried after the 3 s delay (the instance parks on a retry timer) and the
    pet is the output; a 404 does not match the retry filter and faults."""
    with service.hosts.failing("petstore.swagger.io", "/v2/pet/2", times=1):
        done = service.ended(service.start(stem, {"petId": 2}))
    missing = service.ended(service.start(stem, {"petId": 999}))
    assert (done["status"], done["output"]) == ("completed", PETS[1])
    calls = [r for r in service.hosts.received() if r.path == "/v2/pet/2"]
    assert len(calls) == 2
    assert calls[0].headers["idempotency-key"] != calls[1].headers["idempotency-key"]
    assert (missing["status"], missing["error"]["status"]) == ("faulted", 404)


def test_emit_reaches_a_waiting_listener(service: ExampleService) -> None:
    """The emitted event goes through the event path: listen-to-any, waiting, consumes it."""
    listener = service.start("listen-to-any")
    service.wait_status(listener, "waiting")
    emitter = service.ended(service.start("emit"))
    heard = service.ended(listener)
    data = {
        "client": {"firstName": "Cruella", "lastName": "de Vil"},
        "items": [{"breed": "dalmatian", "quantity": 101}],
    }
    assert emitter["status"] == "completed"
    assert (emitter["output"]["source"], emitter["output"]["type"]) == (
        "https://petstore.com",
        "com.petstore.order.placed.v1",
    )
    assert emitter["output"]["data"] == data
    assert (heard["status"], heard["output"]) == ("completed", [data])


# -- listen ------------------------------------------------------------------------------


def publish_all(service: ExampleService, events: list[tuple[str, Any]]) -> list[int]:
    """Publish each event; how many waiting instances each was delivered to."""
    return [service.publish(kind, data)["deliveredTo"] for kind, data in events]


def test_listen_to_all(service: ExampleService) -> None:
    """Both filters must match once; a temperature of 37 does not."""
    instance_id = service.start("listen-to-all")
    service.wait_status(instance_id, "waiting")
    publish_all(service, [(T, {"temperature": 37}), (T, {"temperature": 39}), (BPM, {"bpm": 120})])
    done = service.ended(instance_id)
    assert (done["status"], done["output"]) == ("completed", [{"temperature": 39}, {"bpm": 120}])


def test_listen_to_all_read_envelope(service: ExampleService) -> None:
    """``read: envelope``: the output holds the events with their context attributes."""
    instance_id = service.start("listen-to-all read-envelope")
    service.wait_status(instance_id, "waiting")
    first = service.publish(T, {"temperature": 40})
    second = service.publish(BPM, {"bpm": 45})
    done = service.ended(instance_id)
    assert done["status"] == "completed"
    assert [(e["id"], e["type"], e["data"]) for e in done["output"]] == [
        (first["id"], T, {"temperature": 40}),
        (second["id"], BPM, {"bpm": 45}),
    ]
    assert all(e["specversion"] == "1.0" for e in done["output"])


def test_listen_to_any_filter(service: ExampleService) -> None:
    """The first event that passes its filter completes the listen."""
    instance_id = service.start("listen-to-any-filter")
    service.wait_status(instance_id, "waiting")
    publish_all(service, [(T, {"temperature": 37}), (BPM, {"bpm": 120})])
    done = service.ended(instance_id)
    assert (done["status"], done["output"]) == ("completed", [{"bpm": 120}])


def test_listen_to_any_until_condition(service: ExampleService) -> None:
    """Any event is consumed until more than three were: the fifth reaches nobody."""
    instance_id = service.start("listen-to-any-until-condition")
    service.wait_status(instance_id, "waiting")
    delivered = publish_all(service, [("gossip", {"n": n}) for n in range(4)])
    done = service.ended(instance_id)
    late = service.publish("gossip", {"n": 4})
    assert delivered == [1, 1, 1, 1] and late["deliveredTo"] == 0
    assert (done["status"], done["output"]) == ("completed", [{"n": n} for n in range(4)])


def test_listen_to_any_until_consumed(service: ExampleService) -> None:
    """Vitals are consumed until the check-out event, which is not part of the output."""
    instance_id = service.start("listen-to-any-until-consumed")
    service.wait_status(instance_id, "waiting")
    publish_all(
        service,
        [
            (T, {"temperature": 39}),
            (BPM, {"bpm": 80}),
            (BPM, {"bpm": 50}),
            ("com.fake-hospital.patient.checked-out", {"patient": "p-1"}),
        ],
    )
    done = service.ended(instance_id)
    assert (done["status"], done["output"]) == (
        "completed",
        [{"temperature": 39}, {"bpm": 50}],
    )


def subscribed(service: ExampleService, instance_id: str) -> None:
    """Wait until the instance is parked on its listen again (its subscription stored)."""
    service.wait_sql(
        f"SELECT 1 FROM event_subscriptions s JOIN workflow_instances i USING (instance_id) "
        f"WHERE instance_id = '{instance_id}' AND i.status = 'waiting'"
    )


GOSSIP = [{"roomId": "lobby", "text": "hello"}, {"roomId": "kitchen", "text": "tea?"}]


def test_listen_to_any_forever_foreach(service: ExampleService) -> None:
    """Each event is posted to its chat room (``{roomId}`` from the event, the iteration's
    input) and the instance goes on listening."""
    instance_id = service.start("listen-to-any-forever-foreach")
    for number, data in enumerate(GOSSIP, start=1):
        subscribed(service, instance_id)
        assert service.publish("gossip", data)["deliveredTo"] == 1
        posts = service.hosts.wait_received("fake-chat-api.com", number)
    assert [(p.path, p.body) for p in posts] == [
        ("/room/lobby", {"event": GOSSIP[0]}),
        ("/room/kitchen", {"event": GOSSIP[1]}),
    ]
    subscribed(service, instance_id)
    assert service.instance(instance_id)["activeTasks"] == ["/do/0/listenToGossips"]


def test_listen_foreach_queues_events_that_arrive_during_an_iteration(
    service: ExampleService,
) -> None:
    """Two events published back to back are both posted, in order."""
    instance_id = service.start("listen-to-any-forever-foreach")
    subscribed(service, instance_id)
    with service.hosts.held("fake-chat-api.com", "/room/lobby"):
        service.publish("gossip", GOSSIP[0])
        service.hosts.wait_received("fake-chat-api.com", 1)
        second = service.publish("gossip", GOSSIP[1])
    assert second["deliveredTo"] == 1
    posts = service.hosts.wait_received("fake-chat-api.com", 2)
    assert [p.path for p in posts] == ["/room/lobby", "/room/kitchen"]


def test_listen_to_one_cannot_address_the_car(service: ExampleService) -> None:
    """The race start is consumed; ``startup``'s input is the listen's output (an array),
    so ``{carId}`` cannot be expanded."""
    instance_id = service.start("listen-to-one")
    service.wait_status(instance_id, "waiting")
    service.publish("com.virtual-wf-powered-race.events.race.started.v1", {"carId": "c-7"})
    done = service.ended(instance_id)
    assert done["status"] == "faulted"
    assert done["error"] == {
        "type": ERRORS + "validation",
        "status": 400,
        "detail": "uri template 'https://virtual-wf-powered-race.com/api/v4/cars/{carId}/start' "
        "needs 'carId' but the task input has no such property; available: []",
        "instance": "/do/1/startup",
    }
    assert ("task.completed", "/do/0/waitForStartup") in service.steps(instance_id)
    assert service.hosts.received("virtual-wf-powered-race.com") == []


def test_for_cannot_shape_the_checkup(service: ExampleService) -> None:
    """The checkup event is consumed; ``output.as`` reads ``.pets`` of the listen's output,
    an array: an expression error."""
    instance_id = service.start("for", {"pets": [{"id": 1}, {"id": 2}], "vet": "Dr. Who"})
    service.wait_status(instance_id, "waiting")
    service.publish("com.fake.petclinic.pets.checkup.completed.v2", {"petId": 1})
    done = service.ended(instance_id)
    assert done["status"] == "faulted"
    assert done["error"] == {
        "type": ERRORS + "expression",
        "title": "Expression Error",
        "status": 400,
        "detail": "expression '.pets + [{ \"id\": $pet.id }]': Cannot index array with string "
        '("pets")',
        "instance": "/do/0/checkup/do/0/waitForCheckup",
    }


def test_accumulate_room_readings_correlates_then_cannot_shape(service: ExampleService) -> None:
    """Readings are correlated by room (another room's humidity is not delivered); once both
    of one room arrived, ``output.as: .data.reading`` of the array is an expression error."""
    instance_id = service.start("accumulate-room-readings")
    service.wait_status(instance_id, "waiting")
    sensor = "https://my.home.com/sensor"
    temperature, humidity = "my.home.sensors.temperature", "my.home.sensors.humidity"
    first = service.publish(temperature, {"reading": 21}, source=sensor, roomid="kitchen")
    # Consumed: the humidity subscription now expects the kitchen.
    service.wait_sql(
        "SELECT corr_key FROM event_subscriptions WHERE "
        f"instance_id = '{instance_id}' AND event_type = '{humidity}' AND corr_key <> ''"
    )
    other = service.publish(humidity, {"reading": 70}, source=sensor, roomid="bedroom")
    second = service.publish(humidity, {"reading": 40}, source=sensor, roomid="kitchen")
    done = service.ended(instance_id)
    assert (first["deliveredTo"], other["deliveredTo"], second["deliveredTo"]) == (1, 0, 1)
    assert done["status"] == "faulted"
    assert done["error"] == {
        "type": ERRORS + "expression",
        "title": "Expression Error",
        "status": 400,
        "detail": "expression '.data.reading': Cannot index array with string (\"data\")",
        "instance": "/do/0/consumeReading",
    }


# -- schedules ---------------------------------------------------------------------------


def test_schedule_cron_starts_the_due_tick(service: ExampleService) -> None:
    """Registered (as if) before last midnight, the daily cron owes that tick: the scheduler
    starts one instance with the tick's key, which starts the backup."""
    service.register("schedule-cron")
    midnight = service.sql("SELECT date_trunc('day', now() AT TIME ZONE 'UTC')::text")
    service.sql(
        "UPDATE workflow_definitions SET created_at = now() - interval '1 day' "
        "WHERE definition_id = 'schedule-cron'"
    )
    tick = datetime.fromisoformat(midnight).isoformat() + "+00:00"
    key = f"schedule:schedule-cron:0.1.0:{tick}"
    found = service.wait_sql(
        f"SELECT instance_id FROM workflow_instances WHERE idempotency_key = '{key}'"
    )
    done = service.ended(found)
    assert (done["status"], done["output"]) == ("completed", {"backup": "started"})
    assert requests(service.hosts) == [("example.com", "POST", "/api/v1/backup/start")]


def heartbeat() -> dict[str, Any]:
    return {
        "patient": {
            "id": "p-42",
            "name": "John Doe",
            "room": {"number": 7},
            "vitals": {"bpm": 38},
        },
        "timestamp": "2026-12-04T10:00:00Z",
    }


def test_schedule_event_driven(service: ExampleService) -> None:
    """The low-heartbeat event starts an instance, which notifies the hospital with it."""
    service.register("schedule-event-driven")
    receipt = service.publish("com.example.hospital.events.patients.heartbeat.low", heartbeat())
    [instance_id] = receipt["startedInstances"]
    done = service.ended(instance_id)
    assert (done["status"], done["output"]) == (
        "completed",
        {"notified": "nurse on duty", "patientId": "p-42"},
    )
    [notify] = service.hosts.received("hospital.example.com")
    assert notify.body == {
        "patientId": "p-42",
        "patientName": "John Doe",
        "roomNumber": 7,
        "vitals": {"heartRate": 38, "timestamp": "2026-12-04T10:00:00Z"},
        "message": "Alert: Patient's heartbeat is critically low. Immediate attention required.",
    }


@pytest.mark.parametrize("stem", ["set", "set-expression"])
def test_set_started_by_an_event(service: ExampleService, stem: str) -> None:
    """The trigger event starts an instance whose input is the event (its envelope)."""
    service.register(stem)
    receipt = service.publish("io.serverlessworkflow.samples.events.trigger.v1", {"go": 1})
    [instance_id] = receipt["startedInstances"]
    done = service.ended(instance_id)
    assert done["status"] == "completed"
    event = done["output"]["startEvent"] if stem == "set" else done["output"]
    assert (event["id"], event["type"], event["data"]) == (
        receipt["id"],
        "io.serverlessworkflow.samples.events.trigger.v1",
        {"go": 1},
    )


# -- waits -------------------------------------------------------------------------------


WAIT_KEY = "/do/0/wait30Seconds/!wait"


@pytest.mark.parametrize("stem", ["wait-duration-inline", "wait-duration-iso8601"])
def test_wait_parks_on_a_timer_the_timer_service_fires(service: ExampleService, stem: str) -> None:
    """The instance parks with a ``wait`` timer due 30 s after it started (the same due time in
    its snapshot). With both moved to now, as if the 30 s had passed, the timer service claims
    the timer and wakes the instance, which completes with its input."""
    instance_id = service.start(stem, {"napping": True})
    parked = service.wait_status(instance_id, "waiting")
    row = service.sql(
        "SELECT t.kind, t.timer_key, extract(epoch FROM t.due_at - i.started_at), "
        f"t.due_at = (i.snapshot #>> '{{state,frames,{WAIT_KEY},due}}')::timestamptz "
        "FROM workflow_timers t JOIN workflow_instances i USING (instance_id) "
        f"WHERE instance_id = '{instance_id}'"
    )
    kind, key, delay, same = row.split("|")
    assert (kind, key, same) == ("wait", WAIT_KEY, "t"), row
    assert 30.0 <= float(delay) < 31.0, row
    assert parked["activeTasks"] == ["/do/0/wait30Seconds"]
    now = "to_jsonb(to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'))"
    service.sql(
        "UPDATE workflow_instances SET snapshot = jsonb_set(jsonb_set(snapshot, "
        f"'{{state,frames,{WAIT_KEY},due}}', {now}), '{{wakeAt}}', {now}) "
        f"WHERE instance_id = '{instance_id}'; "
        f"UPDATE workflow_timers SET due_at = now() WHERE instance_id = '{instance_id}'"
    )
    done = service.ended(instance_id)
    assert (done["status"], done["output"]) == ("completed", {"napping": True})
    assert ("task.completed", "/do/0/wait30Seconds") in service.steps(instance_id)
