"""Moving stored traces between stores: JSON lines export and import, and MonkeyType stores.

Export format, version 1
========================

A UTF-8 text file of JSON objects, one per line. The first line is the header::

    {"typetrace_export": 1, "format_version": 1}

``typetrace_export`` is the version of this line layout, :data:`EXPORT_VERSION`, and
``format_version`` is the newest JSON type format (see :mod:`typetrace.encoding`) that
the writer knew. Every other line is one stored trace::

    {"module": "pkg.mod", "qualname": "f",
     "arg_types": {"x": {"module": "builtins", "qualname": "int"}},
     "return_type": {"module": "builtins", "qualname": "str"}, "yield_type": null,
     "format_version": 1, "call_count": 3, "first_seen": 1700000000.5,
     "last_seen": 1700000100.25}

The type fields hold type documents as JSON values, not as JSON text. ``first_seen``
and ``last_seen`` are seconds since the Unix epoch (UTC).

A line of a generator that received values at its ``yield`` expressions also has
``send_type``, their type document. ``send_type`` was added to version 1 of the
layout without a new version number, and a line without it is a trace without a send
type. So exports of earlier releases import as before. Earlier releases reject keys
that they do not know, so they skip the lines that have ``send_type``, each with an
error, and read the rest.
"""

from __future__ import annotations

import json
import math
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence, TextIO, Union

from typetrace.db._sql import STORED_ROW_COLUMNS
from typetrace.db.base import CallTraceStore, StoredRow
from typetrace.encoding import FORMAT_VERSION, CallTraceRow, DecodeError
from typetrace.exceptions import TypeTraceError
from typetrace.inference import BUILTIN_RENAMES, MAX_TUPLE_LENGTH
from typetrace.tracing import CallTrace
from typetrace.typemodel import ANY, ELLIPSIS, NONE, TypeRef, union

__all__ = [
    "EXPORT_VERSION",
    "MONKEYTYPE_TABLE",
    "Skipped",
    "TransferError",
    "TransferResult",
    "convert_monkeytype_type",
    "export_rows",
    "import_export",
    "import_monkeytype",
]

#: Version of the export line layout that this module writes and reads.
EXPORT_VERSION = 1

#: Table in which MonkeyType's SQLite store keeps one row per recorded call.
MONKEYTYPE_TABLE = "monkeytype_call_traces"

#: Rows written to the store per transaction while importing.
IMPORT_BATCH_SIZE = 1000

_ROW_KEYS = frozenset(STORED_ROW_COLUMNS)
#: Keys that a line may leave out, because exports of earlier releases do not have them.
_OPTIONAL_ROW_KEYS = frozenset({"send_type"})


class TransferError(TypeTraceError):
    """An export or import cannot start: its file is missing, unreadable or of another kind."""


@dataclass(frozen=True)
class Skipped:
    """A row or line that an export or import left out, and why."""

    #: Position of the row or line: ``line 7`` of an export file, ``row 12`` (the
    #: rowid) of a MonkeyType table, or ``pkg.mod:f`` for a stored trace.
    location: str
    #: Reason it could not be read or converted.
    reason: str


@dataclass
class TransferResult:
    """Counts of the rows that an export or import wrote, and the rows it skipped."""

    #: Rows written: stored traces for an export and an import of an export, calls
    #: recorded by MonkeyType for an import of a MonkeyType store.
    rows: int = 0
    #: Calls that the written rows count.
    calls: int = 0
    #: Rows or lines that could not be read or converted, in the order found.
    skipped: list[Skipped] = field(default_factory=list)


# --- export ------------------------------------------------------------------------


def export_rows(
    store: CallTraceStore, output: TextIO, modules: Optional[Sequence[str]] = None
) -> TransferResult:
    """Write the header and every decodable stored row of *modules* (default: all) to *output*.

    Rows that do not decode are skipped and listed in the result, so an export never
    contains a line that an import would reject.
    """
    result = TransferResult()
    header = {"typetrace_export": EXPORT_VERSION, "format_version": FORMAT_VERSION}
    output.write(json.dumps(header) + "\n")
    selected: Sequence[Optional[str]] = [None] if modules is None else modules
    for module in selected:
        for stored in store.iter_rows(module):
            row = stored.row
            try:
                document = _export_document(stored)
            except DecodeError as error:
                result.skipped.append(Skipped(f"{row.module}:{row.qualname}", str(error)))
                continue
            output.write(json.dumps(document, ensure_ascii=False) + "\n")
            result.rows += 1
            result.calls += row.call_count
    return result


