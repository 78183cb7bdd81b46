"""Encoding of call traces as JSON rows, and decoding them back."""

from __future__ import annotations

import json
import logging

import pytest

from typetrace.encoding import (
    FORMAT_VERSION,
    CallTraceRow,
    DecodeError,
    arg_types_to_json,
    serialize_traces,
    type_from_json,
    type_to_dict,
    type_to_json,
)
from typetrace.tracing import CallTrace
from typetrace.typemodel import (
    ANY,
    CALLABLE,
    ELLIPSIS,
    NONE,
    FunctionRef,
    ShapeKey,
    TypeRef,
    callable_type,
    dict_shape,
    receiver,
    union,
)

INT = TypeRef("builtins", "int")
STR = TypeRef("builtins", "str")
LIST_OF_INT = TypeRef("builtins", "list", (INT,))


@pytest.mark.parametrize(
    "ref",
    [
        pytest.param(INT, id="plain"),
        pytest.param(NONE, id="none"),
        pytest.param(ANY, id="any"),
        pytest.param(TypeRef("builtins", "list"), id="container-without-args"),
        pytest.param(
            TypeRef("builtins", "dict", (STR, TypeRef("builtins", "list", (LIST_OF_INT,)))),
            id="nested",
        ),
        pytest.param(union([INT, STR, NONE]), id="optional-union"),
        pytest.param(TypeRef("builtins", "tuple", (INT, ELLIPSIS)), id="ellipsis-tuple"),
        pytest.param(TypeRef("builtins", "tuple", (INT, STR, NONE)), id="fixed-tuple"),
        pytest.param(TypeRef("builtins", "tuple", ()), id="empty-tuple"),
        pytest.param(
            TypeRef("pkg.mod", "Outer.Inner", (union([INT, LIST_OF_INT]),)), id="user-generic"
        ),
        pytest.param(TypeRef("pkg.ünï", "Cödé"), id="non-ascii"),
    ],
)
def test_type_round_trip(ref: TypeRef) -> None:
    assert type_from_json(type_to_json(ref)) == ref


def test_type_document_leaves_out_empty_args() -> None:
    assert json.loads(type_to_json(INT)) == {"module": "builtins", "qualname": "int"}


SHAPE = TypeRef("shapes", "Shape")
SQUARE = TypeRef("shapes", "Square", bases=(TypeRef("shapes", "Polygon"), SHAPE))


class TestOptionalKeys:
    def test_bases_document(self) -> None:
        assert json.loads(type_to_json(SQUARE)) == {
            "module": "shapes",
            "qualname": "Square",
            "bases": [{"module": "shapes", "qualname": "Polygon"}, {"module": "shapes", "qualname": "Shape"}],
        }

    def test_bases_round_trip(self) -> None:
        nested = TypeRef("builtins", "list", (SQUARE,))
        decoded = type_from_json(type_to_json(nested))
        assert decoded == nested
        assert decoded.args[0].bases == SQUARE.bases

    def test_receiver_document(self) -> None:
        assert json.loads(type_to_json(receiver(SHAPE))) == {
            "module": "shapes",
            "qualname": "Shape",
            "receiver": True,
        }

    def test_receiver_round_trip(self) -> None:
        decoded = type_from_json(type_to_json(receiver(SQUARE)))
        assert decoded == receiver(SQUARE)
        assert decoded.args[0].bases == SQUARE.bases

    def test_receiver_false_is_plain(self) -> None:
        assert type_from_json('{"module": "shapes", "qualname": "Shape", "receiver": false}') == SHAPE

    def test_row_with_receiver_keeps_version(self) -> None:
        trace = CallTrace("shapes", "Square.scaled", {"self": SQUARE, "factor": INT}, receiver(SQUARE))
        row = CallTraceRow.from_trace(trace)
        assert row.format_version == 1
        assert row.to_trace() == trace

    def test_document_without_keys_has_no_bases(self) -> None:
        decoded = type_from_json('{"module": "shapes", "qualname": "Square"}')
        assert decoded == SQUARE
        assert decoded.bases == ()

    @pytest.mark.parametrize(
        "document",
        [
            pytest.param('{"module": "m", "qualname": "C", "bases": {}}', id="bases-not-array"),
            pytest.param('{"module": "m", "qualname": "C", "bases": ["m.B"]}', id="base-not-object"),
            pytest.param(
                '{"module": "m", "qualname": "C", "bases": [{"module": "m", "qualname": "B", "args": []}]}',
                id="base-with-args",
            ),
            pytest.param('{"module": "m", "qualname": "C", "bases": [{"module": "m"}]}', id="base-without-qualname"),
            pytest.param('{"module": "m", "qualname": "C", "receiver": 1}', id="receiver-not-boolean"),
        ],
    )
    def test_invalid(self, document: str) -> None:
        with pytest.raises(DecodeError):
            type_from_json(document)


