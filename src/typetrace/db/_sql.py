"""Schema, signatures and helpers shared by the SQL trace stores.

Every SQL store keeps two tables:

``typetrace_meta``
    Name-value text pairs. The name ``schema_version`` holds :data:`SCHEMA_VERSION`
    of the release that created the tables.

``typetrace_call_traces``
    One row per distinct trace: the fields of :class:`~typetrace.encoding.CallTraceRow`
    plus ``signature`` (unique, see :func:`trace_signature`) and ``call_count``, the
    number of calls the row counts. ``first_seen`` and ``last_seen`` are seconds since
    the Unix epoch (UTC) as floating-point numbers, from the writing process's clock.
    An index on ``(module, last_seen)`` serves :meth:`~CallTraceStore.filter` and
    :meth:`~CallTraceStore.list_modules`.

Writers upsert: a trace that already has a row adds its count to ``call_count`` and
widens the ``first_seen``/``last_seen`` range, in the same statement, so concurrent
writers keep exact counts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import random
import threading
import time
from typing import Any, Callable, ClassVar, Iterable, Iterator, Optional, Sequence, TypeVar
from urllib.parse import unquote, urlsplit, urlunsplit

from typetrace.db.base import CallTraceStore, CallTraceThunk, StoredRow
from typetrace.encoding import CallTraceRow
from typetrace.exceptions import StoreError
from typetrace.tracing import CallTrace

__all__ = [
    "META_TABLE",
    "SCHEMA_VERSION",
    "TRACES_TABLE",
    "ServerStore",
    "UtcClock",
    "aggregate_rows",
    "aggregate_stored_rows",
    "check_schema_version",
    "mask_password",
    "qualname_prefix_params",
    "redact",
    "retry_transient",
    "stored_row_from_record",
    "trace_signature",
]

logger = logging.getLogger(__name__)

#: Version of the table layout that this release creates and reads.
SCHEMA_VERSION = 1

META_TABLE = "typetrace_meta"
TRACES_TABLE = "typetrace_call_traces"

#: Columns of ``typetrace_call_traces`` that :class:`CallTraceRow` is built from, in order.
ROW_COLUMNS = (
    "module",
    "qualname",
    "arg_types",
    "return_type",
    "yield_type",
    "format_version",
    "call_count",
)

#: Columns that :func:`stored_row_from_record` reads, after the ``id`` column.
STORED_ROW_COLUMNS = (*ROW_COLUMNS, "first_seen", "last_seen")

#: Rows read per query by ``iter_rows``, so that no query holds a store's lock for long.
ITER_PAGE_SIZE = 1000

T = TypeVar("T")


def trace_signature(row: CallTraceRow) -> str:
    """Return the key that identifies *row*'s trace: a SHA-256 hex digest.

    The digest covers the format version, module, qualname and the three JSON texts,
    encoded as one JSON array so that no two different rows share an input.
    """
    fields = [
        row.format_version,
        row.module,
        row.qualname,
        row.arg_types,
        row.return_type,
        row.yield_type,
    ]
    text = json.dumps(fields, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def aggregate_rows(traces: Iterable[CallTrace]) -> list[tuple[str, CallTraceRow]]:
    """Encode *traces* and merge identical ones, summing their call counts.

    Traces that fail to encode are logged and skipped. The result is sorted by
    signature, so concurrent writers lock rows in the same order, which keeps
    deadlocks between them rare.
    """
    # A batch of recorded calls often repeats one CallTrace object. Grouping by id()
    # first hashes each object's nested types once instead of once per call. Each
    # entry keeps its trace alive, so no id is reused during the loop.
    by_identity: dict[int, list[Any]] = {}
    for trace in traces:
        entry = by_identity.get(id(trace))
        if entry is None:
            by_identity[id(trace)] = [trace, trace.call_count]
        else:
            entry[1] += trace.call_count
    # Equal traces held in different objects meet again under their signature.
    merged: dict[str, list[Any]] = {}
    for trace, count in by_identity.values():
        encoded = _encode_cached(trace)
        if encoded is None:
            continue
        signature, row = encoded
        previous = merged.get(signature)
        if previous is None:
            merged[signature] = [row, count]
        else:
            previous[1] += count
    return [
        (signature, _with_count(row, count)) for signature, (row, count) in sorted(merged.items())
    ]


def _with_count(row: CallTraceRow, count: int) -> CallTraceRow:
    # Faster than dataclasses.replace(), which this runs for every distinct trace.
    return CallTraceRow(
        row.module, row.qualname, row.arg_types, row.return_type, row.yield_type, row.format_version, count
    )


#: Maximum number of traces in the cache of encoded rows; the cache is emptied when full.
ENCODED_CACHE_SIZE = 20_000

# Signature and row (with a call count of one) of recently written traces, so that a
# trace that is written again in later batches is not encoded and hashed again.
# Encoding is deterministic, so every store can share one cache.
_encoded_rows: dict[CallTrace, tuple[str, CallTraceRow]] = {}


def _encode_cached(trace: CallTrace) -> Optional[tuple[str, CallTraceRow]]:
    encoded = _encoded_rows.get(trace)
    if encoded is not None:
        return encoded
    try:
        row = CallTraceRow.from_trace(dataclasses.replace(trace, call_count=1))
    except Exception:
        logger.exception("Failed to serialize trace %r; skipping it", trace)
        return None
    encoded = (trace_signature(row), row)
    if len(_encoded_rows) >= ENCODED_CACHE_SIZE:
        _encoded_rows.clear()
    _encoded_rows[trace] = encoded
    return encoded


def aggregate_stored_rows(rows: Iterable[StoredRow]) -> list[tuple[str, StoredRow]]:
    """Merge rows of the same trace, summing call counts and widening the times seen.

    The result is sorted by signature, for the reason :func:`aggregate_rows` gives.
    """
    merged: dict[str, StoredRow] = {}
    for stored in rows:
        signature = trace_signature(stored.row)
        previous = merged.get(signature)
        if previous is not None:
            count = previous.row.call_count + stored.row.call_count
            stored = StoredRow(
                dataclasses.replace(stored.row, call_count=count),
                min(previous.first_seen, stored.first_seen),
                max(previous.last_seen, stored.last_seen),
            )
        merged[signature] = stored
    return sorted(merged.items())


def upsert_params(signature: str, row: CallTraceRow, first_seen: float, last_seen: float) -> tuple[Any, ...]:
    """Return the parameters of a store's upsert statement, in column order."""
    return (
        signature,
        row.module,
        row.qualname,
        row.arg_types,
        row.return_type,
        row.yield_type,
        row.format_version,
        row.call_count,
        first_seen,
        last_seen,
    )


