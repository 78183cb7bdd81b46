"""The behaviour every CallTraceStore shares, checked on each implementation."""

from __future__ import annotations

import pytest

from store_backends import Backend
from typetrace.db.base import CallTraceThunk
from typetrace.encoding import FORMAT_VERSION, CallTraceRow, DecodeError
from typetrace.tracing import CallTrace
from typetrace.typemodel import ELLIPSIS, NONE, FunctionRef, TypeRef, union

INT = TypeRef("builtins", "int")
STR = TypeRef("builtins", "str")
BYTES = TypeRef("builtins", "bytes")


def make_trace(qualname: str = "f", module: str = "pkg.mod", call_count: int = 1) -> CallTrace:
    return CallTrace(module, qualname, {"x": INT}, STR, call_count=call_count)


def qualnames(thunks: list[CallTraceThunk]) -> list[str]:
    return [thunk.to_trace().qualname for thunk in thunks]


def counts_by_qualname(thunks: list[CallTraceThunk]) -> dict[str, int]:
    return {trace.qualname: trace.call_count for trace in (thunk.to_trace() for thunk in thunks)}


def rows_by_qualname(thunks: list[CallTraceThunk]) -> dict[str, CallTraceRow]:
    rows = {}
    for thunk in thunks:
        assert isinstance(thunk, CallTraceRow)
        rows[thunk.qualname] = thunk
    return rows


class TestRoundTrip:
    def test_traces_come_back_equal(self, backend: Backend) -> None:
        nested = TypeRef(
            "builtins", "dict", (STR, TypeRef("builtins", "list", (union([INT, NONE]),)))
        )
        traces = [
            CallTrace(
                "pkg.mod",
                "f",
                {"a": nested, "b": TypeRef("builtins", "tuple", (INT, ELLIPSIS))},
                NONE,
            ),
            CallTrace(
                "pkg.mod", "C.gen", {"self": TypeRef("pkg.mod", "C")}, None, union([INT, BYTES])
            ),
            CallTrace("pkg.mod", "g", {}, None),
            CallTrace("pkg.mod", "ünï.cödé", {"λ": INT}, INT),
        ]
        backend.store.add(traces)

        found = {thunk.to_trace() for thunk in backend.store.filter("pkg.mod")}

        assert found == set(traces)

    def test_send_type_comes_back(self, backend: Backend) -> None:
        generator = CallTrace(
            "pkg.mod", "gen", {"n": INT}, NONE, STR, send_type=union([BYTES, NONE])
        )
        backend.store.add([generator])

        (thunk,) = backend.store.filter("pkg.mod")
        found = thunk.to_trace()

        assert found == generator
        assert found.send_type == union([BYTES, NONE])

    def test_thunks_are_call_trace_rows(self, backend: Backend) -> None:
        backend.store.add([make_trace()])

        (thunk,) = backend.store.filter("pkg.mod")

        assert isinstance(thunk, CallTraceThunk)
        assert isinstance(thunk, CallTraceRow)
        assert thunk.format_version == FORMAT_VERSION

    def test_arg_order_is_kept(self, backend: Backend) -> None:
        backend.store.add([CallTrace("pkg.mod", "f", {"b": INT, "a": STR}, None)])

        (thunk,) = backend.store.filter("pkg.mod")

        assert list(thunk.to_trace().arg_types) == ["b", "a"]

    def test_empty_add_stores_nothing(self, backend: Backend) -> None:
        backend.store.add([])

        assert backend.store.list_modules() == []
        assert backend.store.filter("pkg.mod") == []

    def test_traces_survive_reopening(self, backend: Backend) -> None:
        if backend.reopen is None:
            pytest.skip(f"a second {backend.name} store cannot see the first one's data")
        backend.store.add([make_trace(call_count=2)])
        backend.store.close()

        backend.store = backend.reopen()

        assert counts_by_qualname(backend.store.filter("pkg.mod")) == {"f": 2}


