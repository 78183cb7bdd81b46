"""Schema, signatures and helpers shared by the SQL trace stores.

Every SQL store keeps three tables:

``typetrace_meta``
    Name-value text pairs. The name ``schema_version`` holds :data:`SCHEMA_VERSION`
    of the release that created or last migrated the tables.

``typetrace_traces``
    One row per distinct trace, written once: an integer ``id`` that the database
    assigns, the fields of :class:`~typetrace.encoding.CallTraceRow` except
    ``call_count``, and ``signature`` (unique, see :func:`trace_signature`). The
    ``send_type`` column comes last, because schema version 3 added it. An index
    on ``module`` (with ``qualname``, except in MySQL) serves
    :meth:`~CallTraceStore.filter` and :meth:`~CallTraceStore.list_modules`.

``typetrace_counts``
    One row per row of ``typetrace_traces``, with the same ``id``: ``call_count``,
    the number of calls the trace counts, and ``first_seen`` and ``last_seen`` in
    seconds since the Unix epoch (UTC) as floating-point numbers, from the writing
    process's clock. ``check_key``, 63 bits of the signature, guards updates by id
    (see :mod:`typetrace.db._writes`).

Writers update a counts row in one statement that adds to ``call_count`` and widens
the ``first_seen``/``last_seen`` range, so concurrent writers keep exact counts.

Schema version 1 kept all columns in one table, ``typetrace_call_traces``, with a
unique index on ``signature`` that every write looked up. Opening a version 1 store
migrates it: its rows move into the two tables with their counts and times.

Schema version 2 had no ``send_type`` column. Opening a version 2 store migrates it
by adding the column, which is ``NULL`` in every existing row. Rows without a send
type keep their signatures, so new writes of the same traces add to their counts.
A version 1 store migrates to the current version in one step.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import threading
import time
from typing import Any, Callable, Iterator, Optional, Sequence, TypeVar

from typetrace.db.base import StoredRow
from typetrace.encoding import CallTraceRow
from typetrace.exceptions import StoreError

__all__ = [
    "COUNTS_TABLE",
    "META_TABLE",
    "SCHEMA_VERSION",
    "TRACES_TABLE",
    "UtcClock",
    "check_schema_version",
    "mask_password",
    "qualname_prefix_params",
    "redact",
    "retry_transient",
    "stored_row_from_record",
    "trace_signature",
]

logger = logging.getLogger(__name__)

#: Source of retry jitter. The traced program's global random state stays untouched.
_JITTER = random.SystemRandom()

#: Version of the table layout that this release creates and reads.
SCHEMA_VERSION = 3

META_TABLE = "typetrace_meta"
TRACES_TABLE = "typetrace_traces"
COUNTS_TABLE = "typetrace_counts"
#: The single table of schema version 1, which migration replaces.
V1_TRACES_TABLE = "typetrace_call_traces"

#: Columns that :class:`CallTraceRow` is built from, in order, as the read queries
#: select them from ``typetrace_traces t`` joined with ``typetrace_counts c``.
ROW_COLUMNS = (
    "module",
    "qualname",
    "arg_types",
    "return_type",
    "yield_type",
    "format_version",
    "call_count",
    "send_type",
)

#: Columns that :func:`stored_row_from_record` reads.
STORED_ROW_COLUMNS = (*ROW_COLUMNS, "first_seen", "last_seen")

_QUALIFIED_COLUMNS = {
    **{name: f"t.{name}" for name in ROW_COLUMNS},
    "call_count": "c.call_count",
    "first_seen": "c.first_seen",
    "last_seen": "c.last_seen",
}

#: ``FROM`` clause of the read queries: traces joined with their counts.
JOINED_TABLES = f"{TRACES_TABLE} t JOIN {COUNTS_TABLE} c ON c.id = t.id"

#: Query of the distinct modules, in order. Each step looks up the next module in the
#: index on ``module``, so the time grows with the number of modules, not of traces,
#: as it does for ``SELECT DISTINCT``.
LIST_MODULES_QUERY = f"""
WITH RECURSIVE modules (name) AS (
    SELECT min(module) FROM {TRACES_TABLE}
    UNION ALL
    SELECT (SELECT min(module) FROM {TRACES_TABLE} WHERE module > modules.name)
    FROM modules WHERE modules.name IS NOT NULL
)
SELECT name FROM modules WHERE name IS NOT NULL
"""

#: Rows read per query by ``iter_rows``, so that no query holds a store's lock for long.
ITER_PAGE_SIZE = 1000

T = TypeVar("T")


def trace_signature(row: CallTraceRow) -> str:
    """Return the key that identifies *row*'s trace: a SHA-256 hex digest.

    The digest covers the format version, module, qualname and the JSON texts of the
    types, encoded as one JSON array so that no two different rows share an input.
    ``send_type`` is in the array only when it is not ``None``, so a row without a
    send type has the signature that releases before ``send_type`` computed for it.
    """
    fields = [
        row.format_version,
        row.module,
        row.qualname,
        row.arg_types,
        row.return_type,
        row.yield_type,
    ]
    if row.send_type is not None:
        fields.append(row.send_type)
    text = json.dumps(fields, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def stored_row_from_record(record: Sequence[Any]) -> StoredRow:
    """Build a :class:`StoredRow` from the values of :data:`STORED_ROW_COLUMNS`."""
    *row_values, first_seen, last_seen = record
    return StoredRow(CallTraceRow(*row_values), float(first_seen), float(last_seen))


def select_columns(columns: Sequence[str]) -> str:
    """Return *columns* qualified for a ``SELECT`` from :data:`JOINED_TABLES`."""
    return ", ".join(_QUALIFIED_COLUMNS[name] for name in columns)


def filter_query(placeholder: str, with_prefix: bool) -> str:
    """Return the query of ``filter``: the newest rows of a module.

    Its parameters are the module, then the values of :func:`qualname_prefix_params`
    if *with_prefix*, then the limit. The inner query finds the newest ids through
    the index on ``module`` and the narrow counts rows, so only the rows returned
    are read from ``typetrace_traces`` in full.

    NOTE: the inner query sorts every trace of the module, so its time grows with
    the module's traces: about 15 ms for 20,000 and 80 ms for 100,000 in SQLite
    (see docs/benchmarks-store.md).
    """
    p = placeholder
    inner = f"SELECT t.id, c.call_count, c.last_seen FROM {JOINED_TABLES} WHERE t.module = {p}"
    if with_prefix:
        inner += f" AND (t.qualname = {p} OR substr(t.qualname, 1, {p}) = {p})"
    inner += f" ORDER BY c.last_seen DESC, t.id DESC LIMIT {p}"
    columns = ", ".join(
        "c.call_count" if name == "call_count" else f"t.{name}" for name in ROW_COLUMNS
    )
    return (
        f"SELECT {columns} FROM ({inner}) c JOIN {TRACES_TABLE} t ON t.id = c.id "
        "ORDER BY c.last_seen DESC, t.id DESC"
    )


def page_query(placeholder: str, module: Optional[str]) -> str:
    """Return the query of one page of ``iter_rows``: rows after an id, in id order.

    Its parameters are the last id read, then *module* if it is given, then the page size.
    """
    query = (
        f"SELECT t.id, {select_columns(STORED_ROW_COLUMNS)} FROM {JOINED_TABLES} "
        f"WHERE t.id > {placeholder}"
    )
    if module is not None:
        query += f" AND t.module = {placeholder}"
    return query + f" ORDER BY t.id LIMIT {placeholder}"


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
    # Imported here, so that the SQLite store does not load it. The server stores,
    # which call this function, import it themselves.
    from urllib.parse import urlsplit, urlunsplit

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
            time.sleep(delay * (0.5 + _JITTER.random()))
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
