"""Fixtures that open every trace store on a fresh, private location.

PostgreSQL and MariaDB tests use the servers named by TYPETRACE_TEST_POSTGRESQL_URL
and TYPETRACE_TEST_MYSQL_URL. Each test gets its own PostgreSQL schema or MySQL
database, dropped afterwards. An unreachable server skips its tests, or fails them
when TYPETRACE_REQUIRE_SERVERS=1.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote, unquote, urlsplit

import pytest

from typetrace.db._sql import mask_password
from store_backends import Backend, mysql_backend, postgresql_backend, sqlite_backend, user_backend

POSTGRESQL_URL_VARIABLE = "TYPETRACE_TEST_POSTGRESQL_URL"
MYSQL_URL_VARIABLE = "TYPETRACE_TEST_MYSQL_URL"
DEFAULT_POSTGRESQL_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_MYSQL_URL = "mysql://root@127.0.0.1:3306/test"


def _server_unavailable(product: str, variable: str, url: str, error: Exception) -> None:
    message = (
        f"{product} server at {mask_password(url)} is unreachable ({error}); set {variable} to the URL "
        f"of a server where the user may create schemas and databases"
    )
    if os.environ.get("TYPETRACE_REQUIRE_SERVERS") == "1":
        pytest.fail(message + " (TYPETRACE_REQUIRE_SERVERS=1 forbids skipping)")
    pytest.skip(message)


def postgresql_admin_connection() -> Any:
    import psycopg

    url = os.environ.get(POSTGRESQL_URL_VARIABLE, DEFAULT_POSTGRESQL_URL)
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        _server_unavailable("PostgreSQL", POSTGRESQL_URL_VARIABLE, url, error)
        raise


def mysql_admin_connection() -> Any:
    import pymysql

    url = os.environ.get(MYSQL_URL_VARIABLE, DEFAULT_MYSQL_URL)
    parts = urlsplit(url)
    try:
        return pymysql.connect(
            host=parts.hostname or "localhost",
            port=parts.port or 3306,
            user=unquote(parts.username or "root"),
            password=unquote(parts.password or ""),
            autocommit=True,
            connect_timeout=5,
        )
    except pymysql.err.OperationalError as error:
        _server_unavailable("MySQL", MYSQL_URL_VARIABLE, url, error)
        raise


def _private_name() -> str:
    return "typetrace_test_" + uuid.uuid4().hex[:12]


@pytest.fixture
def postgresql_url() -> Iterator[str]:
    """URL of the test server whose search_path is a fresh schema."""
    admin = postgresql_admin_connection()
    schema = _private_name()
    admin.execute(f"CREATE SCHEMA {schema}")
    base = os.environ.get(POSTGRESQL_URL_VARIABLE, DEFAULT_POSTGRESQL_URL)
    separator = "&" if "?" in base else "?"
    try:
        yield f"{base}{separator}options={quote(f'-csearch_path={schema}')}"
    finally:
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()


@pytest.fixture
def mysql_url() -> Iterator[str]:
    """URL of a fresh database on the test server."""
    admin = mysql_admin_connection()
    database = _private_name()
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {database}")
    parts = urlsplit(os.environ.get(MYSQL_URL_VARIABLE, DEFAULT_MYSQL_URL))
    try:
        yield parts._replace(path="/" + database).geturl()
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE {database}")
        admin.close()


BACKEND_NAMES = ["sqlite-file", "sqlite-memory", "postgresql", "mysql", "user-jsonl"]
#: The stores that implement the optional methods iter_rows, add_rows and prune.
SQL_BACKEND_NAMES = [name for name in BACKEND_NAMES if name != "user-jsonl"]


def _open_backend(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if name == "sqlite-file":
        return sqlite_backend(name, str(tmp_path / "traces.sqlite3"))
    if name == "sqlite-memory":
        return sqlite_backend(name, ":memory:")
    if name == "postgresql":
        return postgresql_backend(request.getfixturevalue("postgresql_url"))
    if name == "mysql":
        return mysql_backend(request.getfixturevalue("mysql_url"))
    return user_backend(tmp_path / "traces.jsonl")


@pytest.fixture(params=BACKEND_NAMES)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Every store implementation, each on an empty location."""
    created = _open_backend(request.param, request, tmp_path)
    try:
        yield created
    finally:
        created.store.close()


@pytest.fixture(params=SQL_BACKEND_NAMES)
def sql_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Every store that typetrace ships, each on an empty location."""
    created = _open_backend(request.param, request, tmp_path)
    try:
        yield created
    finally:
        created.store.close()


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def sql_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The location of an empty database of every SQL store kind, for plain SQL access."""
    if request.param == "sqlite":
        return str(tmp_path / "traces.sqlite3")
    server_url: str = request.getfixturevalue(f"{request.param}_url")
    return server_url
