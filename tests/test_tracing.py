"""Tests of typetrace.tracing: the tracer on real code, on each supported Python."""

from __future__ import annotations

import _thread
import asyncio
import gc
import json
import os
import random
import runpy
import sys
import textwrap
import threading
import time
import weakref
from pathlib import Path
from typing import Any, Callable, Optional

import pytest
from support import PURE_PYTHON_BACKENDS, ListSink, SinkOnlyConfig

import typetrace.tracing
from typetrace.config import Sampling, default_code_filter
from typetrace.tracing import CallTrace, TracerError, TraceStats, trace
from typetrace.typemodel import NONE, TypeRef, receiver, union

INT = TypeRef("builtins", "int")
STR = TypeRef("builtins", "str")
FLOAT = TypeRef("builtins", "float")
BYTES = TypeRef("builtins", "bytes")
BOOL = TypeRef("builtins", "bool")
MODULE = __name__

pytestmark = pytest.mark.usefixtures("tracing_backend")



def record(body: Callable[[], object], sampling: Optional[Sampling] = None) -> ListSink:
    sink = ListSink()
    with trace(SinkOnlyConfig(sampling), sink=sink):
        body()
    return sink


def args_of(trace: CallTrace) -> dict[str, TypeRef]:
    return dict(trace.arg_types)


# Traced code


def positional(a, b=2.0):  # type: ignore[no-untyped-def]
    return a


def keyword_only(a, *, flag=False):  # type: ignore[no-untyped-def]
    return flag


def positional_only(a, /, b):  # type: ignore[no-untyped-def]
    return b


def star_args(first, *rest, **options):  # type: ignore[no-untyped-def]
    return None


def every_kind(a, /, b, *rest, c, d=None, **options):  # type: ignore[no-untyped-def]
    local = a
    return local


def constant():  # type: ignore[no-untyped-def]
    return "constant"


def implicit_none(value):  # type: ignore[no-untyped-def]
    value + 1


def raises(value):  # type: ignore[no-untyped-def]
    raise ValueError(value)


def captured(value):  # type: ignore[no-untyped-def]
    def read():  # type: ignore[no-untyped-def]
        return value

    return read()


class Shape:
    def __init__(self, side):  # type: ignore[no-untyped-def]
        self._side = side

    def area(self):  # type: ignore[no-untyped-def]
        return self._side * self._side

    @classmethod
    def unit(cls):  # type: ignore[no-untyped-def]
        return cls(1)

    @staticmethod
    def describe(name):  # type: ignore[no-untyped-def]
        return len(name)

    @property
    def side(self):  # type: ignore[no-untyped-def]
        return self._side

    @side.setter
    def side(self, value):  # type: ignore[no-untyped-def]
        self._side = value

    @side.deleter
    def side(self):  # type: ignore[no-untyped-def]
        self._side = 0

    class Nested:
        def method(self, x):  # type: ignore[no-untyped-def]
            return str(x)


def outer(x):  # type: ignore[no-untyped-def]
    def inner(y):  # type: ignore[no-untyped-def]
        return [y]

    class Local:
        def method(self):  # type: ignore[no-untyped-def]
            return b""

    Local().method()
    return inner(x)


def count_up(limit):  # type: ignore[no-untyped-def]
    for i in range(limit):
        yield i
    return "finished"


def yield_mixed():  # type: ignore[no-untyped-def]
    yield 1
    yield None
    yield "s"


def delegating():  # type: ignore[no-untyped-def]
    result = yield from count_up(2)
    return len(result)


def suspends_in_try():  # type: ignore[no-untyped-def]
    try:
        yield 1
        yield 2
    finally:
        pass


def yields_none_then_stops():  # type: ignore[no-untyped-def]
    yield None
    yield None


async def fetch(value):  # type: ignore[no-untyped-def]
    await asyncio.sleep(0)
    future = asyncio.get_running_loop().create_future()
    future.set_result(value)
    await future
    return value * 2


async def stream(count):  # type: ignore[no-untyped-def]
    for i in range(count):
        await asyncio.sleep(0)
        yield i
    await asyncio.sleep(0)
    yield "end"


async def consume_stream():  # type: ignore[no-untyped-def]
    return [item async for item in stream(2)]


def running_total():  # type: ignore[no-untyped-def]
    total = 0
    while True:
        value = yield total
        total += value


def upper_echo():  # type: ignore[no-untyped-def]
    received = yield "ready"
    while received is not None:
        received = yield received.upper()
    return 0


def delegating_echo():  # type: ignore[no-untyped-def]
    result = yield from upper_echo()
    return result


def survives_throw():  # type: ignore[no-untyped-def]
    while True:
        try:
            yield (yield 1)
        except KeyError:
            pass


async def accumulate():  # type: ignore[no-untyped-def]
    items = []
    while True:
        await asyncio.sleep(0)
        item = yield len(items)
        items.append(item)


async def send_to_accumulate():  # type: ignore[no-untyped-def]
    generator = accumulate()
    await generator.__anext__()
    await generator.asend("a")
    await generator.asend(b"b")
    await generator.aclose()


