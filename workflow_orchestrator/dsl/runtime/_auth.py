"""Authentication of calls: basic, bearer and OAuth2/OIDC client credentials.

A policy is inline, a ``use`` reference to ``use.authentications``, or secret-based
(``basic: {use: mySecret}``: the secret holds the policy's properties). The result is the
``Authorization`` header and the spec's ``$authorization`` descriptor (scheme, parameter).
Token requests go through the effects like every other HTTP call. An ``oauth2`` token comes
from ``authority`` + ``endpoints.token`` (``/oauth2/token`` by default); an ``oidc`` one from the
``token_endpoint`` of the authority's discovery document (``<authority>/.well-known/
openid-configuration``, or the authority itself when it names that document), fetched once per
run within the document limits.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from workflow_orchestrator.dsl.errors import ErrorType, Problem, WorkflowError
from workflow_orchestrator.dsl.runtime._arguments import REMOTE_FUNCTION
from workflow_orchestrator.dsl.runtime._documents import fetch_document
from workflow_orchestrator.dsl.runtime._effects import HttpRequest
from workflow_orchestrator.dsl.runtime._runner import Runner

DISCOVERY_PATH = "/.well-known/openid-configuration"


def _problem(kind: str, detail: str, where: str) -> WorkflowError:
    return WorkflowError(
        Problem.standard(kind, title="Authentication Error", detail=detail, instance=where)
    )


async def _properties(runner: Runner, scheme: str, body: Any, where: str) -> Mapping[str, Any]:
    if isinstance(body, Mapping) and set(body) == {"use"}:
        secret = await runner.effects.get_secret(str(body["use"]))
        if not isinstance(secret, Mapping):
            raise _problem(
                ErrorType.CONFIGURATION,
                f"secret {body['use']!r} used by '{scheme}' authentication must be an object "
                "with the policy's properties",
                where,
            )
        return secret
    if not isinstance(body, Mapping):
        raise _problem(
            ErrorType.CONFIGURATION, f"'{scheme}' authentication must be an object", where
        )
    return body


async def resolve_policy(
    runner: Runner, policy: Mapping[str, Any], data: Any, args: Mapping[str, Any], where: str
) -> Mapping[str, Any]:
    """The inline policy of ``policy`` (following a ``use`` reference), evaluated."""
    if set(policy) == {"use"}:
        name = str(policy["use"])
        declared = runner.workflow.authentications
        if name not in declared:
            raise _problem(
                ErrorType.CONFIGURATION,
                f"authentication {name!r} is not declared in use.authentications; "
                f"declared: {sorted(declared)}",
                where,
            )
        policy = await runner.evaluate_template(declared[name], data, args, where)
    return policy


def _refuse_borrowed(policy: Mapping[str, Any], where: str) -> None:
    borrowed = set(policy) == {"use"} or any(
        isinstance(body, Mapping) and set(body) == {"use"} for body in policy.values()
    )
    if borrowed:
        raise _problem(
            ErrorType.AUTHORIZATION,
            "a function fetched from a catalog or a URI may not use the workflow's "
            "authentication policies or secrets; pass the credentials it needs in the "
            "call's 'with'",
            where,
        )


async def authorize(
    runner: Runner,
    policy: Mapping[str, Any],
    data: Any,
    args: Mapping[str, Any],
    where: str,
    key: str,
) -> tuple[str, dict[str, str]]:
    """The ``Authorization`` header value and the ``$authorization`` descriptor of ``policy``.

    In a function document fetched at run time (``REMOTE_FUNCTION`` in ``args``), a policy
    named by ``use`` or read from a secret is refused: remote code gets its credentials through
    the call's ``with``, never the workflow's own.
    """
    if REMOTE_FUNCTION in args:
        _refuse_borrowed(policy, where)
    policy = await resolve_policy(runner, policy, data, args, where)
    ((scheme, body),) = policy.items()
    props = await _properties(runner, scheme, body, where)
    if scheme == "basic":
        raw = f"{props.get('username', '')}:{props.get('password', '')}".encode()
        parameter = base64.b64encode(raw).decode("ascii")
        return f"Basic {parameter}", {"scheme": "Basic", "parameter": parameter}
    if scheme == "bearer":
        token = str(props.get("token", ""))
        return f"Bearer {token}", {"scheme": "Bearer", "parameter": token}
    if scheme in ("oauth2", "oidc"):
        token = await _client_credentials(runner, scheme, props, where, key)
        return f"Bearer {token}", {"scheme": "Bearer", "parameter": token}
    raise _problem(
        ErrorType.CONFIGURATION,
        f"'{scheme}' authentication is not supported yet; use basic, bearer, oauth2 or oidc",
        where,
    )


async def _discovered_token_endpoint(runner: Runner, authority: str, where: str) -> str:
    """The ``token_endpoint`` of the OpenID Connect discovery document of ``authority``."""
    uri = authority if authority.endswith(DISCOVERY_PATH) else authority + DISCOVERY_PATH
    document = await fetch_document(
        runner.effects,
        runner.options,
        runner.documents,
        uri,
        what=f"the OpenID Connect configuration {uri}",
        accept="application/json",
        where=where,
    )
    endpoint = document.get("token_endpoint") if isinstance(document, Mapping) else None
    if not isinstance(endpoint, str) or "://" not in endpoint:
        raise _problem(
            ErrorType.AUTHENTICATION,
            f"the OpenID Connect configuration {uri} has no absolute 'token_endpoint'; check "
            "the oidc authority",
            where,
        )
    return endpoint


async def _token_url(runner: Runner, scheme: str, props: Mapping[str, Any], where: str) -> str:
    authority = str(props.get("authority", "")).rstrip("/")
    if scheme == "oidc":
        return await _discovered_token_endpoint(runner, authority, where)
    endpoints = props.get("endpoints") or {}
    token_path = str(endpoints.get("token", "/oauth2/token"))
    return token_path if "://" in token_path else authority + "/" + token_path.lstrip("/")


async def _client_credentials(
    runner: Runner, scheme: str, props: Mapping[str, Any], where: str, key: str
) -> str:
    grant = props.get("grant", "client_credentials")
    if grant not in ("client_credentials", "password"):
        raise _problem(
            ErrorType.CONFIGURATION,
            f"{scheme} grant {grant!r} is not supported yet; use client_credentials or password",
            where,
        )
    url = await _token_url(runner, scheme, props, where)
    client = props.get("client") or {}
    form: dict[str, str] = {"grant_type": str(grant)}
    headers = {"accept": "application/json"}
    if grant == "password":
        form["username"] = str(props.get("username", ""))
        form["password"] = str(props.get("password", ""))
    if props.get("scopes"):
        form["scope"] = " ".join(props["scopes"])
    if props.get("audiences"):
        form["audience"] = " ".join(props["audiences"])
    if client.get("authentication") == "client_secret_basic":
        raw = f"{client.get('id', '')}:{client.get('secret', '')}".encode()
        headers["authorization"] = "Basic " + base64.b64encode(raw).decode("ascii")
    else:
        form["client_id"] = str(client.get("id", ""))
        if client.get("secret") is not None:
            form["client_secret"] = str(client["secret"])
    encoding = (props.get("request") or {}).get("encoding", "application/x-www-form-urlencoded")
    body = (json.dumps(form) if encoding == "application/json" else urlencode(form)).encode()
    headers["content-type"] = encoding
    response = await runner.effects.http(
        HttpRequest(
            method="POST",
            url=url,
            headers=headers,
            body=body,
            idempotency_key=f"{runner.state.instance_id}{key}@token",
            timeout=runner.options.http_timeout,
        )
    )
    if not 200 <= response.status < 300:
        raise _problem(
            ErrorType.AUTHENTICATION,
            f"token request to {url} failed with status {response.status}",
            where,
        )
    try:
        token = json.loads(response.body)["access_token"]
    except (ValueError, KeyError, TypeError, RecursionError):
        raise _problem(
            ErrorType.AUTHENTICATION,
            f"token response of {url} has no 'access_token'",
            where,
        ) from None
    return str(token)