class TestAggregation:
    def test_identical_traces_share_one_count(self, backend: Backend) -> None:
        backend.store.add([make_trace("f"), make_trace("f"), make_trace("g")])
        backend.store.add([make_trace("f", call_count=5)])

        thunks = backend.store.filter("pkg.mod")

        assert len(thunks) == 2
        assert counts_by_qualname(thunks) == {"f": 7, "g": 1}

    def test_different_return_types_stay_apart(self, backend: Backend) -> None:
        backend.store.add(
            [
                CallTrace("pkg.mod", "f", {"x": INT}, INT),
                CallTrace("pkg.mod", "f", {"x": INT}, STR),
                CallTrace("pkg.mod", "f", {"x": INT}, None, INT),
            ]
        )

        assert len(backend.store.filter("pkg.mod")) == 3

    def test_different_send_types_stay_apart(self, backend: Backend) -> None:
        backend.store.add(
            [
                CallTrace("pkg.mod", "gen", {}, None, INT),
                CallTrace("pkg.mod", "gen", {}, None, INT, send_type=INT),
                CallTrace("pkg.mod", "gen", {}, None, INT, send_type=STR),
            ]
        )
        backend.store.add([CallTrace("pkg.mod", "gen", {}, None, INT, send_type=INT)])

        traces = [thunk.to_trace() for thunk in backend.store.filter("pkg.mod")]

        counts = {trace.send_type: trace.call_count for trace in traces}
        assert len(traces) == 3
        assert counts == {None: 1, INT: 2, STR: 1}


class TestOrderAndLimit:
    def test_most_recent_first(self, backend: Backend) -> None:
        for qualname in ["a", "b", "c"]:
            backend.store.add([make_trace(qualname)])
        backend.store.add([make_trace("a")])

        assert qualnames(backend.store.filter("pkg.mod")) == ["a", "c", "b"]

    def test_limit_keeps_the_newest(self, backend: Backend) -> None:
        for qualname in ["a", "b", "c", "d", "e"]:
            backend.store.add([make_trace(qualname)])

        assert qualnames(backend.store.filter("pkg.mod", limit=2)) == ["e", "d"]

    def test_limit_counts_distinct_traces(self, backend: Backend) -> None:
        backend.store.add([make_trace("a")] * 10)
        backend.store.add([make_trace("b")] * 10)

        assert len(backend.store.filter("pkg.mod", limit=2)) == 2

    def test_limit_zero_returns_nothing(self, backend: Backend) -> None:
        backend.store.add([make_trace()])

        assert backend.store.filter("pkg.mod", limit=0) == []


class TestFilter:
    @pytest.fixture
    def stored(self, backend: Backend) -> Backend:
        names = [
            "C",
            "C.m",
            "C.m.inner",
            "Cx",
            "Cx.m",
            "c",
            "c.m",
            "D.C",
            "D.C.m",
            "a_b",
            "a_b.m",
            "axb",
            "axb.m",
            "a%",
            "aXYZ",
            "C_",
            "C%",
        ]
        backend.store.add([make_trace(name) for name in names])
        return backend

    @pytest.mark.parametrize(
        ("prefix", "expected"),
        [
            pytest.param("C", {"C", "C.m", "C.m.inner"}, id="class-and-members"),
            pytest.param("C.m", {"C.m", "C.m.inner"}, id="method-and-nested"),
            pytest.param("c", {"c", "c.m"}, id="case-sensitive"),
            pytest.param("D", {"D.C", "D.C.m"}, id="outer-class"),
            pytest.param("a_b", {"a_b", "a_b.m"}, id="underscore-literal"),
            pytest.param("a%", {"a%"}, id="percent-literal"),
            pytest.param("a_", set(), id="underscore-no-wildcard"),
            pytest.param("C_", {"C_"}, id="underscore-after-name"),
            pytest.param("%", set(), id="percent-alone"),
            pytest.param("C.", set(), id="trailing-dot"),
            pytest.param("m", set(), id="not-a-suffix"),
            pytest.param("C.m.inner.x", set(), id="longer-than-any"),
        ],
    )
    def test_qualname_prefix_matches_whole_components(
        self, stored: Backend, prefix: str, expected: set[str]
    ) -> None:
        assert set(qualnames(stored.store.filter("pkg.mod", prefix))) == expected

    def test_no_prefix_returns_all(self, stored: Backend) -> None:
        assert len(stored.store.filter("pkg.mod")) == 17

    def test_module_matches_exactly(self, backend: Backend) -> None:
        for module in ["pkg", "pkg.sub", "pkg_", "PKG", "pk%"]:
            backend.store.add([make_trace(module, module=module)])

        assert qualnames(backend.store.filter("pkg")) == ["pkg"]
        assert qualnames(backend.store.filter("pk%")) == ["pk%"]
        assert backend.store.filter("pk_") == []

    def test_unknown_module_returns_nothing(self, backend: Backend) -> None:
        backend.store.add([make_trace()])

        assert backend.store.filter("other") == []


