"""Tests of the C profile hook of Python 3.9 to 3.11 (typetrace._profilehook) and of
the backend that installs it, on real code."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any, Callable, Optional

import pytest
from support import ListSink, SinkOnlyConfig, run_typetrace

from typetrace.config import Sampling
from typetrace.tracing import TracerError, TraceSession, _start_session, active_session, trace
from typetrace.typemodel import TypeRef

INT = TypeRef("builtins", "int")
STR = TypeRef("builtins", "str")

profilehook: Optional[ModuleType]
try:
    from typetrace import _profilehook as profilehook
except ImportError:
    profilehook = None

before_312 = pytest.mark.skipif(sys.version_info >= (3, 12), reason="Python 3.12+ traces with sys.monitoring")
only_311 = pytest.mark.skipif(sys.version_info[:2] != (3, 11), reason="the evaluation function is for Python 3.11")
needs_hook = pytest.mark.skipif(profilehook is None, reason="the C profile hook is not built")
pure_python_forced = os.environ.get("TYPETRACE_PURE_PYTHON") == "1"


def identity(value):  # type: ignore[no-untyped-def]
    return value


def untraced(value):  # type: ignore[no-untyped-def]
    return len([value])


def count_up(limit):  # type: ignore[no-untyped-def]
    for i in range(limit):
        yield i
    return "finished"


class Events:
    """A handler for a bare Hook that notes the events of the function *name* and
    returns *status* for them. With *open_calls*, it keeps each frame of the function
    in ``calls`` from its call event to its return event, as the recorder does with
    recorded calls."""

    def __init__(
        self, name: str, status: int = 0, error: Optional[BaseException] = None, open_calls: bool = False
    ) -> None:
        self.name = name
        self.status = status
        self.error = error
        self.open_calls = open_calls
        self.calls: dict[FrameType, None] = {}
        self.seen: list[str] = []

    def __call__(self, frame: FrameType, event: str, arg: Any) -> int:
        if frame.f_code.co_name != self.name:
            return 0
        self.seen.append(event)
        if self.open_calls:
            if event == "call":
                self.calls[frame] = None
            else:
                self.calls.pop(frame, None)
        if self.error is not None:
            raise self.error
        return self.status

    def hook(self, suspects: Optional[dict[Any, Any]] = None) -> Any:
        assert profilehook is not None
        return profilehook.Hook(self, self.calls, suspects or {})


def run_hooked(hook: Any, body: Callable[[], object]) -> None:
    hook.install()
    try:
        body()
    finally:
        sys.setprofile(None)


def call_n(function: Callable[[Any], Any], count: int, value: object = 1) -> None:
    for _ in range(count):
        function(value)


# Which backend runs


@before_312
def test_c_hook_in_use(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tracing on 3.9 to 3.11 runs the C hook, so the extension must be built. On 3.11
    it runs as the frame-evaluation function, with no profile function set."""
    if pure_python_forced:
        pytest.skip("TYPETRACE_PURE_PYTHON=1 selects the pure-Python backend")
    assert profilehook is not None, (
        "typetrace._profilehook did not build; install a C compiler and the Python headers, "
        "then reinstall typetrace"
    )
    from typetrace._profiling import EvalHookBackend, HookBackend

    monkeypatch.delenv("TYPETRACE_PROFILE_HOOK", raising=False)
    with trace(SinkOnlyConfig(), sink=ListSink()):
        profile = sys.getprofile()
        session = active_session()

    assert isinstance(session, TraceSession)
    assert isinstance(session._backend, HookBackend)
    if sys.version_info[:2] == (3, 11):
        assert isinstance(session._backend, EvalHookBackend)
        assert profile is None
    else:
        assert not isinstance(session._backend, EvalHookBackend)
        assert isinstance(profile, profilehook.Hook)