@pytest.mark.parametrize(
    "trace",
    [
        pytest.param(CallTrace("m", "f", {}, None), id="no-args-no-return"),
        pytest.param(
            CallTrace("m", "f", {"x": INT, "y": union([STR, NONE])}, NONE), id="returns-none"
        ),
        pytest.param(
            CallTrace("m", "C.gen", {"self": TypeRef("m", "C")}, None, LIST_OF_INT), id="generator"
        ),
        pytest.param(
            CallTrace(
                "m", "f", {"args": TypeRef("builtins", "tuple", (INT, ELLIPSIS))}, ANY, call_count=7
            ),
            id="ellipsis-and-count",
        ),
    ],
)
def test_row_round_trip(trace: CallTrace) -> None:
    row = CallTraceRow.from_trace(trace)

    decoded = row.to_trace()

    assert decoded == trace
    assert decoded.call_count == trace.call_count
    assert row.format_version == FORMAT_VERSION


def test_row_keeps_parameter_order() -> None:
    trace = CallTrace("m", "f", {"z": INT, "a": STR, "m": NONE}, None)

    assert list(CallTraceRow.from_trace(trace).to_trace().arg_types) == ["z", "a", "m"]


def test_row_stores_none_as_null() -> None:
    row = CallTraceRow.from_trace(CallTrace("m", "f", {}, None, None))

    assert row.return_type is None
    assert row.yield_type is None


@pytest.mark.parametrize(
    "names",
    [
        pytest.param([], id="no-parameters"),
        pytest.param(["a", "b"], id="plain"),
        pytest.param(['q"uote', "back\\slash", "tab\t"], id="escaped"),
        pytest.param(["é", "名前", "\U0001f600"], id="non-ascii"),
    ],
)
def test_arg_types_text_equals_json_dumps(names: list[str]) -> None:
    """The JSON text of arg_types is what json.dumps writes, which stored signatures hash."""
    nested = TypeRef("builtins", "dict", (STR, union([LIST_OF_INT, NONE])))
    arg_types = {name: [INT, nested, ANY][index % 3] for index, name in enumerate(names)}

    row = CallTraceRow.from_trace(CallTrace("m", "f", arg_types, nested))

    assert row.arg_types == json.dumps(
        {name: type_to_dict(ref) for name, ref in arg_types.items()}, separators=(",", ":")
    )
    assert row.return_type == json.dumps(
        type_to_dict(nested), sort_keys=True, separators=(",", ":")
    )


