"""Export, import and MonkeyType conversion in typetrace.transfer, on real SQLite files."""

from __future__ import annotations

import io
import json
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

import pytest

from typetrace import transfer
from typetrace.db.base import StoredRow
from typetrace.db.sqlite import SQLiteStore
from typetrace.encoding import CallTraceRow
from typetrace.tracing import CallTrace
from typetrace.transfer import TransferError, convert_monkeytype_type
from typetrace.typemodel import ANY, ELLIPSIS, NONE, FunctionRef, TypeRef, union

INT = TypeRef("builtins", "int")
STR = TypeRef("builtins", "str")
POINT = TypeRef("mtpkg.sample", "Point")

# Rows copied verbatim from monkeytype.sqlite3 written by `monkeytype run` of
# MonkeyType 23.3.0 on CPython 3.12, tracing a small package. The TypedDict and
# Iterator rows come from a run with max_typed_dict_size() returning 5.
MONKEYTYPE_ROWS = [
    ('2026-12-04 16:53:58.609497', 'mtpkg.sample', 'add', '{"a": {"module": "builtins", "qualname": "int"}, "b": {"module": "builtins", "qualname": "int"}}', '{"module": "builtins", "qualname": "int"}', None),  # noqa: E501
    ('2026-12-04 16:53:58.609522', 'mtpkg.sample', 'add', '{"a": {"module": "builtins", "qualname": "str"}, "b": {"module": "builtins", "qualname": "str"}}', '{"module": "builtins", "qualname": "str"}', None),  # noqa: E501
    ('2026-12-04 16:53:58.609545', 'mtpkg.sample', 'maybe', '{"x": {"module": "builtins", "qualname": "bool"}}', '{"module": "builtins", "qualname": "NoneType"}', None),  # noqa: E501
    ('2026-12-04 16:53:58.609553', 'mtpkg.sample', 'maybe', '{"x": {"module": "builtins", "qualname": "bool"}}', '{"module": "builtins", "qualname": "int"}', None),  # noqa: E501
    ('2026-12-04 16:53:58.609626', 'mtpkg.sample', 'lists', '{"d": {"elem_types": [{"module": "builtins", "qualname": "str"}, {"module": "builtins", "qualname": "int"}], "module": "typing", "qualname": "Dict"}, "empty_t": {"elem_types": [], "module": "typing", "qualname": "Tuple"}, "fs": {"module": "builtins", "qualname": "frozenset"}, "s": {"elem_types": [{"module": "builtins", "qualname": "int"}], "module": "typing", "qualname": "Set"}, "t": {"elem_types": [{"module": "builtins", "qualname": "int"}, {"module": "builtins", "qualname": "str"}], "module": "typing", "qualname": "Tuple"}, "var_t": {"elem_types": [{"module": "builtins", "qualname": "int"}, {"module": "builtins", "qualname": "int"}, {"module": "builtins", "qualname": "int"}, {"module": "builtins", "qualname": "int"}, {"module": "builtins", "qualname": "int"}, {"module": "builtins", "qualname": "int"}, {"module": "builtins", "qualname": "int"}, {"module": "builtins", "qualname": "int"}, {"module": "builtins", "qualname": "int"}, {"module": "builtins", "qualname": "int"}, {"module": "builtins", "qualname": "int"}, {"module": "builtins", "qualname": "int"}, {"module": "builtins", "qualname": "int"}, {"module": "builtins", "qualname": "int"}, {"module": "builtins", "qualname": "int"}, {"module": "builtins", "qualname": "int"}, {"module": "builtins", "qualname": "int"}, {"module": "builtins", "qualname": "int"}, {"module": "builtins", "qualname": "int"}, {"module": "builtins", "qualname": "int"}], "module": "typing", "qualname": "Tuple"}, "xs": {"elem_types": [{"module": "builtins", "qualname": "int"}], "module": "typing", "qualname": "List"}}', '{"elem_types": [{"module": "builtins", "qualname": "int"}], "module": "typing", "qualname": "List"}', None),  # noqa: E501
    ('2026-12-04 16:53:58.609663', 'mtpkg.sample', 'lists', '{"d": {"elem_types": [{"module": "typing", "qualname": "Any"}, {"module": "typing", "qualname": "Any"}], "module": "typing", "qualname": "Dict"}, "empty_t": {"elem_types": [], "module": "typing", "qualname": "Tuple"}, "fs": {"module": "builtins", "qualname": "frozenset"}, "s": {"elem_types": [{"module": "typing", "qualname": "Any"}], "module": "typing", "qualname": "Set"}, "t": {"elem_types": [{"module": "builtins", "qualname": "int"}], "module": "typing", "qualname": "Tuple"}, "var_t": {"elem_types": [{"module": "builtins", "qualname": "int"}, {"module": "builtins", "qualname": "int"}], "module": "typing", "qualname": "Tuple"}, "xs": {"elem_types": [{"module": "typing", "qualname": "Any"}], "module": "typing", "qualname": "List"}}', '{"elem_types": [{"module": "typing", "qualname": "Any"}], "module": "typing", "qualname": "List"}', None),  # noqa: E501
    ('2026-12-04 16:53:58.609722', 'mtpkg.sample', 'gen', '{"n": {"module": "builtins", "qualname": "int"}}', None, '{"module": "builtins", "qualname": "str"}'),  # noqa: E501
    ('2026-12-04 16:53:58.609734', 'mtpkg.sample', 'raises', '{"x": {"module": "builtins", "qualname": "int"}}', None, None),  # noqa: E501
    ('2026-12-04 16:53:58.609744', 'mtpkg.sample', 'Point.__init__', '{"self": {"module": "mtpkg.sample", "qualname": "Point"}, "x": {"module": "builtins", "qualname": "int"}, "y": {"module": "builtins", "qualname": "int"}}', None, None),  # noqa: E501
    ('2026-12-04 16:53:58.609751', 'mtpkg.sample', 'Point.__init__', '{"self": {"module": "mtpkg.sample", "qualname": "Point"}, "x": {"module": "builtins", "qualname": "int"}, "y": {"module": "builtins", "qualname": "int"}}', None, None),  # noqa: E501
    ('2026-12-04 16:53:58.609767', 'mtpkg.sample', 'Point.__init__', '{"self": {"module": "mtpkg.sample", "qualname": "Point"}, "x": {"module": "builtins", "qualname": "int"}, "y": {"module": "builtins", "qualname": "int"}}', None, None),  # noqa: E501
    ('2026-12-04 16:53:58.609778', 'mtpkg.sample', 'Point.make', '{"cls": {"elem_types": [{"module": "mtpkg.sample", "qualname": "Point"}], "module": "typing", "qualname": "Type"}}', '{"module": "mtpkg.sample", "qualname": "Point"}', None),  # noqa: E501
    ('2026-12-04 16:53:58.609878', 'mtpkg.sample', 'default_dict', '{"d": {"elem_types": [{"module": "builtins", "qualname": "str"}, {"elem_types": [{"module": "builtins", "qualname": "int"}], "module": "typing", "qualname": "List"}], "module": "typing", "qualname": "DefaultDict"}}', '{"elem_types": [{"module": "builtins", "qualname": "str"}, {"elem_types": [{"module": "builtins", "qualname": "int"}], "module": "typing", "qualname": "List"}], "module": "typing", "qualname": "DefaultDict"}', None),  # noqa: E501
    ('2026-12-04 16:53:58.609907', 'mtpkg.sample', 'kw', '{}', '{"module": "builtins", "qualname": "int"}', None),  # noqa: E501
    ('2026-12-04 16:53:58.609949', 'mtpkg.sample', 'mixed', '{"v": {"module": "typing", "qualname": "Callable"}}', '{"module": "typing", "qualname": "Callable"}', None),  # noqa: E501
    ('2026-12-04 16:53:58.609981', 'mtpkg.sample', 'mixed', '{"v": {"module": "builtins", "qualname": "list_iterator"}}', '{"module": "builtins", "qualname": "list_iterator"}', None),  # noqa: E501
    ('2026-12-04 16:58:34.171995', 'mtpkg.extra', 'take', '{"v": {"elem_types": [{"module": "typing", "qualname": "Any"}], "module": "typing", "qualname": "Iterator"}}', '{"elem_types": [{"module": "typing", "qualname": "Any"}], "module": "typing", "qualname": "Iterator"}', None),  # noqa: E501
    ('2026-12-04 16:58:34.172064', 'mtpkg.extra', 'take', '{"v": {"elem_types": {"optional_fields": {"elem_types": {}, "is_typed_dict": true, "module": "monkeytype.typing", "qualname": "OPTIONAL_TYPED_DICT_NAME"}, "required_fields": {"elem_types": {"a": {"module": "builtins", "qualname": "int"}, "b": {"module": "builtins", "qualname": "str"}}, "is_typed_dict": true, "module": "monkeytype.typing", "qualname": "REQUIRED_TYPED_DICT_NAME"}}, "is_typed_dict": true, "module": "monkeytype.typing", "qualname": "DUMMY_NAME"}}', '{"elem_types": {"optional_fields": {"elem_types": {}, "is_typed_dict": true, "module": "monkeytype.typing", "qualname": "OPTIONAL_TYPED_DICT_NAME"}, "required_fields": {"elem_types": {"a": {"module": "builtins", "qualname": "int"}, "b": {"module": "builtins", "qualname": "str"}}, "is_typed_dict": true, "module": "monkeytype.typing", "qualname": "REQUIRED_TYPED_DICT_NAME"}}, "is_typed_dict": true, "module": "monkeytype.typing", "qualname": "DUMMY_NAME"}', None),  # noqa: E501
    ('2026-12-04 16:58:34.172110', 'mtpkg.extra', 'take', '{"v": {"elem_types": [{"elem_types": [{"module": "builtins", "qualname": "int"}, {"module": "builtins", "qualname": "str"}], "module": "typing", "qualname": "Union"}], "module": "typing", "qualname": "List"}}', '{"elem_types": [{"elem_types": [{"module": "builtins", "qualname": "int"}, {"module": "builtins", "qualname": "str"}], "module": "typing", "qualname": "Union"}], "module": "typing", "qualname": "List"}', None),  # noqa: E501
]  # fmt: skip