@before_312
@pytest.mark.parametrize(
    ("variable", "warns"),
    [
        pytest.param("TYPETRACE_PURE_PYTHON", True, id="pure-python"),
        pytest.param("TYPETRACE_PROFILE_HOOK", True, id="profile-hook"),
        pytest.param(None, sys.version_info[:2] != (3, 11), id="default"),
    ],
)
def test_replaced_profile_function_warns(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, variable: Optional[str], warns: bool
) -> None:
    """A program that sets its own profile function stops the tracing of its thread,
    which stop() reports. The evaluation function of 3.11 is not affected."""
    if variable is None and pure_python_forced:
        pytest.skip("TYPETRACE_PURE_PYTHON=1 selects the pure-Python backend")
    monkeypatch.delenv("TYPETRACE_PURE_PYTHON", raising=False)
    monkeypatch.delenv("TYPETRACE_PROFILE_HOOK", raising=False)
    if variable is not None:
        monkeypatch.setenv(variable, "1")
    sink = ListSink()

    def own_profile(frame: FrameType, event: str, arg: Any) -> None:
        pass

    try:
        with caplog.at_level("WARNING", logger="typetrace.tracing"):
            with trace(SinkOnlyConfig(), sink=sink):
                identity(1)
                sys.setprofile(own_profile)
                identity("a")
        after = sys.getprofile()
    finally:
        sys.setprofile(None)

    warnings = [record.getMessage() for record in caplog.records if "replaced typetrace's profile function" in record.getMessage()]
    assert len(warnings) == (1 if warns else 0)
    assert after is own_profile
    recorded = {trace.arg_types["value"].qualname for trace in sink.traces if trace.qualname == "identity"}
    assert recorded == ({"int"} if warns else {"int", "str"})


# Environments of a traced child process, each selecting one backend.
DEFAULT_BACKEND = {"TYPETRACE_PURE_PYTHON": "0", "TYPETRACE_PROFILE_HOOK": "0"}
PURE_PYTHON = {"TYPETRACE_PURE_PYTHON": "1"}
PROFILE_HOOK = {"TYPETRACE_PURE_PYTHON": "0", "TYPETRACE_PROFILE_HOOK": "1"}
CHILD_BACKENDS = [
    pytest.param(DEFAULT_BACKEND, id="default", marks=needs_hook),
    pytest.param(PURE_PYTHON, id="pure-python"),
    pytest.param(PROFILE_HOOK, id="profile-hook", marks=[needs_hook, only_311]),
]

REMOVED_WARNING = "profile function was removed from thread 'MainThread' before tracing stopped"
SIGNAL_CAUSE = "a signal handler of the program raised an exception"
NOTED_REMOVAL = "An exception of the program's signal handler was raised in the tracer's profile function"

REMOVES_PROFILE = {
    "setprofile": """
        import sys


        def identity(value):
            return value


        identity(1)
        sys.setprofile(None)
        identity("a")
    """,
    "cprofile": """
        import cProfile


        def identity(value):
            return value


        identity(1)
        profiler = cProfile.Profile()
        profiler.enable()
        identity("a")
        profiler.disable()
        identity(b"b")
    """,
}


def run_traced_child(tmp_path: Path, source: str, environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    (tmp_path / "program.py").write_text(textwrap.dedent(source), encoding="utf-8")
    return run_typetrace(tmp_path, "run", "--all-calls", "program.py", env=environment)


def recorded_values(tmp_path: Path) -> set[str]:
    """Return the type names recorded for identity()'s argument in the child's store."""
    exported = run_typetrace(tmp_path, "export").stdout.splitlines()[1:]
    entries = [json.loads(line) for line in exported]
    return {entry["arg_types"]["value"]["qualname"] for entry in entries if entry["qualname"] == "identity"}


@before_312
@pytest.mark.parametrize("removal", sorted(REMOVES_PROFILE))
@pytest.mark.parametrize("environment", CHILD_BACKENDS)
def test_removed_profile_function_warns(tmp_path: Path, removal: str, environment: dict[str, str]) -> None:
    """A program that removes typetrace's profile function ends the tracing of its
    thread, and stop() logs a warning. The evaluation function of 3.11 is not
    affected, so it records the later calls and logs nothing."""
    evaluation_function = environment == DEFAULT_BACKEND and sys.version_info[:2] == (3, 11)

    result = run_traced_child(tmp_path, REMOVES_PROFILE[removal], environment)

    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if REMOVED_WARNING in line]
    if not evaluation_function:
        assert len(warnings) == 1, result.stderr
        assert recorded_values(tmp_path) == {"int"}
    else:
        expected = {"int", "str", "bytes"} if removal == "cprofile" else {"int", "str"}
        assert warnings == [], result.stderr
        assert recorded_values(tmp_path) == expected