class TestDecodeErrors:
    def test_newer_format_version(self) -> None:
        row = CallTraceRow("m", "f", "{}", None, None, format_version=FORMAT_VERSION + 1)

        with pytest.raises(DecodeError, match="upgrade typetrace"):
            row.to_trace()

    @pytest.mark.parametrize("version", [0, -1, "1", None])
    def test_invalid_format_version(self, version: object) -> None:
        row = CallTraceRow("m", "f", "{}", None, None, format_version=version)  # type: ignore[arg-type]

        with pytest.raises(DecodeError, match="format version"):
            row.to_trace()

    @pytest.mark.parametrize(
        ("field", "text"),
        [
            ("arg_types", "{not json"),
            ("arg_types", ""),
            ("return_type", '{"module": "builtins"'),
            ("yield_type", "nul"),
        ],
    )
    def test_invalid_json(self, field: str, text: str) -> None:
        fields = {"arg_types": "{}", "return_type": None, "yield_type": None, field: text}
        row = CallTraceRow("m", "f", **fields)  # type: ignore[arg-type]

        with pytest.raises(DecodeError, match="invalid JSON"):
            row.to_trace()

    @pytest.mark.parametrize(
        "document",
        [
            pytest.param('["builtins", "int"]', id="array"),
            pytest.param('{"module": "builtins"}', id="missing-qualname"),
            pytest.param('{"module": "builtins", "qualname": ""}', id="empty-qualname"),
            pytest.param('{"module": 1, "qualname": "int"}', id="module-not-string"),
            pytest.param(
                '{"module": "builtins", "qualname": "list", "args": {}}', id="args-not-array"
            ),
            pytest.param('{"module": "builtins", "qualname": "int", "extra": 1}', id="unknown-key"),
            pytest.param(
                '{"module": "builtins", "qualname": "list", "args": [3]}', id="bad-nested"
            ),
        ],
    )
    def test_invalid_type_document(self, document: str) -> None:
        with pytest.raises(DecodeError):
            type_from_json(document)

    def test_arg_types_must_be_an_object(self) -> None:
        with pytest.raises(DecodeError, match="arg_types must be a JSON object"):
            CallTraceRow("m", "f", "[]", None, None).to_trace()

    def test_non_text_json_field(self) -> None:
        with pytest.raises(DecodeError, match="expected JSON text"):
            CallTraceRow("m", "f", 42, None, None).to_trace()  # type: ignore[arg-type]


class TestSerializeTraces:
    def test_skips_and_logs_a_failing_trace(self, caplog: pytest.LogCaptureFixture) -> None:
        # A TypeRef whose qualname is an object, not a string, cannot be encoded as JSON.
        broken = CallTrace("m", "broken", {"x": TypeRef("builtins", object())}, None)  # type: ignore[arg-type]
        before = CallTrace("m", "before", {}, None)
        after = CallTrace("m", "after", {"x": INT}, INT)

        with caplog.at_level(logging.ERROR, logger="typetrace.encoding"):
            rows = list(serialize_traces([before, broken, after]))

        assert [row.qualname for row in rows] == ["before", "after"]
        assert len(caplog.records) == 1
        assert "Failed to serialize trace" in caplog.records[0].getMessage()
        assert "broken" in caplog.records[0].getMessage()
        assert caplog.records[0].exc_info is not None

    def test_is_lazy(self) -> None:
        def traces() -> object:
            yield CallTrace("m", "f", {}, None)
            raise AssertionError("serialize_traces read past the first trace")

        rows = serialize_traces(traces())  # type: ignore[arg-type]

        assert next(rows).qualname == "f"


def test_equal_types_with_other_bases_encode_apart() -> None:
    plain = TypeRef("shapes", "Square")
    based = TypeRef("shapes", "Square", bases=(TypeRef("shapes", "Polygon"),))
    assert plain == based

    assert "bases" not in type_to_json(plain)
    assert "Polygon" in type_to_json(based)
    assert "Polygon" in arg_types_to_json({"shape": based})
    assert "Polygon" not in arg_types_to_json({"shape": plain})
INT_DOCUMENT = {"module": "builtins", "qualname": "int"}
STR_DOCUMENT = {"module": "builtins", "qualname": "str"}
DICT_DOCUMENT = {"module": "builtins", "qualname": "dict", "args": [STR_DOCUMENT, INT_DOCUMENT]}


def shape_of(*keys: ShapeKey) -> TypeRef:
    return dict_shape(keys)


