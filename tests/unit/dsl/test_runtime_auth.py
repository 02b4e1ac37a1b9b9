"""Authentication of calls: basic, bearer, OAuth2 client credentials, secrets, $authorization."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs

from tests.unit.dsl.runtime_support import run
from workflow_orchestrator.dsl.runtime import (
    HttpRequest,
    HttpResponse,
    InMemoryEffects,
    json_response,
)

SEEN: list[HttpRequest] = []


def server(request: HttpRequest) -> HttpResponse:
    """A token endpoint and an API that echoes the Authorization header."""
    SEEN.append(request)
    if request.url == "https://auth.example.com/oauth2/token":
        form = parse_qs((request.body or b"").decode())
        if form.get("client_secret") == ["s3cret"] and form["grant_type"] == ["client_credentials"]:
            return json_response(200, {"access_token": "tok-1", "token_type": "Bearer"})
        return json_response(401, {"error": "invalid_client"})
    if request.url == "https://idp.example.com/realms/r/.well-known/openid-configuration":
        token_endpoint = "https://idp.example.com/realms/r/protocol/openid-connect/token"
        return json_response(
            200, {"issuer": "https://idp.example.com/realms/r", "token_endpoint": token_endpoint}
        )
    if request.url == "https://idp.example.com/realms/r/protocol/openid-connect/token":
        form = parse_qs((request.body or b"").decode())
        if form.get("client_secret") == ["s3cret"]:
            return json_response(200, {"access_token": "oidc-1", "token_type": "Bearer"})
        return json_response(401, {"error": "invalid_client"})
    if request.url == "https://broken.example.com/.well-known/openid-configuration":
        return json_response(200, {"issuer": "https://broken.example.com"})
    return json_response(200, {"authorization": request.headers.get("authorization")})


CALL = """
use:
  secrets: [ clientSecret ]
  authentications:
    oauth:
      oauth2:
        authority: https://auth.example.com
        grant: client_credentials
        client: {id: app, secret: '${ $secrets.clientSecret }'}
do:
  - get:
      call: http
      with:
        method: get
        endpoint:
          uri: https://api.example.com/me
          authentication: %s
      output:
        as: '{ header: .authorization, scheme: $authorization.scheme }'
"""


async def test_basic_authentication_header() -> None:
    """basic sends base64(username:password) and exposes $authorization."""
    SEEN.clear()
    result, _ = await run(
        CALL % "{basic: {username: ada, password: pw}}",
        effects=InMemoryEffects(http=server, secrets={"clientSecret": "s3cret"}),
    )
    expected = "Basic " + base64.b64encode(b"ada:pw").decode()
    assert result.output == {"header": expected, "scheme": "Basic"}


async def test_bearer_authentication_header() -> None:
    """bearer sends the token."""
    result, _ = await run(
        CALL % "{bearer: {token: abc}}",
        effects=InMemoryEffects(http=server, secrets={"clientSecret": "s3cret"}),
    )
    assert result.output == {"header": "Bearer abc", "scheme": "Bearer"}


async def test_oauth2_client_credentials_fetches_a_token_through_the_effects() -> None:
    """A reusable oauth2 policy gets a token from the authority and sends it as bearer."""
    SEEN.clear()
    result, _ = await run(
        CALL % "{use: oauth}",
        effects=InMemoryEffects(http=server, secrets={"clientSecret": "s3cret"}),
    )
    assert result.output == {"header": "Bearer tok-1", "scheme": "Bearer"}
    assert SEEN[0].method == "POST"
    assert SEEN[0].headers["content-type"] == "application/x-www-form-urlencoded"


async def test_failed_token_request_is_an_authentication_error() -> None:
    """A rejected client faults with the authentication type and the token URL."""
    result, _ = await run(
        CALL % "{use: oauth}",
        effects=InMemoryEffects(http=server, secrets={"clientSecret": "wrong"}),
    )
    assert result.error is not None
    assert result.error.type == "https://serverlessworkflow.io/spec/1.0.0/errors/authentication"
    assert result.error.detail == (
        "token request to https://auth.example.com/oauth2/token failed with status 401"
    )


async def test_secret_based_basic_policy() -> None:
    """``basic: {use: secret}`` reads username and password from the secret."""
    result, _ = await run(
        """
        use:
          secrets: [ creds ]
        do:
          - get:
              call: http
              with:
                method: get
                endpoint:
                  uri: https://api.example.com/me
                  authentication: {basic: {use: creds}}
        """,
        effects=InMemoryEffects(http=server, secrets={"creds": {"username": "u", "password": "p"}}),
    )
    assert result.output == {"authorization": "Basic " + base64.b64encode(b"u:p").decode()}


OIDC = """
do:
  - get:
      call: http
      with:
        method: get
        endpoint:
          uri: https://api.example.com/me
          authentication:
            oidc:
              authority: %s
              grant: client_credentials
              client: {id: app, secret: s3cret}
"""


async def test_oidc_takes_the_token_endpoint_from_the_discovery_document() -> None:
    """oidc reads token_endpoint from <authority>/.well-known/openid-configuration."""
    SEEN.clear()
    result, _ = await run(
        OIDC % "https://idp.example.com/realms/r", effects=InMemoryEffects(http=server)
    )
    assert result.output == {"authorization": "Bearer oidc-1"}
    assert [(r.method, r.url) for r in SEEN] == [
        ("GET", "https://idp.example.com/realms/r/.well-known/openid-configuration"),
        ("POST", "https://idp.example.com/realms/r/protocol/openid-connect/token"),
        ("GET", "https://api.example.com/me"),
    ]


async def test_oidc_authority_may_name_the_discovery_document() -> None:
    """An authority that already ends with the discovery path is fetched as it is."""
    SEEN.clear()
    authority = "https://idp.example.com/realms/r/.well-known/openid-configuration"
    result, _ = await run(OIDC % authority, effects=InMemoryEffects(http=server))
    assert result.output == {"authorization": "Bearer oidc-1"}
    assert SEEN[0].url == authority


async def test_oidc_discovery_without_a_token_endpoint_is_an_authentication_error() -> None:
    """A discovery document with no token_endpoint faults naming the document."""
    result, _ = await run(OIDC % "https://broken.example.com", effects=InMemoryEffects(http=server))
    assert result.error is not None
    assert result.error.type == "https://serverlessworkflow.io/spec/1.0.0/errors/authentication"
    assert result.error.detail == (
        "the OpenID Connect configuration https://broken.example.com/.well-known/"
        "openid-configuration has no absolute 'token_endpoint'; check the oidc authority"
    )