@before_312
@pytest.mark.parametrize("environment", CHILD_BACKENDS)
def test_signal_removal_not_blamed_on_program(tmp_path: Path, environment: dict[str, str]) -> None:
    """A signal handler's exception that leaves the pure-Python profile function makes
    Python remove it. On 3.9 and 3.10 that is logged when it happens, and stop() does
    not report it as the program's removal. _thread.interrupt_main() marks the signal
    as pending inside a builtin, so that the handler runs at the builtin's return
    event."""
    source = """
        import _thread
        import signal


        class Interrupted(Exception):
            pass


        def on_signal(signum, frame):
            raise Interrupted()


        def identity(value):
            return value


        signal.signal(signal.SIGINT, on_signal)
        identity(1)
        try:
            _thread.interrupt_main()
        except Interrupted:
            print("caught")
        identity("after")
    """

    result = run_traced_child(tmp_path, source, environment)

    assert result.returncode == 0, result.stderr
    assert result.stdout == "caught\n"
    removed = [line for line in result.stderr.splitlines() if REMOVED_WARNING in line]
    noted = [line for line in result.stderr.splitlines() if NOTED_REMOVAL in line]
    if environment == PURE_PYTHON and sys.version_info < (3, 11):
        assert len(noted) == 1, result.stderr
        assert removed == [], result.stderr
        assert recorded_values(tmp_path) == {"int"}
    elif environment == PURE_PYTHON:
        # Python 3.11 runs the handler before the profile function's try, so the
        # removal goes unnoticed and the warning at stop names both causes.
        assert noted == [], result.stderr
        assert len(removed) == 1, result.stderr
        assert SIGNAL_CAUSE in removed[0]
        assert recorded_values(tmp_path) == {"int"}
    else:
        # The C hook stays set when an exception leaves it, and tracing goes on.
        assert noted == [], result.stderr
        assert removed == [], result.stderr
        assert recorded_values(tmp_path) == {"int", "str"}


# The start of the deep recursion tests' programs: a recursion, and a function whose
# argument types tell which calls after it were recorded.
RECURSION = """
    import sys
    import threading


    def down(depth):
        if depth == 0:
            return 0
        return down(depth - 1) + 1


    def identity(value):
        return value
"""

DEEP_RECURSION = """
    def work(value):
        print(down(100_000))
        identity(value)


    sys.setrecursionlimit(200_000)
    work("main")
    threading.stack_size(1024 * 1024)
    thread = threading.Thread(target=work, args=(b"thread",))
    thread.start()
    thread.join()
    identity(2.5)
"""


@only_311
@pytest.mark.parametrize("environment", CHILD_BACKENDS)
def test_deep_recursion_runs_as_untraced(tmp_path: Path, environment: dict[str, str]) -> None:
    """A recursion 100,000 calls deep, which untraced 3.11 runs without C stack,
    also runs under the evaluation function, in the main thread and in a thread with
    a 1 MiB stack, and the calls after it are recorded again."""
    source = textwrap.dedent(RECURSION) + textwrap.dedent(DEEP_RECURSION)
    (tmp_path / "program.py").write_text(source, encoding="utf-8")
    untraced = subprocess.run([sys.executable, "program.py"], cwd=tmp_path, capture_output=True, text=True)

    result = run_traced_child(tmp_path, source, environment)

    assert untraced.returncode == 0, untraced.stderr
    assert result.returncode == 0, result.stderr
    assert result.stdout == untraced.stdout == "100000\n100000\n"
    assert recorded_values(tmp_path) == {"str", "bytes", "float"}


@needs_hook
@pytest.mark.skipif(sys.version_info[:2] not in ((3, 9), (3, 10)), reason="3.11 inlines Python calls")
def test_deep_recursion_raises_before_stack_ends(tmp_path: Path) -> None:
    """A recursion deeper than the C stack allows raises RecursionError under the C
    profile function instead of crashing, and the calls after it are recorded."""
    source = textwrap.dedent(RECURSION) + textwrap.dedent("""
        sys.setrecursionlimit(1_000_000)
        try:
            down(1_000_000)
        except RecursionError as error:
            print(type(error).__name__)
        identity("after")
    """)

    result = run_traced_child(tmp_path, source, DEFAULT_BACKEND)

    assert result.returncode == 0, result.stderr
    assert result.stdout == "RecursionError\n"
    assert recorded_values(tmp_path) == {"str"}