class TestDictShapes:
    @pytest.mark.parametrize(
        "ref",
        [
            pytest.param(shape_of(ShapeKey("id", INT)), id="one-key"),
            pytest.param(shape_of(ShapeKey("id", INT), ShapeKey("note", STR, required=False)), id="optional-key"),
            pytest.param(shape_of(ShapeKey("user", shape_of(ShapeKey("id", INT))), ShapeKey("n", INT)), id="nested"),
            pytest.param(shape_of(ShapeKey("content-type", STR), ShapeKey("class", INT), ShapeKey("größe", NONE)), id="any-key-text"),
            pytest.param(TypeRef("builtins", "list", (union([shape_of(ShapeKey("a", INT)), NONE]),)), id="inside-union"),
        ],
    )
    def test_round_trip(self, ref: TypeRef) -> None:
        decoded = type_from_json(type_to_json(ref))

        assert decoded == ref
        assert decoded.shape == ref.shape

    def test_documented_form(self) -> None:
        """The stored form is the one the encoding module documents."""
        ref = shape_of(ShapeKey("id", INT), ShapeKey("note", STR, required=False))

        assert json.loads(type_to_json(ref)) == {
            "module": "builtins",
            "qualname": "dict",
            "args": [{"module": "builtins", "qualname": "str"}, json.loads(type_to_json(union([INT, STR])))],
            "shape": [
                {"key": "id", "type": {"module": "builtins", "qualname": "int"}},
                {"key": "note", "type": {"module": "builtins", "qualname": "str"}, "required": False},
            ],
        }

    def test_row_without_shape_unchanged(self) -> None:
        """A row written before shapes existed decodes to the same plain dict."""
        row = CallTraceRow(
            module="m",
            qualname="f",
            arg_types='{"d":{"module":"builtins","qualname":"dict",'
            '"args":[{"module":"builtins","qualname":"str"},{"module":"builtins","qualname":"int"}]}}',
            return_type='{"module":"builtins","qualname":"None"}',
            yield_type=None,
            format_version=1,
        )

        trace = row.to_trace()

        assert trace.arg_types["d"] == TypeRef("builtins", "dict", (STR, INT))
        assert trace.arg_types["d"].shape == ()
        assert CallTraceRow.from_trace(trace) == row

    def test_row_with_shape_keeps_version(self) -> None:
        trace = CallTrace("m", "f", {"d": shape_of(ShapeKey("id", INT))}, NONE)

        row = CallTraceRow.from_trace(trace)

        assert row.format_version == FORMAT_VERSION == 1
        assert row.to_trace() == trace

    @pytest.mark.parametrize(
        ("document", "message"),
        [
            pytest.param(
                {"module": "builtins", "qualname": "list", "args": [STR_DOCUMENT], "shape": [{"key": "a", "type": INT_DOCUMENT}]},
                "only valid on builtins.dict",
                id="not-a-dict",
            ),
            pytest.param(
                {"module": "builtins", "qualname": "dict", "args": [INT_DOCUMENT, INT_DOCUMENT], "shape": [{"key": "a", "type": INT_DOCUMENT}]},
                "only valid on builtins.dict with str keys",
                id="int-keys",
            ),
            pytest.param({**DICT_DOCUMENT, "shape": []}, "non-empty JSON array", id="empty"),
            pytest.param({**DICT_DOCUMENT, "shape": {"a": INT_DOCUMENT}}, "non-empty JSON array", id="object"),
            pytest.param({**DICT_DOCUMENT, "shape": [{"key": 1, "type": INT_DOCUMENT}]}, "string 'key'", id="key-not-text"),
            pytest.param({**DICT_DOCUMENT, "shape": [{"key": "a", "type": INT_DOCUMENT, "required": 0}]}, "boolean 'required'", id="required-not-bool"),
            pytest.param({**DICT_DOCUMENT, "shape": [{"key": "a", "type": INT_DOCUMENT, "extra": 1}]}, "must be an object", id="unknown-entry-key"),
            pytest.param({**DICT_DOCUMENT, "shape": [{"key": "a"}]}, "must be a JSON object", id="missing-type"),
            pytest.param(
                {**DICT_DOCUMENT, "shape": [{"key": "a", "type": INT_DOCUMENT}, {"key": "a", "type": STR_DOCUMENT}]},
                "names a key twice",
                id="repeated-key",
            ),
        ],
    )
    def test_invalid_shape(self, document: dict[str, object], message: str) -> None:
        with pytest.raises(DecodeError, match=message):
            type_from_json(json.dumps(document))


CALLABLE_DOCUMENT = {"module": "collections.abc", "qualname": "Callable"}


def function_callable(module: str, qualname: str, bound: bool = False) -> TypeRef:
    return TypeRef("collections.abc", "Callable", function=FunctionRef(module, qualname, bound))


