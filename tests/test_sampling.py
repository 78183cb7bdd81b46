"""Sampling: first calls, calls with new argument types, pausing and resuming, and
functions that are always recorded."""

from __future__ import annotations

import collections
from typing import Any, Callable, Optional

import pytest
from support import ListSink, SinkOnlyConfig

from typetrace.config import Sampling
from typetrace.exceptions import ConfigError
from typetrace.tracing import TraceSession, _start_session
from typetrace.typemodel import TypeRef

INT = TypeRef("builtins", "int")
STR = TypeRef("builtins", "str")
MODULE = __name__

pytestmark = pytest.mark.usefixtures("tracing_backend")



def record(body: Callable[[TraceSession], object], sampling: Optional[Sampling] = None) -> ListSink:
    sink = ListSink()
    session = _start_session(SinkOnlyConfig(sampling or Sampling()), sink, None, False)
    try:
        body(session)
    finally:
        session.stop()
    return sink


def identity(value):  # type: ignore[no-untyped-def]
    return value


def pair(first, second):  # type: ignore[no-untyped-def]
    return first


def call_with_ints(count: int) -> None:
    for index in range(count):
        identity(index)


def call_with_strs(count: int) -> None:
    for _ in range(count):
        identity("text")


def test_rare_type_after_many_calls() -> None:
    """A function called 200,000 times with an int and then 10 times with a str, from
    code that has not run before, is recorded with both types by default."""

    def body(session: TraceSession) -> None:
        call_with_ints(200_000)
        call_with_strs(10)

    sink = record(body)

    assert sink.arg_types("identity", "value") == {INT, STR}
    # The first 10 calls, a 1% sample of the watched ones, and at least one str call.
    recorded = len(sink.of("identity"))
    assert 11 <= recorded < 200


def test_new_type_recorded_before_pause() -> None:
    """Any call whose argument types are new is recorded, whatever the rate."""

    def body(session: TraceSession) -> None:
        for index in range(5_000):
            pair(index, index)
            if index % 1_000 == 999:
                pair(index, str(index))

    sink = record(body, Sampling(first_calls=10, rate=0.0, pause_after=2_000))

    assert sink.arg_types("pair", "second") == {INT, STR}
    assert len(sink.of("pair")) == 11


def test_interleaved_types_without_pause() -> None:
    """With pause_after=None every new argument type is found, however late."""

    def body(session: TraceSession) -> None:
        for index in range(50_000):
            identity("late" if index == 49_999 else index)

    sink = record(body, Sampling(first_calls=1, rate=0.0, pause_after=None))

    assert sink.arg_types("identity", "value") == {INT, STR}
    assert len(sink.of("identity")) == 2


def test_short_lived_classes_recorded() -> None:
    """A class made after another one died may take its id, and its instances are
    still recorded as a new argument type."""

    def body(session: TraceSession) -> None:
        for index in range(200):
            identity(collections.namedtuple(f"Short{index}", "field")(index))

    sink = record(body, Sampling(first_calls=1, rate=0.0, pause_after=None))

    assert len(sink.of("identity")) == 200
    assert len({trace.arg_types["value"] for trace in sink.of("identity")}) == 200


def test_new_types_off_samples_only() -> None:
    def body(session: TraceSession) -> None:
        call_with_ints(100)
        identity("text")

    sink = record(body, Sampling(first_calls=100, rate=0.0, new_types=False))

    assert sink.arg_types("identity", "value") == {INT}


def test_paused_function_is_not_watched(tracing_backend: str) -> None:
    """A paused function's calls are not counted. On 3.12+ they produce no events, and
    on 3.9 to 3.11 the C profile hook drops their events."""
    infos: list[Any] = []

    def body(session: TraceSession) -> None:
        call_with_ints(2_000)
        for _code, info in list(session._recorder.codes.values()):
            if info is not None and info.qualname == "identity":
                infos.append(info)
        info = infos[0]
        assert info.paused
        calls_when_paused = info.calls
        # The same caller as before: code that has not run before would resume it.
        call_with_ints(500)
        if tracing_backend in ("monitoring", "monitoring-python", "c-hook"):
            assert info.calls == calls_when_paused
        assert info.paused

    sink = record(body, Sampling(first_calls=10, rate=0.0, pause_after=1_000))

    assert len(sink.of("identity")) == 10


def test_resume_watches_again() -> None:
    """After resume_paused(), a paused function records new argument types again."""

    def body(session: TraceSession) -> None:
        call_with_ints(3_000)
        session._recorder.resume_paused()
        for _ in range(3):
            identity(b"bytes")

    sink = record(body, Sampling(first_calls=10, rate=0.0, pause_after=1_000, resume_calls=100))

    assert sink.arg_types("identity", "value") == {INT, TypeRef("builtins", "bytes")}
    assert len(sink.of("identity")) == 11


def test_always_record_overrides_sampling() -> None:
    def body(session: TraceSession) -> None:
        call_with_ints(3_000)
        for index in range(3_000):
            pair(index, index)

    sampling = Sampling(first_calls=0, rate=0.0, pause_after=100, always_record=(f"{MODULE}:identity",))
    sink = record(body, sampling)

    assert len(sink.of("identity")) == 3_000
    assert len(sink.of("pair")) == 1


def test_all_calls_records_everything() -> None:
    sink = record(lambda session: call_with_ints(20_000), Sampling(all_calls=True, pause_after=10))

    assert len(sink.of("identity")) == 20_000


@pytest.mark.parametrize(
    ("prefix", "funcname", "expected"),
    [
        ("shop", "shop.cart:total", True),
        ("shop", "shop:main", True),
        ("shop", "shopping:main", False),
        ("shop.cart:Cart", "shop.cart:Cart.add", True),
        ("shop.cart:Cart", "shop.cart:CartItem.add", False),
        ("shop.cart:", "shop.cart:total", True),
        ("shop.cart:total", "shop.cart:total", True),
    ],
)
def test_always_record_prefixes(prefix: str, funcname: str, expected: bool) -> None:
    assert Sampling(always_record=[prefix]).records_always(funcname) is expected


@pytest.mark.parametrize(
    "arguments",
    [
        {"rate": 1.5},
        {"first_calls": -1},
        {"pause_after": 0},
        {"resume_calls": 0},
        {"max_resume_interval": 0.0},
        {"always_record": "shop"},
    ],
)
def test_invalid_sampling_rejected(arguments: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        Sampling(**arguments)  # type: ignore[arg-type]
