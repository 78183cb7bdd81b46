"""Tests of the C fast path of calls with cached types (typetrace/_fastcalls.h).

On Python 3.9 to 3.11 the fast path runs in the profile hook, installed as the
profile function and on 3.11 also as the frame-evaluation function. On 3.12 and
later it runs in the sys.monitoring callbacks.

Each program is traced twice, with the fast path on and with
``TYPETRACE_NO_FAST_CALLS=1``, and both runs must hand the sink the same traces in
the same order and count the same calls and errors.
"""

from __future__ import annotations

import signal
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Callable, Iterator, Optional

import fastcall_scenarios as programs
import pytest
from fastcall_scenarios import SCENARIOS, Scenario
from support import ListSink, SinkOnlyConfig

from typetrace._profiling import HookBackend
from typetrace.config import Config, DefaultConfig, override_config
from typetrace.tracing import (
    NO_FAST_CALLS_VARIABLE,
    PURE_PYTHON_VARIABLE,
    CallTrace,
    TraceSession,
    TraceStats,
    _SessionSink,
    active_session,
    trace,
)
from typetrace.typemodel import TypeRef

PROFILE_HOOK_VARIABLE = "TYPETRACE_PROFILE_HOOK"

if sys.version_info >= (3, 12):
    C_BACKENDS = ["monitoring"]
elif sys.version_info >= (3, 11):
    C_BACKENDS = ["eval-hook", "profile-hook"]
else:
    C_BACKENDS = ["profile-hook"]

before_312 = pytest.mark.skipif(sys.version_info >= (3, 12), reason="Python 3.12+ traces with sys.monitoring")
needs_signals = pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="needs POSIX signals")


