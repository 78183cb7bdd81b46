"""Store locations for the contract tests, with a way to write rows past each store's API."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import uuid
from pathlib import Path
from typing import Callable, Optional

from typetrace.db.base import CallTraceStore
from typetrace.db.mysql import MySQLStore
from typetrace.db.postgres import PostgresStore
from typetrace.db.sqlite import SQLiteStore
from typetrace.encoding import CallTraceRow
from support import raw_row_statements
from user_store import UserJsonLinesStore


@dataclasses.dataclass
class Backend:
    """A store location with ways to open it and to write rows past the store's API."""

    name: str
    #: Opens a store on the location; ``None`` where a second store cannot see the first.
    reopen: Optional[Callable[[], CallTraceStore]]
    #: Writes a row as it is, so tests can store rows the encoder would never write.
    insert_raw_row: Callable[[CallTraceRow], None]
    store: CallTraceStore


def sqlite_backend(name: str, location: str) -> Backend:
    store = SQLiteStore.make_store(location)

    def insert(row: CallTraceRow) -> None:
        if location == ":memory:":
            connection = store._connection  # the only way into a private in-memory database
        else:
            connection = sqlite3.connect(location)
        assert connection is not None
        for statement, params in raw_row_statements(row, uuid.uuid4().hex):
            connection.execute(statement, params)
        connection.commit()
        if connection is not store._connection:
            connection.close()

    reopen = None if location == ":memory:" else (lambda: SQLiteStore.make_store(location))
    return Backend(name, reopen, insert, store)


def postgresql_backend(url: str) -> Backend:
    import psycopg

    def insert(row: CallTraceRow) -> None:
        with psycopg.connect(url, autocommit=True) as connection:
            for statement, params in raw_row_statements(row, uuid.uuid4().hex, "%s"):
                connection.execute(statement, params)

    return Backend(
        "postgresql", lambda: PostgresStore.make_store(url), insert, PostgresStore.make_store(url)
    )


def mysql_backend(url: str) -> Backend:
    store = MySQLStore.make_store(url)

    def insert(row: CallTraceRow) -> None:
        import pymysql

        connection = pymysql.connect(autocommit=True, **store._connect_arguments())
        with connection.cursor() as cursor:
            for statement, params in raw_row_statements(row, uuid.uuid4().hex, "%s"):
                cursor.execute(statement, params)
        connection.close()

    return Backend("mysql", lambda: MySQLStore.make_store(url), insert, store)


def user_backend(path: Path) -> Backend:
    def insert(row: CallTraceRow) -> None:
        with path.open("a", encoding="utf-8") as file:
            file.write(json.dumps(dataclasses.asdict(row)) + "\n")

    return Backend(
        "user-jsonl",
        lambda: UserJsonLinesStore.make_store(str(path)),
        insert,
        UserJsonLinesStore(path),
    )
