"""The ``vault`` secrets provider: HashiCorp Vault KV version 2, through ``hvac``.

The secrets are the keys of one KV v2 secret: ``vault kv put secret/workflow-orchestrator/prod
database-password=... kafka-password=...`` is mount ``secret``, path
``workflow-orchestrator/prod``, secrets ``database-password`` and ``kafka-password``. The whole
secret is read at once and cached for ``cacheTtl`` (0: read at every call), so a changed value
is seen at most ``cacheTtl`` later.

Login (``auth.method``): ``token`` (``auth.token``, the guide's ``VAULT_TOKEN``, looked up once to
learn its time to live), ``approle`` (``roleId``/``secretId``) or ``kubernetes`` (``role`` and the
pod's service account token, read again at every login as the kubelet rotates it). A token with
a time to live is renewed (``renew-self``) once two thirds of it have passed, at the next call;
when renewal fails, or Vault refuses the token, the provider logs in again (AppRole,
Kubernetes); a refused static token is an error naming ``VAULT_TOKEN``. Renewal happens on use:
a static token left unused for longer than its time to live expires.

``hvac`` is synchronous: every request runs in a worker thread (``trio.to_thread``), bounded by
``timeout`` (hvac's socket timeout, and a Trio deadline on the wait), one request at a time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import attrs
import hvac
import hvac.exceptions
import requests
import trio

from workflow_orchestrator.config import VaultSettings
from workflow_orchestrator.security._secret_errors import SecretProviderError

__all__ = ["VaultSecrets"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
_SETTING = "security.secrets.vault"
# Renew once this share of the token's time to live has passed.
_RENEW_AT = 2 / 3


def _read_text(path: str) -> str:
    return Path(path).read_text(encoding="utf-8").strip()


@attrs.define(eq=False)
class VaultSecrets:
    """Secrets from Vault KV v2 (see the module docstring). ``clock`` is monotonic seconds."""

    settings: VaultSettings
    clock: Callable[[], float] = time.monotonic
    read_file: Callable[[str], str] = _read_text
    name: str = "vault"
    _client: hvac.Client = attrs.field(init=False)
    _lock: trio.Lock = attrs.field(factory=trio.Lock, init=False)
    _logged_in: bool = attrs.field(default=False, init=False)
    _renew_at: float | None = attrs.field(default=None, init=False)
    _renewable: bool = attrs.field(default=False, init=False)
    _cache: dict[str, Any] | None = attrs.field(default=None, init=False)
    _cached_at: float = attrs.field(default=0.0, init=False)

    def __attrs_post_init__(self) -> None:
        settings = self.settings
        self._client = hvac.Client(
            url=settings.address,
            verify=settings.ca_certificate or True,
            timeout=settings.timeout,
            namespace=settings.namespace or None,
        )

    @property
    def _location(self) -> str:
        return f"{self.settings.mount}/{self.settings.path}"

    def where(self, name: str) -> str:
        return f"vault {self._location} (key {name!r})"

    async def read(self, name: str) -> Any:
        async with self._lock:
            data = await self._data()
        return data.get(name)

    def close(self) -> None:
        self._client.adapter.close()

    # -- the secret ------------------------------------------------------------------------

    async def _data(self) -> dict[str, Any]:
        ttl = self.settings.cache_ttl
        if self._cache is not None and ttl > 0 and self.clock() - self._cached_at < ttl:
            return self._cache
        await self._ensure_token()
        try:
            data = await self._fetch()
        except hvac.exceptions.Forbidden:
            if self.settings.auth.method == "token":
                raise self._refused() from None
            # The token may have been revoked or expired meanwhile: log in again, once.
            await self._login()
            data = await self._fetch()
        self._cache, self._cached_at = data, self.clock()
        return data

    async def _fetch(self) -> dict[str, Any]:
        settings = self.settings
        try:
            response = await self._call(
                self._client.secrets.kv.v2.read_secret_version,
                path=settings.path,
                mount_point=settings.mount,
                raise_on_deleted_version=True,
            )
        except hvac.exceptions.InvalidPath:
            return {}  # no such secret (yet): none of its keys is defined
        data = ((response or {}).get("data") or {}).get("data")
        if not isinstance(data, dict):
            raise SecretProviderError(
                self.name, f"{self._location} is not a KV version 2 secret; check {_SETTING}.mount"
            )
        return data

    # -- the login token -------------------------------------------------------------------

    async def _ensure_token(self) -> None:
        if not self._logged_in:
            await self._login()
            return
        if self._renew_at is None or self.clock() < self._renew_at:
            return
        if self._renewable:
            try:
                response = await self._call(self._client.auth.token.renew_self)
            except (hvac.exceptions.VaultError, SecretProviderError) as error:
                logger.warning("renewing the vault token failed (%s); logging in again", error)
            else:
                self._lease(response.get("auth") or {})
                return
        await self._login()

    async def _login(self) -> None:
        auth = self.settings.auth
        self._logged_in = False
        try:
            if auth.method == "approle":
                response = await self._call(
                    self._client.auth.approle.login,
                    role_id=auth.role_id,
                    secret_id=auth.secret_id or None,
                    mount_point=auth.mount_point or "approle",
                )
                self._lease(response.get("auth") or {})
            elif auth.method == "kubernetes":
                jwt = self._service_account_token()
                response = await self._call(
                    self._client.auth.kubernetes.login,
                    role=auth.role,
                    jwt=jwt,
                    mount_point=auth.mount_point or "kubernetes",
                )
                self._lease(response.get("auth") or {})
            else:
                await self._use_static_token()
        except (hvac.exceptions.Forbidden, hvac.exceptions.InvalidRequest) as refused:
            if auth.method == "token":
                raise self._refused() from None
            raise SecretProviderError(
                self.name,
                f"vault refused the {auth.method} login ({_reason(refused)}); check "
                f"{_SETTING}.auth",
            ) from None
        self._logged_in = True

    async def _use_static_token(self) -> None:
        token = self.settings.auth.token
        if not token:
            raise SecretProviderError(
                self.name,
                f"no token to log in with; set {_SETTING}.auth.token (VAULT_TOKEN) or choose "
                f"{_SETTING}.auth.method approle or kubernetes",
            )
        self._client.token = token
        response = await self._call(self._client.auth.token.lookup_self)
        data = response.get("data") or {}
        self._lease({"lease_duration": data.get("ttl"), "renewable": data.get("renewable")})

    def _lease(self, auth: dict[str, Any]) -> None:
        """Remember when to renew the token a login or renewal returned."""
        if auth.get("client_token"):
            self._client.token = auth["client_token"]
        ttl = auth.get("lease_duration")
        self._renewable = bool(auth.get("renewable"))
        if isinstance(ttl, int | float) and ttl > 0:
            self._renew_at = self.clock() + ttl * _RENEW_AT
        else:
            self._renew_at = None  # a token that never expires (a root token)

    def _service_account_token(self) -> str:
        path = self.settings.auth.service_account_token_path
        try:
            return self.read_file(path)
        except OSError as error:
            raise SecretProviderError(
                self.name,
                f"cannot read the service account token {path!r} ({error.strerror or error}); "
                f"check {_SETTING}.auth.serviceAccountTokenPath",
            ) from None

    def _refused(self) -> SecretProviderError:
        return SecretProviderError(
            self.name,
            f"vault at {self.settings.address} refused the token (permission denied); set a "
            f"valid token in {_SETTING}.auth.token (VAULT_TOKEN)",
        )

    # -- one request -----------------------------------------------------------------------

    async def _call(self, function: Callable[..., T], **arguments: Any) -> T:
        """``function(**arguments)`` in a worker thread, bounded by ``timeout``."""
        timeout = self.settings.timeout
        address = self.settings.address
        try:
            # hvac's socket timeout ends the request; the deadline bounds the wait for the
            # thread (abandoned if it ever outlives it).
            with trio.fail_after(timeout + 1.0):
                return await trio.to_thread.run_sync(
                    partial(function, **arguments), abandon_on_cancel=True
                )
        except (trio.TooSlowError, requests.Timeout):
            raise SecretProviderError(
                self.name,
                f"vault at {address} did not answer within {timeout:g}s ({_SETTING}.timeout)",
            ) from None
        except requests.RequestException as error:
            raise SecretProviderError(
                self.name,
                f"cannot reach vault at {address} ({type(error).__name__}); check "
                f"{_SETTING}.address (VAULT_ADDR)",
            ) from None
        except (
            hvac.exceptions.VaultDown,
            hvac.exceptions.InternalServerError,
            hvac.exceptions.BadGateway,
            hvac.exceptions.UnexpectedError,
        ) as error:
            raise SecretProviderError(
                self.name, f"vault at {address} failed: {_reason(error)}"
            ) from None


def _reason(error: BaseException) -> str:
    errors = getattr(error, "errors", None)
    if isinstance(errors, list) and errors:
        return "; ".join(str(item) for item in errors)[:200]
    return (str(error) or type(error).__name__)[:200]
