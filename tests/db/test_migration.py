"""Opening a store of schema version 1 or 2 migrates it to the current tables, keeping counts."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from raw_sql import V1_SCHEMA, V2_SCHEMA, column_names, kind_of, run_sql, v2_signature
from typetrace.db import _writes, store_from_url
from typetrace.db._sql import SCHEMA_VERSION, trace_signature
from typetrace.db.base import CallTraceStore, StoredRow
from typetrace.db.sqlite import SQLiteStore
from typetrace.encoding import CallTraceRow
from typetrace.exceptions import StoreError
from typetrace.tracing import CallTrace
from typetrace.typemodel import TypeRef

INT = TypeRef("builtins", "int")
STR = TypeRef("builtins", "str")

#: More rows than one page of the migration reads.
MANY_ROWS = _writes.MIGRATION_PAGE_SIZE + 205


def create_v1_store(url: str, rows: list[StoredRow]) -> None:
    """Create the schema version 1 tables at *url*, as typetrace did, holding *rows*."""
    for statement in V1_SCHEMA[kind_of(url)]:
        run_sql(url, statement)
    run_sql(url, "INSERT INTO typetrace_meta (name, value) VALUES ('schema_version', '1')")
    run_sql(
        url,
        "INSERT INTO typetrace_call_traces (signature, module, qualname, arg_types, "
        "return_type, yield_type, format_version, call_count, first_seen, last_seen) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                trace_signature(stored.row),
                stored.row.module,
                stored.row.qualname,
                stored.row.arg_types,
                stored.row.return_type,
                stored.row.yield_type,
                stored.row.format_version,
                stored.row.call_count,
                stored.first_seen,
                stored.last_seen,
            )
            for stored in rows
        ],
        many=True,
    )


def create_v2_store(url: str, rows: list[StoredRow]) -> None:
    """Create the schema version 2 tables at *url*, as typetrace did, holding *rows*."""
    for statement in V2_SCHEMA[kind_of(url)]:
        run_sql(url, statement)
    run_sql(url, "INSERT INTO typetrace_meta (name, value) VALUES ('schema_version', '2')")
    insert_v2_rows(url, rows)


def insert_v2_rows(url: str, rows: list[StoredRow]) -> None:
    """Insert *rows* with the columns, signatures and check keys of schema version 2."""
    for stored in rows:
        row = stored.row
        assert row.send_type is None, "schema version 2 has no send_type column"
        signature = v2_signature(row)
        run_sql(
            url,
            "INSERT INTO typetrace_traces (signature, module, qualname, arg_types, "
            "return_type, yield_type, format_version) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                signature,
                row.module,
                row.qualname,
                row.arg_types,
                row.return_type,
                row.yield_type,
                row.format_version,
            ),
        )
        run_sql(
            url,
            "INSERT INTO typetrace_counts (id, check_key, call_count, first_seen, last_seen) "
            "SELECT id, ?, ?, ?, ? FROM typetrace_traces WHERE signature = ?",
            (
                _writes.check_key_of(signature),
                row.call_count,
                stored.first_seen,
                stored.last_seen,
                signature,
            ),
        )


def v1_row(qualname: str, call_count: int, first_seen: float, last_seen: float) -> StoredRow:
    trace = CallTrace("pkg.mod", qualname, {"x": INT}, STR, call_count=call_count)
    return StoredRow(CallTraceRow.from_trace(trace), first_seen, last_seen)


#: Builders of a store of each schema version before the current one.
OLD_STORES = {1: create_v1_store, 2: create_v2_store}

#: Parametrizes a test over the schema versions that a store can migrate from.
old_versions = pytest.mark.parametrize("version", sorted(OLD_STORES), ids=lambda v: f"v{v}")


def counts_by_qualname(store: CallTraceStore) -> dict[str, tuple[int, float, float]]:
    return {
        stored.row.qualname: (stored.row.call_count, stored.first_seen, stored.last_seen)
        for stored in store.iter_rows()
    }


def open_and_add_generator(url: str) -> dict[str, tuple[int, float, float]]:
    """Open the store at *url*, add a trace with a send type, and return the counts."""
    store = store_from_url(url)
    try:
        store.add([CallTrace("pkg.mod", "gen", {}, None, INT, send_type=STR)])
        return counts_by_qualname(store)
    finally:
        store.close()


def tables(url: str) -> set[str]:
    kind = kind_of(url)
    if kind == "sqlite":
        query = "SELECT name FROM sqlite_master WHERE type = 'table'"
    elif kind == "postgresql":
        query = (
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema()"
        )
    else:
        query = "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()"
    return {name for (name,) in run_sql(url, query)}


@old_versions
def test_migration_keeps_counts_and_times(sql_url: str, version: int) -> None:
    rows = [v1_row("f", 7, 10.5, 20.25), v1_row("g", 1_000_000, 1.0, 2.0)]
    OLD_STORES[version](sql_url, rows)

    store = store_from_url(sql_url)
    try:
        counts = counts_by_qualname(store)
        traces = [thunk.to_trace() for thunk in store.filter("pkg.mod")]
    finally:
        store.close()

    assert "send_type" in column_names(sql_url, "typetrace_traces")
    assert counts == {"f": (7, 10.5, 20.25), "g": (1_000_000, 1.0, 2.0)}
    assert [trace.qualname for trace in traces] == ["f", "g"]
    assert [trace.send_type for trace in traces] == [None, None]


def test_migration_updates_version_and_drops_old_table(sql_url: str) -> None:
    create_v1_store(sql_url, [v1_row("f", 1, 1.0, 1.0)])

    store_from_url(sql_url).close()

    assert run_sql(sql_url, "SELECT name, value FROM typetrace_meta") == [
        ("schema_version", str(SCHEMA_VERSION))
    ]
    assert "typetrace_call_traces" not in tables(sql_url)
    assert {"typetrace_traces", "typetrace_counts"} <= tables(sql_url)


@old_versions
def test_migrated_trace_keeps_counting(sql_url: str, version: int) -> None:
    """A trace written after the migration counts on its old row, of the old signature."""
    OLD_STORES[version](sql_url, [v1_row("f", 7, 10.5, 20.25)])
    signature = v2_signature(v1_row("f", 7, 10.5, 20.25).row)

    store = store_from_url(sql_url)
    try:
        store.add([v1_row("f", 3, 0.0, 0.0).row.to_trace()])
        count, first_seen, last_seen = counts_by_qualname(store)["f"]
    finally:
        store.close()

    assert count == 10
    assert first_seen == 10.5
    assert last_seen > 20.25
    assert run_sql(sql_url, "SELECT signature FROM typetrace_traces") == [(signature,)]


def test_migration_reads_every_page(sql_url: str) -> None:
    rows = [v1_row(f"f{number}", number + 1, 1.0, 2.0) for number in range(MANY_ROWS)]
    create_v1_store(sql_url, rows)

    store = store_from_url(sql_url)
    try:
        counts = counts_by_qualname(store)
    finally:
        store.close()

    assert len(counts) == MANY_ROWS
    assert sum(count for count, _, _ in counts.values()) == MANY_ROWS * (MANY_ROWS + 1) // 2


@old_versions
def test_reopening_migrates_once(sql_url: str, version: int) -> None:
    OLD_STORES[version](sql_url, [v1_row("f", 7, 10.5, 20.25)])
    store_from_url(sql_url).close()

    store = store_from_url(sql_url)
    try:
        assert counts_by_qualname(store) == {"f": (7, 10.5, 20.25)}
    finally:
        store.close()


@old_versions
def test_concurrent_openers_migrate_once(sql_url: str, version: int) -> None:
    OLD_STORES[version](sql_url, [v1_row(f"f{number}", 2, 1.0, 2.0) for number in range(50)])
    errors: list[BaseException] = []

    def open_store() -> None:
        try:
            store_from_url(sql_url).close()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    store = store_from_url(sql_url)
    try:
        counts = counts_by_qualname(store)
    finally:
        store.close()
    assert len(counts) == 50
    assert {count for count, _, _ in counts.values()} == {2}


def test_undecodable_v1_row_is_kept(sql_url: str) -> None:
    damaged_row = CallTraceRow("pkg.mod", "bad", '{"x": ', None, None, call_count=4)
    damaged = StoredRow(damaged_row, 1.0, 2.0)
    create_v1_store(sql_url, [damaged, v1_row("f", 1, 1.0, 1.0)])

    store = store_from_url(sql_url)
    try:
        counts = counts_by_qualname(store)
        thunks = {
            thunk.qualname: thunk
            for thunk in store.filter("pkg.mod")
            if isinstance(thunk, CallTraceRow)
        }
    finally:
        store.close()

    assert counts["bad"] == (4, 1.0, 2.0)
    with pytest.raises(ValueError):
        thunks["bad"].to_trace()


@old_versions
def test_read_only_old_store_needs_write_access(tmp_path: Path, version: int) -> None:
    path = str(tmp_path / "traces.sqlite3")
    OLD_STORES[version](path, [v1_row("f", 7, 1.0, 2.0)])

    with pytest.raises(StoreError, match="needs write access") as raised:
        SQLiteStore(f"file:{path}?mode=ro")

    assert f"schema version {version}" in str(raised.value)
    assert path in str(raised.value)
    assert run_sql(path, "SELECT value FROM typetrace_meta") == [(str(version),)]


@old_versions
def test_trace_with_send_type_gets_own_row(sql_url: str, version: int) -> None:
    OLD_STORES[version](sql_url, [v1_row("f", 7, 10.5, 20.25)])
    with_send_type = CallTrace("pkg.mod", "f", {"x": INT}, STR, send_type=INT)

    store = store_from_url(sql_url)
    try:
        store.add([with_send_type])
        traces = [thunk.to_trace() for thunk in store.filter("pkg.mod")]
    finally:
        store.close()

    assert len(traces) == 2
    assert {trace.send_type for trace in traces} == {None, INT}
    assert {trace.call_count for trace in traces} == {7, 1}


def test_v1_store_with_v2_tables_migrates(sql_url: str) -> None:
    """A version 1 store that has the empty tables of version 2 gets the new column.

    MySQL commits each CREATE TABLE, so a version 2 release that stopped while it
    copied the rows of a version 1 store leaves such tables behind.
    """
    create_v1_store(sql_url, [v1_row("f", 7, 10.5, 20.25)])
    for statement in V2_SCHEMA[kind_of(sql_url)][1:]:
        run_sql(sql_url, statement)

    counts = open_and_add_generator(sql_url)

    assert counts["f"] == (7, 10.5, 20.25)
    assert counts["gen"][0] == 1
    assert "typetrace_call_traces" not in tables(sql_url)


class TestFromVersion2:
    def test_adds_column_and_updates_version(self, sql_url: str) -> None:
        create_v2_store(sql_url, [v1_row("f", 1, 1.0, 1.0)])
        assert "send_type" not in column_names(sql_url, "typetrace_traces")

        store_from_url(sql_url).close()

        assert "send_type" in column_names(sql_url, "typetrace_traces")
        assert run_sql(sql_url, "SELECT name, value FROM typetrace_meta") == [
            ("schema_version", str(SCHEMA_VERSION))
        ]

    def test_version_2_writer_still_inserts(self, sql_url: str) -> None:
        """Inserts that name only the columns of version 2 work on a migrated store."""
        create_v2_store(sql_url, [])
        store_from_url(sql_url).close()

        insert_v2_rows(sql_url, [v1_row("f", 7, 10.5, 20.25)])
        store = store_from_url(sql_url)
        try:
            store.add([v1_row("f", 3, 0.0, 0.0).row.to_trace()])
            counts = counts_by_qualname(store)
        finally:
            store.close()

        assert list(counts) == ["f"]
        assert counts["f"][0] == 10

    def test_column_added_before_version_update(self, sql_url: str) -> None:
        """A version 2 store that already has the column, as a stopped migration leaves it."""
        create_v2_store(sql_url, [v1_row("f", 7, 10.5, 20.25)])
        column_type = "LONGTEXT NULL" if kind_of(sql_url) == "mysql" else "TEXT"
        run_sql(sql_url, f"ALTER TABLE typetrace_traces ADD COLUMN send_type {column_type}")

        counts = open_and_add_generator(sql_url)

        assert counts["f"] == (7, 10.5, 20.25)
        assert counts["gen"][0] == 1
        assert run_sql(sql_url, "SELECT value FROM typetrace_meta") == [(str(SCHEMA_VERSION),)]
