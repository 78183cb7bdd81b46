"""CallTrace as a value: equality, hashing, immutability and pickling."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from typetrace.tracing import CallTrace
from typetrace.typemodel import TypeRef

INT = TypeRef("builtins", "int")
STR = TypeRef("builtins", "str")


def make(call_count: int = 1) -> CallTrace:
    return CallTrace("pkg.mod", "C.m", {"self": TypeRef("pkg.mod", "C"), "x": INT}, STR, call_count=call_count)


def test_call_count_not_in_equality() -> None:
    """Traces that differ only in call_count are equal and hash alike."""
    assert make(1) == make(7)
    assert hash(make(1)) == hash(make(7))


def test_hash_stable_after_caching() -> None:
    """The cached hash equals the hash of a fresh, equal trace."""
    trace = make()
    first = hash(trace)
    assert hash(trace) == first
    assert hash(dataclasses.replace(trace, call_count=3)) == first


def test_arg_types_immutable() -> None:
    """arg_types cannot be changed after construction."""
    trace = make()
    with pytest.raises(TypeError, match="cannot be changed"):
        trace.arg_types["x"] = STR  # type: ignore[index]
    assert trace.arg_types["x"] == INT


def test_pickle_round_trip() -> None:
    """A pickled trace, hashed before, comes back equal, with the same count and hash."""
    trace = make(call_count=4)
    hash(trace)
    copy = pickle.loads(pickle.dumps(trace))
    assert copy == trace
    assert copy.call_count == 4
    assert hash(copy) == hash(trace)
    assert dict(copy.arg_types) == dict(trace.arg_types)


def test_hash_cache_not_a_field() -> None:
    """The hash cache stays out of the dataclass fields and asdict()."""
    trace = make()
    hash(trace)
    assert "_hash" not in dataclasses.asdict(trace)
    assert [field.name for field in dataclasses.fields(trace)] == [
        "module",
        "qualname",
        "arg_types",
        "return_type",
        "yield_type",
        "call_count",
        "send_type",
    ]


def test_type_ref_pickle_round_trip() -> None:
    """A hashed TypeRef pickles without its hash cache and comes back equal."""
    ref = TypeRef("builtins", "dict", (STR, TypeRef("builtins", "list", (INT,))))
    hash(ref)
    copy = pickle.loads(pickle.dumps(ref))
    assert copy == ref
    assert "_hash" not in copy.__dict__
    assert hash(copy) == hash(ref)
