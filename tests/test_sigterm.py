"""typetrace._sigterm: which SIGTERM handler a trace session installs, keeps and restores.

What the handler does when SIGTERM arrives is tested with real processes in
test_processes.py.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from types import FrameType
from typing import Iterator, Optional

import pytest
from support import ListSink, SinkOnlyConfig

from typetrace import _sigterm
from typetrace._sigterm import SUPPORTED, handle_sigterm
from typetrace.tracing import _start_session, trace

pytestmark = [
    pytest.mark.skipif(not SUPPORTED, reason="needs POSIX signals"),
    pytest.mark.usefixtures("tracing_backend"),
]


@pytest.fixture(autouse=True)
def default_sigterm_handler() -> Iterator[None]:
    """Start each test with SIG_DFL and no wakeup fd, and give the test process its
    handler and wakeup fd back."""
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    previous_fd = signal.set_wakeup_fd(-1)
    yield
    # Ends a watcher that a session stopped outside the main thread left running.
    _sigterm.uninstall()
    signal.signal(signal.SIGTERM, previous)
    signal.set_wakeup_fd(previous_fd)


def watcher_threads() -> list[threading.Thread]:
    return [
        thread
        for thread in threading.enumerate()
        if thread.name == "typetrace-sigterm" and thread.is_alive()
    ]


def program_handler(signum: int, frame: Optional[FrameType]) -> None:
    pass


def test_installed_only_while_tracing() -> None:
    with trace(SinkOnlyConfig(), sink=ListSink()):
        during = signal.getsignal(signal.SIGTERM)

    assert during is handle_sigterm
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


@pytest.mark.parametrize("handler", [program_handler, signal.SIG_IGN], ids=["function", "SIG_IGN"])
def test_program_handler_set_before_is_kept(handler: object) -> None:
    signal.signal(signal.SIGTERM, handler)  # type: ignore[arg-type]

    with trace(SinkOnlyConfig(), sink=ListSink()):
        during = signal.getsignal(signal.SIGTERM)

    assert during is handler
    assert signal.getsignal(signal.SIGTERM) is handler


def test_program_handler_set_while_tracing_stays() -> None:
    with trace(SinkOnlyConfig(), sink=ListSink()):
        signal.signal(signal.SIGTERM, program_handler)

    assert signal.getsignal(signal.SIGTERM) is program_handler


def test_not_installed_outside_main_thread() -> None:
    handlers: list[object] = []

    def trace_in_thread() -> None:
        with trace(SinkOnlyConfig(), sink=ListSink()):
            handlers.append(signal.getsignal(signal.SIGTERM))

    thread = threading.Thread(target=trace_in_thread)
    thread.start()
    thread.join()

    assert handlers == [signal.SIG_DFL]


def test_stop_outside_main_thread_leaves_inert_handler() -> None:
    """Python sets handlers only from the main thread, so the handler stays, with
    nothing to write."""
    session = _start_session(SinkOnlyConfig(), ListSink(), None, follow_children=False)
    assert _sigterm._write_traces is not None

    thread = threading.Thread(target=session.stop)
    thread.start()
    thread.join()

    assert not session.active
    assert signal.getsignal(signal.SIGTERM) is handle_sigterm
    assert _sigterm._write_traces is None


def test_next_session_takes_over_inert_handler() -> None:
    first = _start_session(SinkOnlyConfig(), ListSink(), None, follow_children=False)
    thread = threading.Thread(target=first.stop)
    thread.start()
    thread.join()

    with trace(SinkOnlyConfig(), sink=ListSink()):
        writes_during = _sigterm._write_traces

    assert writes_during is not None
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_watcher_runs_only_while_tracing() -> None:
    with trace(SinkOnlyConfig(), sink=ListSink()):
        during = watcher_threads()

    assert len(during) == 1
    assert not during[0].is_alive()
    assert watcher_threads() == []


def test_program_sees_no_watcher_wakeup_fd() -> None:
    """The wakeup fd that the watcher takes is hidden from the program, which can set
    its own. The real set_wakeup_fd() is back after tracing."""
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    try:
        with trace(SinkOnlyConfig(), sink=ListSink()):
            before_program = signal.set_wakeup_fd(writer.fileno())
            program_fd = signal.set_wakeup_fd(-1)
            signal.set_wakeup_fd(writer.fileno())

        assert before_program == -1
        assert program_fd == writer.fileno()
        assert signal.set_wakeup_fd(-1) == writer.fileno()
        assert signal.set_wakeup_fd is _sigterm._watcher._real_set_wakeup_fd
    finally:
        reader.close()
        writer.close()


def test_watcher_takes_back_cleared_wakeup_fd() -> None:
    """A program that clears its wakeup fd, as the forkserver of multiprocessing does
    in each child, leaves it to the watcher."""
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    try:
        with trace(SinkOnlyConfig(), sink=ListSink()):
            signal.set_wakeup_fd(writer.fileno())
            taken_by_program = _sigterm._watcher._has_wakeup_fd
            cleared = signal.set_wakeup_fd(-1)
            taken_back = _sigterm._watcher._has_wakeup_fd
            watchers = watcher_threads()

        assert not taken_by_program
        assert cleared == writer.fileno()
        assert taken_back
        assert len(watchers) == 1
        assert signal.set_wakeup_fd(-1) == -1
    finally:
        reader.close()
        writer.close()


def test_program_wakeup_fd_set_before_is_kept() -> None:
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    signal.set_wakeup_fd(writer.fileno())
    try:
        with trace(SinkOnlyConfig(), sink=ListSink()):
            watchers = watcher_threads()
            during = signal.set_wakeup_fd(writer.fileno())

        assert watchers == []
        assert during == writer.fileno()
        assert signal.set_wakeup_fd(-1) == writer.fileno()
    finally:
        reader.close()
        writer.close()


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts the fds in /proc")
def test_watcher_pipe_not_leaked() -> None:
    with trace(SinkOnlyConfig(), sink=ListSink()):
        pass
    open_before = len(os.listdir("/proc/self/fd"))

    for _ in range(5):
        with trace(SinkOnlyConfig(), sink=ListSink()):
            pass

    assert len(os.listdir("/proc/self/fd")) == open_before
