"""Tests of the frame-evaluation function of Python 3.11 (Hook.install_eval in
typetrace._profilehook) and of the backend that installs it."""

from __future__ import annotations

import asyncio
import dis
import gc
import os
import subprocess
import sys
import textwrap
import threading
from types import FrameType, ModuleType
from typing import Any, Callable, Optional

import pytest
from support import ListSink, SinkOnlyConfig

from typetrace.tracing import TraceSession, active_session, trace
from typetrace.typemodel import TypeRef

profilehook: Optional[ModuleType]
try:
    from typetrace import _profilehook as profilehook
except ImportError:
    profilehook = None

pytestmark = [
    pytest.mark.skipif(sys.version_info[:2] != (3, 11), reason="the evaluation function is for Python 3.11"),
    pytest.mark.skipif(profilehook is None, reason="the C hook is not built"),
    pytest.mark.skipif(os.environ.get("TYPETRACE_PURE_PYTHON") == "1", reason="TYPETRACE_PURE_PYTHON=1 is set"),
]

STR = TypeRef("builtins", "str")


@pytest.fixture(autouse=True)
def default_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TYPETRACE_PROFILE_HOOK", raising=False)


def identity(value):  # type: ignore[no-untyped-def]
    return value


def backend_of(session: Optional[TraceSession]) -> object:
    assert isinstance(session, TraceSession)
    return session._backend


# Which backend runs


def test_session_sets_and_restores_eval_function() -> None:
    from typetrace._profiling import EvalHookBackend

    assert profilehook is not None
    with trace(SinkOnlyConfig(), sink=ListSink()):
        default_inside = profilehook.eval_function_is_default()
        backend = backend_of(active_session())

    assert isinstance(backend, EvalHookBackend)
    assert not default_inside
    assert profilehook.eval_function_is_default()


def test_other_eval_function_selects_profile_hook() -> None:
    """Another tool's evaluation function stays, and tracing uses the profile function."""
    from typetrace._profiling import EvalHookBackend, HookBackend

    assert profilehook is not None
    other = profilehook.Hook(lambda frame, event, arg: 0, {}, {})
    assert other.install_eval([])
    sink = ListSink()
    try:
        with trace(SinkOnlyConfig(), sink=sink):
            backend = backend_of(active_session())
            profile = sys.getprofile()
            identity("traced")
        still_other = not profilehook.eval_function_is_default()
    finally:
        other.uninstall_eval()

    assert isinstance(backend, HookBackend)
    assert not isinstance(backend, EvalHookBackend)
    assert isinstance(profile, profilehook.Hook)
    assert still_other
    assert sink.one("identity").arg_types == {"value": STR}


def test_profile_hook_variable_selects_profile_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    from typetrace._profiling import EvalHookBackend, HookBackend

    monkeypatch.setenv("TYPETRACE_PROFILE_HOOK", "1")
    with trace(SinkOnlyConfig(), sink=ListSink()):
        backend = backend_of(active_session())

    assert isinstance(backend, HookBackend)
    assert not isinstance(backend, EvalHookBackend)


# Threads


def run_thread_during_trace(name: str) -> ListSink:
    """Start a thread named *name* before tracing, let it call identity() while
    tracing, and return the session's sink."""
    go = threading.Event()
    done = threading.Event()

    def worker() -> None:
        go.wait(10)
        identity("in thread")
        done.set()

    thread = threading.Thread(target=worker, name=name)
    thread.start()
    sink = ListSink()
    try:
        with trace(SinkOnlyConfig(), sink=sink):
            go.set()
            assert done.wait(10)
    finally:
        go.set()
        thread.join()
    return sink


def test_thread_started_before_tracing_is_traced() -> None:
    sink = run_thread_during_trace("worker")

    assert sink.one("identity").arg_types == {"value": STR}


def test_own_thread_gets_no_events() -> None:
    """A thread named like typetrace's own threads, running when tracing starts, is
    not traced."""
    sink = run_thread_during_trace("typetrace-test")

    assert [trace for trace in sink.traces if trace.qualname == "identity"] == []


# A bare Hook as the evaluation function