@before_312
def test_pure_python_variable_selects_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    from typetrace._profiling import HookBackend, ProfileBackend

    monkeypatch.setenv("TYPETRACE_PURE_PYTHON", "1")
    sink = ListSink()
    with trace(SinkOnlyConfig(), sink=sink):
        profile = sys.getprofile()
        session = active_session()
        identity(1)

    assert isinstance(session, TraceSession)
    assert type(session._backend) is ProfileBackend
    assert not isinstance(session._backend, HookBackend)
    assert getattr(profile, "__self__", None) is session._backend
    assert sink.one("identity").arg_types == {"value": INT}


@pytest.mark.skipif(sys.version_info < (3, 12), reason="the hook is built for 3.9 to 3.11")
def test_no_extension_from_312() -> None:
    assert importlib.util.find_spec("typetrace._profilehook") is None


@before_312
def test_other_profiler_raises(tracing_backend: str) -> None:
    def other_profiler(frame: FrameType, event: str, arg: Any) -> None:
        pass

    sys.setprofile(other_profiler)
    try:
        with pytest.raises(TracerError, match="Another profiler is active"):
            with trace(SinkOnlyConfig(), sink=ListSink()):
                pass
    finally:
        sys.setprofile(None)


# The C hook inside a session


@needs_hook
@before_312
def test_thread_switches_to_c_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    """A thread started while tracing gets the C hook at its first event, and removes
    it at its first event after the session stops."""
    assert profilehook is not None
    monkeypatch.delenv("TYPETRACE_PURE_PYTHON", raising=False)
    # On 3.11 the profile function runs only when selected.
    monkeypatch.setenv("TYPETRACE_PROFILE_HOOK", "1")
    profiles: list[object] = []
    stopped = threading.Event()

    def worker() -> None:
        identity("in thread")
        profiles.append(sys.getprofile())
        stopped.wait(10)
        identity("after stop")
        profiles.append(sys.getprofile())

    sink = ListSink()
    with trace(SinkOnlyConfig(), sink=sink):
        thread = threading.Thread(target=worker)
        thread.start()
        while not profiles and thread.is_alive():
            thread.join(0.01)
    stopped.set()
    thread.join()

    assert isinstance(profiles[0], profilehook.Hook)
    assert profiles[1] is None
    assert sink.one("identity").arg_types == {"value": STR}


@needs_hook
@before_312
def test_untraced_code_stays_in_c(monkeypatch: pytest.MonkeyPatch) -> None:
    """After their first call, the events of code the filter rejects and of builtins
    never reach Python."""
    monkeypatch.delenv("TYPETRACE_PURE_PYTHON", raising=False)

    class SkipUntraced(SinkOnlyConfig):
        def code_filter(self) -> Callable[[Any], bool]:
            return lambda code: code.co_name != "untraced"

    dispatched: list[int] = []
    with trace(SkipUntraced(), sink=ListSink()):
        session = active_session()
        assert isinstance(session, TraceSession)
        hook = session._backend._hook  # type: ignore[attr-defined]
        untraced(0)
        dispatched.append(hook.dispatched)
        call_n(untraced, 1_000)
        dispatched.append(hook.dispatched)

    # call_n's own call and return, and those of nothing else.
    assert dispatched[1] - dispatched[0] == 2


@before_312
def test_paused_generator_still_recorded(tracing_backend: str) -> None:
    """A generator whose function is paused while it is suspended is recorded when it
    finishes, while new calls of the paused function are not counted."""
    infos: list[Any] = []
    finished: list[object] = []

    def body(session: TraceSession) -> None:
        first = count_up(2)
        next(first)
        for _ in range(20):
            list(count_up(1))
        for _code, info in list(session._recorder.codes.values()):
            if info is not None and info.qualname == "count_up":
                infos.append(info)
        info = infos[0]
        assert info.paused
        assert info.active == 1
        calls_when_paused = info.calls
        list(count_up(1))
        if tracing_backend == "c-hook":
            assert info.calls == calls_when_paused
        finished.extend(first)

    sink = ListSink()
    session = _start_session(SinkOnlyConfig(Sampling(first_calls=1, rate=0.0, pause_after=5)), sink, None, False)
    try:
        body(session)
    finally:
        session.stop()

    assert finished == [1]
    recorded = sink.one("count_up")
    assert recorded.arg_types == {"limit": INT}
    assert recorded.yield_type == INT
    assert recorded.return_type == STR


def recurse(depth):  # type: ignore[no-untyped-def]
    return recurse(depth + 1)


