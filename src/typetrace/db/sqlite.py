"""SQLiteStore: the default trace store, one SQLite file that many processes can share."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence, TypeVar

from typetrace.db import _sql, _writes
from typetrace.db.base import CallTraceStore, CallTraceThunk, StoredRow
from typetrace.encoding import CallTraceRow
from typetrace.exceptions import StoreError
from typetrace.tracing import CallTrace

__all__ = ["SQLiteStore"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_TRACES = _sql.TRACES_TABLE
_COUNTS = _sql.COUNTS_TABLE
_META = _sql.META_TABLE

_CREATE_META = f"CREATE TABLE IF NOT EXISTS {_META} (name TEXT PRIMARY KEY, value TEXT NOT NULL)"

_CREATE_TRACES = f"""
CREATE TABLE IF NOT EXISTS {_TRACES} (
    id INTEGER PRIMARY KEY,
    signature TEXT NOT NULL UNIQUE,
    module TEXT NOT NULL,
    qualname TEXT NOT NULL,
    arg_types TEXT NOT NULL,
    return_type TEXT,
    yield_type TEXT,
    format_version INTEGER NOT NULL,
    send_type TEXT
)
"""

_CREATE_INDEX = (
    f"CREATE INDEX IF NOT EXISTS {_TRACES}_module ON {_TRACES} (module, qualname)"
)

_CREATE_COUNTS = f"""
CREATE TABLE IF NOT EXISTS {_COUNTS} (
    id INTEGER PRIMARY KEY,
    check_key INTEGER NOT NULL,
    call_count INTEGER NOT NULL,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL
)
"""

_STATEMENTS = _writes.Statements(
    placeholder="?",
    ignore_conflict="ON CONFLICT DO NOTHING",
    min_function="min",
    max_function="max",
)
_UPDATE_COUNTS = _STATEMENTS.update_counts

_FILTER = _sql.filter_query("?", with_prefix=False)
_FILTER_WITH_PREFIX = _sql.filter_query("?", with_prefix=True)

#: Seconds that one statement waits for another process's lock before it fails.
_BUSY_TIMEOUT_SECONDS = 5.0
#: Seconds for which a busy database is retried before the error reaches the caller.
_RETRY_DEADLINE_SECONDS = 120.0
#: Seconds for which opening a store retries a busy database. Tracing opens its
#: store before the program runs, so this bounds the program's start-up delay when
#: another process holds the store in exclusive locking mode.
_OPEN_DEADLINE_SECONDS = 5.0


class SQLiteStore(CallTraceStore):
    """Traces in an SQLite database, aggregated into one row per distinct trace.

    The database runs in WAL mode with ``synchronous=NORMAL``. SQLite's documentation
    of WAL states that readers then do not block writers, that a crash of the writing
    process loses no committed transaction, and that a power loss can roll back the
    last ones. It also states that WAL does not work over a network file system.

    Args:
        connection_string: A file path, ``:memory:``, or an SQLite ``file:`` URI.
    """

    def __init__(self, connection_string: str) -> None:
        self.connection_string = connection_string
        # Found here, before a traced program runs, because for a file: URI it
        # imports urllib.parse.
        self._path = _file_path(connection_string)
        self._clock = _sql.UtcClock()
        self._lock = threading.Lock()
        self._pid = os.getpid()
        # Connections inherited through os.fork(); kept referenced and never used or
        # closed, because closing one could disturb the parent's use of the file.
        self._inherited: list[sqlite3.Connection] = []
        self._row_ids = _writes.RowIds()
        # Set by close() when another thread's operation holds the lock. That
        # operation then stops retrying a busy database and closes the connection.
        self._close_requested = False
        self._connection: Optional[sqlite3.Connection] = self._connect()

    def __repr__(self) -> str:
        return f"SQLiteStore({self.connection_string!r})"

    @classmethod
    def make_store(cls, connection_string: str) -> SQLiteStore:
        """Open or create the SQLite store at *connection_string*."""
        return cls(connection_string)

    def add(self, traces: Iterable[CallTrace]) -> None:
        """Store *traces*, merging identical ones, in one transaction."""
        merged = _writes.merge_traces(traces)
        if not merged:
            return
        now = self._clock.now()
        self._write([(encoded, count, now, now) for encoded, count in merged])

    def add_rows(self, rows: Iterable[StoredRow]) -> None:
        """Store *rows* with their counts and times, merging identical ones, in one transaction."""
        self._write(_writes.merge_stored_rows(rows))

    def iter_rows(self, module: Optional[str] = None) -> Iterator[StoredRow]:
        """Yield the stored rows, or those of *module*, in pages of ``ITER_PAGE_SIZE``."""
        query = _sql.page_query("?", module)

        def read_page(params: list[Any]) -> list[Sequence[Any]]:
            return self._run(
                "read traces from", lambda connection: connection.execute(query, params).fetchall()
            )

        return _sql.iterate_pages(read_page, module)

    def prune(self, last_seen_before: float, module: Optional[str] = None) -> int:
        """Delete the traces last seen before *last_seen_before* and return how many."""

        def delete(connection: sqlite3.Connection) -> int:
            return _in_transaction(
                connection,
                lambda cursor: _writes.prune_rows(cursor, _STATEMENTS, last_seen_before, module),
            )

        return self._run("prune traces in", delete)

    def filter(
        self, module: str, qualname_prefix: Optional[str] = None, limit: int = 2000
    ) -> list[CallTraceThunk]:
        """Return the most recent *limit* distinct traces of *module*, newest first."""
        if limit < 0:
            raise ValueError(f"limit must be zero or more, got {limit!r}")
        query = _FILTER_WITH_PREFIX if qualname_prefix is not None else _FILTER
        params: list[Any] = [module]
        if qualname_prefix is not None:
            params.extend(_sql.qualname_prefix_params(qualname_prefix))
        params.append(limit)

        def read(connection: sqlite3.Connection) -> list[CallTraceThunk]:
            return [CallTraceRow(*record) for record in connection.execute(query, params)]

        return self._run("read traces from", read)

    def list_modules(self) -> list[str]:
        """Return the modules that have traces, sorted by code point."""

        def read(connection: sqlite3.Connection) -> list[str]:
            return sorted(
                name for (name,) in connection.execute(_sql.LIST_MODULES_QUERY)
            )

        return self._run("list modules in", read)

    def close(self) -> None:
        """Close the connection. Later calls raise :class:`StoreError`.

        Does not wait for an operation in progress in another thread, such as a write
        that waits for another process's lock. That operation stops retrying, raises
        :class:`StoreError` once its current statement gives up, and then closes the
        connection.
        """
        self._close_requested = True
        if not self._lock.acquire(blocking=False):
            return
        try:
            self._close_connection()
        finally:
            self._lock.release()

    def _close_connection(self) -> None:
        # The caller holds self._lock.
        if self._connection is not None and self._pid == os.getpid():
            self._connection.close()
        self._connection = None

    def _write(self, entries: list[_writes.CountedTrace]) -> None:
        def write_counts(cursor: sqlite3.Cursor) -> dict[str, int]:
            return _writes.write_counts(
                cursor, _STATEMENTS, _update_counts, entries, self._row_ids.ids
            )

        def write(connection: sqlite3.Connection) -> dict[str, int]:
            return _in_transaction(connection, write_counts)

        _writes.retry_stale_ids(
            lambda: self._run("write traces to", write), self._row_ids, self.connection_string
        )

    # Connection handling

    def _run(self, action: str, operation: Callable[[sqlite3.Connection], T]) -> T:
        if self._pid != os.getpid():
            self._reopen_after_fork()
        with self._lock:
            connection = self._connection
            if connection is None:
                raise StoreError(f"The SQLite trace store {self.connection_string} is closed.")
            try:
                return _sql.retry_transient(
                    lambda: operation(connection),
                    lambda error: _is_busy(error) and not self._close_requested,
                    f"SQLite store {self.connection_string}",
                    _RETRY_DEADLINE_SECONDS,
                )
            except sqlite3.Error as error:
                raise self._store_error(action, error, _RETRY_DEADLINE_SECONDS) from error
            finally:
                if self._close_requested:
                    self._close_connection()

    def _reopen_after_fork(self) -> None:
        # A forked child gets the parent's lock in whatever state it was, and a
        # connection that SQLite forbids using across fork(); replace both.
        self._lock = threading.Lock()
        self._pid = os.getpid()
        if self._connection is not None:
            self._inherited.append(self._connection)
            self._connection = self._connect()

    def _connect(self) -> sqlite3.Connection:
        # Only a plain path is created this way, because a file: URI may ask for a
        # read-only or another mode.
        if self._path == self.connection_string and not os.path.lexists(self._path):
            _create_store_file(self._path)
        try:
            connection = sqlite3.connect(
                self.connection_string,
                timeout=_BUSY_TIMEOUT_SECONDS,
                isolation_level=None,
                check_same_thread=False,
                uri=self.connection_string.startswith("file:"),
            )
        except sqlite3.Error as error:
            raise self._store_error("open", error, _OPEN_DEADLINE_SECONDS) from error
        try:
            _sql.retry_transient(
                lambda: _create_schema(connection, self.connection_string),
                _is_busy,
                f"SQLite store {self.connection_string}",
                _OPEN_DEADLINE_SECONDS,
            )
        except sqlite3.Error as error:
            connection.close()
            raise self._store_error("open", error, _OPEN_DEADLINE_SECONDS) from error
        except StoreError:
            connection.close()
            raise
        # A per-connection setting, so it is set on every connection, whether or not
        # this one created the schema. In WAL mode it keeps committed data safe from
        # a crash of the process, and only a power loss can undo the last transactions.
        connection.execute("PRAGMA synchronous=NORMAL")
        return connection

    def _store_error(self, action: str, error: sqlite3.Error, deadline: float) -> StoreError:
        location = self.connection_string
        message = str(error)
        if "not a database" in message:
            hint = "choose another path for the trace store"
        elif "readonly" in message or "unable to open" in message:
            hint = _diagnose_open_failure(self._path)
        elif _is_busy(error) and self._close_requested:
            hint = "the store was closed while it waited for another process's lock"
        elif _is_busy(error):
            hint = (
                f"it stayed locked by another process for {deadline:.0f} s; stop the "
                "process that holds a lock or a long transaction on it (such as one "
                "that 'fuser' lists), or choose another store"
            )
        else:
            hint = "check the file, or choose another path"
        return StoreError(
            f"Failed to {action} the SQLite trace store {location}: {message}; {hint}."
        )


def _create_schema(connection: sqlite3.Connection, location: str) -> None:
    stored_version = _stored_version(connection, location)
    if stored_version == _sql.SCHEMA_VERSION:
        return
    _set_wal_mode(connection)
    try:
        _create_or_migrate(connection, location)
    except sqlite3.OperationalError as error:
        if stored_version is not None and "readonly" in str(error):
            raise StoreError(
                f"The SQLite trace store {location} has schema version {stored_version}, "
                f"and this typetrace reads version {_sql.SCHEMA_VERSION}. It migrates the "
                "store once, which needs write access: open it once with write access, for "
                "example with 'typetrace list-modules'."
            ) from error
        raise


def _create_or_migrate(connection: sqlite3.Connection, location: str) -> None:
    connection.execute("BEGIN IMMEDIATE")
    try:
        connection.execute(_CREATE_META)
        found = connection.execute(
            f"SELECT value FROM {_META} WHERE name = 'schema_version'"
        ).fetchone()
        if found is not None:
            _sql.check_schema_version(found[0], location)
        connection.execute(_CREATE_TRACES)
        connection.execute(_CREATE_INDEX)
        connection.execute(_CREATE_COUNTS)
        if found is None:
            connection.execute(
                f"INSERT INTO {_META} (name, value) VALUES ('schema_version', ?)",
                (str(_sql.SCHEMA_VERSION),),
            )
        elif int(found[0]) < _sql.SCHEMA_VERSION:
            _migrate(connection, location, int(found[0]))
        connection.execute("COMMIT")
    except BaseException:
        _rollback(connection)
        raise


def _create_store_file(path: str) -> None:
    """Create an empty store at *path*, which does not exist yet, with two syncs.

    Created in place, a store in WAL mode costs nine syncs of its files and folder.
    SQLite syncs when it switches the new file to WAL, when it commits the schema and
    when it checkpoints at close (counted with strace, SQLite 3.40 on Linux). Here
    the store is built without syncs in a temporary file next to *path*, which is
    then synced and hard-linked to *path*, and the folder is synced. *path* thus
    contains nothing or the whole store, also after a crash or power loss.

    Returns without raising on any failure, such as a missing folder or a file
    system without hard links, and the caller then creates the store in place and
    reports the error. When another process creates *path* first, the link fails
    and that process's store is used.
    """
    folder, name = os.path.split(os.path.abspath(path))
    temporary = os.path.join(folder, f".{name}.{os.getpid()}-{threading.get_ident()}.new")
    try:
        _remove_database_files(temporary)
        connection = sqlite3.connect(temporary, isolation_level=None)
        try:
            connection.execute("PRAGMA synchronous=OFF")
            _set_wal_mode(connection)
            _create_or_migrate(connection, path)
        finally:
            # Closing checkpoints the WAL into the file and deletes the WAL.
            connection.close()
        _sync(temporary)
        os.link(temporary, path)
        os.unlink(temporary)
        _sync(folder)
    except (OSError, sqlite3.Error, StoreError) as error:
        logger.debug("Failed to create the SQLite store %s from a temporary file: %s", path, error)
    finally:
        _remove_database_files(temporary)


def _sync(path: str) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _remove_database_files(path: str) -> None:
    for suffix in ("", "-journal", "-wal", "-shm"):
        try:
            os.unlink(path + suffix)
        except OSError:
            pass


def _migrate(connection: sqlite3.Connection, location: str, version: int) -> None:
    """Migrate the tables of schema *version* to the current version.

    Runs in the caller's transaction, which holds the database's write lock, so only
    one connection migrates a store.
    """
    logger.info(
        "Migrating the SQLite trace store %s from schema version %d to %d",
        location,
        version,
        _sql.SCHEMA_VERSION,
    )
    # A version 1 store gets the current traces table from _CREATE_TRACES, which
    # already has the column.
    columns = {row[1] for row in connection.execute(f"PRAGMA table_info({_TRACES})")}
    if "send_type" not in columns:
        connection.execute(f"ALTER TABLE {_TRACES} ADD COLUMN send_type TEXT")
    if version == 1:
        copied = _writes.copy_v1_rows(connection.cursor(), _STATEMENTS, _update_counts)
        connection.execute(f"DROP TABLE {_sql.V1_TRACES_TABLE}")
        logger.info("Copied %d traces of %s", copied, location)
    connection.execute(
        f"UPDATE {_META} SET value = ? WHERE name = 'schema_version'", (str(_sql.SCHEMA_VERSION),)
    )


def _stored_version(connection: sqlite3.Connection, location: str) -> Optional[int]:
    """Return the schema version of a store whose tables all exist, else ``None``.

    Reads only, so that an existing store opens on a read-only file.
    """
    tables = {
        name
        for (name,) in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN (?, ?, ?)",
            (_META, _TRACES, _COUNTS),
        )
    }
    if _META not in tables:
        return None
    found = connection.execute(
        f"SELECT value FROM {_META} WHERE name = 'schema_version'"
    ).fetchone()
    if found is None:
        return None
    _sql.check_schema_version(found[0], location)
    version = int(found[0])
    if version == _sql.SCHEMA_VERSION and not {_TRACES, _COUNTS} <= tables:
        return None
    return version


def _in_transaction(
    connection: sqlite3.Connection, body: Callable[[sqlite3.Cursor], T]
) -> T:
    connection.execute("BEGIN IMMEDIATE")
    try:
        result = body(connection.cursor())
        connection.execute("COMMIT")
    except BaseException:
        _rollback(connection)
        raise
    return result


def _update_counts(cursor: sqlite3.Cursor, params: list[tuple[int, float, float, int, int]]) -> int:
    cursor.executemany(_UPDATE_COUNTS, params)
    return cursor.rowcount


def _set_wal_mode(connection: sqlite3.Connection) -> None:
    try:
        connection.execute("PRAGMA journal_mode=WAL")
    except sqlite3.OperationalError as error:
        if "readonly" not in str(error):
            raise


def _rollback(connection: sqlite3.Connection) -> None:
    if connection.in_transaction:
        try:
            connection.execute("ROLLBACK")
        except sqlite3.Error:
            pass


def _is_busy(error: Exception) -> bool:
    if not isinstance(error, sqlite3.OperationalError):
        return False
    message = str(error)
    return "locked" in message or "busy" in message


def _file_path(connection_string: str) -> Optional[str]:
    if connection_string == ":memory:" or connection_string == "":
        return None
    if connection_string.startswith("file:"):
        # Imported only for URIs, which few stores use.
        from urllib.parse import unquote, urlsplit

        path = unquote(urlsplit(connection_string).path)
        return path or None
    return connection_string


def _diagnose_open_failure(path: Optional[str]) -> str:
    if path is None:
        return "check the connection string"
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        return f"the folder {folder} does not exist; create it or choose another path"
    if os.path.exists(path) and not os.access(path, os.R_OK | os.W_OK):
        return f"permission denied: {path} is not readable and writable; fix its permissions"
    if not os.access(folder, os.W_OK | os.X_OK):
        return (
            f"permission denied: the folder {folder} is not writable, and SQLite needs to "
            "create its journal files there; fix its permissions or choose another path"
        )
    return "check that the path names a readable and writable file"
