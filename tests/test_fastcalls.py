"""Tests of typetrace._fastcalls, the C callbacks of the sys.monitoring backend.

Every test of the tracing_backend fixture also runs with these callbacks and with
Python callbacks only. The tests here check that the C callbacks are in use and that
both give the same traces. They also check how the C callbacks hand traces to a
failing sink, a signal handler and a store writer.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from types import FrameType
from typing import Any, Optional

import pytest
from support import PURE_PYTHON_BACKENDS, ListSink, SinkOnlyConfig

from typetrace.config import DefaultConfig, Sampling, override_config
from typetrace.db.sqlite import SQLiteStore
from typetrace.tracing import PURE_PYTHON_VARIABLE, CallTrace, TraceSession, active_session, trace

pytestmark = pytest.mark.skipif(sys.version_info < (3, 12), reason="the C callbacks are for sys.monitoring")

pure_python_forced = os.environ.get(PURE_PYTHON_VARIABLE) == "1"


def fast_callbacks_of(session: Optional[TraceSession]) -> Any:
    assert isinstance(session, TraceSession)
    return session._backend.fast_callbacks  # type: ignore[attr-defined]


def identity(value):  # type: ignore[no-untyped-def]
    return value


def test_c_callbacks_in_use() -> None:
    """Tracing on 3.12 and later runs the C callbacks, so the extension must be built."""
    if pure_python_forced:
        pytest.skip(f"{PURE_PYTHON_VARIABLE}=1 selects the Python callbacks")
    try:
        from typetrace import _fastcalls  # noqa: F401
    except ImportError as error:
        pytest.fail(
            f"typetrace._fastcalls did not build ({error}); install a C compiler and the Python "
            "headers, then reinstall typetrace"
        )
    sink = ListSink()
    with trace(SinkOnlyConfig(), sink=sink):
        for number in range(10):
            identity(number)
        callbacks = fast_callbacks_of(active_session())

    assert callbacks is not None
    # The first call fills the argument cache, and the second the trace cache.
    assert callbacks.fast_starts >= 9
    assert callbacks.fast_returns >= 8
    assert sum(trace.call_count for trace in sink.of("identity")) == 10


def sampled(value):  # type: ignore[no-untyped-def]
    return value


@pytest.mark.usefixtures("tracing_backend")
def test_always_recorded_function_takes_c_path() -> None:
    """With default sampling, the C callbacks record the functions whose calls are all
    recorded, and leave the sampled ones to the Python callbacks."""
    sink = ListSink()
    sampling = Sampling(first_calls=3, rate=0.0, always_record=(f"{__name__}:identity",))
    with trace(SinkOnlyConfig(sampling), sink=sink):
        for number in range(100):
            identity(number)
            sampled(number)
        callbacks = fast_callbacks_of(active_session())

    assert sum(trace.call_count for trace in sink.of("identity")) == 100
    assert sum(trace.call_count for trace in sink.of("sampled")) == 3
    if callbacks is not None:
        assert callbacks.fast_starts == 99
        assert callbacks.fast_returns >= 98


def test_no_c_callbacks_without_full_recording() -> None:
    with trace(SinkOnlyConfig(Sampling()), sink=ListSink()):
        callbacks = fast_callbacks_of(active_session())

    assert callbacks is None


def test_pure_python_variable_turns_c_callbacks_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PURE_PYTHON_VARIABLE, "1")
    sink = ListSink()
    with trace(SinkOnlyConfig(), sink=sink):
        for number in range(10):
            identity(number)
        callbacks = fast_callbacks_of(active_session())

    assert callbacks is None
    assert sum(trace.call_count for trace in sink.of("identity")) == 10


# The same program with the C callbacks and with Python callbacks only

PROGRAM = """
    import gc
    import os
    import sys
    import threading


    def plain(a, b):
        return a


    def optional(value):
        return value


    class Node:
        def __init__(self, value):
            self.value = value

        def me(self):
            return self

        def other(self):
            return Node(1)

        def either(self, flag):
            return self if flag else Node(2)

        @classmethod
        def make(cls):
            return cls(0)

        @staticmethod
        def static(value):
            return value


    class Leaf(Node):
        pass


    def alternate(number):
        return number if number % 2 else str(number)


    def recurse(depth):
        return 0 if depth == 0 else recurse(depth - 1) + 1


    def fails(number):
        if number % 3 == 0:
            raise ValueError(number)
        return number


    def generate(count):
        yield from range(count)


    async def awaitable(value):
        return value


    def run_coroutine(value):
        coroutine = awaitable(value)
        try:
            coroutine.send(None)
        except StopIteration as stop:
            return stop.value


    def packed(*args, **kwargs):
        return len(args)


    def first_item(items):
        return items[0]


    def captured(value):
        def inner():
            return value

        return inner()


    def keyword_only(a, *, b):
        return b


    def positional_only(a, /, b):
        return a


    def rebinds(value):
        value = str(value)
        return value


    def no_parameters():
        return 1.5


    def in_threads():
        def work():
            for number in range(300):
                plain(number, "x")

        threads = [threading.Thread(target=work) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


    def with_short_lived_classes():
        # A class that dies can leave its id to the next one.
        for number in range(40):
            temporary = type(f"Temporary{number % 3}", (), {})
            plain(temporary(), number)
            del temporary
            gc.collect()


    def main():
        node = Node(0)
        leaf = Leaf(0)
        for number in range(200):
            plain(number, number)
            plain("a", None)
            plain(True, 1.0)
            optional(None if number % 5 else number)
            node.me()
            leaf.me()
            node.other()
            node.either(number % 2)
            Node.make()
            Leaf.make()
            Node.static(number)
            alternate(number)
            try:
                fails(number)
            except ValueError:
                pass
            list(generate(number % 4))
            run_coroutine(number)
            packed(number, key=number)
            first_item([number] if number % 2 else ["x"])
            captured(number)
            keyword_only(1, b=number)
            positional_only(number, b="y")
            rebinds(number)
            no_parameters()
        recurse(50)
        in_threads()
        with_short_lived_classes()
        print("done")


    main()
"""


def program_environment(pure_python: bool) -> dict[str, str]:
    """Return this process's environment without typetrace's variables, for a
    program that traces with the Python callbacks only when *pure_python*."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("TYPETRACE")}
    env.pop("PYTHONPATH", None)
    if pure_python:
        env[PURE_PYTHON_VARIABLE] = "1"
    return env


def traced_calls(tmp_path: Path, pure_python: bool) -> collections.Counter[tuple[str, ...]]:
    """Run PROGRAM under ``typetrace run --all-calls`` and return the call counts of
    its traces, by function and types."""
    work = tmp_path / ("pure" if pure_python else "c")
    work.mkdir()
    (work / "program.py").write_text(textwrap.dedent(PROGRAM))
    env = program_environment(pure_python)
    db = work / "traces.sqlite3"

    result = subprocess.run(
        [sys.executable, "-m", "typetrace", "--db", str(db), "run", "--all-calls", "program.py"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "done\n"
    assert result.stderr == ""

    store = SQLiteStore.make_store(str(db))
    try:
        traces = [thunk.to_trace() for thunk in store.filter("program")]
    finally:
        store.close()

    counts: collections.Counter[tuple[str, ...]] = collections.Counter()
    for found in traces:
        key = (
            found.qualname,
            *sorted(f"{name}: {ref}" for name, ref in found.arg_types.items()),
            f"-> {found.return_type}",
            f"yields {found.yield_type}",
        )
        counts[key] += found.call_count
    return counts


@pytest.mark.skipif(pure_python_forced, reason=f"{PURE_PYTHON_VARIABLE}=1 selects the Python callbacks")
def test_same_traces_as_python_callbacks(tmp_path: Path) -> None:
    with_c = traced_calls(tmp_path, pure_python=False)
    python_only = traced_calls(tmp_path, pure_python=True)

    assert with_c == python_only

    def calls(qualname: str) -> int:
        return sum(count for key, count in with_c.items() if key[0] == qualname)

    # 600 calls from the main thread, 900 from the threads and 40 with classes.
    assert calls("plain") == 600 + 900 + 40
    assert calls("Node.me") == 400
    assert calls("Node.make") == 400
    assert calls("recurse") == 51
    temporary_types = {key[1] for key in with_c if key[0] == "plain" and "Temporary" in key[1]}
    assert temporary_types == {f"a: program.Temporary{number}" for number in range(3)}
    returns_of_me = {key[-2] for key in with_c if key[0] == "Node.me"}
    assert returns_of_me == {"-> typing.Self[program.Node]", "-> typing.Self[program.Leaf]"}


# Hand-over from the C callbacks


class FailingEveryThirdSink(ListSink):
    def __init__(self) -> None:
        super().__init__()
        self.attempts = 0

    def record(self, trace: CallTrace) -> None:
        self.attempts += 1
        if self.attempts % 3 == 0:
            raise ValueError("sink failed")
        super().record(trace)


@pytest.mark.usefixtures("tracing_backend")
def test_failing_sink_counted() -> None:
    sink = FailingEveryThirdSink()

    with trace(SinkOnlyConfig(), sink=sink) as stats:
        for number in range(300):
            identity(number)

    # The session's own call of trace() is not recorded; every call of identity is.
    assert sink.attempts == 300
    assert stats.errors == {"sink: ValueError": 100}
    assert stats.calls_recorded == 200
    assert sum(trace.call_count for trace in sink.of("identity")) == 200


class Deadline(Exception):
    pass


def on_signal(signum: int, frame: Optional[FrameType]) -> None:
    raise Deadline(f"signal {signum}")


class SignallingSink(ListSink):
    """A sink that raises SIGUSR1 when it gets the trace of the *at*-th call."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at = at
        self.calls = 0

    def record(self, trace: CallTrace) -> None:
        self.calls += 1
        if self.calls == self.at:
            signal.raise_signal(signal.SIGUSR1)
        super().record(trace)


@pytest.mark.usefixtures("tracing_backend")
def test_signal_handler_exception_reaches_program() -> None:
    previous = signal.signal(signal.SIGUSR1, on_signal)
    sink = SignallingSink(at=5)
    reached: list[int] = []
    try:
        with trace(SinkOnlyConfig(), sink=sink) as stats:
            for number in range(10):
                try:
                    identity(number)
                except Deadline:
                    reached.append(number)
            callbacks = fast_callbacks_of(active_session())
    finally:
        signal.signal(signal.SIGUSR1, previous)

    # The handler runs inside raise_signal(), before the sink keeps the trace, and its
    # exception leaves the fifth call at its return.
    assert reached == [4]
    assert stats.errors == {}
    assert sum(trace.call_count for trace in sink.of("identity")) == 9
    if callbacks is not None:
        assert callbacks.fast_returns >= 8


def config_with_store(db: Path) -> Any:
    return override_config(DefaultConfig(), db=str(db), all_calls=True)


@pytest.mark.usefixtures("tracing_backend")
def test_store_writer_gets_every_call(tmp_path: Path) -> None:
    db = tmp_path / "traces.sqlite3"
    with trace(config_with_store(db)):
        for number in range(20_000):
            identity(number)
            identity(str(number))
        callbacks = fast_callbacks_of(active_session())

    store = SQLiteStore.make_store(str(db))
    try:
        traces = [thunk.to_trace() for thunk in store.filter(__name__, "identity")]
    finally:
        store.close()
    counts = {str(found.return_type): found.call_count for found in traces}
    assert counts == {"int": 20_000, "str": 20_000}
    if callbacks is not None:
        # Most traces skip the writer's Python code.
        assert callbacks.inbox_appends > 30_000


FORKING_PROGRAM = """
    import os


    def work(value):
        return value


    for number in range(300):
        work(number)
    pid = os.fork()
    if pid == 0:
        for number in range(500):
            work(number)
        os._exit(0)
    os.waitpid(pid, 0)
    for number in range(200):
        work(number)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.usefixtures("tracing_backend")
def test_forked_child_calls_written(tmp_path: Path, tracing_backend: str) -> None:
    """A forked child's first recorded call restarts the session's threads, also when
    the C callbacks hand over its traces."""
    (tmp_path / "forking.py").write_text(textwrap.dedent(FORKING_PROGRAM))
    env = program_environment(tracing_backend in PURE_PYTHON_BACKENDS)
    db = tmp_path / "traces.sqlite3"
    result = subprocess.run(
        [sys.executable, "-m", "typetrace", "--db", str(db), "run", "--all-calls", "forking.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    store = SQLiteStore.make_store(str(db))
    try:
        traces = [thunk.to_trace() for thunk in store.filter("forking", "work")]
    finally:
        store.close()
    assert sum(found.call_count for found in traces) == 300 + 500 + 200


# The session stopped while the C callbacks run

SINK_STOPS_SESSION = """
    import typetrace
    from typetrace.config import DefaultConfig, Sampling
    from typetrace.tracing import active_session


    class AllCalls(DefaultConfig):
        def sampling(self):
            return Sampling(all_calls=True)


    class StoppingSink:
        def __init__(self):
            self.records = 0

        def record(self, trace):
            self.records += 1
            if self.records == 5:
                active_session().stop()


    def work(value):
        return value + 1


    sink = StoppingSink()
    with typetrace.trace(AllCalls(), sink=sink):
        for number in range(20):
            work(number)
    print("records", sink.records)
"""

THREADS_AT_EXIT = """
    import threading
    import time

    instances = [type(f"Class{number}", (), {})() for number in range(200)]


    def work(value):
        return value


    def loop():
        while True:
            for instance in instances:
                work(instance)


    for _ in range(3):
        threading.Thread(target=loop, daemon=True).start()
    time.sleep(0.3)
    print("main done")
"""


def run_program(tmp_path: Path, source: str, tracing_backend: str, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "program.py").write_text(textwrap.dedent(source))
    env = program_environment(tracing_backend in PURE_PYTHON_BACKENDS)
    return subprocess.run(
        [sys.executable, *args, "program.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.usefixtures("tracing_backend")
def test_sink_stopping_session_ends_cleanly(tmp_path: Path, tracing_backend: str) -> None:
    """A sink that stops the session from the C callbacks' hand-over, which ends the
    callbacks' registration while they run."""
    result = run_program(tmp_path, SINK_STOPS_SESSION, tracing_backend)

    assert result.returncode == 0, result.stderr
    assert result.stdout == "records 5\n"


@pytest.mark.usefixtures("tracing_backend")
def test_stop_with_threads_in_callbacks(tmp_path: Path, tracing_backend: str) -> None:
    """typetrace run stops the session at exit while daemon threads are inside the
    callbacks."""
    db = tmp_path / "traces.sqlite3"

    result = run_program(
        tmp_path, THREADS_AT_EXIT, tracing_backend, "-m", "typetrace", "--db", str(db), "run", "--all-calls"
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout == "main done\n"
    store = SQLiteStore.make_store(str(db))
    try:
        calls = sum(thunk.to_trace().call_count for thunk in store.filter("program", "work"))
    finally:
        store.close()
    assert calls > 0


class InterruptingSink(ListSink):
    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error

    def record(self, trace: CallTrace) -> None:
        if len(self.traces) == 4:
            self.traces.append(trace)
            raise self.error
        super().record(trace)


@pytest.mark.parametrize("error", [KeyboardInterrupt(), SystemExit(3)], ids=["KeyboardInterrupt", "SystemExit"])
@pytest.mark.usefixtures("tracing_backend")
def test_sink_base_exception_reaches_program(error: BaseException) -> None:
    """An exception of the sink that is not an Exception reaches the program, as it
    does from the Python callbacks."""
    sink = InterruptingSink(error)
    reached: list[int] = []

    with trace(SinkOnlyConfig(), sink=sink) as stats:
        for number in range(10):
            try:
                identity(number)
            except type(error):
                reached.append(number)

    assert reached == [4]
    assert stats.errors == {}


def test_sent_value_outside_resume_is_default() -> None:
    """sent_value() reads a frame's stack only at a RESUME after a yield expression,
    so offsets of other instructions, such as the YIELD_VALUE whose stack has a NULL
    under it, give the default."""
    import dis

    from typetrace._fastcalls import sent_value

    def calls_what_it_receives():  # type: ignore[no-untyped-def]
        (yield)()

    generator = calls_what_it_receives()
    next(generator)
    frame = generator.gi_frame
    default = object()

    offsets = [item.offset for item in dis.get_instructions(calls_what_it_receives)]
    values = [sent_value(frame, offset, default) for offset in offsets]

    assert values == [default] * len(values)
    generator.close()