def consume_iterator(items):  # type: ignore[no-untyped-def]
    return None


def in_thread(value):  # type: ignore[no-untyped-def]
    return value


def first_called_in_two_threads(value, delay):  # type: ignore[no-untyped-def]
    time.sleep(delay)
    return value


def use_stdlib(data):  # type: ignore[no-untyped-def]
    return json.dumps(data) + textwrap.dedent("  x")


def sampled(value):  # type: ignore[no-untyped-def]
    return value


class Opaque:
    pass


def takes_opaque(value):  # type: ignore[no-untyped-def]
    return None


# Arguments


def test_positional_and_default_arguments() -> None:
    sink = record(lambda: (positional(1), positional("a", b=3)))

    first, second = sink.of("positional")
    assert args_of(first) == {"a": INT, "b": FLOAT}
    assert first.return_type == INT
    assert args_of(second) == {"a": STR, "b": INT}


def test_keyword_only_arguments() -> None:
    sink = record(lambda: keyword_only(1, flag=True))

    assert args_of(sink.one("keyword_only")) == {"a": INT, "flag": BOOL}


def test_positional_only_arguments() -> None:
    sink = record(lambda: positional_only(1, b="x"))

    assert args_of(sink.one("positional_only")) == {"a": INT, "b": STR}


def test_star_args_record_element_types() -> None:
    sink = record(lambda: star_args(1, 2.0, "s", key=b"", other=1))

    assert args_of(sink.one("star_args")) == {
        "first": INT,
        "rest": union([FLOAT, STR]),
        "options": union([BYTES, INT]),
    }


def test_every_parameter_kind() -> None:
    sink = record(lambda: every_kind(1, "b", 2.0, c=b"", extra=True))

    assert args_of(sink.one("every_kind")) == {
        "a": INT,
        "b": STR,
        "rest": FLOAT,
        "c": BYTES,
        "d": NONE,
        "options": BOOL,
    }


def test_empty_star_args_not_recorded() -> None:
    sink = record(lambda: star_args(1))

    assert args_of(sink.one("star_args")) == {"first": INT}


def test_argument_captured_by_closure() -> None:
    sink = record(lambda: captured(1))

    assert args_of(sink.one("captured")) == {"value": INT}
    assert sink.one("captured").return_type == INT
    assert sink.one("captured.<locals>.read").return_type == INT


# Returns


def test_constant_return_recorded() -> None:
    sink = record(constant)

    assert sink.one("constant").return_type == STR


def test_implicit_none_return_recorded() -> None:
    sink = record(lambda: implicit_none(1))

    assert sink.one("implicit_none").return_type == NONE


def test_raise_recorded_without_return_type() -> None:
    def body() -> None:
        with pytest.raises(ValueError):
            raises(1)

    found = record(body).one("raises")

    assert args_of(found) == {"value": INT}
    assert found.return_type is None
    assert found.yield_type is None


def test_module_and_funcname() -> None:
    found = record(constant).one("constant")

    assert found.module == MODULE
    assert found.funcname == f"{MODULE}:constant"


# Qualified names


def test_methods_record_self_and_cls() -> None:
    shape_type = TypeRef(MODULE, "Shape")

    def body() -> None:
        shape = Shape.unit()
        shape.area()
        Shape.describe("square")

    sink = record(body)

    assert args_of(sink.one("Shape.unit")) == {"cls": TypeRef("builtins", "type", (shape_type,))}
    # An instance of exactly cls, which the trace marks as the receiver's.
    assert sink.one("Shape.unit").return_type == receiver(shape_type)
    assert args_of(sink.one("Shape.__init__")) == {"self": shape_type, "side": INT}
    assert sink.one("Shape.area").return_type == INT
    assert args_of(sink.one("Shape.describe")) == {"name": STR}


def test_property_getter_and_setter() -> None:
    def body() -> None:
        shape = Shape(2)
        shape.side = 3.0
        shape.side

    getter, setter = sorted(record(body).of("Shape.side"), key=lambda t: len(t.arg_types))

    assert args_of(getter) == {"self": TypeRef(MODULE, "Shape")}
    assert getter.return_type == FLOAT
    assert args_of(setter) == {"self": TypeRef(MODULE, "Shape"), "value": FLOAT}
    assert setter.return_type == NONE


def test_property_deleter_not_recorded() -> None:
    """A deleter has the getter's qualified name, and its return of None would join
    the getter's return type, so its calls are not recorded."""

    def body() -> None:
        shape = Shape(2)
        shape.side
        del shape.side
        shape.side

    traces = record(body).of("Shape.side")

    assert {trace.return_type for trace in traces} == {INT}
    assert {tuple(trace.arg_types) for trace in traces} == {("self",)}


def test_nested_functions_and_classes() -> None:
    def body() -> None:
        outer(1)
        Shape.Nested().method(2)

    sink = record(body)

    assert sink.one("outer.<locals>.inner").return_type == TypeRef("builtins", "list", (INT,))
    assert sink.one("outer.<locals>.Local.method").return_type == BYTES
    assert args_of(sink.one("Shape.Nested.method")) == {"self": TypeRef(MODULE, "Shape.Nested"), "x": INT}


