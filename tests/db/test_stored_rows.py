"""The optional store methods iter_rows, add_rows and prune, on every store."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from store_backends import Backend
from typetrace.db import _sql
from typetrace.db.base import StoredRow
from typetrace.encoding import CallTraceRow
from typetrace.exceptions import StoreError
from typetrace.tracing import CallTrace
from typetrace.typemodel import TypeRef
from user_store import UserJsonLinesStore

INT = TypeRef("builtins", "int")
STR = TypeRef("builtins", "str")


def make_row(qualname: str = "f", module: str = "pkg.mod", call_count: int = 1) -> CallTraceRow:
    trace = CallTrace(module, qualname, {"x": INT}, STR, call_count=call_count)
    return CallTraceRow.from_trace(trace)


def stored(
    qualname: str = "f",
    module: str = "pkg.mod",
    call_count: int = 1,
    first_seen: float = 100.0,
    last_seen: float = 200.0,
) -> StoredRow:
    return StoredRow(make_row(qualname, module, call_count), first_seen, last_seen)


def by_qualname(rows: list[StoredRow]) -> dict[str, StoredRow]:
    return {stored_row.row.qualname: stored_row for stored_row in rows}


class TestAddRows:
    def test_rows_keep_counts_and_times(self, sql_backend: Backend) -> None:
        store = sql_backend.store
        store.add_rows([stored("f", call_count=7, first_seen=10.5, last_seen=20.25)])

        (found,) = store.iter_rows()

        assert found.row == make_row("f", call_count=7)
        assert found.first_seen == 10.5
        assert found.last_seen == 20.25

    def test_rows_keep_send_type(self, sql_backend: Backend) -> None:
        generator = CallTrace("pkg.mod", "gen", {}, None, INT, send_type=STR, call_count=4)
        row = CallTraceRow.from_trace(generator)
        sql_backend.store.add_rows([StoredRow(row, 1.0, 2.0)])

        (found,) = sql_backend.store.iter_rows()

        assert found.row == row
        assert found.row.send_type == '{"module":"builtins","qualname":"str"}'
        assert found.row.to_trace().send_type == STR

    def test_existing_trace_aggregates(self, sql_backend: Backend) -> None:
        store = sql_backend.store
        store.add_rows([stored("f", call_count=3, first_seen=50.0, last_seen=60.0)])
        store.add_rows([stored("f", call_count=4, first_seen=40.0, last_seen=55.0)])
        store.add_rows([stored("f", call_count=5, first_seen=70.0, last_seen=80.0)])

        (found,) = store.iter_rows()

        assert found.row.call_count == 12
        assert found.first_seen == 40.0
        assert found.last_seen == 80.0

    def test_duplicates_in_one_call_merge(self, sql_backend: Backend) -> None:
        store = sql_backend.store
        store.add_rows(
            [
                stored("f", call_count=2, first_seen=5.0, last_seen=6.0),
                stored("g"),
                stored("f", call_count=3, first_seen=1.0, last_seen=9.0),
            ]
        )

        found = by_qualname(list(store.iter_rows()))

        assert len(found) == 2
        assert found["f"].row.call_count == 5
        assert (found["f"].first_seen, found["f"].last_seen) == (1.0, 9.0)

    def test_rows_and_traces_share_a_signature(self, sql_backend: Backend) -> None:
        store = sql_backend.store
        store.add([CallTrace("pkg.mod", "f", {"x": INT}, STR, call_count=2)])
        store.add_rows([stored("f", call_count=5, first_seen=1.0, last_seen=2.0)])

        (found,) = store.iter_rows()
        (thunk,) = store.filter("pkg.mod")

        assert found.row.call_count == 7
        assert found.first_seen == 1.0
        assert found.last_seen > 2.0
        assert thunk.to_trace().call_count == 7

    def test_empty_add_rows_stores_nothing(self, sql_backend: Backend) -> None:
        sql_backend.store.add_rows([])

        assert list(sql_backend.store.iter_rows()) == []


class TestIterRows:
    def test_module_selects_exactly(self, sql_backend: Backend) -> None:
        store = sql_backend.store
        for module in ["pkg", "pkg.sub", "pkg_", "PKG"]:
            store.add_rows([stored(module, module=module)])

        assert [r.row.module for r in store.iter_rows("pkg")] == ["pkg"]
        assert list(store.iter_rows("pk")) == []
        assert len(list(store.iter_rows())) == 4

    def test_rows_span_several_pages(self, sql_backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(_sql, "ITER_PAGE_SIZE", 3)
        store = sql_backend.store
        store.add_rows([stored(f"f{i}", module="a" if i % 2 else "b") for i in range(10)])

        everything = [r.row.qualname for r in store.iter_rows()]
        module_a = [r.row.qualname for r in store.iter_rows("a")]

        assert sorted(everything) == sorted(f"f{i}" for i in range(10))
        assert len(everything) == 10
        assert sorted(module_a) == ["f1", "f3", "f5", "f7", "f9"]

    def test_undecodable_rows_are_yielded_as_stored(self, sql_backend: Backend) -> None:
        sql_backend.insert_raw_row(CallTraceRow("pkg.mod", "bad", '{"x": ', None, None))

        (found,) = sql_backend.store.iter_rows()

        assert found.row.arg_types == '{"x": '
        assert found.row.qualname == "bad"


class TestPrune:
    def test_removes_only_older_traces(self, sql_backend: Backend) -> None:
        store = sql_backend.store
        store.add_rows(
            [
                stored("old", last_seen=100.0),
                stored("edge", last_seen=200.0),
                stored("new", last_seen=300.0),
            ]
        )

        removed = store.prune(200.0)

        assert removed == 1
        assert sorted(by_qualname(list(store.iter_rows()))) == ["edge", "new"]

    def test_module_limits_the_removal(self, sql_backend: Backend) -> None:
        store = sql_backend.store
        store.add_rows(
            [
                stored("f", module="a", last_seen=1.0),
                stored("f", module="a.sub", last_seen=1.0),
                stored("f", module="b", last_seen=1.0),
            ]
        )

        removed = store.prune(10.0, module="a")

        assert removed == 1
        assert sorted(r.row.module for r in store.iter_rows()) == ["a.sub", "b"]

    def test_nothing_older_removes_nothing(self, sql_backend: Backend) -> None:
        sql_backend.store.add_rows([stored(last_seen=500.0)])

        assert sql_backend.store.prune(400.0) == 0
        assert len(list(sql_backend.store.iter_rows())) == 1

    def test_pruned_trace_starts_a_new_count(self, sql_backend: Backend) -> None:
        store = sql_backend.store
        store.add_rows([stored(call_count=9, last_seen=1.0)])
        store.prune(2.0)
        store.add_rows([stored(call_count=2, first_seen=3.0, last_seen=4.0)])

        (found,) = store.iter_rows()

        assert found.row.call_count == 2
        assert found.first_seen == 3.0


def test_user_store_reports_missing_methods(tmp_path: Path) -> None:
    store = UserJsonLinesStore(tmp_path / "traces.jsonl")

    with pytest.raises(StoreError, match=r"does not support prune; implement CallTraceStore\.prune"):
        store.prune(0.0)
    with pytest.raises(StoreError, match=r"does not support iter_rows"):
        list(store.iter_rows())
    with pytest.raises(StoreError, match=r"does not support add_rows.*typetrace import"):
        store.add_rows([])


def test_stored_row_is_frozen() -> None:
    row = stored()

    with pytest.raises(dataclasses.FrozenInstanceError):
        row.first_seen = 1.0  # type: ignore[misc]