@pytest.fixture(params=C_BACKENDS)
def c_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test once per backend of this Python that has the fast path. On 3.11
    these are the evaluation function and the profile function."""
    import os

    if os.environ.get(PURE_PYTHON_VARIABLE) == "1":
        pytest.skip(f"{PURE_PYTHON_VARIABLE}=1 turns off the C extensions")
    backend: str = request.param
    monkeypatch.delenv(NO_FAST_CALLS_VARIABLE, raising=False)
    if backend == "profile-hook" and sys.version_info[:2] == (3, 11):
        monkeypatch.setenv(PROFILE_HOOK_VARIABLE, "1")
    else:
        monkeypatch.delenv(PROFILE_HOOK_VARIABLE, raising=False)
    return backend


@dataclass
class Run:
    traces: list[CallTrace]
    stats: TraceStats
    #: (fast_starts, fast_returns) of the fast path, or None when it was off.
    counters: Optional[tuple[int, int]]
    #: CodeInfo.calls and CodeInfo.active of each function of the programs that ran,
    #: by qualified name, before the session recorded the calls still open.
    call_counts: dict[str, tuple[int, int]]


def fast_path_of(session: Optional[TraceSession]) -> Any:
    assert isinstance(session, TraceSession)
    return session._backend.fast_callbacks  # type: ignore[union-attr]


def set_fast_path(monkeypatch: pytest.MonkeyPatch, on: bool) -> None:
    if on:
        monkeypatch.delenv(NO_FAST_CALLS_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(NO_FAST_CALLS_VARIABLE, "1")


def traced_run(program: Callable[[], object], sink: Optional[ListSink] = None) -> Run:
    sink = sink if sink is not None else ListSink()
    counters = None
    with trace(SinkOnlyConfig(), sink=sink) as stats:
        program()
        session = active_session()
        fast_path = fast_path_of(session)
        if fast_path is not None:
            counters = (fast_path.fast_starts, fast_path.fast_returns)
        call_counts = {
            info.qualname: (info.calls, info.active)
            for _code, info in list(session._recorder.codes.values())  # type: ignore[union-attr]
            if info is not None and info.module == programs.__name__
        }
    # The test's own helpers are traced too, and return other values in each run.
    traces = [found for found in sink.traces if found.module == programs.__name__]
    return Run(traces, stats, counters, call_counts)


def both_runs(monkeypatch: pytest.MonkeyPatch, program: Callable[[], object]) -> tuple[Run, Run]:
    """Trace *program* with the fast path on, then off."""
    set_fast_path(monkeypatch, True)
    fast = traced_run(program)
    set_fast_path(monkeypatch, False)
    slow = traced_run(program)
    return fast, slow


# Same traces with and without the fast path


@pytest.mark.usefixtures("c_backend")
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[scenario.name for scenario in SCENARIOS])
def test_scenario_same_traces_both_paths(monkeypatch: pytest.MonkeyPatch, scenario: Scenario) -> None:
    fast, slow = both_runs(monkeypatch, scenario.run)

    assert slow.counters is None
    assert fast.counters is not None, "the fast path is off; is the C extension built?"
    if scenario.takes_fast_path:
        assert fast.counters[0] > 0
        assert fast.counters[1] > 0
    assert len(fast.traces) == len(slow.traces)
    if scenario.threaded:
        assert Counter(fast.traces) == Counter(slow.traces)
    else:
        assert fast.traces == slow.traces
    assert fast.stats.calls_recorded == slow.stats.calls_recorded
    assert fast.stats.errors == slow.stats.errors
    assert fast.call_counts == slow.call_counts


@pytest.mark.usefixtures("c_backend")
def test_store_same_counts_both_paths(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """With a store, repeated traces go to the writer's inbox, and the store counts
    the same calls."""

    def program() -> None:
        programs.several_classes()
        programs.methods_and_receivers()
        programs.alternating_returns()

    def stored_counts(db: Path, on: bool) -> tuple[Counter[CallTrace], int]:
        set_fast_path(monkeypatch, on)
        config: Config = override_config(DefaultConfig(db=str(db)), all_calls=True)
        appends = 0
        with trace(config):
            program()
            fast_path = fast_path_of(active_session())
            if fast_path is not None:
                appends = fast_path.inbox_appends
        store = config.trace_store()
        try:
            stored = [thunk.to_trace() for thunk in store.filter(programs.__name__)]
        finally:
            store.close()
        counts: Counter[CallTrace] = Counter()
        for found in stored:
            counts[found] += found.call_count
        return counts, appends

    fast_counts, appends = stored_counts(tmp_path / "fast.sqlite3", True)
    slow_counts, _ = stored_counts(tmp_path / "slow.sqlite3", False)

    assert appends > 0
    assert fast_counts == slow_counts
    assert sum(fast_counts.values()) > programs.REPEATS * 10


@pytest.mark.usefixtures("c_backend")
def test_import_guard_blocks_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where reading the arguments of code with an import statement could change what
    an import hook receives (3.11's evaluation function, and 3.12), such calls never
    take the fast path."""
    set_fast_path(monkeypatch, True)

    with trace(SinkOnlyConfig(), sink=ListSink()):
        session = active_session()
        guarded = session._recorder.guard_import_locals  # type: ignore[union-attr]
        programs.import_statements()
        starts = fast_path_of(session).fast_starts

    if guarded:
        assert starts == 0
    else:
        assert starts == programs.REPEATS - 1


@pytest.mark.usefixtures("c_backend")
def test_always_recorded_takes_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without all_calls, the calls of a function that always_record names take the
    fast path, and other functions are sampled as before."""
    from typetrace.config import Sampling

    sampling = Sampling(always_record=[f"{programs.__name__}:maybe"])
    set_fast_path(monkeypatch, True)
    sink = ListSink()

    with trace(SinkOnlyConfig(sampling), sink=sink):
        for number in range(200):
            programs.maybe(number)
            programs.negate(number)
        starts = fast_path_of(active_session()).fast_starts

    assert starts == 199
    assert len(sink.of("maybe")) == 200
    assert len(sink.of("negate")) < 200


@pytest.mark.usefixtures("c_backend")
def test_many_open_calls_leave_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """From 1000 open calls on, when the recorder may sweep, calls start in Python."""
    depth = 1500
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(depth + 500)
    try:
        fast, slow = both_runs(monkeypatch, lambda: programs.countdown(depth))
    finally:
        sys.setrecursionlimit(limit)

    assert fast.counters is not None
    assert fast.traces == slow.traces
    assert len(fast.traces) == depth + 1
    # The first call caches the argument types. Fewer than 1000 later calls started
    # with fewer than 1000 open calls.
    assert 900 < fast.counters[0] < 1000


@pytest.mark.usefixtures("c_backend")
def test_sampling_leaves_fast_path_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without all_calls or always_record, no call is recorded whole, so the fast path
    is not set up."""
    from typetrace.config import Sampling

    set_fast_path(monkeypatch, True)
    sink = ListSink()

    with trace(SinkOnlyConfig(Sampling()), sink=sink):
        for number in range(50):
            programs.maybe(number)
        fast_path = fast_path_of(active_session())

    assert fast_path is None
    assert len(sink.of("maybe")) >= 10


