"""The server side of SASL PLAIN (RFC 4616) and SCRAM-SHA-256/512 (RFC 5802, RFC 7677), with
real credential checks, for the Kafka test front (``kafka_front.py``).

Invariants:

- Passwords are kept only as SCRAM keys (salt, iterations, StoredKey, ServerKey) for SCRAM
  and as the password for PLAIN, as a Kafka broker's credential store would; every comparison
  of secrets is constant-time.
- A failed check raises ``AuthenticationFailed`` with the message a Kafka broker sends, the
  same for an unknown user as for a wrong password.
- A SCRAM exchange is two steps (client-first, client-final); the server nonce is random, the
  channel binding must be the ``n,,`` (or ``n,a=...,``) GS2 header without binding, as Kafka
  requires, and the client proof is verified against StoredKey before the server signature
  is sent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Mapping

import attrs

__all__ = [
    "MECHANISMS",
    "SCRAM_ITERATIONS",
    "AuthenticationFailed",
    "Credentials",
    "PlainExchange",
    "SaslExchange",
    "ScramCredential",
    "ScramExchange",
    "start_exchange",
]

MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
SCRAM_ITERATIONS = 4096  # Kafka's minimum for SCRAM-SHA-256 and -512
_HASHES = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}


class AuthenticationFailed(Exception):
    """The client's credentials were refused; ``str()`` is what the broker tells it."""


@attrs.frozen
class ScramCredential:
    """What a SCRAM server stores for one user and mechanism (RFC 5802, section 3)."""

    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes

    @classmethod
    def create(
        cls,
        password: str,
        mechanism: str,
        *,
        iterations: int = SCRAM_ITERATIONS,
        salt: bytes | None = None,
    ) -> ScramCredential:
        """The credential of ``password`` (with a random salt unless ``salt`` is given)."""
        digest = _HASHES[mechanism]
        salt = secrets.token_bytes(16) if salt is None else salt
        salted = hashlib.pbkdf2_hmac(digest, password.encode(), salt, iterations)
        client_key = hmac.digest(salted, b"Client Key", digest)
        return cls(
            salt=salt,
            iterations=iterations,
            stored_key=hashlib.new(digest, client_key).digest(),
            server_key=hmac.digest(salted, b"Server Key", digest),
        )


@attrs.frozen
class Credentials:
    """The users a front accepts: passwords for PLAIN, SCRAM keys for each SCRAM mechanism."""

    passwords: Mapping[str, str]
    scram: Mapping[tuple[str, str], ScramCredential]  # (mechanism, user) -> credential

    @classmethod
    def create(cls, users: Mapping[str, str], mechanisms: tuple[str, ...]) -> Credentials:
        scram = {
            (mechanism, user): ScramCredential.create(password, mechanism)
            for mechanism in mechanisms
            if mechanism in _HASHES
            for user, password in users.items()
        }
        return cls(passwords=dict(users), scram=scram)


class SaslExchange:
    """One authentication: ``step`` takes the client's bytes and returns the server's, until
    ``complete``; ``user`` is who the client says it is (authenticated once complete)."""

    complete: bool = False
    user: str | None = None

    def step(self, client_bytes: bytes) -> bytes:
        raise NotImplementedError


class PlainExchange(SaslExchange):
    """PLAIN: one message ``authzid NUL authcid NUL password``."""

    FAILED = "Authentication failed: Invalid username or password"

    def __init__(self, credentials: Credentials) -> None:
        self._credentials = credentials

    def step(self, client_bytes: bytes) -> bytes:
        parts = client_bytes.split(b"\0")
        if len(parts) != 3:
            raise AuthenticationFailed("Invalid SASL/PLAIN response: expected 3 tokens")
        authorization, user_bytes, password = parts
        user = self.user = user_bytes.decode("utf-8", errors="replace")
        if authorization and authorization != user_bytes:
            raise AuthenticationFailed(
                "Authentication failed: Client requested an authorization id that is "
                "different from username"
            )
        expected = self._credentials.passwords.get(user)
        # Compared even for an unknown user, so the answer takes as long either way.
        known = expected is not None
        if not hmac.compare_digest(password, (expected or "\0").encode()) or not known:
            raise AuthenticationFailed(self.FAILED)
        self.complete = True
        return b""


