"""MySQLStore: a trace store in MySQL or MariaDB, for many machines writing to one server."""

from __future__ import annotations

import importlib
import logging
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from typetrace.db import _sql
from typetrace.encoding import CallTraceRow
from typetrace.exceptions import StoreError

__all__ = ["MySQLStore"]

logger = logging.getLogger(__name__)

_TRACES = _sql.TRACES_TABLE
_META = _sql.META_TABLE

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
        call_count BIGINT NOT NULL,
        first_seen DOUBLE NOT NULL,
        last_seen DOUBLE NOT NULL,
        UNIQUE KEY {_TRACES}_signature (signature),
        KEY {_TRACES}_module_last_seen (module, last_seen)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin
    """,
)

#: Server error numbers after which a retry of the whole transaction can succeed:
#: ER_LOCK_DEADLOCK (1213) and ER_LOCK_WAIT_TIMEOUT (1205).
_TRANSIENT_ERRNOS = frozenset({1213, 1205})

_SUPPORTED_QUERY_KEYS = ("unix_socket", "connect_timeout")


class MySQLStore(_sql.ServerStore):
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
    # VALUES() in ON DUPLICATE KEY UPDATE is deprecated in MySQL 8.0.20 but still
    # works there, and it is the only form MariaDB supports.
    upsert_sql = f"""
    INSERT INTO {_TRACES} (
        signature, module, qualname, arg_types, return_type, yield_type,
        format_version, call_count, first_seen, last_seen
    ) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
    ON DUPLICATE KEY UPDATE
        call_count = call_count + VALUES(call_count),
        first_seen = LEAST(first_seen, VALUES(first_seen)),
        last_seen = GREATEST(last_seen, VALUES(last_seen))
    """

    def open_connection(self) -> Any:
        """Connect with PyMySQL, autocommit off."""
        pymysql = _import_pymysql()
        return pymysql.connect(autocommit=False, charset="utf8mb4", **self._connect_arguments())

    def create_schema(self, cursor: Any) -> None:
        """Create the tables if they are missing."""
        for statement in _CREATE_STATEMENTS:
            cursor.execute(statement)

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

    def prepare_rows(self, rows: list[tuple[str, CallTraceRow]]) -> list[tuple[str, CallTraceRow]]:
        """Drop, with a log entry, rows whose module name is too long for the column."""
        kept = []
        for signature, row in rows:
            if len(row.module) > MAX_MODULE_LENGTH:
                logger.error(
                    "Skipping a trace of %s:%s because MySQL stores module names of at most "
                    "%d characters",
                    row.module[:80] + "...",
                    row.qualname,
                    MAX_MODULE_LENGTH,
                )
            else:
                kept.append((signature, row))
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
