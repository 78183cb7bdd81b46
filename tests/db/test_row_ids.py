"""Row ids taken from signatures: traces that share a key, pruned ids, damaged counts rows."""

from __future__ import annotations

import time

import pytest

from raw_sql import run_sql
from typetrace.db import _writes, store_from_url
from typetrace.db._sql import trace_signature
from typetrace.encoding import CallTraceRow
from typetrace.exceptions import StoreError
from typetrace.tracing import CallTrace
from typetrace.typemodel import TypeRef

INT = TypeRef("builtins", "int")
TRACE = CallTrace("pkg.mod", "f", {"x": INT}, INT)
OTHER = CallTrace("pkg.mod", "g", {"x": INT}, INT)


def keys_of(trace: CallTrace) -> tuple[int, int]:
    return _writes.signature_keys(trace_signature(CallTraceRow.from_trace(trace)))


def occupy_key(url: str, key: int, qualname: str, call_count: int) -> None:
    """Store a trace of another signature at *key*, as a trace whose key collides would be."""
    signature = "0" * 63 + "1"
    run_sql(
        url,
        "INSERT INTO typetrace_traces (id, signature, module, qualname, arg_types, return_type, "
        "yield_type, format_version) VALUES (?, ?, 'pkg.mod', ?, '{}', NULL, NULL, 1)",
        (key, signature, qualname),
    )
    run_sql(
        url,
        "INSERT INTO typetrace_counts (id, check_key, call_count, first_seen, last_seen) "
        "VALUES (?, ?, ?, 1.0, 1.0)",
        (key, _writes.signature_keys(signature)[1], call_count),
    )


def counts(url: str) -> dict[str, int]:
    store = store_from_url(url)
    try:
        return {stored.row.qualname: stored.row.call_count for stored in store.iter_rows()}
    finally:
        store.close()


def test_trace_whose_key_is_taken_gets_its_own_row(sql_url: str) -> None:
    store_from_url(sql_url).close()
    key, _ = keys_of(TRACE)
    occupy_key(sql_url, key, "occupant", 5)

    store = store_from_url(sql_url)
    try:
        store.add([TRACE, TRACE])
        store.add([TRACE])
    finally:
        store.close()

    assert counts(sql_url) == {"occupant": 5, "f": 3}
    ids = run_sql(sql_url, "SELECT id FROM typetrace_traces WHERE qualname = 'f'")
    assert ids == [(key + 1,)]


def test_key_taken_in_a_later_store_process(sql_url: str) -> None:
    store_from_url(sql_url).close()
    key, _ = keys_of(TRACE)
    occupy_key(sql_url, key, "occupant", 5)
    occupy_key_after = (key + 1) & _writes.KEY_MASK
    run_sql(
        sql_url,
        "INSERT INTO typetrace_traces (id, signature, module, qualname, arg_types, return_type, "
        "yield_type, format_version) VALUES (?, ?, 'pkg.mod', 'second', '{}', NULL, NULL, 1)",
        (occupy_key_after, "f" * 64),
    )
    run_sql(
        sql_url,
        "INSERT INTO typetrace_counts (id, check_key, call_count, first_seen, last_seen) "
        "VALUES (?, ?, 2, 1.0, 1.0)",
        (occupy_key_after, _writes.signature_keys("f" * 64)[1]),
    )

    for _ in range(2):
        store = store_from_url(sql_url)
        try:
            store.add([TRACE])
        finally:
            store.close()

    assert counts(sql_url) == {"occupant": 5, "second": 2, "f": 2}


def test_pruned_trace_is_written_again_by_a_store_that_cached_its_id(sql_url: str) -> None:
    writer = store_from_url(sql_url)
    pruner = store_from_url(sql_url)
    try:
        writer.add([TRACE, OTHER])
        assert pruner.prune(last_seen_before=time.time() + 3600) == 2

        writer.add([TRACE, TRACE])
    finally:
        writer.close()
        pruner.close()

    assert counts(sql_url) == {"f": 2}


def test_damaged_check_key_raises_and_keeps_other_counts(sql_url: str) -> None:
    store = store_from_url(sql_url)
    try:
        store.add([TRACE, OTHER])
        key, _ = keys_of(TRACE)
        run_sql(sql_url, "UPDATE typetrace_counts SET check_key = check_key + 1 WHERE id = ?", (key,))

        with pytest.raises(StoreError, match="is damaged; export its traces"):
            store.add([TRACE, OTHER])
    finally:
        store.close()

    assert counts(sql_url) == {"f": 1, "g": 1}