@needs_hook
@before_312
def test_recursion_error_reaches_program(monkeypatch: pytest.MonkeyPatch) -> None:
    """A traced program that hits the recursion limit gets its RecursionError, and
    tracing goes on. The pure-Python backend stops tracing the thread there: Python
    removes a profile function written in Python when it raises."""
    monkeypatch.delenv("TYPETRACE_PURE_PYTHON", raising=False)
    sink = ListSink()
    with trace(SinkOnlyConfig(Sampling(first_calls=10)), sink=sink) as stats:
        with pytest.raises(RecursionError):
            recurse(0)
        identity("after")

    assert sink.one("identity").arg_types == {"value": STR}
    # The tracer's own calls near the limit fail too, and are counted.
    assert all(kind.endswith(": RecursionError") for kind in stats.errors)


# A bare Hook


@needs_hook
@before_312
def test_statuses_match_python_side() -> None:
    from typetrace import _profiling

    assert profilehook is not None
    assert profilehook.SKIP_UNTRACED == _profiling.SKIP_UNTRACED
    assert profilehook.SKIP_PAUSED == _profiling.SKIP_PAUSED
    assert _profiling.WATCH not in (_profiling.SKIP_UNTRACED, _profiling.SKIP_PAUSED)


@needs_hook
@before_312
def test_hook_passes_call_and_return_events() -> None:
    events = Events("identity", open_calls=True)
    hook = events.hook()

    run_hooked(hook, lambda: call_n(identity, 2))

    assert events.seen == ["call", "return", "call", "return"]
    assert hook.dispatched >= 4
    assert hook.errors == {}


@needs_hook
@before_312
def test_hook_drops_returns_without_open_call() -> None:
    events = Events("identity")

    run_hooked(events.hook(), lambda: call_n(identity, 2))

    assert events.seen == ["call", "call"]


@needs_hook
@before_312
@pytest.mark.parametrize("status_name", ["SKIP_UNTRACED", "SKIP_PAUSED"])
def test_hook_mark_drops_later_events(status_name: str) -> None:
    assert profilehook is not None
    events = Events("identity", getattr(profilehook, status_name))

    run_hooked(events.hook(), lambda: call_n(identity, 3))

    assert events.seen == ["call"]


@needs_hook
@before_312
def test_hook_resume_drops_paused_marks_only() -> None:
    assert profilehook is not None
    paused = Events("identity", profilehook.SKIP_PAUSED)
    skipped = Events("untraced", profilehook.SKIP_UNTRACED)

    def handler(frame: FrameType, event: str, arg: Any) -> int:
        return paused(frame, event, arg) or skipped(frame, event, arg)

    hook = profilehook.Hook(handler, {}, {})

    def body() -> None:
        call_n(identity, 2)
        call_n(untraced, 2)
        hook.resume()
        call_n(identity, 2)
        call_n(untraced, 2)

    run_hooked(hook, body)

    assert paused.seen == ["call", "call"]
    assert skipped.seen == ["call"]


@needs_hook
@before_312
def test_new_hook_drops_old_marks() -> None:
    """Marks made under one hook (one session) do not hold for the next."""
    assert profilehook is not None
    first = Events("untraced", profilehook.SKIP_UNTRACED)
    run_hooked(first.hook(), lambda: call_n(untraced, 2))
    second = Events("untraced", profilehook.SKIP_UNTRACED)
    run_hooked(second.hook(), lambda: call_n(untraced, 2))

    assert first.seen == ["call"]
    assert second.seen == ["call"]


@needs_hook
@before_312
def test_paused_mark_keeps_open_call_frames() -> None:
    """Events of a frame in the calls dict reach the handler although its code is
    marked SKIP_PAUSED."""
    assert profilehook is not None
    skip_paused = profilehook.SKIP_PAUSED
    calls: dict[Any, Any] = {}

    def handler(frame: FrameType, event: str, arg: Any) -> int:
        if frame.f_code.co_name != "count_up":
            return 0
        if not calls:
            calls[frame] = "open"
        seen.append((event, frame in calls))
        return skip_paused

    seen: list[tuple[str, bool]] = []
    hook = profilehook.Hook(handler, calls, {})

    def body() -> None:
        generator = count_up(3)
        next(generator)
        list(count_up(2))
        list(generator)

    run_hooked(hook, body)

    # Only the first generator's frame, which is in calls: its start and first yield,
    # then two resumes with a yield each and a resume with the final return.
    assert seen == [("call", True), ("return", True)] * 4
    calls.clear()