class TestListModules:
    def test_sorted_and_distinct(self, backend: Backend) -> None:
        backend.store.add([make_trace(module="b"), make_trace("g", module="b")])
        backend.store.add(
            [make_trace(module="a.x"), make_trace(module="B"), make_trace(module="a")]
        )

        assert backend.store.list_modules() == ["B", "a", "a.x", "b"]


class TestCorruptRows:
    def test_bad_json_fails_only_its_own_row(self, backend: Backend) -> None:
        backend.store.add([make_trace("good")])
        backend.insert_raw_row(CallTraceRow("pkg.mod", "bad", '{"x": {"module": ', None, None))

        thunks = backend.store.filter("pkg.mod")

        assert len(thunks) == 2
        by_qualname = rows_by_qualname(thunks)
        assert by_qualname["good"].to_trace() == make_trace("good")
        with pytest.raises(DecodeError, match="invalid JSON"):
            by_qualname["bad"].to_trace()

    def test_newer_format_version_fails_only_its_own_row(self, backend: Backend) -> None:
        backend.store.add([make_trace("good")])
        row = CallTraceRow.from_trace(make_trace("future"))
        backend.insert_raw_row(
            CallTraceRow(
                row.module,
                row.qualname,
                row.arg_types,
                row.return_type,
                row.yield_type,
                format_version=FORMAT_VERSION + 1,
            )
        )

        thunks = rows_by_qualname(backend.store.filter("pkg.mod"))

        assert thunks["good"].to_trace() == make_trace("good")
        with pytest.raises(DecodeError, match="upgrade typetrace"):
            thunks["future"].to_trace()

    def test_malformed_function_fails_only_its_own_row(self, backend: Backend) -> None:
        backend.store.add([make_trace("good")])
        callable_document = '{"module": "collections.abc", "qualname": "Callable", "function": %s}'
        bad = callable_document % '{"module": "m", "qualname": 7}'
        good = callable_document % '{"module": "m", "qualname": "g", "bound": true}'
        backend.insert_raw_row(CallTraceRow("pkg.mod", "bad", f'{{"cb": {bad}}}', None, None))
        backend.insert_raw_row(CallTraceRow("pkg.mod", "named", f'{{"cb": {good}}}', None, None))

        thunks = rows_by_qualname(backend.store.filter("pkg.mod"))

        assert thunks["good"].to_trace() == make_trace("good")
        named = thunks["named"].to_trace().arg_types["cb"]
        assert named.function == FunctionRef("m", "g", bound=True)
        with pytest.raises(DecodeError, match="qualname"):
            thunks["bad"].to_trace()

    def test_bad_send_type_fails_only_its_own_row(self, backend: Backend) -> None:
        backend.store.add([make_trace("good")])
        backend.insert_raw_row(
            CallTraceRow("pkg.mod", "bad", "{}", None, None, send_type='{"module": ')
        )

        thunks = rows_by_qualname(backend.store.filter("pkg.mod"))

        assert len(thunks) == 2
        assert thunks["good"].to_trace() == make_trace("good")
        with pytest.raises(DecodeError, match="invalid JSON"):
            thunks["bad"].to_trace()

    def test_wrong_document_shape_fails_only_its_own_row(self, backend: Backend) -> None:
        backend.insert_raw_row(CallTraceRow("pkg.mod", "list", "[1, 2]", None, None))
        backend.insert_raw_row(CallTraceRow("pkg.mod", "ret", "{}", '{"module": 3}', None))

        thunks = backend.store.filter("pkg.mod")

        assert len(thunks) == 2
        for thunk in thunks:
            with pytest.raises(DecodeError):
                thunk.to_trace()


def test_negative_limit_is_rejected(backend: Backend) -> None:
    if backend.name == "user-jsonl":
        pytest.skip("the interface leaves a negative limit to each store")
    with pytest.raises(ValueError, match="limit"):
        backend.store.filter("pkg.mod", limit=-1)
