"""Encoding of call traces as JSON rows: the format every trace store keeps.

JSON type format, version 1
===========================

A *type document* is a JSON object::

    {"module": "builtins", "qualname": "dict", "args": [<type>, <type>]}

``module`` and ``qualname`` name a class as ``cls.__module__`` and
``cls.__qualname__`` do. ``args``, the type arguments, is left out when empty. Some
names are reserved for special forms (see :mod:`typetrace.typemodel`):
``typing.Any``, ``builtins.None``, ``typing.Union`` (``args`` are the members) and
``builtins.Ellipsis`` (only as the last argument of ``builtins.tuple``).

Two optional keys carry what combining needs beyond the name. Writers leave them out
where they do not apply, and rows without them decode as before:

* ``bases``: the class's base classes, nearest first as in its MRO, each as an object
  with only ``module`` and ``qualname``, for example
  ``{"module": "pkg.shapes", "qualname": "Square", "bases": [{"module": "pkg.shapes",
  "qualname": "Shape"}]}``. Only bases that an annotation can name are listed, at
  most :data:`typetrace.inference.MAX_BASES`, and never ``builtins.object``.
* ``receiver``: ``true`` on a ``return_type`` whose value was the method's receiver,
  its first argument, or an instance of exactly that argument when the argument is a
  class. The rest of the document is the value's own type. Decoded, the type is
  ``typing.Self`` with that type as its argument (:func:`typetrace.typemodel.receiver`).

A ``builtins.dict`` document whose ``args`` are ``str`` and a value type may have a
``shape``, the keys of a dict whose keys were all observed (a ``TypedDict``), in the
order first seen::

    {"module": "builtins", "qualname": "dict",
     "args": [{"module": "builtins", "qualname": "str"}, <type>],
     "shape": [{"key": "id", "type": <type>},
               {"key": "note", "type": <type>, "required": false}]}

Each entry has the key (``key``, a string), the type of its value (``type``) and,
only when false, ``required``: whether every observed dict had the key. ``args``
still contains the union of the value types, so the document also reads as the
``dict[str, V]`` the shape degrades to.

A bare ``collections.abc.Callable`` document may have a ``function``, the Python
function that the value was (:class:`typetrace.typemodel.FunctionRef`)::

    {"module": "collections.abc", "qualname": "Callable",
     "function": {"module": "pkg.mod", "qualname": "Handler.run", "bound": true}}

``module`` and ``qualname`` name the function as ``function.__module__`` and
``function.__qualname__`` do (``<locals>`` included). ``bound``, written only when
true, marks a bound method, whose first parameter callers do not pass.
A ``Callable`` document with ``args`` lists the parameter types and then the return
type, with ``builtins.Ellipsis`` as the only parameter for ``Callable[..., R]``.

``shape`` and ``function`` were added to version 1 without a new version number.
Rows that have neither are encoded exactly as before, so stores keep aggregating them
with the rows that earlier releases wrote, and earlier releases read them. An earlier
release rejects a document with ``shape`` or ``function`` as having an unknown key: it
raises :class:`DecodeError` for that row only and never reads the row as something
else. A new version number would have made earlier releases reject every new row
instead.

A row (:class:`CallTraceRow`) contains four JSON texts:

* ``arg_types``: an object mapping each parameter name to a type document, for
  example ``{"x": {"module": "builtins", "qualname": "int"}}``.
* ``return_type``: a type document, or SQL ``NULL`` / Python ``None`` when the
  call raised or did not return.
* ``yield_type``: a type document, or ``None`` when the call did not yield.
* ``send_type``: a type document of the values that a generator received at its
  ``yield`` expressions, or ``None`` when none was recorded.

``send_type`` was added to version 1 without a new version number, as the last
field of the row. Rows without it are encoded as before. An earlier release does not
read it, so it reads a row that has one as the same trace without a send type.

Every row carries ``format_version``; this module writes :data:`FORMAT_VERSION` and
reads versions up to it. Readers reject type documents with keys they do not know
instead of guessing, so a typetrace release from before ``bases`` and ``receiver``
skips the rows that use them, each with a :class:`DecodeError`, and reads the rest.
A change that such a reader would decode to a different type needs a new version.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Mapping, Optional

from typetrace.tracing import CallTrace
from typetrace.typemodel import CALLABLE, FunctionRef, ShapeKey, TypeRef, receiver

__all__ = [
    "FORMAT_VERSION",
    "CallTraceRow",
    "DecodeError",
    "serialize_traces",
    "type_from_json",
    "type_to_json",
]

logger = logging.getLogger(__name__)

#: Version of the JSON type format that this module writes.
FORMAT_VERSION = 1

_STR = TypeRef("builtins", "str")


class DecodeError(ValueError):
    """A stored row or type document is not valid in the JSON type format."""


def type_to_dict(ref: TypeRef) -> dict[str, Any]:
    """Convert *ref* to a type document."""
    if ref.is_receiver and len(ref.args) == 1:
        document = type_to_dict(ref.args[0])
        document["receiver"] = True
        return document
    document = {"module": ref.module, "qualname": ref.qualname}
    if ref.args:
        document["args"] = [type_to_dict(arg) for arg in ref.args]
    if ref.bases:
        document["bases"] = [
            {"module": base.module, "qualname": base.qualname} for base in ref.bases
        ]
    if ref.shape:
        document["shape"] = [_shape_key_to_dict(key) for key in ref.shape]
    if ref.function is not None:
        document["function"] = _function_to_dict(ref.function)
    return document


def _function_to_dict(function: FunctionRef) -> dict[str, Any]:
    entry: dict[str, Any] = {"module": function.module, "qualname": function.qualname}
    if function.bound:
        entry["bound"] = True
    return entry


def _shape_key_to_dict(key: ShapeKey) -> dict[str, Any]:
    entry: dict[str, Any] = {"key": key.name, "type": type_to_dict(key.value)}
    if not key.required:
        entry["required"] = False
    return entry


def type_from_dict(document: object) -> TypeRef:
    """Convert a type document back to a :class:`TypeRef`.

    Raises:
        DecodeError: *document* is not a valid type document.
    """
    if not isinstance(document, dict):
        raise DecodeError(f"a type document must be a JSON object, got {document!r}")
    unknown = set(document) - _TYPE_DOCUMENT_KEYS
    if unknown:
        raise DecodeError(f"unknown keys {sorted(unknown)!r} in type document {document!r}")
    module, qualname = _name_from_dict(document)
    args = document.get("args", [])
    if not isinstance(args, list):
        raise DecodeError(f"'args' must be a JSON array, got {args!r}")
    bases = document.get("bases", [])
    if not isinstance(bases, list):
        raise DecodeError(f"'bases' must be a JSON array, got {bases!r}")
    is_receiver = document.get("receiver", False)
    if not isinstance(is_receiver, bool):
        raise DecodeError(f"'receiver' must be true or false, got {is_receiver!r}")
    ref = TypeRef(
        module,
        qualname,
        tuple(type_from_dict(arg) for arg in args),
        bases=tuple(_base_from_dict(base) for base in bases),
    )
    if "shape" in document:
        ref = TypeRef(module, qualname, ref.args, _shape_from_list(ref, document["shape"]))
    if "function" in document:
        function = _function_from_dict(ref, document["function"])
        ref = TypeRef(module, qualname, ref.args, bases=ref.bases, function=function)
    return receiver(ref) if is_receiver else ref


_TYPE_DOCUMENT_KEYS = frozenset(
    {"module", "qualname", "args", "bases", "receiver", "shape", "function"}
)


def _name_from_dict(document: dict[str, Any]) -> tuple[str, str]:
    module = document.get("module")
    qualname = document.get("qualname")
    if not isinstance(module, str) or not isinstance(qualname, str) or not qualname:
        raise DecodeError(f"a type document needs string 'module' and 'qualname', got {document!r}")
    return module, qualname


def _base_from_dict(document: object) -> TypeRef:
    if not isinstance(document, dict) or set(document) != {"module", "qualname"}:
        raise DecodeError(
            f"a base class must be a JSON object with only 'module' and 'qualname', got {document!r}"
        )
    return TypeRef(*_name_from_dict(document))


def _function_from_dict(ref: TypeRef, document: object) -> FunctionRef:
    if ref != CALLABLE:
        raise DecodeError(f"'function' is only valid on a bare collections.abc.Callable, got {ref}")
    if not isinstance(document, dict) or set(document) - {"module", "qualname", "bound"}:
        raise DecodeError(
            f"'function' must be an object with 'module', 'qualname' and 'bound', got {document!r}"
        )
    module, qualname = _name_from_dict(document)
    bound = document.get("bound", False)
    if not isinstance(bound, bool):
        raise DecodeError(f"'bound' of a function must be true or false, got {bound!r}")
    return FunctionRef(module, qualname, bound)


def _shape_from_list(ref: TypeRef, entries: object) -> tuple[ShapeKey, ...]:
    if (ref.module, ref.qualname) != ("builtins", "dict") or len(ref.args) != 2 or ref.args[0] != _STR:
        raise DecodeError(f"'shape' is only valid on builtins.dict with str keys, got {ref}")
    if not isinstance(entries, list) or not entries:
        raise DecodeError(f"'shape' must be a non-empty JSON array, got {entries!r}")
    keys = []
    for entry in entries:
        if not isinstance(entry, dict) or set(entry) - {"key", "type", "required"}:
            raise DecodeError(
                f"a shape entry must be an object with 'key', 'type' and 'required', got {entry!r}"
            )
        name = entry.get("key")
        required = entry.get("required", True)
        if not isinstance(name, str) or not isinstance(required, bool):
            raise DecodeError(f"a shape entry needs a string 'key' and a boolean 'required', got {entry!r}")
        keys.append(ShapeKey(name, type_from_dict(entry.get("type")), required))
    if len({key.name for key in keys}) != len(keys):
        raise DecodeError(f"a shape names a key twice: {entries!r}")
    return tuple(keys)


def type_to_json(ref: TypeRef) -> str:
    """Encode *ref* as JSON text."""
    return _sorted_document_text(ref)


# A store encodes every new trace it is given, and type references repeat across
# traces, so the texts of recent ones are cached. The caches are keyed by the id of
# the reference, not by equality, because equal references can differ in their bases,
# which the text includes. Each entry keeps its reference, so the id is not reused.
_MAX_CACHED_TEXTS = 4096
_sorted_texts: dict[int, tuple[TypeRef, str]] = {}
_texts: dict[int, tuple[TypeRef, str]] = {}


def _cached_text(cache: dict[int, tuple[TypeRef, str]], ref: TypeRef, sort_keys: bool) -> str:
    entry = cache.get(id(ref))
    if entry is not None and entry[0] is ref:
        return entry[1]
    text = json.dumps(type_to_dict(ref), sort_keys=sort_keys, separators=(",", ":"))
    if len(cache) >= _MAX_CACHED_TEXTS:
        cache.clear()
    cache[id(ref)] = (ref, text)
    return text


def _sorted_document_text(ref: TypeRef) -> str:
    return _cached_text(_sorted_texts, ref, sort_keys=True)


def _document_text(ref: TypeRef) -> str:
    return _cached_text(_texts, ref, sort_keys=False)


def type_from_json(text: str) -> TypeRef:
    """Decode JSON text written by :func:`type_to_json`.

    Raises:
        DecodeError: *text* is not JSON, or not a valid type document.
    """
    return type_from_dict(_load_json(text))


def arg_types_to_json(arg_types: Mapping[str, TypeRef]) -> str:
    """Encode a parameter-name-to-type mapping as JSON text, parameters in call order."""
    # The same text as json.dumps() of the whole mapping with these separators, which
    # encodes each key and value on its own.
    members = [f"{json.dumps(name)}:{_document_text(ref)}" for name, ref in arg_types.items()]
    return "{" + ",".join(members) + "}"


def arg_types_from_json(text: str) -> dict[str, TypeRef]:
    """Decode JSON text written by :func:`arg_types_to_json`.

    Raises:
        DecodeError: *text* is not a JSON object of type documents.
    """
    document = _load_json(text)
    if not isinstance(document, dict):
        raise DecodeError(f"arg_types must be a JSON object, got {text!r}")
    return {name: type_from_dict(value) for name, value in document.items()}


def _load_json(text: object) -> object:
    if not isinstance(text, (str, bytes)):
        raise DecodeError(f"expected JSON text, got {text!r}")
    try:
        return json.loads(text)
    except ValueError as error:
        raise DecodeError(f"invalid JSON {text!r}: {error}") from error


@dataclass(frozen=True)
class CallTraceRow:
    """A call trace in stored form: names as text, types as JSON text.

    Stores keep these fields as they are and return them through :meth:`to_trace`,
    which is where decoding, and so any decoding error, happens.
    """

    #: Module of the traced function.
    module: str
    #: Qualified name of the traced function.
    qualname: str
    #: JSON object of parameter name to type document.
    arg_types: str
    #: JSON type document of the return type, or ``None``.
    return_type: Optional[str]
    #: JSON type document of the yield type, or ``None``.
    yield_type: Optional[str]
    #: Version of the JSON type format of the JSON fields.
    format_version: int = FORMAT_VERSION
    #: Number of calls the row stands for, when the store aggregates.
    call_count: int = 1
    #: JSON type document of the send type, or ``None``.
    send_type: Optional[str] = None

    @classmethod
    def from_trace(cls, trace: CallTrace) -> CallTraceRow:
        """Encode *trace*."""
        return cls(
            module=trace.module,
            qualname=trace.qualname,
            arg_types=arg_types_to_json(trace.arg_types),
            return_type=None if trace.return_type is None else type_to_json(trace.return_type),
            yield_type=None if trace.yield_type is None else type_to_json(trace.yield_type),
            call_count=trace.call_count,
            send_type=None if trace.send_type is None else type_to_json(trace.send_type),
        )

    def to_trace(self) -> CallTrace:
        """Decode this row.

        Raises:
            DecodeError: a JSON field is invalid, or the row was written by a newer
                format version than this release reads.
        """
        if not isinstance(self.format_version, int) or not 1 <= self.format_version <= FORMAT_VERSION:
            raise DecodeError(
                f"row of {self.module}:{self.qualname} has format version {self.format_version!r}, "
                f"but this typetrace reads versions 1 to {FORMAT_VERSION}; upgrade typetrace"
            )
        return CallTrace(
            module=self.module,
            qualname=self.qualname,
            arg_types=arg_types_from_json(self.arg_types),
            return_type=None if self.return_type is None else type_from_json(self.return_type),
            yield_type=None if self.yield_type is None else type_from_json(self.yield_type),
            call_count=self.call_count,
            send_type=None if self.send_type is None else type_from_json(self.send_type),
        )


def serialize_traces(traces: Iterable[CallTrace]) -> Iterator[CallTraceRow]:
    """Encode *traces*, logging and skipping any trace that fails to encode."""
    for trace in traces:
        try:
            yield CallTraceRow.from_trace(trace)
        except Exception:
            logger.exception("Failed to serialize trace %r; skipping it", trace)