# The table as MonkeyType 23.3.0's SQLiteStore creates it.
MONKEYTYPE_SCHEMA = """
CREATE TABLE IF NOT EXISTS monkeytype_call_traces (
  created_at  TEXT,
  module      TEXT,
  qualname    TEXT,
  arg_types   TEXT,
  return_type TEXT,
  yield_type  TEXT);
"""


def write_monkeytype_store(path: Path, rows: list[tuple[Any, ...]]) -> Path:
    connection = sqlite3.connect(path)
    connection.execute(MONKEYTYPE_SCHEMA)
    connection.executemany("INSERT INTO monkeytype_call_traces VALUES (?, ?, ?, ?, ?, ?)", rows)
    connection.commit()
    connection.close()
    return path


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    opened = SQLiteStore(str(tmp_path / "traces.sqlite3"))
    yield opened
    opened.close()


def traces_of(store: SQLiteStore, module: str) -> dict[str, list[CallTrace]]:
    found: dict[str, list[CallTrace]] = {}
    for thunk in store.filter(module):
        trace = thunk.to_trace()
        found.setdefault(trace.qualname, []).append(trace)
    return found


def t(module: str, qualname: str, *elements: dict[str, Any]) -> dict[str, Any]:
    """Build a MonkeyType type document."""
    document: dict[str, Any] = {"module": module, "qualname": qualname}
    if elements:
        document["elem_types"] = list(elements)
    return document


