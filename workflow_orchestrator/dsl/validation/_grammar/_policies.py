"""Reusable parts: authentication policies, endpoints, resources, errors, retries, timeouts,
schemas and the input/output/export filters.

Authentication follows the schema's ``oneOf`` exactly:

- a scheme's settings (``basic: ...``) are either inline or ``{use: secret}``, never both;
- a policy in ``use.authentications`` is open: it is valid when exactly one of its schemes
  (``basic``, ``bearer``, ``digest``, ``oauth2``, ``oidc``) has valid settings, whatever else
  it holds;
- where a policy may also be a reference (an endpoint's ``authentication``) it is closed: one
  key, ``use`` (the name of a declared policy) or one scheme.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from ._nodes import (
    ByType,
    Choice,
    Integer,
    Issues,
    Node,
    Path,
    Record,
    quoted,
    unknown_key,
)
from ._values import (
    ANY,
    DURATION,
    LITERAL,
    MAPPING,
    SECRET_NAME,
    TEXT,
    TEXT_LIST,
    URI,
    URI_OR_EXPRESSION,
)

SCHEMES = ("basic", "bearer", "digest", "oauth2", "oidc")


@attrs.frozen
class SecretOr(Node):
    """A scheme's settings: ``inline`` ones, or ``{use: secret}`` and nothing else."""

    inline: Record
    noun: str = "the settings of an authentication scheme"

    def check(self, value: Any, path: Path, out: Issues) -> None:
        if value.__class__ is not dict:
            self.wrong_type(value, path, out)
        elif "use" not in value:
            self.inline.check(value, path, out)
        else:
            for key in value:
                if key != "use":
                    out.append(
                        (
                            (path, key),
                            f"settings taken from a secret ('use') have nothing else; remove "
                            f"{key!r}, or remove 'use' to write the settings inline",
                            "unevaluatedProperties",
                        )
                    )
            SECRET_NAME.check(value["use"], (path, "use"), out)


def _scheme(noun: str, fields: Mapping[str, Node], required: tuple[str, ...] = ()) -> SecretOr:
    return SecretOr(Record(noun=noun, fields=fields, required=required))


_OAUTH2_TOKEN = Record(
    noun="an OAuth2 token", fields={"token": TEXT, "type": TEXT}, required=("token", "type")
)
_OAUTH2_FIELDS: dict[str, Node] = {
    "authority": URI,
    "grant": Choice(
        (
            "authorization_code",
            "client_credentials",
            "password",
            "refresh_token",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        )
    ),
    "client": Record(
        noun="an OAuth2 client",
        fields={
            "id": TEXT,
            "secret": TEXT,
            "assertion": TEXT,
            "authentication": Choice(
                (
                    "client_secret_basic",
                    "client_secret_post",
                    "client_secret_jwt",
                    "private_key_jwt",
                    "none",
                )
            ),
        },
    ),
    "request": Record(
        noun="an OAuth2 token request",
        fields={"encoding": Choice(("application/x-www-form-urlencoded", "application/json"))},
        closed=False,
    ),
    "issuers": TEXT_LIST,
    "scopes": TEXT_LIST,
    "audiences": TEXT_LIST,
    "username": TEXT,
    "password": TEXT,
    "subject": _OAUTH2_TOKEN,
    "actor": _OAUTH2_TOKEN,
}
_OAUTH2_ENDPOINTS = Record(
    noun="the OAuth2 endpoints",
    fields={"token": TEXT, "revocation": TEXT, "introspection": TEXT},
    closed=False,
)
SCHEME_SETTINGS: Mapping[str, Node] = {
    "basic": _scheme(
        "basic authentication", {"username": TEXT, "password": TEXT}, ("username", "password")
    ),
    "bearer": _scheme("bearer authentication", {"token": TEXT}, ("token",)),
    "digest": _scheme(
        "digest authentication", {"username": TEXT, "password": TEXT}, ("username", "password")
    ),
    "oauth2": _scheme("OAuth2 authentication", {**_OAUTH2_FIELDS, "endpoints": _OAUTH2_ENDPOINTS}),
    "oidc": _scheme("OpenID Connect authentication", _OAUTH2_FIELDS),
}