def stored_row_from_record(record: Sequence[Any]) -> StoredRow:
    """Build a :class:`StoredRow` from the values of :data:`STORED_ROW_COLUMNS`."""
    *row_values, first_seen, last_seen = record
    return StoredRow(CallTraceRow(*row_values), float(first_seen), float(last_seen))


def page_query(placeholder: str, module: Optional[str]) -> str:
    """Return the query of one page of ``iter_rows``: rows after an id, in id order.

    Its parameters are the last id read, then *module* if it is given, then the page size.
    """
    query = f"SELECT id, {', '.join(STORED_ROW_COLUMNS)} FROM {TRACES_TABLE} WHERE id > {placeholder}"
    if module is not None:
        query += f" AND module = {placeholder}"
    return query + f" ORDER BY id LIMIT {placeholder}"


def prune_query(placeholder: str, module: Optional[str]) -> str:
    """Return the ``DELETE`` of ``prune``; its parameters are the time, then *module*."""
    query = f"DELETE FROM {TRACES_TABLE} WHERE last_seen < {placeholder}"
    if module is not None:
        query += f" AND module = {placeholder}"
    return query


def iterate_pages(
    read_page: Callable[[list[Any]], list[Sequence[Any]]], module: Optional[str]
) -> Iterator[StoredRow]:
    """Yield the rows of every page that *read_page* returns for a :func:`page_query`.

    Each page is read in a call of its own, so a caller that stops iterating, or is
    slow, holds no lock or transaction of the store between pages.
    """
    last_id = 0
    while True:
        params: list[Any] = [last_id]
        if module is not None:
            params.append(module)
        params.append(ITER_PAGE_SIZE)
        records = read_page(params)
        for record in records:
            yield stored_row_from_record(record[1:])
        if len(records) < ITER_PAGE_SIZE:
            return
        last_id = records[-1][0]