MT_INT = t("builtins", "int")
MT_STR = t("builtins", "str")
MT_ANY = t("typing", "Any")


class TestConvertMonkeytypeType:
    @pytest.mark.parametrize(
        ("document", "expected"),
        [
            pytest.param(MT_INT, INT, id="plain-class"),
            pytest.param(t("builtins", "NoneType"), NONE, id="none"),
            pytest.param(MT_ANY, ANY, id="any"),
            pytest.param(t("typing", "List", MT_INT), TypeRef("builtins", "list", (INT,)), id="list"),
            pytest.param(t("typing", "List", MT_ANY), TypeRef("builtins", "list"), id="empty-list"),
            pytest.param(
                t("typing", "Dict", MT_STR, MT_INT), TypeRef("builtins", "dict", (STR, INT)), id="dict"
            ),
            pytest.param(t("typing", "Dict", MT_ANY, MT_ANY), TypeRef("builtins", "dict"), id="empty-dict"),
            pytest.param(t("typing", "Set", MT_INT), TypeRef("builtins", "set", (INT,)), id="set"),
            pytest.param(
                {"elem_types": [], "module": "typing", "qualname": "Tuple"},
                TypeRef("builtins", "tuple"),
                id="empty-tuple",
            ),
            pytest.param(
                t("typing", "Tuple", MT_INT, MT_STR), TypeRef("builtins", "tuple", (INT, STR)), id="tuple"
            ),
            pytest.param(
                t("typing", "Tuple", *[MT_INT] * 11),
                TypeRef("builtins", "tuple", (INT, ELLIPSIS)),
                id="long-tuple",
            ),
            pytest.param(
                t("typing", "Tuple", MT_INT, t("builtins", "ellipsis")),
                TypeRef("builtins", "tuple", (INT, ELLIPSIS)),
                id="variadic-tuple",
            ),
            pytest.param(t("typing", "Union", MT_INT, MT_STR), union([INT, STR]), id="union"),
            pytest.param(
                t("typing", "Union", MT_INT, t("builtins", "NoneType")), union([INT, NONE]), id="optional"
            ),
            pytest.param(
                t("typing", "Type", t("mtpkg.sample", "Point")),
                TypeRef("builtins", "type", (POINT,)),
                id="type",
            ),
            pytest.param(t("typing", "Callable"), TypeRef("collections.abc", "Callable"), id="callable"),
            pytest.param(
                t("typing", "Iterator", MT_ANY), TypeRef("collections.abc", "Iterator"), id="generator-object"
            ),
            pytest.param(
                t("typing", "Generator", MT_INT, t("builtins", "NoneType"), MT_STR),
                TypeRef("collections.abc", "Generator", (INT, NONE, STR)),
                id="generator",
            ),
            pytest.param(
                t("typing", "DefaultDict", MT_STR, t("typing", "List", MT_INT)),
                TypeRef("collections", "defaultdict", (STR, TypeRef("builtins", "list", (INT,)))),
                id="defaultdict",
            ),
            pytest.param(
                t("builtins", "list_iterator"), TypeRef("collections.abc", "Iterator"), id="iterator-class"
            ),
            pytest.param(
                t("collections", "OrderedDict"), TypeRef("collections", "OrderedDict"), id="other-class"
            ),
        ],
    )
    def test_converts(self, document: dict[str, Any], expected: TypeRef) -> None:
        assert convert_monkeytype_type(document) == expected

    def test_typed_dict_becomes_dict(self) -> None:
        (row,) = [r for r in MONKEYTYPE_ROWS if "DUMMY_NAME" in (r[4] or "")]
        document = json.loads(row[4])

        assert convert_monkeytype_type(document) == TypeRef("builtins", "dict", (STR, union([INT, STR])))

    @pytest.mark.parametrize(
        "document",
        [
            pytest.param([], id="not-an-object"),
            pytest.param({"module": "builtins"}, id="no-qualname"),
            pytest.param({"module": "builtins", "qualname": ""}, id="empty-qualname"),
            pytest.param({"module": "builtins", "qualname": "int", "args": []}, id="unknown-key"),
            pytest.param({"module": "typing", "qualname": "List", "elem_types": {}}, id="elem-types-object"),
            pytest.param({"module": "typing", "qualname": "Union", "elem_types": []}, id="empty-union"),
            pytest.param(t("typing", "List", {"module": 3, "qualname": "x"}), id="bad-element"),
            pytest.param(t("builtins", "NoneType", MT_INT), id="none-with-elements"),
            pytest.param({"module": "x", "qualname": "T", "is_typed_dict": True}, id="typed-dict-no-fields"),
        ],
    )
    def test_rejects_invalid_documents(self, document: object) -> None:
        with pytest.raises(ValueError):
            convert_monkeytype_type(document)


