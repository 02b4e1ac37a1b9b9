"""PostgreSQL locations from JDBC (``jdbc:postgresql://host:5432/db``) or libpq URLs.

The deployment guide writes JDBC URLs; asyncpg wants libpq ones. Both forms are accepted
everywhere a database URL is configured, with the credentials either in the URL or in
``database.username``/``database.password`` (the separate settings win).
"""

from __future__ import annotations

import urllib.parse

import attrs

from workflow_orchestrator.errors import OrchestratorError

__all__ = ["DatabaseLocation", "InvalidDatabaseURL", "mask_url", "parse_database_url"]

_SCHEMES = ("postgresql", "postgres")


class InvalidDatabaseURL(OrchestratorError, ValueError):
    """The text is not a PostgreSQL URL in JDBC or libpq form."""


@attrs.frozen(kw_only=True)
class DatabaseLocation:
    """Where a PostgreSQL database is and how to log in; ``str()`` never shows the password."""

    host: str
    port: int
    database: str
    user: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    params: tuple[tuple[str, str], ...] = ()

    def with_credentials(self, user: str | None, password: str | None) -> DatabaseLocation:
        """A copy where the non-empty ``user``/``password`` replace those of the URL."""
        return attrs.evolve(self, user=user or self.user, password=password or self.password)

    def dsn(self) -> str:
        """A libpq URL for asyncpg (contains the password: never log it)."""
        auth = ""
        if self.user:
            auth = urllib.parse.quote(self.user, safe="")
            if self.password:
                auth += ":" + urllib.parse.quote(self.password, safe="")
            auth += "@"
        host = f"[{self.host}]" if ":" in self.host else self.host
        query = f"?{urllib.parse.urlencode(self.params)}" if self.params else ""
        return f"postgresql://{auth}{host}:{self.port}/{urllib.parse.quote(self.database)}{query}"

    def display(self) -> str:
        """``host:port/database`` (with ``user@`` when known): safe for logs and errors."""
        user = f"{self.user}@" if self.user else ""
        return f"{user}{self.host}:{self.port}/{self.database}"

    def __str__(self) -> str:
        return self.display()


def parse_database_url(url: str) -> DatabaseLocation:
    """Parse ``jdbc:postgresql://host:port/db?user=...`` or ``postgresql://user:pw@host/db``.

    JDBC's ``user``/``password`` query parameters become credentials; other parameters are kept
    (e.g. ``sslmode``). Raises ``InvalidDatabaseURL`` naming what is wrong (never the password).
    """
    text = url.strip()
    if text.lower().startswith("jdbc:"):
        text = text[5:]
    parsed = urllib.parse.urlsplit(text)
    if parsed.scheme.lower() not in _SCHEMES:
        got = f"one starting with '{parsed.scheme}:'" if parsed.scheme else "one without a scheme"
        raise InvalidDatabaseURL(
            f"expected a URL starting with jdbc:postgresql:// or postgresql://, got {got}"
        )
    try:
        port = parsed.port or 5432
    except ValueError:
        raise InvalidDatabaseURL("the port is not a number between 1 and 65535") from None
    host = parsed.hostname or "localhost"
    database = urllib.parse.unquote(parsed.path.lstrip("/"))
    user = urllib.parse.unquote(parsed.username) if parsed.username else None
    password = urllib.parse.unquote(parsed.password) if parsed.password else None
    params: list[tuple[str, str]] = []
    for key, value in urllib.parse.parse_qsl(parsed.query, keep_blank_values=True):
        if key == "user":
            user = user or value
        elif key == "password":
            password = password or value
        else:
            params.append((key, value))
    if not database:
        raise InvalidDatabaseURL("the URL names no database; add it as the path, e.g. /workflows")
    return DatabaseLocation(
        host=host, port=port, database=database, user=user, password=password, params=tuple(params)
    )


def mask_url(url: str) -> str:
    """The URL with any password (in the authority or a ``password=`` parameter) replaced."""
    if not url:
        return url
    prefix = "jdbc:" if url.lower().startswith("jdbc:") else ""
    parsed = urllib.parse.urlsplit(url[len(prefix) :])
    netloc = parsed.netloc
    if parsed.password is not None:
        userinfo, _, hostinfo = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:******@{hostinfo}"
    query = urllib.parse.urlencode(
        [
            (k, "******" if k.lower() == "password" else v)
            for k, v in urllib.parse.parse_qsl(parsed.query, keep_blank_values=True)
        ],
        safe="*",
    )
    return prefix + urllib.parse.urlunsplit(parsed._replace(netloc=netloc, query=query))
