"""Writing call counts to the SQL stores: row ids, count updates, pruning, migration.

Each distinct trace has a row in ``typetrace_traces``, under an integer ``id`` that
the database assigns, and a row of the same ``id`` in ``typetrace_counts``.
``add()`` turns a batch into one ``UPDATE`` of a counts row by id per distinct
trace. The narrow counts rows keep a commit small: a batch rewrites a few pages of
counts instead of every page of encoded traces, as one wide table did.

A store remembers the ids of the traces it has written (:class:`RowIds`), so it
looks a trace's row up by signature only the first time. A counts row carries 63
bits of its trace's signature, ``check_key``, which every update must match: an id
that was pruned and then given to another trace is detected instead of counted.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections import Counter
from operator import itemgetter
from typing import Any, Callable, Iterable, NamedTuple, Optional, Sequence

from typetrace.db._sql import COUNTS_TABLE, TRACES_TABLE, V1_TRACES_TABLE, trace_signature
from typetrace.db.base import StoredRow
from typetrace.encoding import CallTraceRow
from typetrace.exceptions import StoreError
from typetrace.tracing import CallTrace

__all__ = [
    "CountedTrace",
    "EncodedTrace",
    "RowIds",
    "StaleRowIdsError",
    "Statements",
    "check_key_of",
    "copy_v1_rows",
    "encode_row",
    "merge_stored_rows",
    "merge_traces",
    "prune_rows",
    "retry_stale_ids",
    "write_counts",
]

logger = logging.getLogger(__name__)

#: Signatures per ``IN (...)`` list; below SQLite's oldest limit of 999 parameters.
LOOKUP_CHUNK_SIZE = 500


class EncodedTrace(NamedTuple):
    """A trace in stored form with its signature and check key."""

    #: Hex SHA-256 digest that identifies the trace (:func:`trace_signature`).
    signature: str
    #: 63 bits of the signature, stored with the counts row (:func:`check_key_of`).
    check_key: int
    #: The encoded trace; its ``call_count`` is not used, and may be any number.
    row: CallTraceRow


#: A trace, its calls to add, and the first and last time they were seen.
CountedTrace = tuple[EncodedTrace, int, float, float]


def check_key_of(signature: str) -> int:
    """Return the first 63 bits of *signature*, a non-negative SQL ``BIGINT``.

    Signatures are hex digests. A signature that is not (a damaged row of schema
    version 1 may hold any text) is hashed with SHA-256 first.
    """
    try:
        digest = bytes.fromhex(signature[:16])
    except ValueError:
        digest = b""
    if len(digest) < 8:
        digest = hashlib.sha256(signature.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def encode_row(row: CallTraceRow, signature: Optional[str] = None) -> EncodedTrace:
    """Return *row* with its signature and check key; *signature* defaults to the computed one."""
    if signature is None:
        signature = trace_signature(row)
    return EncodedTrace(signature, check_key_of(signature), row)


#: Maximum number of traces in the cache of encoded traces; the cache is emptied when full.
ENCODED_CACHE_SIZE = 20_000

# Encoded forms of recently written traces, so that a trace that is written again in
# later batches is not encoded and hashed again. Encoding is deterministic, so every
# store can share one cache.
_encoded_traces: dict[CallTrace, EncodedTrace] = {}


def _encode_cached(trace: CallTrace) -> Optional[EncodedTrace]:
    encoded = _encoded_traces.get(trace)
    if encoded is not None:
        return encoded
    try:
        row = CallTraceRow.from_trace(trace)
    except Exception:
        logger.exception("Failed to serialize trace %r; skipping it", trace)
        return None
    encoded = encode_row(row)
    if len(_encoded_traces) >= ENCODED_CACHE_SIZE:
        _encoded_traces.clear()
    _encoded_traces[trace] = encoded
    return encoded


def merge_traces(traces: Iterable[CallTrace]) -> list[tuple[EncodedTrace, int]]:
    """Encode *traces* and merge identical ones, summing their call counts.

    Traces that fail to encode are logged and skipped.
    """
    # A batch of recorded calls often repeats one CallTrace object. Counting objects
    # by id() first, in C, hashes each object's nested types once instead of once per
    # call. A trace is immutable, so every occurrence of one object has the same
    # call_count. The list keeps every trace alive, so no id is reused meanwhile.
    traces = traces if isinstance(traces, list) else list(traces)
    identities = list(map(id, traces))
    objects = dict(zip(identities, traces))
    # Equal traces held in different objects meet again under their signature.
    merged: dict[str, list[Any]] = {}
    for identity, occurrences in Counter(identities).items():
        trace = objects[identity]
        encoded = _encode_cached(trace)
        if encoded is None:
            continue
        count = occurrences * trace.call_count
        previous = merged.get(encoded.signature)
        if previous is None:
            merged[encoded.signature] = [encoded, count]
        else:
            previous[1] += count
    return [(encoded, count) for encoded, count in merged.values()]


def merge_stored_rows(rows: Iterable[StoredRow]) -> list[CountedTrace]:
    """Merge rows of the same trace, summing call counts and widening the times seen."""
    merged: dict[str, list[Any]] = {}
    for stored in rows:
        signature = trace_signature(stored.row)
        previous = merged.get(signature)
        if previous is None:
            merged[signature] = [
                encode_row(stored.row, signature),
                stored.row.call_count,
                stored.first_seen,
                stored.last_seen,
            ]
        else:
            previous[1] += stored.row.call_count
            previous[2] = min(previous[2], stored.first_seen)
            previous[3] = max(previous[3], stored.last_seen)
    return [(encoded, count, first, last) for encoded, count, first, last in merged.values()]


class RowIds:
    """The row ids of traces that one store has written, by signature.

    An id stays valid until the trace is pruned; :func:`write_counts` detects that
    case. The cache is emptied when it reaches *max_size* entries.
    """

    def __init__(self, max_size: int = 100_000) -> None:
        self.max_size = max_size
        self.ids: dict[str, int] = {}

    def update(self, resolved: dict[str, int]) -> None:
        """Remember *resolved*, ids that a committed transaction wrote or read."""
        if len(self.ids) + len(resolved) > self.max_size:
            self.ids.clear()
        self.ids.update(resolved)

    def clear(self) -> None:
        """Forget every id."""
        self.ids.clear()


class StaleRowIdsError(Exception):
    """A counts row to update is missing or has another check key.

    Its trace was usually pruned after the store cached its id. The transaction must
    be rolled back and the write repeated with an empty cache.
    """


@dataclasses.dataclass(frozen=True)
class Statements:
    """The SQL that :func:`write_counts` and :func:`prune_rows` run, in one dialect.

    Args:
        placeholder: The driver's parameter marker, ``?`` or ``%s``.
        ignore_conflict: Clause after ``INSERT ... VALUES (...)`` that skips a row
            whose id or signature is already stored. Each ``{column}`` in it is
            replaced by the column of the unique key that the insert can conflict
            on: ``signature`` for traces and ``id`` for counts rows.
        min_function: Name of the two-argument minimum function, ``min`` or ``LEAST``.
        max_function: Name of the two-argument maximum function, ``max`` or ``GREATEST``.
        counts_inserted_rows: Whether ``rowcount`` after an ``executemany`` of
            inserts with *ignore_conflict* is the number of rows inserted. MySQL
            connections with ``CLIENT_FOUND_ROWS`` also count the rows skipped.
        locking_read: Clause after a ``SELECT``, such as ``FOR SHARE``, that makes it
            read the latest committed rows and wait for rows that other transactions
            have locked. It is empty where every read does so.
    """

    placeholder: str
    ignore_conflict: str
    min_function: str
    max_function: str
    counts_inserted_rows: bool = True
    locking_read: str = ""

    def select_ids(self, count: int, locking: bool = False) -> str:
        """Return the query of the ids of *count* signatures, a locking read if *locking*."""
        markers = ", ".join([self.placeholder] * count)
        query = f"SELECT signature, id FROM {TRACES_TABLE} WHERE signature IN ({markers})"
        return f"{query} {self.locking_read}" if locking and self.locking_read else query

    @property
    def insert_trace(self) -> str:
        """Insert of a trace, skipped if it is stored; parameters are the signature and fields."""
        markers = ", ".join([self.placeholder] * 8)
        return (
            f"INSERT INTO {TRACES_TABLE} (signature, module, qualname, arg_types, "
            f"return_type, yield_type, format_version, send_type) VALUES ({markers}) "
            + self.ignore_conflict.format(column="signature")
        )

    @property
    def insert_empty_counts(self) -> str:
        """Insert of a counts row of no calls, skipped if one exists.

        Parameters are id, check key, first and last seen.
        """
        p = self.placeholder
        return (
            f"INSERT INTO {COUNTS_TABLE} (id, check_key, call_count, first_seen, last_seen) "
            f"VALUES ({p}, {p}, 0, {p}, {p}) " + self.ignore_conflict.format(column="id")
        )

    @property
    def insert_counts_with_calls(self) -> str:
        """Insert of a counts row; parameters are id, check key, calls, first and last seen."""
        markers = ", ".join([self.placeholder] * 5)
        return (
            f"INSERT INTO {COUNTS_TABLE} (id, check_key, call_count, first_seen, last_seen) "
            f"VALUES ({markers})"
        )

    @property
    def update_counts(self) -> str:
        """Update of one counts row; parameters are calls, first and last seen, id, check key."""
        p = self.placeholder
        return (
            f"UPDATE {COUNTS_TABLE} SET call_count = call_count + {p}, "
            f"first_seen = {self.min_function}(first_seen, {p}), "
            f"last_seen = {self.max_function}(last_seen, {p}) "
            f"WHERE id = {p} AND check_key = {p}"
        )


#: Runs the updates of counts rows, given as (calls, first seen, last seen, id,
#: check key) in id order, and returns how many rows matched.
UpdateCounts = Callable[[Any, list[tuple[int, float, float, int, int]]], int]


def write_counts(
    cursor: Any,
    statements: Statements,
    update_counts: UpdateCounts,
    entries: Sequence[CountedTrace],
    known_ids: dict[str, int],
) -> dict[str, int]:
    """Add the calls of *entries* to their counts rows, in the transaction of *cursor*.

    Traces whose signatures are not in *known_ids* are looked up, and inserted if
    they are missing. Returns the ids so found, which the caller adds to its cache
    after the transaction commits.

    Raises:
        StaleRowIdsError: a row of *known_ids* no longer exists.
    """
    unknown = [entry for entry in entries if entry[0].signature not in known_ids]
    if unknown:
        resolved, counted = _resolve_ids(cursor, statements, unknown)
        params = [
            (count, first_seen, last_seen, resolved[encoded.signature], encoded.check_key)
            for encoded, count, first_seen, last_seen in unknown
            if encoded.signature not in counted
        ]
        params.extend(
            (count, first_seen, last_seen, known_ids[encoded.signature], encoded.check_key)
            for encoded, count, first_seen, last_seen in entries
            if encoded.signature in known_ids
        )
    else:
        resolved = {}
        params = [
            (count, first_seen, last_seen, known_ids[encoded.signature], encoded.check_key)
            for encoded, count, first_seen, last_seen in entries
        ]
    if not params:
        return resolved
    # Rows are locked in id order, so that concurrent writers do not deadlock.
    params.sort(key=itemgetter(3))
    matched = update_counts(cursor, params)
    if matched != len(params):
        unmatched = _unmatched_ids(cursor, statements, params)
        raise StaleRowIdsError(
            f"{len(params) - matched} of {len(params)} counts rows to update are missing or "
            f"have another check_key, with ids {unmatched[:5]!r}"
        )
    return resolved


def _unmatched_ids(
    cursor: Any, statements: Statements, params: list[tuple[int, float, float, int, int]]
) -> list[int]:
    expected = {row_id: check_key for _, _, _, row_id, check_key in params}
    stored: dict[int, int] = {}
    ids = sorted(expected)
    for start in range(0, len(ids), LOOKUP_CHUNK_SIZE):
        chunk = ids[start : start + LOOKUP_CHUNK_SIZE]
        markers = ", ".join([statements.placeholder] * len(chunk))
        cursor.execute(f"SELECT id, check_key FROM {COUNTS_TABLE} WHERE id IN ({markers})", chunk)
        stored.update((int(row_id), int(check_key)) for row_id, check_key in cursor.fetchall())
    return [row_id for row_id in ids if stored.get(row_id) != expected[row_id]]


def _resolve_ids(
    cursor: Any, statements: Statements, entries: list[CountedTrace]
) -> tuple[dict[str, int], set[str]]:
    """Insert the rows of *entries* that are missing, and return the ids of all.

    Returns the ids by signature, and the signatures whose counts rows were inserted
    with the calls of their entry, which need no update.
    """
    # Sorted, so that concurrent writers lock the signature index in the same order.
    entries = sorted(entries, key=lambda entry: entry[0].signature)
    cursor.executemany(statements.insert_trace, [_trace_params(entry[0]) for entry in entries])
    all_new = statements.counts_inserted_rows and cursor.rowcount == len(entries)
    ids = _select_ids(cursor, statements, [entry[0].signature for entry in entries])
    if len(ids) != len(entries):
        # A plain read in REPEATABLE READ uses a snapshot that can predate a trace
        # that another writer committed. A locking read returns the latest
        # committed rows, so it finds such a trace.
        unseen = [entry[0].signature for entry in entries if entry[0].signature not in ids]
        ids.update(_select_ids(cursor, statements, unseen, locking=True))
    if len(ids) != len(entries):
        missing = next(entry[0].signature for entry in entries if entry[0].signature not in ids)
        raise StoreError(
            f"The trace with signature {missing} is missing from {TRACES_TABLE} after it "
            "was inserted; the table or its signature index is damaged."
        )
    if all_new:
        # This transaction inserted every trace, so none has a counts row yet.
        cursor.executemany(
            statements.insert_counts_with_calls,
            sorted((ids[entry[0].signature], entry[0].check_key, *entry[1:]) for entry in entries),
        )
        return ids, set(ids)
    # Traces that another writer inserted have counts rows, which are kept.
    cursor.executemany(
        statements.insert_empty_counts,
        sorted((ids[entry[0].signature], entry[0].check_key, *entry[2:]) for entry in entries),
    )
    return ids, set()


def _trace_params(encoded: EncodedTrace) -> tuple[Any, ...]:
    row = encoded.row
    return (
        encoded.signature,
        row.module,
        row.qualname,
        row.arg_types,
        row.return_type,
        row.yield_type,
        row.format_version,
        row.send_type,
    )


def _select_ids(
    cursor: Any, statements: Statements, signatures: list[str], locking: bool = False
) -> dict[str, int]:
    found: dict[str, int] = {}
    for start in range(0, len(signatures), LOOKUP_CHUNK_SIZE):
        chunk = signatures[start : start + LOOKUP_CHUNK_SIZE]
        cursor.execute(statements.select_ids(len(chunk), locking), chunk)
        found.update((signature, int(row_id)) for signature, row_id in cursor.fetchall())
    return found


def prune_rows(
    cursor: Any, statements: Statements, last_seen_before: float, module: Optional[str]
) -> int:
    """Delete the traces last seen before *last_seen_before*, in the transaction of *cursor*.

    Returns the number of traces deleted. Counts rows are deleted first, each only
    while it is still older than the limit. Then the traces whose counts rows are gone
    are deleted, so a trace whose counts row a concurrent ``add()`` updated stays.
    """
    p = statements.placeholder
    query = f"SELECT c.id FROM {COUNTS_TABLE} c"
    params: list[Any] = [last_seen_before]
    if module is not None:
        query += f" JOIN {TRACES_TABLE} t ON t.id = c.id AND t.module = {p}"
        params.insert(0, module)
    cursor.execute(query + f" WHERE c.last_seen < {p}", params)
    ids = sorted(int(row_id) for (row_id,) in cursor.fetchall())
    if not ids:
        return 0
    cursor.executemany(
        f"DELETE FROM {COUNTS_TABLE} WHERE id = {p} AND last_seen < {p}",
        [(row_id, last_seen_before) for row_id in ids],
    )
    cursor.executemany(
        f"DELETE FROM {TRACES_TABLE} WHERE id = {p} AND NOT EXISTS "
        f"(SELECT 1 FROM {COUNTS_TABLE} c WHERE c.id = {p})",
        [(row_id, row_id) for row_id in ids],
    )
    return int(cursor.rowcount)


def retry_stale_ids(
    write: Callable[[], dict[str, int]], row_ids: RowIds, location: str, attempts: int = 3
) -> None:
    """Run *write*, a transaction of :func:`write_counts`, and cache the ids it found.

    A write that finds a cached id stale is repeated with an empty cache.
    """
    last_error: Optional[StaleRowIdsError] = None
    for attempt in range(attempts):
        try:
            resolved = write()
        except StaleRowIdsError as error:
            logger.debug("Writing again after attempt %d: %s", attempt + 1, error)
            last_error = error
            row_ids.clear()
            continue
        row_ids.update(resolved)
        return
    raise StoreError(
        f"Failed to write traces to the trace store {location} in {attempts} attempts: "
        f"{last_error}. Each trace in "
        f"{TRACES_TABLE} has a row of the same id and check_key in {COUNTS_TABLE}, so "
        "the store is damaged; export its traces with 'typetrace export' and import them "
        "into a new store."
    ) from last_error


#: Rows of a schema version 1 table copied per query during migration.
MIGRATION_PAGE_SIZE = 1000


def copy_v1_rows(cursor: Any, statements: Statements, update_counts: UpdateCounts) -> int:
    """Copy every row of the schema version 1 table into the current tables.

    Runs in the transaction of *cursor*; each row keeps its signature, call count and
    times, and gets no send type, which version 1 did not store. Returns the number
    of rows copied.
    """
    p = statements.placeholder
    query = (
        "SELECT id, signature, module, qualname, arg_types, return_type, yield_type, "
        f"format_version, call_count, first_seen, last_seen FROM {V1_TRACES_TABLE} "
        f"WHERE id > {p} ORDER BY id LIMIT {p}"
    )
    last_id = 0
    copied = 0
    while True:
        cursor.execute(query, (last_id, MIGRATION_PAGE_SIZE))
        records = cursor.fetchall()
        entries: list[CountedTrace] = [
            (
                encode_row(CallTraceRow(*record[2:8]), record[1]),
                int(record[8]),
                float(record[9]),
                float(record[10]),
            )
            for record in records
        ]
        if entries:
            write_counts(cursor, statements, update_counts, entries, {})
        copied += len(entries)
        if len(records) < MIGRATION_PAGE_SIZE:
            return copied
        last_id = records[-1][0]