def _export_document(stored: StoredRow) -> dict[str, Any]:
    row = stored.row
    row.to_trace()  # raises DecodeError for a row that an import would reject
    return {
        "module": row.module,
        "qualname": row.qualname,
        "arg_types": json.loads(row.arg_types),
        "return_type": None if row.return_type is None else json.loads(row.return_type),
        "yield_type": None if row.yield_type is None else json.loads(row.yield_type),
        "format_version": row.format_version,
        "call_count": row.call_count,
        "first_seen": stored.first_seen,
        "last_seen": stored.last_seen,
        **({} if row.send_type is None else {"send_type": json.loads(row.send_type)}),
    }


# --- import of an export -----------------------------------------------------------


def import_export(
    store: CallTraceStore, lines: Iterable[Union[str, bytes]], source: str = "the export"
) -> TransferResult:
    """Add the traces of an export file's *lines* to *store*, keeping counts and times.

    Lines given as bytes are decoded as UTF-8 one at a time, so a line with invalid
    bytes is skipped like any other line that cannot be read. Skipped lines are listed
    in the result. Traces that the store already has add their counts to the stored
    ones.

    Raises:
        TransferError: the first line is not an export header of a version this
            release reads. *source* names the file in the message.
    """
    result = TransferResult()
    numbered = enumerate(lines, start=1)
    first = next(numbered, None)
    if first is None:
        raise TransferError(f"{source} is empty; an export starts with a header line.")
    _check_header(first[1], source)
    batch: list[StoredRow] = []
    for number, line in numbered:
        if not line.strip():
            continue
        try:
            stored = _row_from_line(line)
        except (DecodeError, ValueError) as error:
            result.skipped.append(Skipped(f"line {number}", str(error)))
            continue
        batch.append(stored)
        result.rows += 1
        result.calls += stored.row.call_count
        if len(batch) >= IMPORT_BATCH_SIZE:
            store.add_rows(batch)
            batch = []
    if batch:
        store.add_rows(batch)
    return result