def qualname_prefix_params(prefix: str) -> tuple[str, int, str]:
    """Return the parameters of the exact qualname-prefix condition.

    The stores write the condition as
    ``qualname = ? OR substr(qualname, 1, ?) = ?`` with these three values: the
    prefix itself, the length in characters of the prefix plus a dot, and the prefix
    plus a dot. No value is a pattern, so ``_`` and ``%`` match only themselves.
    """
    dotted = prefix + "."
    return prefix, len(dotted), dotted


def check_schema_version(found: str, location: str) -> None:
    """Raise :class:`StoreError` unless this release can use schema version *found*."""
    try:
        version = int(found)
    except ValueError:
        raise StoreError(
            f"The trace store {location} has an invalid schema version {found!r} in table "
            f"{META_TABLE}; it was not written by typetrace, or is damaged."
        ) from None
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"The trace store {location} uses schema version {version}, but this typetrace "
            f"supports versions up to {SCHEMA_VERSION}. Upgrade typetrace to read it."
        )


def mask_password(url: str) -> str:
    """Return *url* with the password, if any, replaced by ``***``.

    ``postgresql://user:secret@host/db`` becomes ``postgresql://user:***@host/db``.
    A ``password`` query parameter is masked too. Text that is not a URL is returned
    as it is.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostinfo = netloc.rpartition("@")
        user, has_password, _ = userinfo.partition(":")
        if has_password:
            netloc = f"{user}:***@{hostinfo}"
    query = "&".join(
        "password=***" if pair.split("=", 1)[0].lower() == "password" else pair
        for pair in parts.query.split("&")
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact(text: str, secret: Optional[str]) -> str:
    """Return *text* with every occurrence of *secret* replaced by ``***``."""
    if not secret:
        return text
    return text.replace(secret, "***")


def retry_transient(
    operation: Callable[[], T],
    is_transient: Callable[[Exception], bool],
    description: str,
    deadline_seconds: float = 60.0,
) -> T:
    """Run *operation*, retrying it with jittered exponential backoff on transient errors.

    *operation* must roll back its own transaction before it raises, so a retry never
    applies a write twice. Errors that *is_transient* rejects are raised at once. After
    *deadline_seconds* the last transient error is raised.
    """
    started = time.monotonic()
    delay = 0.005
    attempt = 0
    while True:
        attempt += 1
        try:
            return operation()
        except Exception as error:
            if not is_transient(error):
                raise
            if time.monotonic() - started + delay > deadline_seconds:
                raise
            if attempt in (1, 10, 100):
                logger.debug("Retrying %s after attempt %d failed: %s", description, attempt, error)
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 1.0)


class UtcClock:
    """Seconds since the Unix epoch that never repeat or go backwards in one process.

    Two calls in a row can fall within the system clock's resolution; a strictly
    increasing value keeps "most recent first" ordering exact for one writer.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0.0

    def now(self) -> float:
        """Return the current time, later than every value returned before."""
        with self._lock:
            current = max(time.time(), self._last + 1e-6)
            self._last = current
            return current