class TestImportMonkeytype:
    def test_real_rows_convert_and_aggregate(self, tmp_path: Path, store: SQLiteStore) -> None:
        source = write_monkeytype_store(tmp_path / "monkeytype.sqlite3", MONKEYTYPE_ROWS)

        result = transfer.import_monkeytype(store, source)

        assert result.rows == len(MONKEYTYPE_ROWS)
        assert result.calls == len(MONKEYTYPE_ROWS)
        assert result.skipped == []
        sample = traces_of(store, "mtpkg.sample")
        (init,) = sample["Point.__init__"]
        assert init.call_count == 3
        assert init.arg_types == {"self": POINT, "x": INT, "y": INT}
        assert init.return_type is None
        assert {trace.return_type for trace in sample["maybe"]} == {NONE, INT}
        (gen,) = sample["gen"]
        assert (gen.return_type, gen.yield_type) == (None, STR)
        assert gen.send_type is None
        assert sample["Point.make"][0].arg_types == {"cls": TypeRef("builtins", "type", (POINT,))}
        assert sorted(store.list_modules()) == ["mtpkg.extra", "mtpkg.sample"]

    def test_empty_containers_lose_their_any(self, tmp_path: Path, store: SQLiteStore) -> None:
        source = write_monkeytype_store(tmp_path / "monkeytype.sqlite3", MONKEYTYPE_ROWS)

        transfer.import_monkeytype(store, source)

        (empty,) = [tr for tr in traces_of(store, "mtpkg.sample")["lists"] if tr.return_type == TypeRef("builtins", "list")]
        assert empty.arg_types["d"] == TypeRef("builtins", "dict")
        assert empty.arg_types["s"] == TypeRef("builtins", "set")
        assert empty.arg_types["empty_t"] == TypeRef("builtins", "tuple")
        assert empty.arg_types["fs"] == TypeRef("builtins", "frozenset")

    def test_created_at_gives_first_and_last_seen(self, tmp_path: Path, store: SQLiteStore) -> None:
        source = write_monkeytype_store(tmp_path / "monkeytype.sqlite3", MONKEYTYPE_ROWS)

        transfer.import_monkeytype(store, source)

        rows = {r.row.qualname: r for r in store.iter_rows("mtpkg.sample")}
        init = rows["Point.__init__"]
        # MonkeyType 23.3.0 writes naive local time, which the import reads as local time.
        assert init.first_seen == datetime.fromisoformat("2026-12-04 16:53:58.609744").timestamp()
        assert init.last_seen == datetime.fromisoformat("2026-12-04 16:53:58.609767").timestamp()

    def test_bad_rows_are_skipped_and_listed(self, tmp_path: Path, store: SQLiteStore) -> None:
        good = MONKEYTYPE_ROWS[0]
        rows = [
            good,
            ("not a time", "m", "f", "{}", None, None),
            (good[0], "m", "f", '{"x": {"module": ', None, None),
            (good[0], "m", "g", '{"x": {"module": "typing", "qualname": "Union", "elem_types": []}}', None, None),
            (good[0], None, "f", "{}", None, None),
            (good[0], "m", "h", "{}", '"text"', None),
            (good[0], "m", "k", "{}", "null", None),
        ]
        source = write_monkeytype_store(tmp_path / "monkeytype.sqlite3", rows)

        result = transfer.import_monkeytype(store, source)

        assert result.rows == 2
        assert [skip.location for skip in result.skipped] == ["row 2", "row 3", "row 4", "row 5", "row 6"]
        assert "invalid created_at" in result.skipped[0].reason
        assert "invalid JSON" in result.skipped[1].reason
        assert "m:g" in result.skipped[2].reason
        assert traces_of(store, "m")["k"][0].return_type is None

    def test_missing_file_is_an_error(self, tmp_path: Path, store: SQLiteStore) -> None:
        with pytest.raises(TransferError, match="does not exist"):
            transfer.import_monkeytype(store, tmp_path / "missing.sqlite3")

    def test_text_file_is_an_error(self, tmp_path: Path, store: SQLiteStore) -> None:
        path = tmp_path / "notes.txt"
        path.write_text("hello " * 200, encoding="utf-8")

        with pytest.raises(TransferError, match="not a MonkeyType store"):
            transfer.import_monkeytype(store, path)

    def test_typetrace_store_is_an_error(self, tmp_path: Path, store: SQLiteStore) -> None:
        other = SQLiteStore(str(tmp_path / "other.sqlite3"))
        other.close()

        with pytest.raises(TransferError, match="no table monkeytype_call_traces"):
            transfer.import_monkeytype(store, tmp_path / "other.sqlite3")

    def test_source_file_is_not_changed(self, tmp_path: Path, store: SQLiteStore) -> None:
        source = write_monkeytype_store(tmp_path / "monkeytype.sqlite3", MONKEYTYPE_ROWS)
        before = source.read_bytes()

        transfer.import_monkeytype(store, source)

        assert source.read_bytes() == before


