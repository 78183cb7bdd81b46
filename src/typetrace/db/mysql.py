"""MySQLStore: a trace store in MySQL or MariaDB, for many machines writing to one server."""

from __future__ import annotations

import importlib
import logging
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from typetrace.db import _server, _sql, _writes
from typetrace.exceptions import StoreError

__all__ = ["MySQLStore"]

logger = logging.getLogger(__name__)

_TRACES = _sql.TRACES_TABLE
_META = _sql.META_TABLE
_COUNTS = _sql.COUNTS_TABLE

#: Maximum length in characters of a module name. The column is indexed, and InnoDB
#: limits an index key to 3072 bytes, which is 768 four-byte characters.
MAX_MODULE_LENGTH = 512

# utf8mb4_bin makes comparisons case-sensitive, as in the other stores. Like every
# PAD SPACE collation it ignores trailing spaces, which Python names never have.
_CREATE_STATEMENTS = (
    f"""
    CREATE TABLE IF NOT EXISTS {_META} (
        name VARCHAR(64) NOT NULL PRIMARY KEY,
        value TEXT NOT NULL
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin
    """,
    f"""
    CREATE TABLE IF NOT EXISTS {_TRACES} (
        id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        signature CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
        module VARCHAR({MAX_MODULE_LENGTH}) NOT NULL,
        qualname TEXT NOT NULL,
        arg_types LONGTEXT NOT NULL,
        return_type LONGTEXT NULL,
        yield_type LONGTEXT NULL,
        format_version INT NOT NULL,
        send_type LONGTEXT NULL,
        UNIQUE KEY {_TRACES}_signature (signature),
        KEY {_TRACES}_module (module)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin
    """,
    f"""
    CREATE TABLE IF NOT EXISTS {_COUNTS} (
        id BIGINT NOT NULL PRIMARY KEY,
        check_key BIGINT NOT NULL,
        call_count BIGINT NOT NULL,
        first_seen DOUBLE NOT NULL,
        last_seen DOUBLE NOT NULL
    ) ENGINE=InnoDB
    """,
)

#: Name of the server-wide lock held while creating or migrating the tables, because
#: MySQL commits the transaction at every ``CREATE TABLE`` and ``DROP TABLE``.
_SCHEMA_LOCK_NAME = "typetrace_schema"
#: Seconds to wait for another connection to finish creating or migrating the tables.
_SCHEMA_LOCK_TIMEOUT_SECONDS = 120

#: Counts rows per multi-row ``UPDATE``; each row takes five parameters.
_UPDATE_CHUNK_SIZE = 500

#: Server error numbers after which a retry of the whole transaction can succeed:
#: ER_LOCK_DEADLOCK (1213) and ER_LOCK_WAIT_TIMEOUT (1205).
_TRANSIENT_ERRNOS = frozenset({1213, 1205})

_SUPPORTED_QUERY_KEYS = ("unix_socket", "connect_timeout")