def _attributes(message: str) -> dict[str, str]:
    pairs = [part.split("=", 1) for part in message.split(",")]
    if any(len(pair) != 2 or not pair[0] for pair in pairs):
        raise AuthenticationFailed(f"Invalid SCRAM message: {message!r}")
    return {pair[0]: pair[1] for pair in pairs}


class ScramExchange(SaslExchange):
    """SCRAM-SHA-256/512: client-first -> server-first, client-final -> server-final; the
    server's part of the nonce is random unless ``server_nonce`` is given."""

    def __init__(
        self, credentials: Credentials, mechanism: str, *, server_nonce: str | None = None
    ) -> None:
        self._credentials = credentials
        self._server_nonce = server_nonce or secrets.token_urlsafe(24)
        self._mechanism = mechanism
        self._digest = _HASHES[mechanism]
        self._credential: ScramCredential | None = None
        self._nonce = ""
        self._gs2_header = ""
        self._first_bare = ""
        self._server_first = ""

    @property
    def failed(self) -> str:
        return (
            "Authentication failed during authentication due to invalid credentials with "
            f"SASL mechanism {self._mechanism}"
        )

    def step(self, client_bytes: bytes) -> bytes:
        message = client_bytes.decode("utf-8", errors="replace")
        if self._credential is None:
            return self._first(message).encode()
        return self._final(message).encode()

    def _first(self, message: str) -> str:
        flag, separator, rest = message.partition(",")
        authorization, separator2, bare = rest.partition(",")
        if not separator or not separator2 or flag != "n":
            # "y"/"p": channel binding, which Kafka does not offer.
            raise AuthenticationFailed(f"Invalid SCRAM client first message: {message!r}")
        attributes = _attributes(bare)
        if "n" not in attributes or "r" not in attributes:
            raise AuthenticationFailed(f"Invalid SCRAM client first message: {message!r}")
        user = self.user = attributes["n"].replace("=2C", ",").replace("=3D", "=")
        if authorization and authorization != f"a={attributes['n']}":
            raise AuthenticationFailed(
                "Authentication failed: Client requested an authorization id that is "
                "different from username"
            )
        credential = self._credentials.scram.get((self._mechanism, user))
        if credential is None:
            raise AuthenticationFailed(self.failed)
        self._credential = credential
        self._gs2_header = f"{flag},{authorization},"
        self._first_bare = bare
        self._nonce = attributes["r"] + self._server_nonce
        salt = base64.b64encode(credential.salt).decode()
        self._server_first = f"r={self._nonce},s={salt},i={credential.iterations}"
        return self._server_first

    def _final(self, message: str) -> str:
        credential = self._credential
        assert credential is not None
        attributes = _attributes(message)
        proof_text = attributes.get("p")
        binding = base64.b64encode(self._gs2_header.encode()).decode()
        if attributes.get("c") != binding or attributes.get("r") != self._nonce or not proof_text:
            raise AuthenticationFailed(self.failed)
        without_proof = message[: message.rindex(",p=")]
        auth_message = f"{self._first_bare},{self._server_first},{without_proof}".encode()
        signature = hmac.digest(credential.stored_key, auth_message, self._digest)
        try:
            proof = base64.b64decode(proof_text, validate=True)
        except ValueError:
            raise AuthenticationFailed(self.failed) from None
        if len(proof) != len(signature):
            raise AuthenticationFailed(self.failed)
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        stored_key = hashlib.new(self._digest, client_key).digest()
        if not hmac.compare_digest(stored_key, credential.stored_key):
            raise AuthenticationFailed(self.failed)
        self.complete = True
        server_signature = hmac.digest(credential.server_key, auth_message, self._digest)
        return f"v={base64.b64encode(server_signature).decode()}"


def start_exchange(mechanism: str, credentials: Credentials) -> SaslExchange:
    """A new authentication with ``mechanism`` (one of ``MECHANISMS``)."""
    if mechanism == "PLAIN":
        return PlainExchange(credentials)
    return ScramExchange(credentials, mechanism)
