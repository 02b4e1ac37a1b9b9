"""Signing keys generated in the test and the JWTs they sign, as an OIDC issuer would.

`SigningKey` holds a fresh RSA (2048-bit) or EC (P-256) private key and its public JWK;
`mint` signs claims with it (the defaults make a valid token for `ISSUER` and `AUDIENCE`).
`forge_hs256` and `unsigned` build the two classic attacks by hand, since PyJWT refuses to.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import attrs
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

__all__ = [
    "AUDIENCE",
    "ISSUER",
    "SigningKey",
    "claims",
    "forge_hs256",
    "jwks_of",
    "new_ec_key",
    "new_rsa_key",
    "unsigned",
]

ISSUER = "https://issuer.test/realms/shop"
AUDIENCE = "workflow-orchestrator"


@attrs.frozen
class SigningKey:
    """A private key, the algorithm it signs with and its key id."""

    kid: str
    algorithm: str
    private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

    def public_jwk(self, **extra: Any) -> dict[str, Any]:
        """The public half as a JWK (with ``kid``, ``use: sig``, and ``extra`` members)."""
        public = self.private_key.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            jwk: dict[str, Any] = RSAAlgorithm.to_jwk(public, as_dict=True)
        else:
            jwk = ECAlgorithm.to_jwk(public, as_dict=True)
        return {**jwk, "kid": self.kid, "use": "sig", **extra}

    def public_pem(self) -> bytes:
        """The public key in PEM, as an HMAC-confusion attacker would use it."""
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def mint(self, payload: dict[str, Any], **header: Any) -> str:
        """``payload`` signed with this key (header ``kid`` set unless ``kid=None`` is given)."""
        headers = {"kid": self.kid, **header}
        if headers["kid"] is None:
            del headers["kid"]
        algorithm = headers.pop("alg", self.algorithm)
        return jwt.encode(payload, self.private_key, algorithm=algorithm, headers=headers)


def new_rsa_key(kid: str = "rsa-1", algorithm: str = "RS256") -> SigningKey:
    """A fresh 2048-bit RSA key."""
    return SigningKey(kid, algorithm, rsa.generate_private_key(65537, 2048))


def new_ec_key(kid: str = "ec-1") -> SigningKey:
    """A fresh P-256 key (ES256)."""
    return SigningKey(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))


def jwks_of(*keys: SigningKey) -> bytes:
    """The JWKS document publishing the public halves of ``keys``."""
    return json.dumps({"keys": [key.public_jwk() for key in keys]}).encode()


def claims(**changes: Any) -> dict[str, Any]:
    """Valid claims for `ISSUER`/`AUDIENCE`, valid for an hour from now; ``changes`` override
    (a value of None removes the claim)."""
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice",
        "iat": now,
        "exp": now + 3600,
        "roles": ["operator", "developer"],
        "namespaces": ["shop"],
    }
    base.update(changes)
    return {name: value for name, value in base.items() if value is not None}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _signing_input(header: dict[str, Any], payload: dict[str, Any]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"


def forge_hs256(key: SigningKey, payload: dict[str, Any]) -> str:
    """A token 'signed' with HS256 using the *public* key as the HMAC secret."""
    signing_input = _signing_input({"alg": "HS256", "typ": "JWT", "kid": key.kid}, payload)
    digest = hmac.new(key.public_pem(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(digest)}"


def unsigned(payload: dict[str, Any], kid: str = "rsa-1") -> str:
    """A token with ``alg: none`` and an empty signature."""
    return _signing_input({"alg": "none", "typ": "JWT", "kid": kid}, payload) + "."