# Errors inside the fast path's hand-over


def sink_caller() -> str:
    """Return the name of the function that handed the trace to the session's sink,
    which passes it on to the sink of the test. That is the recorder's _hand_over in
    Python, or a traced function when the fast path called the sink from C."""
    frame = sys._getframe(2)
    assert frame.f_code is _SessionSink.record.__code__
    caller = frame.f_back
    assert caller is not None
    return caller.f_code.co_name


class FailingSink(ListSink):
    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error

    def record(self, trace: CallTrace) -> None:
        raise self.error


@pytest.mark.usefixtures("c_backend")
def test_failing_sink_counted_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    def run(on: bool) -> Run:
        set_fast_path(monkeypatch, on)
        return traced_run(programs.several_classes, FailingSink(ValueError("sink failed")))

    fast = run(True)
    slow = run(False)

    assert fast.counters is not None
    assert fast.counters[1] > 0
    # The test's own traced helpers add a few calls.
    assert fast.stats.errors["sink: ValueError"] >= 2 * programs.REPEATS
    assert fast.stats.errors == slow.stats.errors
    assert fast.stats.calls_recorded == 0
    assert slow.stats.calls_recorded == 0


@pytest.mark.usefixtures("c_backend")
@pytest.mark.parametrize("fast_path", [True, False], ids=["fast", "slow"])
def test_keyboard_interrupt_reaches_program(monkeypatch: pytest.MonkeyPatch, fast_path: bool) -> None:
    """An exception that is not an Exception goes from the sink to the program, as the
    recorder's Python code lets it go, and is not counted as an error."""
    set_fast_path(monkeypatch, fast_path)
    sink = InterruptingSink("maybe", after=5)
    reached: list[int] = []

    with trace(SinkOnlyConfig(), sink=sink) as stats:
        for number in range(10):
            try:
                programs.maybe(number)
            except KeyboardInterrupt:
                reached.append(number)

    assert reached == [4]
    if fast_path:
        assert sink.callers[4] != "_hand_over"
    else:
        assert sink.callers[4] == "_hand_over"
    assert not any("KeyboardInterrupt" in kind for kind in stats.errors)
    assert len(sink.of("maybe")) == 9


class InterruptingSink(ListSink):
    """A sink that raises KeyboardInterrupt at the *after*-th trace of *qualname*, and
    notes the name of the code that called it for each trace."""

    def __init__(self, qualname: str, after: int) -> None:
        super().__init__()
        self.qualname = qualname
        self.after = after
        self.seen = 0
        self.callers: list[str] = []

    def record(self, trace: CallTrace) -> None:
        if trace.qualname != self.qualname:
            super().record(trace)
            return
        self.seen += 1
        self.callers.append(sink_caller())
        if self.seen == self.after:
            raise KeyboardInterrupt
        super().record(trace)


class Deadline(Exception):
    pass


def on_signal(signum: int, frame: Optional[FrameType]) -> None:
    raise Deadline(f"signal {signum}")


@pytest.fixture
def sigusr1_handler() -> Iterator[None]:
    previous = signal.getsignal(signal.SIGUSR1)
    signal.signal(signal.SIGUSR1, on_signal)
    yield
    signal.signal(signal.SIGUSR1, previous)


class SignallingSink(ListSink):
    """A sink that raises SIGUSR1 at the *after*-th trace of *qualname*, and notes
    the name of the function that handed that trace over."""

    def __init__(self, qualname: str, after: int) -> None:
        super().__init__()
        self.qualname = qualname
        self.after = after
        self.seen = 0
        self.signalled_from: Optional[str] = None

    def record(self, trace: CallTrace) -> None:
        super().record(trace)
        if trace.qualname == self.qualname:
            self.seen += 1
            if self.seen == self.after:
                self.signalled_from = sink_caller()
                signal.raise_signal(signal.SIGUSR1)


