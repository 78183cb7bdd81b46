"""PostgresStore: a trace store in PostgreSQL, for many machines writing to one server."""

from __future__ import annotations

from typing import Any

from typetrace.db import _server, _sql, _writes
from typetrace.exceptions import StoreError

__all__ = ["PostgresStore"]

_TRACES = _sql.TRACES_TABLE
_META = _sql.META_TABLE
_COUNTS = _sql.COUNTS_TABLE

#: Key of the transaction-level advisory lock held while creating the tables, because
#: two concurrent ``CREATE TABLE IF NOT EXISTS`` of one table can fail in PostgreSQL.
_SCHEMA_LOCK_KEY = 0x7479_7065_7472_6163  # "typetrac" in ASCII

_CREATE_STATEMENTS = (
    f"CREATE TABLE IF NOT EXISTS {_META} (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    f"""
    CREATE TABLE IF NOT EXISTS {_TRACES} (
        id BIGINT PRIMARY KEY,
        signature TEXT NOT NULL UNIQUE,
        module TEXT NOT NULL,
        qualname TEXT NOT NULL,
        arg_types TEXT NOT NULL,
        return_type TEXT,
        yield_type TEXT,
        format_version INTEGER NOT NULL
    )
    """,
    f"CREATE INDEX IF NOT EXISTS {_TRACES}_module ON {_TRACES} (module, qualname)",
    f"""
    CREATE TABLE IF NOT EXISTS {_COUNTS} (
        id BIGINT PRIMARY KEY,
        check_key BIGINT NOT NULL,
        call_count BIGINT NOT NULL,
        first_seen DOUBLE PRECISION NOT NULL,
        last_seen DOUBLE PRECISION NOT NULL
    )
    """,
)

#: SQLSTATE codes after which PostgreSQL has rolled back the transaction and a retry
#: can succeed: deadlock_detected, serialization_failure, lock_not_available.
_TRANSIENT_SQLSTATES = frozenset({"40P01", "40001", "55P03"})


class PostgresStore(_server.ServerStore):
    """Traces in PostgreSQL (version 10 or later), one row per distinct trace.

    Tables are created in the first schema of the connection's ``search_path``; set it
    with ``?options=-csearch_path%3Dmyschema`` in the URL. Needs the ``psycopg``
    driver (version 3): ``pip install 'typetrace[postgresql]'``.

    Args:
        url: A libpq URL, e.g. ``postgresql://user:password@host:5432/database``.
    """

    product = "PostgreSQL"
    insert_version_sql = (
        f"INSERT INTO {_META} (name, value) VALUES ('schema_version', %s) "
        "ON CONFLICT (name) DO NOTHING"
    )
    statements = _writes.Statements(
        placeholder="%s",
        ignore_conflict="ON CONFLICT DO NOTHING",
        min_function="LEAST",
        max_function="GREATEST",
    )

    def open_connection(self) -> Any:
        """Connect with psycopg, autocommit off."""
        psycopg = _import_psycopg()
        return psycopg.connect(self.url, autocommit=False, connect_timeout=10)

    def create_schema(self, cursor: Any) -> None:
        """Create the tables under an advisory lock, in the current transaction."""
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_KEY,))
        for statement in _CREATE_STATEMENTS:
            cursor.execute(statement)

    def is_usable(self, connection: Any) -> bool:
        """Return whether *connection* is neither closed nor broken."""
        return not (connection.closed or connection.broken)

    def is_transient(self, error: Exception) -> bool:
        """Return whether *error* is a deadlock, serialization failure or lock timeout."""
        return getattr(error, "sqlstate", None) in _TRANSIENT_SQLSTATES

    def driver_errors(self) -> tuple[type[Exception], ...]:
        """Return psycopg's base error class."""
        return (_import_psycopg().Error,)


def _import_psycopg() -> Any:
    try:
        import psycopg
    except ImportError as error:
        raise StoreError(
            "The PostgreSQL trace store needs the psycopg driver, which is not installed: "
            f"{error}. Install it with: pip install 'typetrace[postgresql]'"
        ) from error
    return psycopg
