"""PostgresStore and MySQLStore: URLs, errors, schema versions, reconnects and fork()."""

from __future__ import annotations

import os
import sys
import warnings
from typing import Any, Callable

import pytest

from conftest import mysql_admin_connection, postgresql_admin_connection
from typetrace.db import store_from_url
from typetrace.db._sql import SCHEMA_VERSION
from typetrace.db.base import CallTraceStore
from typetrace.db.mysql import MySQLStore
from typetrace.db.postgres import PostgresStore
from typetrace.exceptions import StoreError
from typetrace.tracing import CallTrace
from typetrace.typemodel import TypeRef

INT = TypeRef("builtins", "int")
TRACE = CallTrace("pkg", "f", {"x": INT}, INT)

# Port 1 on loopback: nothing listens there, so connecting fails at once.
UNREACHABLE = {
    "postgresql": "postgresql://alice:hunter2secret@127.0.0.1:1/traces",
    "mysql": "mysql://alice:hunter2secret@127.0.0.1:1/traces",
}


@pytest.fixture(params=["postgresql", "mysql"])
def server_url(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


def count_of(store: CallTraceStore, module: str = "pkg") -> int:
    return sum(thunk.to_trace().call_count for thunk in store.filter(module))


class TestConnectionErrors:
    @pytest.mark.parametrize("kind", ["postgresql", "mysql"])
    def test_unreachable_server_names_masked_url(self, kind: str) -> None:
        with pytest.raises(StoreError) as raised:
            store_from_url(UNREACHABLE[kind])

        message = str(raised.value)
        assert "hunter2secret" not in message
        assert f"{kind}://alice:***@127.0.0.1:1/traces" in message
        assert "Check that the server is running" in message

    @pytest.mark.parametrize(
        ("kind", "module", "extra"),
        [("postgresql", "psycopg", "postgresql"), ("mysql", "pymysql", "mysql")],
    )
    def test_missing_driver_names_the_extra(
        self, monkeypatch: pytest.MonkeyPatch, kind: str, module: str, extra: str
    ) -> None:
        # None in sys.modules makes the import raise ImportError.
        monkeypatch.setitem(sys.modules, module, None)

        with pytest.raises(StoreError, match=rf"pip install 'typetrace\[{extra}\]'"):
            store_from_url(UNREACHABLE[kind])

    def test_wrong_mysql_password_is_not_shown(self, mysql_url: str) -> None:
        url = mysql_url.replace("://root@", "://root:wrong-hunter2@")

        with pytest.raises(StoreError) as raised:
            MySQLStore(url)

        assert "hunter2" not in str(raised.value)
        assert "root:***@" in str(raised.value)

    def test_mysql_url_without_database(self) -> None:
        with pytest.raises(StoreError, match="names no database"):
            MySQLStore("mysql://root:secret@127.0.0.1:3306")

    def test_mysql_url_with_unknown_parameter(self) -> None:
        with pytest.raises(StoreError, match=r"unsupported parameters \['sslmode'\]"):
            MySQLStore("mysql://root@127.0.0.1:3306/test?sslmode=require")


class TestStoreFromUrl:
    def test_postgresql_scheme(self, postgresql_url: str) -> None:
        store = store_from_url(postgresql_url)

        assert isinstance(store, PostgresStore)
        store.close()

    def test_postgres_scheme(self, postgresql_url: str) -> None:
        store = store_from_url(postgresql_url.replace("postgresql://", "postgres://", 1))

        assert isinstance(store, PostgresStore)
        store.close()

    def test_mysql_scheme(self, mysql_url: str) -> None:
        store = store_from_url(mysql_url)

        assert isinstance(store, MySQLStore)
        store.close()


class TestSchema:
    def test_version_row_written_once(self, server_url: str) -> None:
        store_from_url(server_url).close()
        store = store_from_url(server_url)

        rows = run_sql(server_url, "SELECT name, value FROM typetrace_meta")

        assert rows == [("schema_version", str(SCHEMA_VERSION))]
        store.close()

    def test_newer_schema_is_rejected(self, server_url: str) -> None:
        store_from_url(server_url).close()
        run_sql(server_url, f"UPDATE typetrace_meta SET value = '{SCHEMA_VERSION + 1}'")

        with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1}") as raised:
            store_from_url(server_url)

        assert "Upgrade typetrace" in str(raised.value)

    def test_closed_store_raises(self, server_url: str) -> None:
        store = store_from_url(server_url)
        store.close()

        with pytest.raises(StoreError, match="is closed"):
            store.list_modules()


class TestReconnect:
    def test_store_recovers_after_session_is_killed(self, server_url: str) -> None:
        store = store_from_url(server_url)
        store.add([TRACE])
        kill_sessions_of(server_url, store)

        # The first call may find the connection dead; the next one reconnects.
        try:
            store.add([TRACE])
        except StoreError:
            store.add([TRACE])

        assert count_of(store) == 2
        store.close()


class TestFork:
    def test_child_gets_its_own_connection(self, server_url: str) -> None:
        store = store_from_url(server_url)
        store.add([TRACE])

        status = run_in_forked_child(lambda: store.add([TRACE] * 5))

        assert status == 0
        # The parent's session survived the child's exit.
        store.add([TRACE])
        assert count_of(store) == 7
        store.close()


def run_in_forked_child(action: Callable[[], None]) -> int:
    """Run *action* in a forked child and return the child's exit status."""
    with warnings.catch_warnings():
        # Python 3.12+ warns about fork() while other threads run; the child runs
        # only *action* and exits.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:
        code = 1
        try:
            action()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else status


def run_sql(url: str, statement: str) -> list[tuple[Any, ...]]:
    if url.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(url, autocommit=True) as connection:
            cursor = connection.execute(statement)
            return [tuple(row) for row in cursor.fetchall()] if cursor.description else []
    import pymysql

    connection = pymysql.connect(autocommit=True, **MySQLStore(url)._connect_arguments())
    with connection.cursor() as cursor:
        cursor.execute(statement)
        rows = [tuple(row) for row in cursor.fetchall()]
    connection.close()
    return rows


def kill_sessions_of(url: str, store: CallTraceStore) -> None:
    connection = store._connection  # type: ignore[attr-defined]
    if url.startswith("postgresql://"):
        backend_pid = connection.info.backend_pid
        admin = postgresql_admin_connection()
        admin.execute("SELECT pg_terminate_backend(%s)", (backend_pid,))
        admin.close()
        return
    thread_id = connection.thread_id()
    admin = mysql_admin_connection()
    with admin.cursor() as cursor:
        cursor.execute(f"KILL {int(thread_id)}")
    admin.close()