def test_lambdas_and_comprehensions_skipped() -> None:
    def body() -> None:
        square = lambda x: x * x  # noqa: E731
        [square(i) for i in range(3)]
        list(i for i in range(3))

    sink = record(body)

    assert all(not t.qualname.split(".")[-1].startswith("<") for t in sink.traces)
    assert [t.qualname for t in sink.traces] == ["test_lambdas_and_comprehensions_skipped.<locals>.body"]


# Generators


def test_calls_of_five_forms_reuse_traces() -> None:
    values = [[1], ["a"], [1.5], (1,), ("a",)] * 3
    found = record(lambda: [positional(value) for value in values]).of("positional")

    assert len(found) == 15
    assert len({id(trace) for trace in found}) == 5
    assert all(found[index] is found[index + 5] for index in range(10))


def test_generator_calls_with_equal_unions_share_trace() -> None:
    # Each call builds its own union of the yield types.
    found = record(lambda: [list(yield_mixed()) for _ in range(5)]).of("yield_mixed")

    assert len(found) == 5
    assert len({id(trace) for trace in found}) == 1


def test_generator_yield_and_return_types() -> None:
    found = record(lambda: list(count_up(3))).one("count_up")

    assert args_of(found) == {"limit": INT}
    assert found.yield_type == INT
    assert found.return_type == STR


def test_generator_yields_none_among_values() -> None:
    found = record(lambda: list(yield_mixed())).one("yield_mixed")

    assert found.yield_type == union([INT, STR, NONE])
    assert found.return_type == NONE


def test_delegating_generator() -> None:
    found = record(lambda: list(delegating())).one("delegating")

    assert found.yield_type == INT
    assert found.return_type == INT


def test_generator_closed_early() -> None:
    sink = ListSink()
    with trace(SinkOnlyConfig(), sink=sink):
        explicit = suspends_in_try()
        next(explicit)
        explicit.close()
        # Recorded at once, because closing runs the generator's finally block.
        assert len(sink.of("suspends_in_try")) == 1
        for _ in count_up(10):
            break
        if sys.version_info < (3, 13):
            assert len(sink.of("count_up")) == 1
        # Python 3.13 closes a generator suspended outside any try block without an
        # event, so count_up is recorded when tracing stops.

    for qualname in ("count_up", "suspends_in_try"):
        found = sink.one(qualname)
        assert found.yield_type == INT, qualname
        assert found.return_type is None, qualname


def test_generator_closed_after_yielding_none() -> None:
    def body() -> None:
        for _ in yields_none_then_stops():
            break

    found = record(body).one("yields_none_then_stops")

    assert found.yield_type == NONE
    assert found.return_type is None


def test_generator_thrown_into() -> None:
    def body() -> None:
        generator = count_up(5)
        next(generator)
        with pytest.raises(KeyError):
            generator.throw(KeyError("stop"))

    found = record(body).one("count_up")

    assert found.yield_type == INT
    assert found.return_type is None


def reads_sends(backend: str) -> bool:
    """Whether the backend reads the values that generators receive: only C can."""
    return backend not in PURE_PYTHON_BACKENDS


def test_generator_send_types(tracing_backend: str) -> None:
    def body() -> None:
        generator = running_total()
        next(generator)
        generator.send(1)
        generator.send(2.5)
        generator.close()

    found = record(body).one("running_total")

    assert found.yield_type == union([INT, FLOAT])
    # close() pushes None too, but no None was sent.
    assert found.send_type == (union([INT, FLOAT]) if reads_sends(tracing_backend) else None)


def test_iterated_generator_receives_none(tracing_backend: str) -> None:
    found = record(lambda: list(count_up(3))).one("count_up")

    assert found.send_type == (NONE if reads_sends(tracing_backend) else None)


def test_close_at_first_yield_not_sent() -> None:
    def body() -> None:
        generator = running_total()
        next(generator)
        generator.close()

    assert record(body).one("running_total").send_type is None


def test_send_of_none_recorded(tracing_backend: str) -> None:
    def body() -> None:
        generator = upper_echo()
        next(generator)
        assert generator.send("a") == "A"
        with pytest.raises(StopIteration):
            generator.send(None)

    found = record(body).one("upper_echo")

    assert found.return_type == INT
    assert found.send_type == (union([STR, NONE]) if reads_sends(tracing_backend) else None)


def test_delegated_sends_belong_to_inner_generator(tracing_backend: str) -> None:
    def body() -> None:
        generator = delegating_echo()
        next(generator)
        generator.send("a")
        with pytest.raises(StopIteration):
            generator.send(None)

    sink = record(body)

    # What the outer generator receives at its "yield from" goes to upper_echo.
    assert sink.one("delegating_echo").send_type is None
    inner = sink.one("upper_echo").send_type
    assert inner == (union([STR, NONE]) if reads_sends(tracing_backend) else None)