def stored(qualname: str, call_count: int = 1, first: float = 10.0, last: float = 20.0) -> StoredRow:
    trace = CallTrace("pkg.mod", qualname, {"b": INT, "a": STR}, union([INT, NONE]), call_count=call_count)
    return StoredRow(CallTraceRow.from_trace(trace), first, last)


def export_text(store: SQLiteStore, modules: list[str] | None = None) -> tuple[str, transfer.TransferResult]:
    output = io.StringIO()
    result = transfer.export_rows(store, output, modules)
    return output.getvalue(), result


class TestExport:
    def test_header_then_one_line_per_row(self, store: SQLiteStore) -> None:
        store.add_rows([stored("f", 3, 1.5, 2.5), stored("g")])

        text, result = export_text(store)

        header, *lines = text.splitlines()
        assert json.loads(header) == {"typetrace_export": 1, "format_version": 1}
        documents = {json.loads(line)["qualname"]: json.loads(line) for line in lines}
        assert sorted(documents) == ["f", "g"]
        assert documents["f"]["call_count"] == 3
        assert documents["f"]["first_seen"] == 1.5
        assert documents["f"]["last_seen"] == 2.5
        assert list(documents["f"]["arg_types"]) == ["b", "a"]
        assert documents["f"]["yield_type"] is None
        # Earlier releases reject the key, so a trace without a send type has none.
        assert "send_type" not in documents["f"]
        assert (result.rows, result.calls) == (2, 4)

    def test_send_type_is_a_type_document(self, store: SQLiteStore) -> None:
        generator = CallTrace("pkg.mod", "gen", {}, None, INT, send_type=union([STR, NONE]))
        store.add_rows([StoredRow(CallTraceRow.from_trace(generator), 1.0, 2.0)])

        text, _ = export_text(store)

        (line,) = text.splitlines()[1:]
        assert json.loads(line)["send_type"] == {
            "module": "typing",
            "qualname": "Union",
            "args": [
                {"module": "builtins", "qualname": "str"},
                {"module": "builtins", "qualname": "None"},
            ],
        }

    def test_undecodable_rows_are_skipped(self, store: SQLiteStore) -> None:
        store.add_rows([stored("good")])
        bad = CallTraceRow("pkg.mod", "bad", '{"x": 1}', None, None)
        store.add_rows([StoredRow(bad, 1.0, 1.0)])

        text, result = export_text(store)

        assert len(text.splitlines()) == 2
        assert [skip.location for skip in result.skipped] == ["pkg.mod:bad"]
        assert result.rows == 1

    def test_modules_select_rows(self, store: SQLiteStore) -> None:
        other = StoredRow(CallTraceRow("other", "f", "{}", None, None), 1.0, 1.0)
        store.add_rows([stored("f"), other])

        text, _ = export_text(store, ["other"])

        assert [json.loads(line)["module"] for line in text.splitlines()[1:]] == ["other"]


