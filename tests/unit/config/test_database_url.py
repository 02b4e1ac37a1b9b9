"""PostgreSQL URLs in JDBC and libpq form."""

from __future__ import annotations

import pytest

from workflow_orchestrator.config import InvalidDatabaseURL, mask_url, parse_database_url


def test_jdbc_url_as_in_the_guide() -> None:
    """The guide's JDBC URL gives host, port and database."""
    location = parse_database_url("jdbc:postgresql://db-host:5432/workflows")
    assert (location.host, location.port, location.database) == ("db-host", 5432, "workflows")
    assert location.user is None and location.password is None


def test_jdbc_credentials_and_parameters() -> None:
    """JDBC's user/password parameters become credentials; others are kept for libpq."""
    location = parse_database_url(
        "jdbc:postgresql://db:6543/wf?user=app&password=p%40ss&sslmode=require"
    )
    assert (location.user, location.password) == ("app", "p@ss")
    assert location.dsn() == "postgresql://app:p%40ss@db:6543/wf?sslmode=require"


def test_libpq_url_and_default_port() -> None:
    """postgresql:// URLs are accepted, with 5432 as the default port."""
    location = parse_database_url("postgresql://u:pw@localhost/test")
    assert (location.host, location.port, location.user, location.password) == (
        "localhost",
        5432,
        "u",
        "pw",
    )


def test_separate_credentials_win() -> None:
    """database.username/password replace those written in the URL."""
    location = parse_database_url("postgresql://u:pw@h/db").with_credentials("other", "secret")
    assert (location.user, location.password) == ("other", "secret")
    assert location.display() == "other@h:5432/db"
    assert "secret" not in str(location) and "secret" not in repr(location)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "mysql://h/db",
            "expected a URL starting with jdbc:postgresql:// or postgresql://, got one starting "
            "with 'mysql:'",
        ),
        (
            "//user:pw@h/db",
            "expected a URL starting with jdbc:postgresql:// or postgresql://, got one without "
            "a scheme",
        ),
        (
            "jdbc:postgresql://h:5432/",
            "the URL names no database; add it as the path, e.g. /workflows",
        ),
        ("postgresql://h:99999/db", "the port is not a number between 1 and 65535"),
    ],
)
def test_invalid_urls_say_why(url: str, message: str) -> None:
    """Invalid URLs are rejected with a message that says what to fix."""
    with pytest.raises(InvalidDatabaseURL) as exc:
        parse_database_url(url)
    assert str(exc.value) == message


def test_mask_url_hides_passwords() -> None:
    """Passwords in the authority and in parameters are masked; the rest is kept."""
    assert mask_url("amqp://guest:guest@localhost:5672/") == "amqp://guest:******@localhost:5672/"
    assert (
        mask_url("jdbc:postgresql://h:5432/db?user=a&password=b")
        == "jdbc:postgresql://h:5432/db?user=a&password=******"
    )