def _check_header(line: Union[str, bytes], source: str) -> None:
    try:
        header = json.loads(line)
    except ValueError:
        header = None
    if not isinstance(header, dict) or "typetrace_export" not in header:
        raise TransferError(
            f"{source} is not a typetrace export: its first line is not the header "
            f'{{"typetrace_export": {EXPORT_VERSION}, ...}}. To import a MonkeyType '
            "store, pass --monkeytype."
        )
    version = header["typetrace_export"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise TransferError(f"{source} has an invalid export version {version!r} in its header.")
    if version > EXPORT_VERSION:
        raise TransferError(
            f"{source} is an export of version {version}, but this typetrace reads versions "
            f"up to {EXPORT_VERSION}. Upgrade typetrace to import it."
        )


def _row_from_line(line: Union[str, bytes]) -> StoredRow:
    if isinstance(line, bytes):
        line = line.decode("utf-8")
    try:
        document = json.loads(line)
    except ValueError as error:
        raise ValueError(f"invalid JSON: {error}") from error
    if not isinstance(document, dict):
        raise ValueError(f"expected a JSON object, got {type(document).__name__}")

    missing = sorted(_ROW_KEYS - _OPTIONAL_ROW_KEYS - set(document))
    if missing:
        raise ValueError(f"missing keys {missing!r}")
    unknown = sorted(set(document) - _ROW_KEYS)
    if unknown:
        raise ValueError(f"unknown keys {unknown!r}")

    call_count = document["call_count"]
    if not _is_int(call_count) or call_count < 1:
        raise ValueError(f"call_count must be a positive integer, got {call_count!r}")
    first_seen = _timestamp(document, "first_seen")
    last_seen = _timestamp(document, "last_seen")
    if first_seen > last_seen:
        raise ValueError(f"first_seen {first_seen!r} is later than last_seen {last_seen!r}")

    format_version = document["format_version"]
    if not _is_int(format_version):
        raise ValueError(f"format_version must be an integer, got {format_version!r}")
    module = document["module"]
    qualname = document["qualname"]
    if not isinstance(module, str) or not isinstance(qualname, str) or not module or not qualname:
        raise ValueError(f"module and qualname must be non-empty strings, got {module!r}, {qualname!r}")

    row = CallTraceRow(
        module=module,
        qualname=qualname,
        arg_types=json.dumps(document["arg_types"]),
        return_type=_json_or_none(document["return_type"]),
        yield_type=_json_or_none(document["yield_type"]),
        format_version=format_version,
        call_count=call_count,
        send_type=_json_or_none(document.get("send_type")),
    )
    # Decoding checks the type documents. Encoding the decoded trace again writes
    # the canonical text, which the store's signature of the trace is computed from.
    trace = row.to_trace()
    return StoredRow(CallTraceRow.from_trace(trace), first_seen, last_seen)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _timestamp(document: dict[str, Any], key: str) -> float:
    value = document[key]
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{key} must be a number of seconds, got {value!r}")
    return float(value)


def _json_or_none(value: object) -> Optional[str]:
    return None if value is None else json.dumps(value)


# --- import of a MonkeyType store --------------------------------------------------


def import_monkeytype(store: CallTraceStore, path: Path) -> TransferResult:
    """Convert the call traces of MonkeyType's SQLite store at *path* and add them to *store*.

    MonkeyType keeps one row per call, so each row becomes a trace with a call count
    of one, and identical traces merge in *store*. ``created_at`` gives the first and
    last seen times. MonkeyType 23.3.0 writes it as local time without a zone, so it
    is read in this machine's local time zone. Rows that cannot be converted are
    skipped and listed in the result.

    Raises:
        TransferError: *path* is not a readable SQLite file with MonkeyType's table.
    """
    connection = _open_monkeytype(path)
    result = TransferResult()
    batch: list[StoredRow] = []
    try:
        cursor = connection.execute(
            "SELECT rowid, created_at, module, qualname, arg_types, return_type, yield_type "
            f"FROM {MONKEYTYPE_TABLE} ORDER BY rowid"
        )
        for rowid, created_at, module, qualname, arg_types, return_type, yield_type in cursor:
            try:
                seen = _monkeytype_time(created_at)
                trace = _monkeytype_trace(module, qualname, arg_types, return_type, yield_type)
            except ValueError as error:
                result.skipped.append(Skipped(f"row {rowid}", str(error)))
                continue
            batch.append(StoredRow(CallTraceRow.from_trace(trace), seen, seen))
            result.rows += 1
            result.calls += 1
            if len(batch) >= IMPORT_BATCH_SIZE:
                store.add_rows(batch)
                batch = []
    except sqlite3.Error as error:
        raise TransferError(f"Failed to read the MonkeyType store {path}: {error}") from error
    finally:
        connection.close()
    store.add_rows(batch)
    return result


def _open_monkeytype(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise TransferError(f"The MonkeyType store {path} does not exist or is not a file.")
    try:
        connection = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
    except sqlite3.Error as error:
        raise TransferError(f"Failed to open the MonkeyType store {path}: {error}") from error
    try:
        found = connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?", (MONKEYTYPE_TABLE,)
        ).fetchone()
    except sqlite3.DatabaseError as error:
        connection.close()
        raise TransferError(
            f"{path} is not a MonkeyType store: {error}. Pass the SQLite file that "
            "MonkeyType writes, by default monkeytype.sqlite3."
        ) from error
    if found is None:
        connection.close()
        raise TransferError(
            f"{path} has no table {MONKEYTYPE_TABLE}, so it is not a MonkeyType store."
        )
    return connection


def _monkeytype_time(created_at: object) -> float:
    if not isinstance(created_at, str):
        raise ValueError(f"created_at must be text, got {created_at!r}")
    try:
        moment = datetime.fromisoformat(created_at)
    except ValueError:
        raise ValueError(f"invalid created_at {created_at!r}") from None
    return moment.timestamp()


def _monkeytype_trace(
    module: object, qualname: object, arg_types: object, return_type: object, yield_type: object
) -> CallTrace:
    if not isinstance(module, str) or not module or not isinstance(qualname, str) or not qualname:
        raise ValueError(f"module and qualname must be text, got {module!r} and {qualname!r}")
    arguments = _load_monkeytype_json(arg_types, "arg_types")
    if not isinstance(arguments, dict):
        raise ValueError(f"arg_types must be a JSON object, got {arg_types!r}")
    try:
        return CallTrace(
            module,
            qualname,
            {name: convert_monkeytype_type(document) for name, document in arguments.items()},
            _optional_monkeytype_type(return_type, "return_type"),
            _optional_monkeytype_type(yield_type, "yield_type"),
            # MonkeyType 23.3.0 does not record the values that generators receive.
            send_type=None,
        )
    except ValueError as error:
        raise ValueError(f"{module}:{qualname}: {error}") from None


def _optional_monkeytype_type(text: object, column: str) -> Optional[TypeRef]:
    # MonkeyType reads both SQL NULL and the JSON text "null" as no type.
    if text is None:
        return None
    document = _load_monkeytype_json(text, column)
    return None if document is None else convert_monkeytype_type(document)


def _load_monkeytype_json(text: object, column: str) -> object:
    if not isinstance(text, str):
        raise ValueError(f"{column} must be JSON text, got {text!r}")
    try:
        return json.loads(text)
    except ValueError as error:
        raise ValueError(f"{column} is invalid JSON: {error}") from None


# MonkeyType writes the generic aliases of ``typing``; typetrace names the class that
# each alias stands for, as its inference does for observed values.
_TYPING_ORIGINS = {
    "List": ("builtins", "list"),
    "Dict": ("builtins", "dict"),
    "Set": ("builtins", "set"),
    "FrozenSet": ("builtins", "frozenset"),
    "Type": ("builtins", "type"),
    "DefaultDict": ("collections", "defaultdict"),
    "OrderedDict": ("collections", "OrderedDict"),
    "Counter": ("collections", "Counter"),
    "Deque": ("collections", "deque"),
    "ChainMap": ("collections", "ChainMap"),
    "AbstractSet": ("collections.abc", "Set"),
    **{
        name: ("collections.abc", name)
        for name in (
            "Callable",
            "Iterator",
            "Iterable",
            "Generator",
            "AsyncIterator",
            "AsyncIterable",
            "AsyncGenerator",
            "Coroutine",
            "Awaitable",
            "Mapping",
            "MutableMapping",
            "Sequence",
            "MutableSequence",
            "MutableSet",
            "Collection",
            "Container",
            "Sized",
            "Hashable",
            "Reversible",
            "KeysView",
            "ValuesView",
            "ItemsView",
            "MappingView",
        )
    },
}

# Built-in classes that cannot be imported by their ``builtins`` name, with the names
# typetrace's inference gives them. Inference types functions by their kind, so the
# two function classes are added here.
_CALLABLE = TypeRef("collections.abc", "Callable")
_BUILTIN_RENAMES = {
    **BUILTIN_RENAMES,
    "function": _CALLABLE,
    "builtin_function_or_method": _CALLABLE,
}

_MONKEYTYPE_KEYS = frozenset({"module", "qualname", "elem_types", "is_typed_dict"})

# Name of the TypedDict that MonkeyType 23.3.0 builds for a dict with text keys.
_ANONYMOUS_TYPED_DICT = ("monkeytype.typing", "DUMMY_NAME")


def convert_monkeytype_type(document: object) -> TypeRef:
    """Convert a type document of MonkeyType 23.3.0's JSON encoding to a :class:`TypeRef`.

    ``typing`` aliases become the classes typetrace names (``typing.List[int]`` becomes
    ``builtins.list[builtins.int]``), ``builtins.NoneType`` becomes ``None``, and
    ``typing.Union`` a union. MonkeyType gives ``Any`` element types only to empty
    containers, so a container whose arguments are all ``Any`` loses its arguments, as
    typetrace writes an empty container. A TypedDict becomes ``dict[str, V]`` with the
    union of its value types. Tuples longer than
    :data:`~typetrace.inference.MAX_TUPLE_LENGTH` become ``tuple[T, ...]``, as in
    typetrace's inference.

    Raises:
        ValueError: *document* is not a type document of that encoding.
    """
    if not isinstance(document, dict):
        raise ValueError(f"a type must be a JSON object, got {document!r}")
    unknown = set(document) - _MONKEYTYPE_KEYS
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)!r} in type {document!r}")
    module = document.get("module")
    qualname = document.get("qualname")
    if not isinstance(module, str) or not isinstance(qualname, str) or not qualname:
        raise ValueError(f"a type needs text 'module' and 'qualname', got {document!r}")
    elements = document.get("elem_types")
    if document.get("is_typed_dict"):
        return _typed_dict(elements, document)
    if elements is not None and not isinstance(elements, list):
        raise ValueError(f"'elem_types' must be a JSON array, got {elements!r}")
    args = tuple(convert_monkeytype_type(element) for element in elements or ())
    if module == "typing":
        return _typing_form(qualname, args, document)
    if module == "builtins" and qualname in _BUILTIN_RENAMES:
        if args:
            raise ValueError(f"builtins.{qualname} takes no element types: {document!r}")
        return _BUILTIN_RENAMES[qualname]
    if module == "builtins" and qualname.endswith("iterator"):
        return TypeRef("collections.abc", "Iterator")
    return _container(module, qualname, args)