class ServerStore(CallTraceStore):
    """The part of the PostgreSQL and MySQL stores that their DB-API drivers share.

    Subclasses open connections, create the schema and supply the upsert statement.
    Both drivers use ``%s`` placeholders, so the read queries are shared. A connection
    that broke is replaced at the next call. A process forked from the owner opens its
    own connection at its first call.
    """

    #: Name of the database product in messages, e.g. ``"PostgreSQL"``.
    product: ClassVar[str]
    #: ``INSERT`` statement that adds one row or adds its counts to the existing row.
    upsert_sql: ClassVar[str]
    #: Statement that stores the schema version, doing nothing if a row exists.
    insert_version_sql: ClassVar[str]

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
        self._connection: Any = self._connect_and_prepare()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.masked_url!r})"

    @classmethod
    def make_store(cls, connection_string: str) -> CallTraceStore:
        """Connect to the database that the URL *connection_string* names."""
        return cls(connection_string)

    def add(self, traces: Iterable[CallTrace]) -> None:
        """Store *traces*, merging identical ones, in one transaction."""
        rows = self.prepare_rows(aggregate_rows(traces))
        if not rows:
            return
        now = self._clock.now()
        self._upsert([upsert_params(signature, row, now, now) for signature, row in rows])

    def add_rows(self, rows: Iterable[StoredRow]) -> None:
        """Store *rows* with their counts and times, merging identical ones, in one transaction."""
        merged = aggregate_stored_rows(rows)
        kept = {signature for signature, _ in self.prepare_rows([(s, r.row) for s, r in merged])}
        self._upsert(
            [
                upsert_params(signature, stored.row, stored.first_seen, stored.last_seen)
                for signature, stored in merged
                if signature in kept
            ]
        )

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
        params: list[Any] = [last_seen_before] if module is None else [last_seen_before, module]

        def delete(cursor: Any) -> int:
            cursor.execute(prune_query("%s", module), params)
            return int(cursor.rowcount)

        return self._transaction("prune traces in", delete)

    def filter(
        self, module: str, qualname_prefix: Optional[str] = None, limit: int = 2000
    ) -> list[CallTraceThunk]:
        """Return the most recent *limit* distinct traces of *module*, newest first."""
        if limit < 0:
            raise ValueError(f"limit must be zero or more, got {limit!r}")
        query = f"SELECT {', '.join(ROW_COLUMNS)} FROM {TRACES_TABLE} WHERE module = %s"
        params: list[Any] = [module]
        if qualname_prefix is not None:
            query += " AND (qualname = %s OR substr(qualname, 1, %s) = %s)"
            params.extend(qualname_prefix_params(qualname_prefix))
        query += " ORDER BY last_seen DESC, id DESC LIMIT %s"
        params.append(limit)

        def read(cursor: Any) -> list[CallTraceThunk]:
            cursor.execute(query, params)
            return [CallTraceRow(*record) for record in cursor.fetchall()]

        return self._transaction("read traces from", read)

    def list_modules(self) -> list[str]:
        """Return the modules that have traces, sorted by code point."""

        def read(cursor: Any) -> list[str]:
            cursor.execute(f"SELECT DISTINCT module FROM {TRACES_TABLE}")
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

    def _upsert(self, params: list[tuple[Any, ...]]) -> None:
        if not params:
            return

        def write(cursor: Any) -> None:
            cursor.executemany(self.upsert_sql, params)

        self._transaction("write traces to", write)

    # Hooks for subclasses

    def open_connection(self) -> Any:
        """Open a DB-API connection with autocommit off; raise the driver's errors."""
        raise NotImplementedError

    def create_schema(self, cursor: Any) -> None:
        """Create the tables if they are missing, in the transaction of *cursor*."""
        raise NotImplementedError

    def is_usable(self, connection: Any) -> bool:
        """Return whether *connection* is still open and not broken."""
        raise NotImplementedError

    def is_transient(self, error: Exception) -> bool:
        """Return whether *error* rolled back the transaction and a retry can succeed."""
        raise NotImplementedError

    def driver_errors(self) -> tuple[type[Exception], ...]:
        """Return the driver's exception classes, which become :class:`StoreError`."""
        raise NotImplementedError

    def prepare_rows(self, rows: list[tuple[str, CallTraceRow]]) -> list[tuple[str, CallTraceRow]]:
        """Return the rows the database can store; the default keeps all."""
        return rows

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
                    self._check_or_write_version(cursor)
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

    def _check_or_write_version(self, cursor: Any) -> None:
        # Another process may insert the row between a read and an insert, so insert
        # first, ignoring an existing row, then check what is stored.
        cursor.execute(self.insert_version_sql, (str(SCHEMA_VERSION),))
        cursor.execute(f"SELECT value FROM {META_TABLE} WHERE name = 'schema_version'")
        check_schema_version(cursor.fetchone()[0], self.masked_url)


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
