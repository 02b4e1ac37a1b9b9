"""``security.authentication.oidc``: only asymmetric algorithms, a JWKS URL nobody can alter."""

from __future__ import annotations

from pathlib import Path

import pytest

from workflow_orchestrator.config import ConfigError, load_config

OIDC = """security:
  authentication:
    enabled: true
    oidc:
      enabled: true
      issuer: https://issuer.test/realms/shop
      audience: workflow-orchestrator
      jwksUrl: {url}
      algorithms: {algorithms}
"""


def problems_of(tmp_path: Path, url: str, algorithms: str = "[RS256]") -> list[str]:
    path = tmp_path / "config" / "application.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(OIDC.format(url=url, algorithms=algorithms))
    try:
        load_config(cwd=tmp_path, environ={})
    except ConfigError as error:
        return [p.message for p in error.problems]
    return []


def test_hmac_and_none_are_not_algorithms_a_token_may_use(tmp_path: Path) -> None:
    """``HS256`` and ``none`` are refused when the configuration loads, naming the choices."""
    url = "https://issuer.test/jwks"
    found = problems_of(tmp_path, url, "[RS256, HS256, none]")
    choices = "RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA"
    assert found == [
        f"expected one of {choices}, got 'HS256'; did you mean 'RS256'?",
        f"expected one of {choices}, got 'none'",
    ]
    assert problems_of(tmp_path, url, "[rs256, EdDSA]") == []


@pytest.mark.parametrize(
    ("url", "accepted"),
    [
        ("https://issuer.test/protocol/openid-connect/certs", True),
        ("http://127.0.0.1:8180/jwks", True),
        ("http://localhost:8180/jwks", True),
        ("http://[::1]:8180/jwks", True),
        ("http://issuer.test/jwks", False),
        ("http://10.0.0.5/jwks", False),
        ("file:///etc/jwks.json", False),
        ("issuer.test/jwks", False),
    ],
)
def test_the_jwks_url_is_https_or_loopback(tmp_path: Path, url: str, accepted: bool) -> None:
    """Plain http:// is accepted only on a loopback address."""
    expected = (
        []
        if accepted
        else [
            "the JWKS URL must be https:// (http:// only on a loopback address): whoever can "
            "alter the keys can sign any token"
        ]
    )
    assert problems_of(tmp_path, url) == expected