def _typing_form(qualname: str, args: tuple[TypeRef, ...], document: dict[str, Any]) -> TypeRef:
    if qualname == "Any":
        return ANY
    if qualname in ("Union", "Optional"):
        if not args:
            raise ValueError(f"typing.{qualname} needs element types: {document!r}")
        return union(args + (NONE,) if qualname == "Optional" else args)
    if qualname == "Tuple":
        return _tuple(args)
    module, name = _TYPING_ORIGINS.get(qualname, ("typing", qualname))
    return _container(module, name, args)


def _container(module: str, qualname: str, args: tuple[TypeRef, ...]) -> TypeRef:
    if args and all(arg == ANY for arg in args):
        args = ()
    return TypeRef(module, qualname, args)


def _tuple(args: tuple[TypeRef, ...]) -> TypeRef:
    if args and args[-1] == TypeRef("builtins", "ellipsis"):
        if len(args) != 2:
            raise ValueError("a variadic tuple needs exactly one element type before '...'")
        return TypeRef("builtins", "tuple", (args[0], ELLIPSIS))
    if len(args) > MAX_TUPLE_LENGTH:
        return TypeRef("builtins", "tuple", (union(args), ELLIPSIS))
    return TypeRef("builtins", "tuple", args)


def _typed_dict(elements: object, document: dict[str, Any]) -> TypeRef:
    values = _typed_dict_values(elements, document)
    if not values:
        return TypeRef("builtins", "dict")
    return TypeRef("builtins", "dict", (TypeRef("builtins", "str"), union(values)))


def _typed_dict_values(elements: object, document: dict[str, Any]) -> list[TypeRef]:
    if not isinstance(elements, dict):
        raise ValueError(f"a TypedDict needs an 'elem_types' object: {document!r}")
    if (document.get("module"), document.get("qualname")) != _ANONYMOUS_TYPED_DICT:
        return [convert_monkeytype_type(value) for value in elements.values()]
    # MonkeyType records a dict with text keys as an anonymous TypedDict whose two
    # fields are TypedDicts of the required and of the optional keys.
    values: list[TypeRef] = []
    for part in ("required_fields", "optional_fields"):
        fields = elements.get(part)
        if not isinstance(fields, dict) or not fields.get("is_typed_dict"):
            raise ValueError(f"an anonymous TypedDict needs a TypedDict {part!r}: {document!r}")
        values.extend(_typed_dict_values(fields.get("elem_types"), fields))
    return values