@needs_signals
@pytest.mark.usefixtures("c_backend", "sigusr1_handler")
def test_signal_exception_reaches_program(monkeypatch: pytest.MonkeyPatch) -> None:
    set_fast_path(monkeypatch, True)
    sink = SignallingSink("maybe", after=5)
    reached: list[tuple[int, str]] = []

    with trace(SinkOnlyConfig(), sink=sink) as stats:
        for number in range(10):
            try:
                programs.maybe(number)
            except Deadline as error:
                reached.append((number, str(error)))
        fast_returns = fast_path_of(active_session()).fast_returns

    assert sink.signalled_from is not None
    assert sink.signalled_from != "_hand_over"
    assert reached == [(4, f"signal {signal.SIGUSR1}")]
    assert not any("Deadline" in kind for kind in stats.errors)
    # The call whose hand-over raised was recorded, and tracing went on.
    assert len(sink.of("maybe")) == 10
    # The first call of maybe() caches its argument types, and the second its trace.
    assert fast_returns == 8


# The hook of Python 3.9 to 3.11


@before_312
@pytest.mark.usefixtures("c_backend")
def test_hook_counts_fast_events(monkeypatch: pytest.MonkeyPatch) -> None:
    """Calls on the fast path reach neither the handler nor the Python code."""

    def dispatched_and_counters(on: bool) -> tuple[int, int, int]:
        set_fast_path(monkeypatch, on)
        with trace(SinkOnlyConfig(), sink=ListSink()):
            hook = active_session()._backend._hook  # type: ignore[union-attr]
            dispatched_before = hook.dispatched
            for number in range(100):
                programs.pair(number, "a")
            dispatched = hook.dispatched - dispatched_before
            return dispatched, hook.fast_starts, hook.fast_returns

    fast_dispatched, fast_starts, fast_returns = dispatched_and_counters(True)
    slow_dispatched, slow_starts, slow_returns = dispatched_and_counters(False)

    # The first call caches the argument types, and the second the trace.
    assert (fast_starts, fast_returns) == (99, 98)
    assert (slow_starts, slow_returns) == (0, 0)
    assert slow_dispatched == 2 * 100
    assert fast_dispatched == 2 * 100 - 99 - 98


@before_312
@pytest.mark.usefixtures("c_backend")
def test_hook_counts_fast_yields(monkeypatch: pytest.MonkeyPatch) -> None:
    """After a generator call's first 16 yields, its resumptions and its yields of
    classes it yielded before reach neither the handler nor the Python code."""

    def dispatched_and_counters(on: bool) -> tuple[int, int, int]:
        set_fast_path(monkeypatch, on)
        with trace(SinkOnlyConfig(), sink=ListSink()):
            hook = active_session()._backend._hook  # type: ignore[union-attr]
            dispatched_before = hook.dispatched
            # 100 ints; the switch to a str comes after the end.
            assert list(programs.long_count(100, 200)) == list(range(100))
            dispatched = hook.dispatched - dispatched_before
            return dispatched, hook.fast_resumes, hook.fast_suspensions

    fast_dispatched, fast_resumes, fast_suspensions = dispatched_and_counters(True)
    slow_dispatched, slow_resumes, slow_suspensions = dispatched_and_counters(False)

    assert (slow_resumes, slow_suspensions) == (0, 0)
    # The start, 100 yields, 100 resumptions and the return.
    assert slow_dispatched == 202
    assert (fast_resumes, fast_suspensions) == (100, 100 - 16)
    assert fast_dispatched == 1 + 16 + 1


@before_312
@pytest.mark.usefixtures("c_backend")
def test_hook_counts_fast_sends(monkeypatch: pytest.MonkeyPatch) -> None:
    """After a generator call has received its first 16 values at yield expressions,
    its resumptions with a value of a class it received before reach neither the
    handler nor the Python code, and neither does close()."""

    def dispatched_and_counters(on: bool) -> tuple[int, int, int, Optional[TypeRef]]:
        set_fast_path(monkeypatch, on)
        sink = ListSink()
        with trace(SinkOnlyConfig(), sink=sink):
            hook = active_session()._backend._hook  # type: ignore[union-attr]
            dispatched_before = hook.dispatched
            generator = programs.accumulator()
            next(generator)
            for number in range(100):
                generator.send(number)
            generator.close()
            dispatched = hook.dispatched - dispatched_before
            counters = (dispatched, hook.fast_resumes, hook.fast_suspensions)
        return (*counters, sink.one("accumulator").send_type)

    fast_dispatched, fast_resumes, fast_suspensions, fast_sent = dispatched_and_counters(True)
    slow_dispatched, slow_resumes, slow_suspensions, slow_sent = dispatched_and_counters(False)

    assert fast_sent == slow_sent == TypeRef("builtins", "int")
    assert (slow_resumes, slow_suspensions) == (0, 0)
    # The start, 101 yields, 100 sends, the resumption of close() and the exception.
    assert slow_dispatched == 204
    # close() pushes None, which stays pending until the generator goes on.
    assert (fast_resumes, fast_suspensions) == (100 - 16 + 1, 101 - 16)
    assert fast_dispatched == 1 + 16 + 16 + 1