def yields_none():  # type: ignore[no-untyped-def]
    yield None
    yield None


class Thrown(Exception):
    pass


@needs_hook
@before_312
def test_hook_tells_unwind_from_return() -> None:
    """A yield of None is a "return" event with None, an exception leaving the frame
    an "unwind" event."""
    seen: list[tuple[str, object]] = []
    calls: dict[Any, Any] = {}

    def handler(frame: FrameType, event: str, arg: Any) -> int:
        if frame.f_code.co_name == "yields_none":
            calls[frame] = None
            seen.append((event, arg))
        return 0

    def body() -> None:
        generator = yields_none()
        next(generator)
        with pytest.raises(Thrown):
            generator.throw(Thrown())

    run_hooked(profilehook.Hook(handler, calls, {}), body)  # type: ignore[union-attr]
    calls.clear()

    assert seen == [("call", None), ("return", None), ("call", None), ("unwind", None)]


@needs_hook
@before_312
def test_hook_call_keeps_ambiguous_return() -> None:
    """Through Hook.__call__, as a Python profile function, a return of None may be an
    exception, so it reaches the handler as "return_or_unwind"."""
    assert profilehook is not None
    events = Events("yields_none")

    def handler(frame: FrameType, event: str, arg: Any) -> int:
        # As the recorder keeps a generator's call open while it is suspended, so
        # that the hook passes on the events of its resumptions.
        if frame.f_code.co_name == events.name:
            events.calls[frame] = None
        return events(frame, event, arg)

    hook = profilehook.Hook(handler, events.calls, {})

    sys.setprofile(hook)
    try:
        list(yields_none())
    finally:
        sys.setprofile(None)

    assert events.seen == ["call", "return_or_unwind"] * 3


@needs_hook
@pytest.mark.skipif(
    sys.version_info >= (3, 11), reason="the profile function of 3.11 passes None at both"
)
def test_resumption_without_open_call_dropped() -> None:
    """A frame that is not in the calls dict gets its start event only: where it
    resumes, there is no call to start."""
    assert profilehook is not None
    events = Events("yields_none")
    run_hooked(events.hook(), lambda: list(yields_none()))

    assert events.seen == ["call"]


@before_312
def test_yield_none_makes_no_suspect(tracing_backend: str) -> None:
    """With the C hook a yield of None is certain; the pure-Python profile function
    checks the frame again later."""
    suspects: list[int] = []

    def body(session: TraceSession) -> None:
        generator = yields_none()
        next(generator)
        suspects.append(len(session._recorder.suspects))
        next(generator)

    sink = ListSink()
    session = _start_session(SinkOnlyConfig(), sink, None, False)
    try:
        body(session)
    finally:
        session.stop()

    assert suspects == [0 if tracing_backend == "c-hook" else 1]
    assert sink.one("yields_none").yield_type == TypeRef("builtins", "None")


@needs_hook
@before_312
def test_hook_suspects_send_every_event() -> None:
    assert profilehook is not None
    events = Events("identity", profilehook.SKIP_UNTRACED)

    run_hooked(events.hook({"suspect": 1}), lambda: call_n(identity, 2))

    assert events.seen == ["call", "return", "call", "return"]


@needs_hook
@before_312
def test_hook_counts_handler_errors() -> None:
    events = Events("identity", error=ValueError("handler failed"), open_calls=True)
    hook = events.hook()
    results: list[object] = []

    run_hooked(hook, lambda: results.append(identity(5)))

    assert results == [5]
    assert events.seen == ["call", "return"]
    assert hook.errors == {"ValueError": 2}


@needs_hook
@before_312
def test_hook_passes_keyboard_interrupt_on() -> None:
    """An exception that is not an Exception, such as a KeyboardInterrupt raised while
    the handler ran, goes on to the program as from a Python profile function."""
    events = Events("identity", error=KeyboardInterrupt(), open_calls=True)
    hook = events.hook()

    with pytest.raises(KeyboardInterrupt):
        run_hooked(hook, lambda: identity(1))

    # Python 3.11 also reports the return of the frame that the exception leaves.
    assert events.seen[0] == "call"
    assert hook.errors == {}