def test_throw_caught_in_generator(tracing_backend: str) -> None:
    def body() -> None:
        generator = survives_throw()
        next(generator)
        generator.send("x")
        generator.throw(KeyError("k"))
        generator.send(2)
        generator.close()

    found = record(body).one("survives_throw")

    # 3.12's PY_THROW and 3.11's evaluation function tell throw() from send().
    tells_throws = sys.version_info >= (3, 12) or (
        sys.version_info >= (3, 11) and os.environ.get("TYPETRACE_PROFILE_HOOK") != "1"
    )
    if not reads_sends(tracing_backend):
        assert found.send_type is None
    elif tells_throws:
        assert found.send_type == union([STR, INT])
    else:
        # throw() pushes None where send() pushes its value, and a profile function
        # cannot tell them apart, so a caught exception counts as a send of None.
        assert found.send_type == union([STR, INT, NONE])


# After the first sends, only values of a new class get their type inferred. After
# 1,000 yields, the backend of 3.12 and later stops watching the code's yields.
@pytest.mark.parametrize(("sends_before", "sends_after"), [(200, 200), (1001, 0)])
def test_late_send_of_new_class(tracing_backend: str, sends_before: int, sends_after: int) -> None:
    def body() -> None:
        generator = running_total()
        next(generator)
        for number in range(sends_before):
            generator.send(number)
        generator.send(0.5)
        for number in range(sends_after):
            generator.send(number)
        generator.close()

    found = record(body).one("running_total")

    assert found.send_type == (union([INT, FLOAT]) if reads_sends(tracing_backend) else None)


def test_async_generator_send_types(tracing_backend: str) -> None:
    found = record(lambda: asyncio.run(send_to_accumulate())).one("accumulate")

    assert found.yield_type == INT
    # The values that the event loop passes at each await are not sends.
    expected = union([STR, BYTES]) if reads_sends(tracing_backend) else None
    assert found.send_type == expected


def test_suspended_generator_recorded_at_stop() -> None:
    sink = ListSink()
    with trace(SinkOnlyConfig(), sink=sink):
        generator = count_up(5)
        next(generator)
        assert sink.of("count_up") == []
    found = sink.one("count_up")

    assert found.yield_type == INT
    assert found.return_type is None
    assert list(generator) == [1, 2, 3, 4]


def test_long_generator_records_yield_and_return_types() -> None:
    sink = ListSink()
    with trace(SinkOnlyConfig(), sink=sink):
        assert sum(count_up(5_000)) == sum(range(5_000))
        if sys.version_info >= (3, 12):
            # Past its first yields, the generator's events are turned off.
            session = typetrace.tracing._active_session
            assert session is not None
            infos = [entry[1] for entry in session._recorder.codes.values() if entry[1] is not None]
            assert [info.quiet_yields for info in infos if info.qualname == "count_up"] == [True]
        assert list(count_up(3)) == [0, 1, 2]

    first, second = sink.of("count_up")
    assert first.yield_type == INT
    assert first.return_type == STR
    assert args_of(second) == {"limit": INT}
    assert second.return_type == STR


# Coroutines


def test_coroutine_records_awaited_result() -> None:
    found = record(lambda: asyncio.run(fetch(21))).one("fetch")

    assert args_of(found) == {"value": INT}
    assert found.return_type == INT
    assert found.yield_type is None


async def awaits_often(value):  # type: ignore[no-untyped-def]
    for _ in range(2_000):
        await asyncio.sleep(0)
    return str(value)


async def await_many():  # type: ignore[no-untyped-def]
    first = await awaits_often(1)
    rest = await asyncio.gather(*(fetch(index) for index in range(20)))
    return [first, *rest]


def test_coroutines_record_results_after_many_awaits() -> None:
    sink = record(lambda: asyncio.run(await_many()))

    found = sink.one("awaits_often")
    assert args_of(found) == {"value": INT}
    assert found.return_type == STR
    assert found.yield_type is None
    fetched = sink.of("fetch")
    assert len(fetched) == 20
    assert {trace.return_type for trace in fetched} == {INT}


async def sleeps_forever(value):  # type: ignore[no-untyped-def]
    await asyncio.sleep(3600)


async def cancel_sleeper():  # type: ignore[no-untyped-def]
    task = asyncio.ensure_future(sleeps_forever(1))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_cancelled_coroutine_recorded() -> None:
    sink = ListSink()
    with trace(SinkOnlyConfig(), sink=sink):
        asyncio.run(cancel_sleeper())
        if sys.version_info >= (3, 11):
            assert len(sink.of("sleeps_forever")) == 1
        # On 3.9 and 3.10 the CancelledError that asyncio keeps references the frame,
        # so the call is recorded once that error is gone, here when tracing stops.
    found = sink.one("sleeps_forever")

    assert args_of(found) == {"value": INT}
    assert found.return_type is None
    assert found.yield_type is None


def test_async_generator_records_yields_not_awaits() -> None:
    sink = record(lambda: asyncio.run(consume_stream()))

    found = sink.one("stream")
    assert args_of(found) == {"count": INT}
    assert found.yield_type == union([INT, STR])
    assert found.return_type == NONE
    assert sink.one("consume_stream").return_type == TypeRef("builtins", "list", (union([INT, STR]),))