class MySQLStore(_server.ServerStore):
    """Traces in MySQL (5.7 or later) or MariaDB (10.3 or later), one row per distinct trace.

    Needs the PyMySQL driver: ``pip install 'typetrace[mysql]'``. Traces of modules
    whose names are longer than :data:`MAX_MODULE_LENGTH` characters are logged and
    skipped.

    Args:
        url: ``mysql://user:password@host:3306/database``; the query may set
            ``unix_socket`` and ``connect_timeout`` (seconds, default 10).
    """

    product = "MySQL"
    insert_version_sql = (
        f"INSERT INTO {_META} (name, value) VALUES ('schema_version', %s) "
        "ON DUPLICATE KEY UPDATE name = name"
    )
    column_names_sql = (
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = DATABASE() AND table_name = %s"
    )
    add_send_type_sql = f"ALTER TABLE {_TRACES} ADD COLUMN send_type LONGTEXT NULL"
    # The clause must not assign the AUTO_INCREMENT column id. On MariaDB 10.11.19
    # that moves a multi-row insert past its reserved ids when a duplicate has a
    # higher id, and the next new trace then gets an id that another writer's trace
    # may hold. The insert updates that row instead, and the new trace is missing.
    statements = _writes.Statements(
        placeholder="%s",
        ignore_conflict="ON DUPLICATE KEY UPDATE {column} = {column}",
        min_function="LEAST",
        max_function="GREATEST",
        counts_inserted_rows=False,
        locking_read="LOCK IN SHARE MODE",
    )

    def open_connection(self) -> Any:
        """Connect with PyMySQL, autocommit off, in READ COMMITTED isolation.

        With READ COMMITTED each statement reads the rows that other transactions
        have committed, as in PostgreSQL, so a trace that another writer inserted is
        found. ``FOUND_ROWS`` makes an ``UPDATE`` report the rows it matched,
        also those it left unchanged.
        """
        pymysql = _import_pymysql()
        connection = pymysql.connect(
            autocommit=False,
            charset="utf8mb4",
            client_flag=pymysql.constants.CLIENT.FOUND_ROWS,
            **self._connect_arguments(),
        )
        with connection.cursor() as cursor:
            cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        return connection

    def create_schema(self, cursor: Any) -> None:
        """Take the schema lock, then create the tables if they are missing."""
        cursor.execute(
            "SELECT GET_LOCK(%s, %s)", (_SCHEMA_LOCK_NAME, _SCHEMA_LOCK_TIMEOUT_SECONDS)
        )
        if cursor.fetchone()[0] != 1:
            raise StoreError(
                f"Timed out after {_SCHEMA_LOCK_TIMEOUT_SECONDS} s waiting for the lock "
                f"{_SCHEMA_LOCK_NAME!r} of {self.masked_url}, which another connection holds "
                "while it creates or migrates the tables; retry when it has finished."
            )
        for statement in _CREATE_STATEMENTS:
            cursor.execute(statement)

    def unlock_schema(self, cursor: Any) -> None:
        """Release the schema lock."""
        cursor.execute("SELECT RELEASE_LOCK(%s)", (_SCHEMA_LOCK_NAME,))
        cursor.fetchall()

    def finish_migration(self, cursor: Any) -> None:
        """Commit the migration, then drop the schema version 1 table if there is one.

        The commit comes before :meth:`unlock_schema`, so a connection that waited
        for the lock reads the new schema version. MySQL cannot drop a table inside a
        transaction. If the process stops between the commit and the drop, the old
        table stays behind, unused, until a later migration drops it.
        """
        cursor.connection.commit()
        cursor.execute(f"DROP TABLE IF EXISTS {_sql.V1_TRACES_TABLE}")

    def update_counts(self, cursor: Any, params: list[tuple[int, float, float, int, int]]) -> int:
        """Update the counts rows with one statement per chunk, joining a derived table.

        PyMySQL sends an ``executemany`` of ``UPDATE`` as one round trip per row.
        """
        matched = 0
        for start in range(0, len(params), _UPDATE_CHUNK_SIZE):
            chunk = params[start : start + _UPDATE_CHUNK_SIZE]
            rows = " UNION ALL ".join(
                ["SELECT %s AS n, %s AS f, %s AS l, %s AS id, %s AS check_key"]
                + ["SELECT %s, %s, %s, %s, %s"] * (len(chunk) - 1)
            )
            cursor.execute(
                f"UPDATE {_COUNTS} c JOIN ({rows}) v ON c.id = v.id AND c.check_key = v.check_key "
                "SET c.call_count = c.call_count + v.n, c.first_seen = LEAST(c.first_seen, v.f), "
                "c.last_seen = GREATEST(c.last_seen, v.l)",
                [value for row in chunk for value in row],
            )
            matched += int(cursor.rowcount)
        return matched

    def is_usable(self, connection: Any) -> bool:
        """Return whether *connection* still has its socket."""
        return bool(connection.open)

    def is_transient(self, error: Exception) -> bool:
        """Return whether *error* is a deadlock or a lock wait timeout."""
        return bool(
            isinstance(error, _import_pymysql().err.OperationalError)
            and error.args
            and error.args[0] in _TRANSIENT_ERRNOS
        )

    def driver_errors(self) -> tuple[type[Exception], ...]:
        """Return PyMySQL's base error class."""
        return (_import_pymysql().err.Error,)

    def prepare_rows(self, entries: list[_writes.CountedTrace]) -> list[_writes.CountedTrace]:
        """Drop, with a log entry, traces whose module name is too long for the column."""
        kept = []
        for entry in entries:
            row = entry[0].row
            if len(row.module) > MAX_MODULE_LENGTH:
                logger.error(
                    "Skipping a trace of %s:%s because MySQL stores module names of at most "
                    "%d characters",
                    row.module[:80] + "...",
                    row.qualname,
                    MAX_MODULE_LENGTH,
                )
            else:
                kept.append(entry)
        return kept

    def _connect_arguments(self) -> dict[str, Any]:
        parts = urlsplit(self.url)
        database = unquote(parts.path.lstrip("/"))
        if not database:
            raise StoreError(
                f"The MySQL URL {self.masked_url} names no database; "
                "add one, as in mysql://user@host:3306/database."
            )
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        unknown = sorted(set(query) - set(_SUPPORTED_QUERY_KEYS))
        if unknown:
            raise StoreError(
                f"The MySQL URL {self.masked_url} has unsupported parameters {unknown!r}; "
                f"supported are {list(_SUPPORTED_QUERY_KEYS)!r}."
            )
        arguments: dict[str, Any] = {
            "host": parts.hostname or "localhost",
            "port": parts.port or 3306,
            "user": unquote(parts.username) if parts.username else None,
            "password": unquote(parts.password) if parts.password else "",
            "database": database,
            "connect_timeout": 10,
        }
        if "unix_socket" in query:
            arguments["unix_socket"] = query["unix_socket"]
        if "connect_timeout" in query:
            try:
                arguments["connect_timeout"] = float(query["connect_timeout"])
            except ValueError:
                raise StoreError(
                    f"The MySQL URL {self.masked_url} has an invalid connect_timeout "
                    f"{query['connect_timeout']!r}; give a number of seconds."
                ) from None
        return arguments


def _import_pymysql() -> Any:
    try:
        # Imported by name because PyMySQL ships no type information.
        return importlib.import_module("pymysql")
    except ImportError as error:
        raise StoreError(
            "The MySQL trace store needs the PyMySQL driver, which is not installed: "
            f"{error}. Install it with: pip install 'typetrace[mysql]'"
        ) from error