def test_second_hook_install_raises() -> None:
    assert profilehook is not None
    first = profilehook.Hook(lambda frame, event, arg: 0, {}, {})
    second = profilehook.Hook(lambda frame, event, arg: 0, {}, {})
    assert first.install_eval([])
    try:
        with pytest.raises(RuntimeError, match="another Hook is installed"):
            second.install_eval([])
    finally:
        first.uninstall_eval()

    assert not second.uninstall_eval()
    assert profilehook.eval_function_is_default()


def test_install_eval_rejects_many_threads() -> None:
    assert profilehook is not None
    hook = profilehook.Hook(lambda frame, event, arg: 0, {}, {})

    with pytest.raises(ValueError, match="at most 16 thread ids"):
        hook.install_eval(list(range(17)))
    assert profilehook.eval_function_is_default()


def plain(a, b=2):  # type: ignore[no-untyped-def]
    return a + b


def raises(value):  # type: ignore[no-untyped-def]
    raise ValueError(value)


def catches():  # type: ignore[no-untyped-def]
    try:
        raises(1)
    except ValueError:
        return "caught"


def with_closure(x):  # type: ignore[no-untyped-def]
    cell = [x]

    def inner(z):  # type: ignore[no-untyped-def]
        return cell[0] + z + x

    return inner(1)


def count(limit):  # type: ignore[no-untyped-def]
    for i in range(limit):
        yield i
    return "done"


def yields_none():  # type: ignore[no-untyped-def]
    yield None
    yield


def catches_in_loop():  # type: ignore[no-untyped-def]
    while True:
        try:
            yield 1
        except KeyError:
            yield "caught"


def delegates():  # type: ignore[no-untyped-def]
    result = yield from count(2)
    yield result


def returns_when_thrown():  # type: ignore[no-untyped-def]
    try:
        yield 1
    except KeyError:
        return "thrown"


def delegates_to_returning():  # type: ignore[no-untyped-def]
    result = yield from returns_when_thrown()
    yield result


class Item:
    def __getitem__(self, key):  # type: ignore[no-untyped-def]
        return key * 2

    @property
    def size(self):  # type: ignore[no-untyped-def]
        return 5


async def leaf(value):  # type: ignore[no-untyped-def]
    await asyncio.sleep(0)
    return value


async def awaits(value):  # type: ignore[no-untyped-def]
    return await leaf(value) + 1


async def agen(limit):  # type: ignore[no-untyped-def]
    for i in range(limit):
        await asyncio.sleep(0)
        yield i


async def raises_later():  # type: ignore[no-untyped-def]
    await asyncio.sleep(0)
    raise KeyError("later")


async def main_coroutine():  # type: ignore[no-untyped-def]
    await awaits(1)
    [x async for x in agen(2)]
    try:
        await raises_later()
    except KeyError:
        pass
    await asyncio.ensure_future(awaits(5))
    closing = agen(3)
    await closing.__anext__()
    await closing.aclose()


def run_cases() -> None:
    for _ in range(3):
        plain(1)
    plain("a", "b")
    with pytest.raises(ValueError):
        raises(2)
    catches()
    with_closure(3)
    list(count(3))
    generator = count(5)
    next(generator)
    generator.send(7)
    generator.close()
    generator = count(2)
    next(generator)
    with pytest.raises(KeyError):
        generator.throw(KeyError("thrown"))
    list(yields_none())
    generator = catches_in_loop()
    next(generator)
    generator.throw(KeyError())
    next(generator)
    generator.close()
    list(delegates())
    generator = delegates_to_returning()
    next(generator)
    generator.throw(KeyError())
    count(1).close()
    with pytest.raises(KeyError):
        count(3).throw(KeyError())
    item = Item()
    for _ in range(10):
        item[3]
        item.size
    asyncio.run(main_coroutine())


def _is_start(frame: FrameType, arg: Any) -> bool:
    """Return whether a call event with *arg* starts *frame*: the evaluation function
    passes True or False, and the profile function None."""
    if arg is not None:
        return bool(arg)
    code = frame.f_code.co_code
    if frame.f_lasti < 0:
        return True
    return dis.opname[code[frame.f_lasti]] == "RESUME" and code[frame.f_lasti + 1] == 0


