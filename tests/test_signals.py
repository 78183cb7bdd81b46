"""typetrace._signals and the tracer's catch sites: an exception that a signal handler
of the program raises inside the tracer reaches the program, and the tracer's own
errors stay caught.

Each in-process test raises the signal with :func:`signal.raise_signal` from the
trace sink, which runs inside the tracer's callbacks. Python runs the handler before
raise_signal() returns, so the handler's exception starts in tracer code every time.
The races with real timers are tested with real processes in test_processes.py.
"""

from __future__ import annotations

import functools
import signal
import sys
import threading
from types import FrameType
from typing import Any, Callable, Iterator, Optional

import pytest
from support import ListSink, SinkOnlyConfig

from typetrace._signals import raised_by_signal_handler, signal_handler_traceback
from typetrace.tracing import CallTrace, trace

pytestmark = [
    pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="needs POSIX signals"),
]


class Deadline(Exception):
    pass


def on_signal(signum: int, frame: Optional[FrameType]) -> None:
    raise Deadline(f"signal {signum}")


class Handlers:
    def on_signal(self, signum: int, frame: Optional[FrameType]) -> None:
        raise Deadline("method")

    def __call__(self, signum: int, frame: Optional[FrameType]) -> None:
        raise Deadline("callable object")


def raise_with_extra(signum: int, frame: Optional[FrameType], message: str) -> None:
    raise Deadline(message)


@pytest.fixture(autouse=True)
def restore_sigusr1() -> Iterator[None]:
    previous = signal.getsignal(signal.SIGUSR1)
    yield
    signal.signal(signal.SIGUSR1, previous)


def caught_from_signal() -> Deadline:
    try:
        signal.raise_signal(signal.SIGUSR1)
    except Deadline as error:
        return error
    raise AssertionError("the handler did not raise")


def caught_from_function() -> Deadline:
    try:
        on_signal(0, None)
    except Deadline as error:
        return error
    raise AssertionError("on_signal did not raise")


HANDLERS: dict[str, Callable[[], Any]] = {
    "function": lambda: on_signal,
    "method": lambda: Handlers().on_signal,
    "callable-object": lambda: Handlers(),
    "partial": lambda: functools.partial(raise_with_extra, message="partial"),
}


@pytest.mark.parametrize("make_handler", HANDLERS.values(), ids=HANDLERS.keys())
def test_installed_handler_recognized(make_handler: Callable[[], Any]) -> None:
    signal.signal(signal.SIGUSR1, make_handler())

    error = caught_from_signal()
    entry = signal_handler_traceback(error)

    assert entry is not None
    assert entry.tb_frame.f_code.co_name in {"on_signal", "__call__", "raise_with_extra"}
    assert raised_by_signal_handler(error)


def test_handler_not_installed_not_recognized() -> None:
    signal.signal(signal.SIGUSR1, signal.SIG_DFL)

    error = caught_from_function()

    assert signal_handler_traceback(error) is None


def test_other_code_not_recognized() -> None:
    signal.signal(signal.SIGUSR1, on_signal)

    try:
        {}["missing"]
    except KeyError as error:
        recognized = raised_by_signal_handler(error)

    assert not recognized


def test_other_thread_not_recognized() -> None:
    signal.signal(signal.SIGUSR1, on_signal)
    error = caught_from_function()
    results: list[bool] = []

    thread = threading.Thread(target=lambda: results.append(raised_by_signal_handler(error)))
    thread.start()
    thread.join()

    assert results == [False]


# The tracer's catch sites


class SignallingSink(ListSink):
    """A sink that raises SIGUSR1 at its first trace of *qualname*, inside the
    tracer's callback."""

    def __init__(self, qualname: str) -> None:
        super().__init__()
        self.qualname = qualname
        self.signalled = False

    def record(self, trace: CallTrace) -> None:
        if trace.qualname == self.qualname and not self.signalled:
            self.signalled = True
            signal.raise_signal(signal.SIGUSR1)
        super().record(trace)


class FailingSink(ListSink):
    def record(self, trace: CallTrace) -> None:
        raise ValueError("sink failed")


def work(value: int) -> list[int]:
    return [value]


def caller(value: int) -> list[int]:
    return work(value)


@pytest.mark.usefixtures("tracing_backend")
def test_handler_exception_reaches_program() -> None:
    signal.signal(signal.SIGUSR1, on_signal)
    sink = SignallingSink("work")
    reached: list[str] = []

    with trace(SinkOnlyConfig(), sink=sink) as stats:
        try:
            caller(1)
        except Deadline as error:
            reached.append(str(error))

    assert sink.signalled
    assert reached == [f"signal {signal.SIGUSR1}"]
    assert not any("Deadline" in kind for kind in stats.errors)


@pytest.mark.usefixtures("tracing_backend")
def test_handler_exception_leaves_tracing_on() -> None:
    """Calls after the handler's exception are still recorded, except by the pure-Python
    profile function, which Python removes from the main thread when it raises."""
    signal.signal(signal.SIGUSR1, on_signal)
    sink = SignallingSink("work")
    pure_python = sys.version_info < (3, 12) and _pure_python()

    with trace(SinkOnlyConfig(), sink=sink):
        try:
            caller(1)
        except Deadline:
            pass
        caller(2)

    if pure_python:
        # Only the first call, left open, which the session records when it stops.
        assert len(sink.of("caller")) == 1
    else:
        assert len(sink.of("caller")) == 2


@pytest.mark.usefixtures("tracing_backend")
def test_tracer_error_stays_caught() -> None:
    """An error of the tracer's sink stays caught and counted while a handler that is
    not running is installed."""
    signal.signal(signal.SIGUSR1, on_signal)
    results: list[list[int]] = []

    with trace(SinkOnlyConfig(), sink=FailingSink()) as stats:
        results.append(caller(3))

    assert results == [[3]]
    assert stats.errors.get("sink: ValueError", 0) >= 1


def _pure_python() -> bool:
    import os

    from typetrace._profiling import PURE_PYTHON_VARIABLE

    return os.environ.get(PURE_PYTHON_VARIABLE) == "1"