@needs_hook
@before_312
def test_hook_passes_accepted_exception_on() -> None:
    """An Exception that passes_on accepts goes on to the program and is not counted.
    One that it rejects is counted as before."""
    accepted = LookupError("from a signal handler")
    passed: list[BaseException] = []

    def passes_on(error: BaseException) -> bool:
        passed.append(error)
        return error is accepted

    events = Events("identity", error=accepted, open_calls=True)
    assert profilehook is not None
    hook = profilehook.Hook(events, events.calls, {}, passes_on=passes_on)

    with pytest.raises(LookupError) as raised:
        run_hooked(hook, lambda: identity(1))

    assert raised.value is accepted
    # Python 3.11 also reports the return of the frame that the exception leaves.
    assert passed[0] is accepted
    assert {id(error) for error in passed} == {id(accepted)}
    assert hook.errors == {}

    rejected = Events("identity", error=ValueError("tracer bug"), open_calls=True)
    hook = profilehook.Hook(rejected, rejected.calls, {}, passes_on=passes_on)
    results: list[object] = []

    run_hooked(hook, lambda: results.append(identity(5)))

    assert results == [5]
    assert hook.errors == {"ValueError": 2}


@needs_hook
@before_312
def test_hook_counts_error_of_passes_on() -> None:
    def broken(error: BaseException) -> bool:
        raise RuntimeError("passes_on failed")

    events = Events("identity", error=ValueError("tracer bug"), open_calls=True)
    assert profilehook is not None
    hook = profilehook.Hook(events, events.calls, {}, passes_on=broken)
    results: list[object] = []

    run_hooked(hook, lambda: results.append(identity(5)))

    assert results == [5]
    assert hook.errors == {"ValueError": 2}


@needs_hook
@before_312
def test_hook_rejects_uncallable_passes_on() -> None:
    assert profilehook is not None
    with pytest.raises(TypeError, match="passes_on must be callable"):
        profilehook.Hook(Events("identity"), {}, {}, passes_on=1)


@needs_hook
@before_312
def test_hook_keeps_reference_counts() -> None:
    value = object()
    events = Events("identity", open_calls=True)
    hook = events.hook()
    counts_before = (sys.getrefcount(value), sys.getrefcount(hook), sys.getrefcount(events))

    run_hooked(hook, lambda: call_n(identity, 1_000, value))
    counts_after = (sys.getrefcount(value), sys.getrefcount(hook), sys.getrefcount(events))

    assert len(events.seen) == 2_000
    assert counts_after == counts_before


@needs_hook
@before_312
def test_closed_hook_removes_itself() -> None:
    events = Events("identity", open_calls=True)
    hook = events.hook()
    hook.install()
    hook.close()
    identity(1)
    profile = sys.getprofile()
    sys.setprofile(None)

    assert profile is None
    assert events.seen == []
    with pytest.raises(RuntimeError, match="after Hook.close"):
        hook.install()


@needs_hook
@before_312
def test_hook_rejects_bad_arguments() -> None:
    assert profilehook is not None
    with pytest.raises(TypeError, match="must be callable"):
        profilehook.Hook(1, {}, {})
    with pytest.raises(TypeError):
        profilehook.Hook(Events("identity"), [], {})
    hook = profilehook.Hook(Events("identity"), {}, {})
    with pytest.raises(TypeError):
        hook(None, "call", None)


@needs_hook
def test_audit_hook_rejecting_setprofile(tmp_path: Path) -> None:
    """A program whose audit hook rejects sys.setprofile runs as untraced: its threads
    run, and nothing of the rejections is printed. On 3.9 and 3.10 its new threads
    stay untraced, and typetrace's warning counts the rejections."""
    source = """
        import _thread
        import sys
        import threading


        def reject(event, args):
            if event == "sys.setprofile":
                raise RuntimeError("no profiling")


        def work(value):
            return value


        sys.addaudithook(reject)
        done = threading.Semaphore(0)
        _thread.start_new_thread(lambda: (work(1), done.release()), ())
        thread = threading.Thread(target=work, args=("a",))
        thread.start()
        thread.join()
        assert done.acquire(timeout=10)
        print("ok")
    """
    result = run_traced_child(tmp_path, source, DEFAULT_BACKEND)

    assert (result.returncode, result.stdout) == (0, "ok\n"), result.stderr
    assert "Exception ignored" not in result.stderr
    assert "Traceback" not in result.stderr