# Threads, filter, sampling


def test_thread_started_inside_block() -> None:
    def body() -> None:
        thread = threading.Thread(target=in_thread, args=(b"x",))
        thread.start()
        thread.join()

    found = record(body).one("in_thread")

    assert args_of(found) == {"value": BYTES}
    assert found.return_type == BYTES


def test_thread_started_before_tracing(tracing_backend: str) -> None:
    started = threading.Event()
    go = threading.Event()

    def wait_then_call() -> None:
        started.set()
        go.wait(10)
        in_thread(1.5)

    thread = threading.Thread(target=wait_then_call)
    thread.start()
    started.wait(10)
    sink = ListSink()
    with trace(SinkOnlyConfig(), sink=sink):
        go.set()
        thread.join(10)

    if tracing_backend == "pure-python":
        # threading.setprofile() reaches only threads started after it.
        assert sink.of("in_thread") == []
    else:
        found = sink.one("in_thread")
        assert args_of(found) == {"value": FLOAT}
        assert found.return_type == FLOAT


def test_thread_of_thread_module_recorded(tracing_backend: str) -> None:
    """A thread that _thread.start_new_thread() starts, which threading.setprofile()
    does not reach."""
    done = threading.Event()

    def call_then_signal(value: object) -> None:
        in_thread(value)
        done.set()

    def body() -> None:
        _thread.start_new_thread(call_then_signal, (2.5,))
        assert done.wait(10)

    sink = record(body)

    if tracing_backend == "pure-python":
        # A Python profile function reaches only the threads of the threading module.
        assert sink.of("in_thread") == []
    else:
        found = sink.one("in_thread")
        assert args_of(found) == {"value": FLOAT}
        assert found.return_type == FLOAT


def test_thread_keeps_removed_profile_function() -> None:
    """A thread whose program removed its profile function gets none again."""
    done = threading.Event()
    profiles: list[object] = []

    def remove_then_call() -> None:
        sys.setprofile(None)
        in_thread(1)
        profiles.append(sys.getprofile())
        done.set()

    def body() -> None:
        _thread.start_new_thread(remove_then_call, ())
        assert done.wait(10)

    record(body)

    assert profiles == [None]


def test_thread_started_after_tracing_untouched() -> None:
    done = threading.Event()
    profiles: list[object] = []

    def note_profile() -> None:
        in_thread(1)
        profiles.append(sys.getprofile())
        done.set()

    sink = record(lambda: None)
    _thread.start_new_thread(note_profile, ())

    assert done.wait(10)
    assert profiles == [None]
    assert sink.of("in_thread") == []


def test_thread_recorded_in_each_session(tracing_backend: str) -> None:
    """A thread that lives across sessions is traced in each of them, although the
    closed hook of a session stays its profile function until its next event."""
    go = threading.Semaphore(0)
    done = threading.Semaphore(0)

    def call_per_session() -> None:
        for _ in range(4):
            go.acquire()
            in_thread(1.5)
            done.release()

    _thread.start_new_thread(call_per_session, ())
    recorded = []
    for _ in range(4):
        sink = ListSink()
        with trace(SinkOnlyConfig(), sink=sink):
            go.release()
            assert done.acquire(timeout=10)
        recorded.append(len(sink.of("in_thread")))

    if tracing_backend == "pure-python":
        assert recorded == [0, 0, 0, 0]
    else:
        assert recorded == [1, 1, 1, 1]


def test_default_filter_skips_stdlib() -> None:
    sink = record(lambda: use_stdlib({"a": 1}))

    assert sink.one("use_stdlib").return_type == STR
    assert {t.module for t in sink.traces} == {MODULE}


def test_default_filter_accepts_tests_folder() -> None:
    assert default_code_filter(use_stdlib.__code__)
    assert not default_code_filter(json.dumps.__code__)


def test_sampling_all_calls() -> None:
    def body() -> None:
        for i in range(300):
            sampled(i)

    assert len(record(body, Sampling(all_calls=True, first_calls=0, rate=0.0)).of("sampled")) == 300


def test_sampling_first_calls_then_none() -> None:
    def body() -> None:
        for i in range(50):
            sampled(i)

    assert len(record(body, Sampling(first_calls=5, rate=0.0)).of("sampled")) == 5


def test_sampling_rate() -> None:
    def body() -> None:
        for i in range(2000):
            sampled(i)

    sampling = Sampling(first_calls=10, rate=0.5, pause_after=None)
    count = len(record(body, sampling).of("sampled"))

    # 10 + Binomial(1990, 0.5): mean 1005, standard deviation 22.
    assert 850 < count < 1160


def test_sampling_keeps_global_random_state() -> None:
    random.seed(1234)
    state = random.getstate()

    record(lambda: [sampled(i) for i in range(100)], Sampling(first_calls=1, rate=0.5))

    assert random.getstate() == state


# Safety


