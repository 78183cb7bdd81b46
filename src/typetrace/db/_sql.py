"""Schema, signatures and helpers shared by the SQL trace stores.

Every SQL store keeps two tables:

``typetrace_meta``
    Key-value text pairs. The key ``schema_version`` holds :data:`SCHEMA_VERSION`
    of the release that created the tables.

``typetrace_call_traces``
    One row per distinct trace: the fields of :class:`~typetrace.encoding.CallTraceRow`
    plus ``signature`` (unique, see :func:`trace_signature`), ``call_count`` (calls
    the row stands for), and ``first_seen`` and ``last_seen``, both seconds since the
    Unix epoch (UTC) as a floating-point number, taken from the writing process's clock.
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
import random
import threading
import time
from typing import Callable, Iterable, Optional, TypeVar
from urllib.parse import urlsplit, urlunsplit

from typetrace.encoding import CallTraceRow, serialize_traces
from typetrace.exceptions import StoreError
from typetrace.tracing import CallTrace

__all__ = [
    "META_TABLE",
    "SCHEMA_VERSION",
    "TRACES_TABLE",
    "UtcClock",
    "aggregate_rows",
    "check_schema_version",
    "mask_password",
    "qualname_prefix_params",
    "redact",
    "retry_transient",
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
    counts: dict[CallTrace, int] = {}
    for trace in traces:
        counts[trace] = counts.get(trace, 0) + trace.call_count
    merged: dict[str, CallTraceRow] = {}
    distinct = (dataclasses.replace(trace, call_count=count) for trace, count in counts.items())
    for row in serialize_traces(distinct):
        signature = trace_signature(row)
        previous = merged.get(signature)
        if previous is not None:
            row = dataclasses.replace(row, call_count=previous.call_count + row.call_count)
        merged[signature] = row
    return sorted(merged.items())


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