class TestFunctionReferences:
    @pytest.mark.parametrize(
        "ref",
        [
            pytest.param(function_callable("pkg.mod", "apply"), id="function"),
            pytest.param(function_callable("pkg.mod", "Handler.run", bound=True), id="bound-method"),
            pytest.param(function_callable("pkg.mod", "outer.<locals>.inner"), id="locals"),
            pytest.param(TypeRef("builtins", "list", (union([function_callable("m", "f"), CALLABLE]),)), id="in-list"),
            pytest.param(callable_type([INT, STR], NONE), id="concrete"),
            pytest.param(callable_type([], INT), id="no-parameters"),
            pytest.param(callable_type(None, INT), id="any-parameters"),
        ],
    )
    def test_round_trip(self, ref: TypeRef) -> None:
        decoded = type_from_json(type_to_json(ref))

        assert decoded == ref
        assert decoded.function == ref.function

    def test_documented_form(self) -> None:
        """The stored form is the one the encoding module documents."""
        ref = function_callable("pkg.mod", "Handler.run", bound=True)

        assert json.loads(type_to_json(ref)) == {
            **CALLABLE_DOCUMENT,
            "function": {"module": "pkg.mod", "qualname": "Handler.run", "bound": True},
        }

    def test_unbound_leaves_out_bound(self) -> None:
        document = json.loads(type_to_json(function_callable("pkg.mod", "apply")))

        assert document["function"] == {"module": "pkg.mod", "qualname": "apply"}

    def test_functions_are_told_apart(self) -> None:
        first = function_callable("pkg.mod", "f")
        second = function_callable("pkg.mod", "g")

        assert first != second
        assert first != CALLABLE
        assert first != function_callable("pkg.mod", "f", bound=True)
        assert type_to_json(first) != type_to_json(second)
        assert len({first, second, CALLABLE}) == 3

    def test_rebuilt_reference_is_bare(self) -> None:
        ref = function_callable("pkg.mod", "f")

        assert TypeRef(ref.module, ref.qualname, ref.args) == CALLABLE

    def test_row_without_function_unchanged(self) -> None:
        """A row written before function references existed decodes to a bare Callable."""
        row = CallTraceRow(
            module="m",
            qualname="f",
            arg_types='{"cb":{"module":"collections.abc","qualname":"Callable"}}',
            return_type='{"module":"builtins","qualname":"None"}',
            yield_type=None,
            format_version=1,
        )

        trace = row.to_trace()

        assert trace.arg_types["cb"] == CALLABLE
        assert trace.arg_types["cb"].function is None
        assert CallTraceRow.from_trace(trace) == row

    def test_row_with_function_keeps_version(self) -> None:
        trace = CallTrace("m", "f", {"cb": function_callable("m", "g")}, NONE)

        row = CallTraceRow.from_trace(trace)

        assert row.format_version == FORMAT_VERSION == 1
        assert row.to_trace() == trace

    @pytest.mark.parametrize(
        ("document", "message"),
        [
            pytest.param({**INT_DOCUMENT, "function": {"module": "m", "qualname": "f"}}, "only valid on a bare", id="not-callable"),
            pytest.param(
                {**CALLABLE_DOCUMENT, "args": [INT_DOCUMENT], "function": {"module": "m", "qualname": "f"}},
                "only valid on a bare",
                id="callable-with-args",
            ),
            pytest.param({**CALLABLE_DOCUMENT, "function": "m.f"}, "must be an object", id="text"),
            pytest.param({**CALLABLE_DOCUMENT, "function": {"module": "m", "qualname": "f", "line": 3}}, "must be an object", id="unknown-key"),
            pytest.param({**CALLABLE_DOCUMENT, "function": {"module": "m"}}, "string 'module' and 'qualname'", id="missing-qualname"),
            pytest.param({**CALLABLE_DOCUMENT, "function": {"module": "m", "qualname": ""}}, "string 'module' and 'qualname'", id="empty-qualname"),
            pytest.param({**CALLABLE_DOCUMENT, "function": {"module": "m", "qualname": "f", "bound": 1}}, "true or false", id="bound-not-bool"),
        ],
    )
    def test_invalid_function(self, document: dict[str, object], message: str) -> None:
        with pytest.raises(DecodeError, match=message):
            type_from_json(json.dumps(document))