def test_hostile_argument_not_touched() -> None:
    class Hostile:
        def __eq__(self, other: object) -> bool:
            raise AssertionError("__eq__ called")

        def __hash__(self) -> int:
            raise AssertionError("__hash__ called")

        def __len__(self) -> int:
            raise AssertionError("__len__ called")

        def __getattr__(self, name: str) -> Any:
            raise AssertionError("__getattr__ called")

        @property  # type: ignore[misc]
        def __class__(self) -> type:
            raise AssertionError("__class__ called")

    sink = record(lambda: takes_opaque(Hostile()))

    assert sink.one("takes_opaque").arg_types["value"].qualname.endswith("Hostile")


def test_self_referencing_argument() -> None:
    looped: list[object] = []
    looped.append(looped)

    found = record(lambda: takes_opaque(looped)).one("takes_opaque")

    assert found.arg_types["value"].qualname == "list"


def test_iterator_argument_not_consumed() -> None:
    numbers = iter([1, 2, 3])

    sink = record(lambda: consume_iterator(numbers))

    assert sink.one("consume_iterator").arg_types["items"] == TypeRef("collections.abc", "Iterator")
    assert list(numbers) == [1, 2, 3]


def test_no_reference_kept_after_call() -> None:
    with trace(SinkOnlyConfig(), sink=ListSink()):
        value = Opaque()
        alive = weakref.ref(value)
        takes_opaque(value)
        del value
        gc.collect()
        assert alive() is None


def takes_two(first, second):  # type: ignore[no-untyped-def]
    return first


def test_argument_types_of_replaced_classes() -> None:
    # Each class dies before the next is made, so CPython often gives the new class
    # the memory, and so the id, of the old one. Types cached by class id must not
    # outlive their class.
    def call_with_new_classes() -> None:
        for number in range(40):
            cls = type(f"Short{number}", (), {"__module__": MODULE})
            takes_two(cls(), number)
            del cls
            gc.collect()

    sink = record(call_with_new_classes)

    names = [trace.arg_types["first"].qualname for trace in sink.of("takes_two")]
    assert names == [f"Short{number}" for number in range(40)]
    assert {trace.arg_types["second"] for trace in sink.of("takes_two")} == {INT}
    assert [trace.return_type.qualname for trace in sink.of("takes_two")] == names  # type: ignore[union-attr]


def test_argument_classes_with_new_contents() -> None:
    # Containers are typed by their elements, so the same argument classes do not
    # always give the same types.
    def call() -> None:
        takes_two([1], "a")
        takes_two(["a"], "a")
        takes_two([1], "a")
        takes_two(1, "a")
        takes_two(1, "a")

    sink = record(call)

    firsts = [str(trace.arg_types["first"]) for trace in sink.of("takes_two")]
    assert firsts == ["list[int]", "list[str]", "list[int]", "int", "int"]


def unusual_names(local_values, id, type, *, key_of="k"):  # type: ignore[no-untyped-def]  # noqa: A002
    return key_of


def test_parameters_named_like_key_internals() -> None:
    sink = record(lambda: [unusual_names(1.0, "x", b"y"), unusual_names(2.0, "x", b"y", key_of=None)])

    traces = sink.of("unusual_names")
    assert [args_of(trace) for trace in traces] == [
        {"local_values": FLOAT, "id": STR, "type": BYTES, "key_of": STR},
        {"local_values": FLOAT, "id": STR, "type": BYTES, "key_of": NONE},
    ]


def countdown(number):  # type: ignore[no-untyped-def]
    return 0 if number == 0 else countdown(number - 1)


def test_recursive_calls_each_recorded() -> None:
    # The open calls of one plain function with the same argument classes share one
    # Call object, which the recorder stores once for each frame.
    sink = record(lambda: countdown(50))

    traces = sink.of("countdown")
    assert len(traces) == 51
    assert {args_of(trace)["number"] for trace in traces} == {INT}
    assert {trace.return_type for trace in traces} == {INT}


def alternate(flag):  # type: ignore[no-untyped-def]
    return 1 if flag else "one"


def test_alternating_return_types_reuse_two_traces() -> None:
    sink = record(lambda: [alternate(number % 2 == 0) for number in range(10)])

    traces = sink.of("alternate")
    assert [trace.return_type for trace in traces] == [INT, STR] * 5
    assert len({id(trace) for trace in traces}) == 2


class Chain:
    def same(self):  # type: ignore[no-untyped-def]
        return self

    def fresh(self):  # type: ignore[no-untyped-def]
        return Chain()

    def either(self, flag):  # type: ignore[no-untyped-def]
        return self if flag else Chain()


def test_repeated_method_calls_mark_only_receiver() -> None:
    # The calls of each method share their argument types and trace, but whether the
    # return value is the receiver differs from call to call.
    def call() -> None:
        chain = Chain()
        for number in range(6):
            chain.same()
            chain.fresh()
            chain.either(number % 2 == 0)

    sink = record(call)

    chain_type = TypeRef(MODULE, "Chain")
    assert [trace.return_type for trace in sink.of("Chain.same")] == [receiver(chain_type)] * 6
    assert [trace.return_type for trace in sink.of("Chain.fresh")] == [chain_type] * 6
    assert [trace.return_type for trace in sink.of("Chain.either")] == [receiver(chain_type), chain_type] * 3