class TestImportExport:
    def test_round_trip_keeps_rows_counts_and_times(self, tmp_path: Path, store: SQLiteStore) -> None:
        store.add_rows([stored("f", 3, 1.5, 2.5), stored("g", 7, 100.0, 200.0)])
        text, _ = export_text(store)
        target = SQLiteStore(str(tmp_path / "target.sqlite3"))

        result = transfer.import_export(target, text.splitlines())

        assert (result.rows, result.calls) == (2, 10)
        assert sorted(target.iter_rows(), key=str) == sorted(store.iter_rows(), key=str)
        target.close()

    def test_round_trip_keeps_send_type(self, tmp_path: Path, store: SQLiteStore) -> None:
        generator = CallTrace("pkg.mod", "gen", {}, None, INT, send_type=STR, call_count=3)
        store.add_rows([StoredRow(CallTraceRow.from_trace(generator), 1.0, 2.0), stored("g")])
        text, _ = export_text(store)
        target = SQLiteStore(str(tmp_path / "target.sqlite3"))

        result = transfer.import_export(target, text.splitlines())

        assert result.skipped == []
        traces = [thunk.to_trace() for thunk in target.filter("pkg.mod")]
        imported = {trace.qualname: trace for trace in traces}
        assert imported["gen"] == generator
        assert imported["gen"].send_type == STR
        assert imported["g"].send_type is None
        target.close()

    def test_round_trip_keeps_function_references(self, tmp_path: Path, store: SQLiteStore) -> None:
        callback = TypeRef("collections.abc", "Callable", function=FunctionRef("pkg.mod", "Handler.run", True))
        trace = CallTrace("pkg.mod", "f", {"cb": callback}, NONE)
        store.add_rows([StoredRow(CallTraceRow.from_trace(trace), 1.0, 2.0), stored("g")])
        text, _ = export_text(store)
        target = SQLiteStore(str(tmp_path / "target.sqlite3"))

        result = transfer.import_export(target, text.splitlines())

        assert result.rows == 2
        imported = [thunk.to_trace() for thunk in target.filter("pkg.mod") if thunk.to_trace().qualname == "f"]
        assert imported == [trace]
        assert imported[0].arg_types["cb"].function == FunctionRef("pkg.mod", "Handler.run", True)
        target.close()

    def test_existing_traces_aggregate(self, store: SQLiteStore) -> None:
        store.add_rows([stored("f", 3, 50.0, 60.0)])
        text, _ = export_text(store)

        transfer.import_export(store, text.splitlines())

        (row,) = store.iter_rows()
        assert row.row.call_count == 6
        assert (row.first_seen, row.last_seen) == (50.0, 60.0)

    def test_many_batches(self, store: SQLiteStore, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(transfer, "IMPORT_BATCH_SIZE", 2)
        source = SQLiteStore(":memory:")
        source.add_rows([stored(f"f{i}", i + 1) for i in range(7)])
        text, _ = export_text(source)
        source.close()

        result = transfer.import_export(store, text.splitlines())

        assert result.rows == 7
        assert sum(r.row.call_count for r in store.iter_rows()) == 28

    def test_bad_lines_are_skipped_with_numbers(self, store: SQLiteStore) -> None:
        good = json.dumps(
            {
                "module": "pkg.mod",
                "qualname": "f",
                "arg_types": {"x": {"module": "builtins", "qualname": "int"}},
                "return_type": None,
                "yield_type": None,
                "format_version": 1,
                "call_count": 2,
                "first_seen": 1.0,
                "last_seen": 2.0,
            }
        )

        def variant(**changes: Any) -> str:
            document = json.loads(good)
            document.update(changes)
            return json.dumps(document)

        lines: list[Any] = [
            '{"typetrace_export": 1, "format_version": 1}',
            good,
            "{not json",
            "[1, 2]",
            json.dumps({k: v for k, v in json.loads(good).items() if k != "call_count"}),
            variant(call_count=0),
            variant(call_count=True),
            variant(first_seen=5.0),
            variant(last_seen="yesterday"),
            variant(arg_types={"x": {"module": "builtins"}}),
            variant(format_version=99),
            variant(extra=1),
            variant(module=""),
            b'{"module": "\xff"}',
            "",
        ]

        result = transfer.import_export(store, lines, "export.jsonl")

        assert result.rows == 1
        assert [skip.location for skip in result.skipped] == [f"line {n}" for n in range(3, 15)]
        reasons = [skip.reason for skip in result.skipped]
        assert "invalid JSON" in reasons[0]
        assert "missing keys ['call_count']" in reasons[2]
        assert "positive integer" in reasons[3]
        assert "later than last_seen" in reasons[5]
        assert "upgrade typetrace" in reasons[8]
        assert "unknown keys ['extra']" in reasons[9]
        assert "utf-8" in reasons[11]

    def test_line_without_send_type_is_read(self, store: SQLiteStore) -> None:
        """A line of an export written before send_type existed has no send type."""
        store.add([CallTrace("pkg.mod", "f", {"x": INT}, STR)])
        old_line = (
            '{"module": "pkg.mod", "qualname": "f", "arg_types": {"x": {"module": "builtins", '
            '"qualname": "int"}}, "return_type": {"module": "builtins", "qualname": "str"}, '
            '"yield_type": null, "format_version": 1, "call_count": 4, "first_seen": 1.0, '
            '"last_seen": 2.0}'
        )
        header = '{"typetrace_export": 1, "format_version": 1}'

        result = transfer.import_export(store, [header, old_line])

        assert result.skipped == []
        (row,) = store.iter_rows()
        assert row.row.send_type is None
        assert row.row.call_count == 5
        assert row.first_seen == 1.0

    def test_bad_send_type_is_skipped(self, store: SQLiteStore) -> None:
        line = {
            "module": "pkg.mod",
            "qualname": "gen",
            "arg_types": {},
            "return_type": None,
            "yield_type": None,
            "format_version": 1,
            "call_count": 1,
            "first_seen": 1.0,
            "last_seen": 2.0,
            "send_type": {"module": "builtins"},
        }

        result = transfer.import_export(store, ['{"typetrace_export": 1}', json.dumps(line)])

        assert result.rows == 0
        assert [skip.location for skip in result.skipped] == ["line 2"]
        assert list(store.iter_rows()) == []

    def test_missing_header_is_an_error(self, store: SQLiteStore) -> None:
        with pytest.raises(TransferError, match="not a typetrace export.*--monkeytype"):
            transfer.import_export(store, ["SQLite format 3"], "monkeytype.sqlite3")

    def test_empty_file_is_an_error(self, store: SQLiteStore) -> None:
        with pytest.raises(TransferError, match="is empty"):
            transfer.import_export(store, [], "empty.jsonl")

    def test_newer_export_version_is_an_error(self, store: SQLiteStore) -> None:
        with pytest.raises(TransferError, match="Upgrade typetrace"):
            transfer.import_export(store, ['{"typetrace_export": 2, "format_version": 1}'])

    def test_canonical_text_matches_traced_rows(self, store: SQLiteStore) -> None:
        trace = CallTrace("pkg.mod", "f", {"x": INT}, STR)
        store.add([trace])
        spaced = (
            '{"module": "pkg.mod", "qualname": "f", "arg_types": {"x": {"qualname": "int", '
            '"module": "builtins"}}, "return_type": {"qualname": "str", "module": "builtins"}, '
            '"yield_type": null, "format_version": 1, "call_count": 4, "first_seen": 1.0, '
            '"last_seen": 2.0}'
        )

        transfer.import_export(store, ['{"typetrace_export": 1}', spaced])

        (row,) = store.iter_rows()
        assert row.row.call_count == 5