def record_events(install: Callable[[Any], None], uninstall: Callable[[Any], None]) -> list[tuple[object, ...]]:
    """Run run_cases() under a bare Hook, installed by *install*, whose handler keeps
    each frame that starts in its calls dict, and return the events of this module's
    code: the function, a number per frame object, the event, and for return events
    the instruction at f_lasti and the type of the value.

    As in the recorder, a frame whose first event resumes it, such as a generator
    that throw() starts, has no call: the evaluation function then passes none of
    its events, and the profile function only that first one."""
    assert profilehook is not None
    events: list[tuple[object, ...]] = []
    frame_numbers: dict[FrameType, int] = {}
    calls: dict[FrameType, int] = {}

    def handler(frame: FrameType, event: str, arg: Any) -> int:
        code = frame.f_code
        if code.co_filename != __file__:
            return 0
        if frame not in calls and event == "call" and not _is_start(frame, arg):
            return 0
        calls[frame] = 1
        number = frame_numbers.setdefault(frame, len(frame_numbers))
        if event == "call":
            events.append((code.co_name, number, event))
        else:
            instruction = dis.opname[code.co_code[frame.f_lasti]]
            events.append((code.co_name, number, event, instruction, type(arg).__name__))
        return 0

    hook = profilehook.Hook(handler, calls, {})
    # A collection closes the generators of earlier runs left in reference cycles,
    # at a point that differs between runs.
    gc.collect()
    gc.disable()
    install(hook)
    try:
        run_cases()
    finally:
        uninstall(hook)
        gc.enable()
        calls.clear()
    assert hook.errors == {}
    return events


def test_events_match_profile_function() -> None:
    """The evaluation function passes the handler the events, frames and values that
    the profile function passes, through generators, throw(), close(), delegation,
    coroutines and async generators."""
    from_profile = record_events(lambda hook: hook.install(), lambda hook: sys.setprofile(None))
    from_eval = record_events(lambda hook: hook.install_eval([]), lambda hook: hook.uninstall_eval())

    assert len(from_profile) > 100
    assert from_eval == from_profile


def test_resumption_without_open_call_dropped() -> None:
    """A frame that is not in the calls dict gets its start event only: where it
    resumes, there is no call to start, so the evaluation function runs it without
    events."""
    assert profilehook is not None
    seen: list[str] = []

    def handler(frame: FrameType, event: str, arg: Any) -> int:
        if frame.f_code.co_name == "yields_none":
            seen.append(event)
        return 0

    hook = profilehook.Hook(handler, {}, {})
    assert hook.install_eval([])
    try:
        list(yields_none())
    finally:
        hook.uninstall_eval()

    assert seen == ["call"]


def test_call_event_tells_start_from_resume() -> None:
    assert profilehook is not None
    seen: list[tuple[str, object]] = []
    calls: dict[FrameType, int] = {}

    def handler(frame: FrameType, event: str, arg: Any) -> int:
        if frame.f_code.co_name == "count":
            calls[frame] = 1
            if event == "call":
                seen.append((event, arg))
        return 0

    hook = profilehook.Hook(handler, calls, {})
    assert hook.install_eval([])
    try:
        list(count(2))
    finally:
        hook.uninstall_eval()
        calls.clear()

    assert seen == [("call", True), ("call", False), ("call", False)]


# Recursion


def recurse(depth):  # type: ignore[no-untyped-def]
    return recurse(depth + 1)


def test_deep_recursion_raises_recursion_error() -> None:
    """Each call nests in C while the evaluation function is set; a program that
    raises the recursion limit to 10,000 still gets RecursionError, not a crash."""
    program = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from support import ListSink, SinkOnlyConfig
        from typetrace import tracing
        from typetrace.config import Sampling

        def recurse(depth):
            return recurse(depth + 1)

        sys.setrecursionlimit(10_000)
        with tracing.trace(SinkOnlyConfig(Sampling(first_calls=10)), sink=ListSink()):
            assert type(tracing.active_session()._backend).__name__ == "EvalHookBackend"
            try:
                recurse(0)
            except RecursionError:
                print("RecursionError")
        """
    )
    env = {name: value for name, value in os.environ.items() if not name.startswith("TYPETRACE")}
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, env=env, timeout=120)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "RecursionError"