def test_failing_sink_counted_not_raised() -> None:
    class FailingSink:
        def record(self, trace: CallTrace) -> None:
            raise OSError("disk full")

    with trace(SinkOnlyConfig(), sink=FailingSink()) as stats:
        assert constant() == "constant"

    assert isinstance(stats, TraceStats)
    assert stats.errors == {"sink: OSError": 1}
    assert stats.calls_recorded == 0


def test_failing_code_filter_counted_not_raised() -> None:
    class FailingFilterConfig(SinkOnlyConfig):
        def code_filter(self) -> Callable[[Any], bool]:
            def reject(code: Any) -> bool:
                raise RuntimeError("filter failed")

            return reject

    sink = ListSink()
    with trace(FailingFilterConfig(), sink=sink) as stats:
        assert constant() == "constant"

    assert sink.traces == []
    assert list(stats.errors) == ["code filter: RuntimeError"]


def kept_alive(value):  # type: ignore[no-untyped-def]
    return value


def test_code_made_at_run_time_released(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The recorder drops its entries of code that only it still refers to, such as
    functions that exec() made and the program dropped, and keeps those of code that
    can still run."""
    import typetrace._recorder

    monkeypatch.setattr(typetrace._recorder, "_FIRST_CODE_SWEEP", 64)
    sink = ListSink()
    with trace(SinkOnlyConfig(), sink=sink):
        recorder = typetrace.tracing.active_session()._recorder  # type: ignore[union-attr]
        kept_alive(1)
        kept_info = recorder.codes[id(kept_alive.__code__)][1]
        baseline = len(recorder.codes)
        # A file that the default filter traces, unlike "<string>", and whose source
        # gives the qualified names on 3.9 and 3.10.
        source = "def made(value):\n    return value\n"
        filename = tmp_path / "made_at_run_time.py"
        filename.write_text(source)
        made_codes: list[weakref.ref[Any]] = []
        for number in range(1000):
            namespace: dict[str, Any] = {}
            exec(compile(source, str(filename), "exec"), namespace)  # noqa: S102
            namespace["made"](number)
            made_codes.append(weakref.ref(namespace["made"].__code__))
            # The function and its globals refer to each other.
            namespace.clear()
        kept_alive(2)
        entries = len(recorder.codes)
        # A CodeInfo and the Call that its argument cache keeps refer to each other.
        gc.collect()
        alive = sum(reference() is not None for reference in made_codes)

    # Each exec() adds two entries, for the module's code and the function's, so
    # 2,000 in all. After a drop, the next comes when the entries have doubled, and
    # the writer thread's code adds entries meanwhile too.
    assert entries < baseline + 400
    assert alive <= entries
    assert kept_info is not None
    # Each function's first call is recorded.
    assert [trace.qualname for trace in sink.traces].count("made") == 1000
    assert sink.arg_types("kept_alive", "value") == {TypeRef("builtins", "int")}


def test_code_dropped_by_threads_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Threads that make code at the same time, and so drop entries at the same time,
    cause no error in the tracer."""
    import typetrace._recorder

    monkeypatch.setattr(typetrace._recorder, "_FIRST_CODE_SWEEP", 16)
    # Switches threads often, inside the drops too.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)

    def make_code(prefix: str) -> None:
        for number in range(400):
            exec(f"def {prefix}_{number}():\n    pass\n\n{prefix}_{number}()\n", {})  # noqa: S102

    with trace(SinkOnlyConfig(), sink=ListSink()) as stats:
        threads = [threading.Thread(target=make_code, args=(f"made{index}",)) for index in range(4)]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                thread.join()
        finally:
            sys.setswitchinterval(interval)

    assert stats.errors == {}


def test_drop_keeps_code_of_live_function(monkeypatch: pytest.MonkeyPatch) -> None:
    """A function that stays alive keeps its code's entry, and so its sampling state,
    through the drops."""
    import typetrace._recorder

    monkeypatch.setattr(typetrace._recorder, "_FIRST_CODE_SWEEP", 64)
    with trace(SinkOnlyConfig(), sink=ListSink()):
        recorder = typetrace.tracing.active_session()._recorder  # type: ignore[union-attr]
        kept_alive(1)
        info = recorder.codes[id(kept_alive.__code__)][1]
        for number in range(500):
            exec(f"def made_{number}():\n    pass\n\nmade_{number}()\n", {})  # noqa: S102
        assert recorder.codes[id(kept_alive.__code__)][1] is info


def test_first_calls_in_two_threads_keep_returns() -> None:
    """Two threads that make the first call of a function at once both get a return
    type, whichever of them stores the function's info first."""
    entered: list[str] = []
    both_entered = threading.Event()

    class SlowFilterConfig(SinkOnlyConfig):
        def code_filter(self) -> Callable[[Any], bool]:
            def accept(code: Any) -> bool:
                if code.co_name != "first_called_in_two_threads":
                    return False
                name = threading.current_thread().name
                entered.append(name)
                if len(entered) == 2:
                    both_entered.set()
                both_entered.wait(5)
                # The first thread stores the info first, and its call returns last.
                if name == "second":
                    time.sleep(0.05)
                return True

            return accept

    sink = ListSink()
    with trace(SlowFilterConfig(), sink=sink):
        first = threading.Thread(target=first_called_in_two_threads, args=(1, 0.3), name="first")
        second = threading.Thread(target=first_called_in_two_threads, args=("s", 0), name="second")
        first.start()
        second.start()
        first.join()
        second.join()

    found = sink.of("first_called_in_two_threads")
    assert sorted(entered) == ["first", "second"]
    forms = {(trace.arg_types["value"], trace.return_type) for trace in found}
    assert forms == {(INT, INT), (STR, STR)}


# Sessions


def test_second_session_raises() -> None:
    with trace(SinkOnlyConfig(), sink=ListSink()):
        with pytest.raises(TracerError, match="already active"):
            with trace(SinkOnlyConfig(), sink=ListSink()):
                pass


def test_tracing_stops_when_block_raises() -> None:
    sink = ListSink()

    with pytest.raises(ZeroDivisionError):
        with trace(SinkOnlyConfig(), sink=sink):
            constant()
            1 / 0
    constant()

    assert len(sink.of("constant")) == 1
    if sys.version_info < (3, 12):
        assert sys.getprofile() is None
    else:
        assert all(sys.monitoring.get_tool(tool) != "typetrace" for tool in range(6))
    with trace(SinkOnlyConfig(), sink=sink):
        constant()
    assert len(sink.of("constant")) == 2


def test_rejected_code_traced_by_later_session() -> None:
    class OnlyConstant(SinkOnlyConfig):
        def code_filter(self) -> Callable[[Any], bool]:
            return lambda code: code.co_name == "constant"

    first = ListSink()
    with trace(OnlyConstant(), sink=first):
        constant()
        implicit_none(1)
    second = record(lambda: implicit_none(1))

    assert [t.qualname for t in first.traces] == ["constant"]
    assert second.one("implicit_none").return_type == NONE


def test_main_module_renames_script(tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text(
        textwrap.dedent(
            """
            class Point:
                pass

            def make(x):
                return Point()

            make(1)
            """
        )
    )
    sink = ListSink()

    with trace(SinkOnlyConfig(), sink=sink, main_module="script"):
        runpy.run_path(str(script), run_name="__main__")

    found = sink.one("make")
    assert found.module == "script"
    assert found.return_type == TypeRef("script", "Point")


def test_default_sink_writes_to_store(tmp_path: Path) -> None:
    from typetrace.config import DefaultConfig

    config = DefaultConfig(db=str(tmp_path / "traces.sqlite3"))

    with trace(config):
        constant()
        constant()

    store = config.trace_store()
    try:
        stored = [thunk.to_trace() for thunk in store.filter(MODULE, "constant")]
    finally:
        store.close()
    assert [t.return_type for t in stored] == [STR]
    assert [t.call_count for t in stored] == [2]


# Other sys.monitoring tools


@pytest.mark.skipif(sys.version_info < (3, 12), reason="sys.monitoring is new in Python 3.12")
def test_cprofile_runs_while_tracing() -> None:
    """cProfile, which claims sys.monitoring.PROFILER_ID, works in a traced program."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()

    def profiled() -> None:
        profiler.enable()
        positional(1)
        profiler.disable()

    sink = record(profiled)

    calls = {function[2]: counts[1] for function, counts in pstats.Stats(profiler).stats.items()}  # type: ignore[attr-defined]
    assert calls.get("positional") == 1
    assert args_of(sink.one("positional")) == {"a": INT, "b": FLOAT}


@pytest.mark.skipif(sys.version_info < (3, 12), reason="sys.monitoring is new in Python 3.12")
def test_other_monitoring_tool_keeps_id_and_events() -> None:
    """A sys.monitoring tool registered first keeps its tool id, its events and its
    callbacks while typetrace traces, and after."""
    monitoring = sys.monitoring  # type: ignore[attr-defined,unused-ignore]
    tool_id = monitoring.PROFILER_ID
    starts: list[str] = []

    def on_start(code: Any, offset: int) -> None:
        if code is positional.__code__:
            starts.append(code.co_name)

    monitoring.use_tool_id(tool_id, "other-tool")
    try:
        monitoring.register_callback(tool_id, monitoring.events.PY_START, on_start)
        monitoring.set_events(tool_id, monitoring.events.PY_START)

        sink = record(lambda: positional(1))
        positional(2)

        assert monitoring.get_tool(tool_id) == "other-tool"
        assert monitoring.get_events(tool_id) == monitoring.events.PY_START
        assert starts == ["positional", "positional"]
        assert args_of(sink.one("positional")) == {"a": INT, "b": FLOAT}
    finally:
        monitoring.set_events(tool_id, 0)
        monitoring.register_callback(tool_id, monitoring.events.PY_START, None)
        monitoring.free_tool_id(tool_id)
