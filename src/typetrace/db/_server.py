"""ServerStore: the part of the PostgreSQL and MySQL stores that their drivers share."""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, Callable, ClassVar, Iterable, Iterator, Optional, Sequence, TypeVar
from urllib.parse import unquote, urlsplit

from typetrace.db import _writes
from typetrace.db._sql import (
    LIST_MODULES_QUERY,
    META_TABLE,
    ROW_COLUMNS,
    SCHEMA_VERSION,
    TRACES_TABLE,
    V1_TRACES_TABLE,
    UtcClock,
    check_schema_version,
    filter_query,
    iterate_pages,
    mask_password,
    page_query,
    qualname_prefix_params,
    redact,
    retry_transient,
)
from typetrace.db.base import CallTraceStore, CallTraceThunk, StoredRow
from typetrace.encoding import CallTraceRow
from typetrace.exceptions import StoreError
from typetrace.tracing import CallTrace

__all__ = ["ServerStore"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


class ServerStore(CallTraceStore):
    """The part of the PostgreSQL and MySQL stores that their DB-API drivers share.

    Subclasses open connections, create the schema and supply the SQL that differs.
    Both drivers use ``%s`` placeholders, so the read queries are shared. A connection
    that broke is replaced at the next call. A process forked from the owner opens its
    own connection at its first call.
    """

    #: Name of the database product in messages, e.g. ``"PostgreSQL"``.
    product: ClassVar[str]
    #: The statements of writes and pruning in the database's dialect.
    statements: ClassVar[_writes.Statements]
    #: Statement that stores the schema version, doing nothing if a row exists.
    insert_version_sql: ClassVar[str]
    #: Query of the names of the columns of the table named by its one parameter.
    column_names_sql: ClassVar[str]
    #: Statement that adds the ``send_type`` column to ``typetrace_traces``.
    add_send_type_sql: ClassVar[str]

    def __init__(self, url: str) -> None:
        self.url = url
        #: The URL with its password masked, for messages and logs.
        self.masked_url = mask_password(url)
        password = urlsplit(url).password
        self._password = unquote(password) if password else None
        self._clock = UtcClock()
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._closed = False
        # Connections inherited through os.fork(); kept referenced and never used or
        # closed, because closing one would end the parent's session on the server.
        self._inherited: list[Any] = []
        self._row_ids = _writes.RowIds()
        self._connection: Any = self._connect_and_prepare()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.masked_url!r})"

    @classmethod
    def make_store(cls, connection_string: str) -> CallTraceStore:
        """Connect to the database that the URL *connection_string* names."""
        return cls(connection_string)

    def add(self, traces: Iterable[CallTrace]) -> None:
        """Store *traces*, merging identical ones, in one transaction."""
        merged = _writes.merge_traces(traces)
        if not merged:
            return
        now = self._clock.now()
        self._write(self.prepare_rows([(encoded, count, now, now) for encoded, count in merged]))

    def add_rows(self, rows: Iterable[StoredRow]) -> None:
        """Store *rows* with their counts and times, merging identical ones, in one transaction."""
        self._write(self.prepare_rows(_writes.merge_stored_rows(rows)))

    def iter_rows(self, module: Optional[str] = None) -> Iterator[StoredRow]:
        """Yield the stored rows, or those of *module*, in pages of :data:`ITER_PAGE_SIZE`."""
        query = page_query("%s", module)

        def read_page(params: list[Any]) -> list[Sequence[Any]]:
            def read(cursor: Any) -> list[Sequence[Any]]:
                cursor.execute(query, params)
                return list(cursor.fetchall())

            return self._transaction("read traces from", read)

        return iterate_pages(read_page, module)

    def prune(self, last_seen_before: float, module: Optional[str] = None) -> int:
        """Delete the traces last seen before *last_seen_before* and return how many."""

        def delete(cursor: Any) -> int:
            return _writes.prune_rows(cursor, self.statements, last_seen_before, module)

        return self._transaction("prune traces in", delete)

    def filter(
        self, module: str, qualname_prefix: Optional[str] = None, limit: int = 2000
    ) -> list[CallTraceThunk]:
        """Return the most recent *limit* distinct traces of *module*, newest first."""
        if limit < 0:
            raise ValueError(f"limit must be zero or more, got {limit!r}")
        query = filter_query("%s", qualname_prefix is not None)
        params: list[Any] = [module]
        if qualname_prefix is not None:
            params.extend(qualname_prefix_params(qualname_prefix))
        params.append(limit)

        def read(cursor: Any) -> list[CallTraceThunk]:
            cursor.execute(query, params)
            return [CallTraceRow(*record) for record in cursor.fetchall()]

        return self._transaction("read traces from", read)

    def list_modules(self) -> list[str]:
        """Return the modules that have traces, sorted by code point."""

        def read(cursor: Any) -> list[str]:
            cursor.execute(LIST_MODULES_QUERY)
            return sorted(name for (name,) in cursor.fetchall())

        return self._transaction("list modules in", read)

    def close(self) -> None:
        """Close the connection. Later calls raise :class:`StoreError`."""
        with self._lock:
            self._closed = True
            if self._connection is not None and self._pid == os.getpid():
                try:
                    self._connection.close()
                except Exception:
                    logger.debug("Ignoring an error closing %s", self.masked_url, exc_info=True)
            self._connection = None

    def _write(self, entries: list[_writes.CountedTrace]) -> None:
        if not entries:
            return

        def write(cursor: Any) -> dict[str, int]:
            return _writes.write_counts(
                cursor, self.statements, self.update_counts, entries, self._row_ids.ids
            )

        _writes.retry_stale_ids(
            lambda: self._transaction("write traces to", write), self._row_ids, self.masked_url
        )

    # Hooks for subclasses

    def open_connection(self) -> Any:
        """Open a DB-API connection with autocommit off; raise the driver's errors."""
        raise NotImplementedError

    def create_schema(self, cursor: Any) -> None:
        """Create the tables if they are missing, in the transaction of *cursor*.

        Holds a lock that keeps other connections from creating or migrating the
        tables at the same time, until :meth:`unlock_schema` or the transaction's end.
        """
        raise NotImplementedError

    def unlock_schema(self, cursor: Any) -> None:
        """Release a lock of :meth:`create_schema` that outlives transactions."""

    def finish_migration(self, cursor: Any) -> None:
        """Drop the schema version 1 table, if there is one, after its rows were copied."""
        cursor.execute(f"DROP TABLE IF EXISTS {V1_TRACES_TABLE}")

    def update_counts(self, cursor: Any, params: list[tuple[int, float, float, int, int]]) -> int:
        """Run the counts updates of :data:`typetrace.db._writes.UpdateCounts`."""
        cursor.executemany(self.statements.update_counts, params)
        return int(cursor.rowcount)

    def is_usable(self, connection: Any) -> bool:
        """Return whether *connection* is still open and not broken."""
        raise NotImplementedError

    def is_transient(self, error: Exception) -> bool:
        """Return whether *error* rolled back the transaction and a retry can succeed."""
        raise NotImplementedError

    def driver_errors(self) -> tuple[type[Exception], ...]:
        """Return the driver's exception classes, which become :class:`StoreError`."""
        raise NotImplementedError

    def prepare_rows(self, entries: list[_writes.CountedTrace]) -> list[_writes.CountedTrace]:
        """Return the traces the database can store; the default keeps all."""
        return entries

    # Connection handling

    def _transaction(self, action: str, body: Callable[[Any], T]) -> T:
        def attempt() -> T:
            connection = self._current_connection()
            try:
                cursor = connection.cursor()
                try:
                    result = body(cursor)
                finally:
                    cursor.close()
                connection.commit()
                return result
            except BaseException:
                _rollback_quietly(connection)
                raise

        # NOTE: a connection lost during COMMIT leaves unknown whether the write
        # happened. The error reaches the caller, and a caller that retries the same
        # traces (StoreWriter does) may count them twice.
        with self._lock:
            try:
                return retry_transient(attempt, self.is_transient, self.masked_url)
            except self.driver_errors() as error:
                raise StoreError(
                    f"Failed to {action} the {self.product} trace store {self.masked_url}: "
                    f"{redact(str(error), self._password)}"
                ) from error

    def _current_connection(self) -> Any:
        if self._closed:
            raise StoreError(f"The {self.product} trace store {self.masked_url} is closed.")
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._inherited.append(self._connection)
            self._connection = None
        if self._connection is None or not self.is_usable(self._connection):
            logger.info("Connecting to the %s trace store %s", self.product, self.masked_url)
            self._connection = self._connect_and_prepare()
        return self._connection

    def _connect_and_prepare(self) -> Any:
        try:
            connection = self.open_connection()
        except self.driver_errors() as error:
            raise StoreError(
                f"Failed to connect to the {self.product} trace store {self.masked_url}: "
                f"{redact(str(error), self._password).strip()}. Check that the server is "
                "running and that the URL names the right host, port, user and database."
            ) from error

        def prepare() -> None:
            cursor = connection.cursor()
            try:
                if not self._schema_is_current(cursor):
                    self.create_schema(cursor)
                    try:
                        self._install_or_migrate(cursor)
                    finally:
                        self.unlock_schema(cursor)
            finally:
                cursor.close()
            connection.commit()

        try:
            retry_transient(_rolling_back(connection, prepare), self.is_transient, self.masked_url)
        except self.driver_errors() as error:
            _close_quietly(connection)
            raise StoreError(
                f"Failed to create the tables of the {self.product} trace store "
                f"{self.masked_url}: {redact(str(error), self._password)}"
            ) from error
        except BaseException:
            _close_quietly(connection)
            raise
        return connection

    def _schema_is_current(self, cursor: Any) -> bool:
        # Reads only, so that a user without CREATE privilege can open a store
        # that exists.
        try:
            cursor.execute(f"SELECT value FROM {META_TABLE} WHERE name = 'schema_version'")
        except self.driver_errors():
            cursor.connection.rollback()
            return False
        found = cursor.fetchone()
        if found is None:
            return False
        check_schema_version(found[0], self.masked_url)
        return int(found[0]) == SCHEMA_VERSION

    def _install_or_migrate(self, cursor: Any) -> None:
        # Another process may insert the row between a read and an insert, so insert
        # first, ignoring an existing row, then check what is stored.
        cursor.execute(self.insert_version_sql, (str(SCHEMA_VERSION),))
        cursor.execute(f"SELECT value FROM {META_TABLE} WHERE name = 'schema_version'")
        found = cursor.fetchone()[0]
        check_schema_version(found, self.masked_url)
        if int(found) < SCHEMA_VERSION:
            self._migrate(cursor, int(found))

    def _migrate(self, cursor: Any, version: int) -> None:
        logger.info(
            "Migrating the %s trace store %s from schema version %d to %d",
            self.product,
            self.masked_url,
            version,
            SCHEMA_VERSION,
        )
        # MySQL commits at every ALTER TABLE, so a migration that stopped before it
        # stored the new version may have added the column already. The traces table
        # of a version 1 store lacks it only where a version 2 release created that table.
        cursor.execute(self.column_names_sql, (TRACES_TABLE,))
        if "send_type" not in {name for (name,) in cursor.fetchall()}:
            cursor.execute(self.add_send_type_sql)
        if version == 1:
            copied = _writes.copy_v1_rows(cursor, self.statements, self.update_counts)
            logger.info("Copied %d traces of %s", copied, self.masked_url)
        cursor.execute(
            f"UPDATE {META_TABLE} SET value = %s WHERE name = 'schema_version'",
            (str(SCHEMA_VERSION),),
        )
        self.finish_migration(cursor)


def _rolling_back(connection: Any, operation: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        try:
            operation()
        except BaseException:
            _rollback_quietly(connection)
            raise

    return run


def _rollback_quietly(connection: Any) -> None:
    try:
        connection.rollback()
    except Exception:
        logger.debug("Ignoring an error in rollback", exc_info=True)


def _close_quietly(connection: Any) -> None:
    try:
        connection.close()
    except Exception:
        logger.debug("Ignoring an error closing a connection", exc_info=True)