@before_312
@pytest.mark.usefixtures("c_backend")
def test_hook_counts_fast_awaits(monkeypatch: pytest.MonkeyPatch) -> None:
    """A coroutine's suspensions with a value, such as the future it awaits, and its
    resumptions reach neither the handler nor the Python code."""

    # The events of asyncio's own code that reach the handler differ between runs,
    # with the garbage collector's timing, so only those of the program count.
    handle = HookBackend._handle
    program_events: list[str] = []

    def counting_handle(backend: HookBackend, frame: FrameType, event: str, arg: Any) -> int:
        if frame.f_globals.get("__name__") == programs.__name__:
            program_events.append(event)
        return handle(backend, frame, event, arg)

    monkeypatch.setattr(HookBackend, "_handle", counting_handle)

    def dispatched_and_counters(on: bool) -> tuple[int, int, int]:
        set_fast_path(monkeypatch, on)
        program_events.clear()
        with trace(SinkOnlyConfig(), sink=ListSink()):
            hook = active_session()._backend._hook  # type: ignore[union-attr]
            programs.awaited_futures()
            return len(program_events), hook.fast_resumes, hook.fast_suspensions

    fast_dispatched, fast_resumes, fast_suspensions = dispatched_and_counters(True)
    slow_dispatched, slow_resumes, slow_suspensions = dispatched_and_counters(False)

    assert (slow_resumes, slow_suspensions) == (0, 0)
    # Each of the 30 waits suspends wait_for_value() and many_waits() once, and
    # resumes both.
    waits = programs.REPEATS
    assert fast_suspensions == 2 * waits
    assert fast_resumes == 2 * waits
    assert fast_dispatched == slow_dispatched - 4 * waits


@before_312
@pytest.mark.usefixtures("c_backend")
def test_hook_suspects_disable_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """While the recorder has suspect frames, every event goes to the handler, which
    checks them."""
    set_fast_path(monkeypatch, True)
    sink = ListSink()

    with trace(SinkOnlyConfig(), sink=sink):
        session = active_session()
        recorder = session._recorder  # type: ignore[union-attr]
        hook = fast_path_of(session)
        suspended = programs.lazy_range(10)
        next(suspended)
        frame = suspended.gi_frame
        for number in range(5):
            programs.pair(number, "a")
        starts_before = hook.fast_starts
        recorder.suspects[frame] = 1000
        for number in range(5):
            programs.pair(number, "a")
        starts_with_suspect = hook.fast_starts - starts_before
        checks_left = recorder.suspects.get(frame)
        recorder.suspects.clear()
        for number in range(5):
            programs.pair(number, "a")
        starts_after = hook.fast_starts - starts_before
        suspended.close()

    assert starts_before == 4
    assert starts_with_suspect == 0
    assert checks_left is not None
    assert checks_left < 1000
    assert starts_after == 5
    assert len(sink.of("pair")) == 15


@before_312
def test_hook_rejects_other_calls_dict() -> None:
    profilehook = pytest.importorskip("typetrace._profilehook")
    from typetrace._recorder import Call, CodeInfo, Recorder
    from typetrace.config import Sampling

    recorder = Recorder(ListSink(), None, Sampling(all_calls=True), TraceStats())
    hook = profilehook.Hook(lambda frame, event, arg: 0, {}, recorder.suspects)

    with pytest.raises(ValueError, match="calls dict"):
        hook.enable_fast_calls(recorder, CodeInfo, Call, True, 1000)
    hook.close()