@attrs.frozen
class Authentication(Node):
    """An authentication policy; ``referenceable`` ones may be ``{use: policy}`` instead."""

    referenceable: bool
    noun: str = "an authentication policy"

    def check(self, value: Any, path: Path, out: Issues) -> None:
        if value.__class__ is not dict:
            self.wrong_type(value, path, out)
        elif self.referenceable:
            self._check_closed(value, path, out)
        else:
            self._check_open(value, path, out)

    def _check_open(self, value: dict[str, Any], path: Path, out: Issues) -> None:
        present = [scheme for scheme in SCHEMES if scheme in value]
        if len(present) > 1:
            valid = [scheme for scheme in present if SCHEME_SETTINGS[scheme].accepts(value[scheme])]
            if len(valid) == 1:
                return  # the schema's oneOf holds: exactly one scheme is valid
            if valid:
                out.append(
                    (
                        path,
                        f"a policy has one scheme; keep one of {quoted(valid)}",
                        "oneOf",
                    )
                )
                return
        if not present:
            out.append(
                (
                    path,
                    f"an authentication policy needs one of {quoted(SCHEMES)}; add one",
                    "oneOf",
                )
            )
        for scheme in present:
            SCHEME_SETTINGS[scheme].check(value[scheme], (path, scheme), out)

    def _check_closed(self, value: dict[str, Any], path: Path, out: Issues) -> None:
        known = [key for key in value if key == "use" or key in SCHEME_SETTINGS]
        for key in value:
            if key != "use" and key not in SCHEME_SETTINGS:
                out.append(unknown_key(key, ("use", *SCHEMES), "an authentication", path))
        if not value:
            out.append(
                (
                    path,
                    "an authentication needs 'use' (the name of a policy in "
                    f"use.authentications) or one of {quoted(SCHEMES)}; add one",
                    "oneOf",
                )
            )
        elif len(known) > 1:
            out.append(
                (path, f"an authentication has one key; keep one of {quoted(known)}", "oneOf")
            )
        for key in known:
            node = SECRET_NAME if key == "use" else SCHEME_SETTINGS[key]
            node.check(value[key], (path, key), out)


AUTHENTICATION_POLICY = Authentication(referenceable=False)
AUTHENTICATION = Authentication(referenceable=True)

ENDPOINT = ByType(
    noun="an endpoint (an absolute URI, a runtime expression or a mapping with 'uri')",
    string=URI_OR_EXPRESSION,
    mapping=Record(
        noun="an endpoint",
        fields={"uri": URI_OR_EXPRESSION, "authentication": AUTHENTICATION},
        required=("uri",),
    ),
)
EXTERNAL_RESOURCE = Record(
    noun="an external resource", fields={"name": TEXT, "endpoint": ENDPOINT}, required=("endpoint",)
)
CATALOG = Record(noun="a catalog", fields={"endpoint": ENDPOINT}, required=("endpoint",))

ERROR = Record(
    noun="an error",
    fields={
        "type": URI_OR_EXPRESSION,
        "status": Integer(),
        "instance": LITERAL,
        "title": TEXT,
        "detail": TEXT,
    },
    required=("type", "status"),
)
ERROR_OR_NAME = ByType(
    noun="an error (a mapping with 'type' and 'status') or the name of one in use.errors",
    mapping=ERROR,
    string=TEXT,
)
ERROR_FILTER = Record(
    noun="an error filter",
    fields={
        "type": TEXT,
        "status": Integer(),
        "instance": TEXT,
        "title": TEXT,
        "details": TEXT,
    },
    closed=False,
    min_keys=1,
)

TIMEOUT = Record(noun="a timeout", fields={"after": DURATION}, required=("after",))
TIMEOUT_OR_NAME = ByType(
    noun="a timeout (a mapping with 'after') or the name of one in use.timeouts",
    mapping=TIMEOUT,
    string=TEXT,
)

RETRY_POLICY = Record(
    noun="a retry policy",
    fields={
        "when": TEXT,
        "exceptWhen": TEXT,
        "delay": DURATION,
        "backoff": Record(
            noun="a backoff",
            fields=dict.fromkeys(("constant", "exponential", "linear"), MAPPING),
            exclusive=(("constant", "exponential", "linear"),),
        ),
        "limit": Record(
            noun="a retry limit",
            fields={
                "attempt": Record(
                    noun="an attempt limit", fields={"count": Integer(), "duration": DURATION}
                ),
                "duration": DURATION,
            },
        ),
        "jitter": Record(
            noun="a jitter", fields={"from": DURATION, "to": DURATION}, required=("from", "to")
        ),
    },
)
RETRY_POLICY_OR_NAME = ByType(
    noun="a retry policy (a mapping) or the name of one in use.retries",
    mapping=RETRY_POLICY,
    string=TEXT,
)

SCHEMA = Record(
    noun="a schema",
    fields={"format": TEXT, "document": ANY, "resource": EXTERNAL_RESOURCE},
    exclusive=(("document", "resource"),),
)
_EXPRESSION_OR_MAPPING = ByType(
    noun="a runtime expression or a mapping", mapping=MAPPING, string=TEXT
)
INPUT = Record(noun="an input", fields={"schema": SCHEMA, "from": _EXPRESSION_OR_MAPPING})
OUTPUT = Record(noun="an output", fields={"schema": SCHEMA, "as": _EXPRESSION_OR_MAPPING})
EXPORT = Record(noun="an export", fields={"schema": SCHEMA, "as": _EXPRESSION_OR_MAPPING})
