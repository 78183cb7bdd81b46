"""Call traces and the tracer that records them from a running program.

:func:`trace` watches the calls of the selected code while its block runs, notes the
types of arguments, return values and yielded values, and hands one :class:`CallTrace`
per recorded call to a :class:`TraceSink`. Python 3.12 and later are traced through
:mod:`sys.monitoring`; Python 3.9 and 3.10 through :func:`sys.setprofile`; Python 3.11
through a frame-evaluation function in C that reports the same events, or through
:func:`sys.setprofile` where that function is not available.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, NoReturn, Optional, Protocol

from typetrace import _sigterm
from typetrace._signals import signals_blocked
from typetrace.exceptions import TypeTraceError
from typetrace.inference import PURE_PYTHON_VARIABLE as PURE_PYTHON_VARIABLE
from typetrace.typemodel import TypeRef

if TYPE_CHECKING:
    from typetrace._recorder import Recorder
    from typetrace._writer import StoreWriter
    from typetrace.config import Config

__all__ = [
    "CallTrace",
    "TraceSession",
    "TraceSink",
    "TraceStats",
    "TracerError",
    "active_session",
    "start",
    "stop",
    "trace",
]

logger = logging.getLogger(__name__)

#: Environment variable that turns off the C fast path of calls with cached types
#: when set to 1. The C hook of Python 3.9 to 3.11 then passes every call to its
#: Python handler, and Python 3.12 and later use Python callbacks only. It is read
#: when tracing starts, and lets tests compare the traces of both paths.
NO_FAST_CALLS_VARIABLE = "TYPETRACE_NO_FAST_CALLS"


@dataclass(frozen=True)
class CallTrace:
    """The types observed in one call, or in many identical calls, of one function.

    For ``*args`` and ``**kwargs`` parameters, :attr:`arg_types` holds the type of
    their elements, which is what an annotation of such a parameter states.
    """

    #: Module of the function, as in ``func.__module__``.
    module: str
    #: Qualified name of the function, as in ``func.__qualname__``.
    qualname: str
    #: Parameter name to the type of the value passed for it.
    arg_types: Mapping[str, TypeRef]
    #: Type of the returned value; ``None`` when the call raised or did not return.
    return_type: Optional[TypeRef] = None
    #: Union of the types yielded; ``None`` when the call yielded nothing.
    yield_type: Optional[TypeRef] = None
    #: Number of calls this trace stands for. Not part of equality.
    call_count: int = field(default=1, compare=False)
    #: Union of the types of the values that a generator received at its ``yield``
    #: expressions: from ``send()``, or ``None`` from ``next()``. ``None`` when it
    #: never resumed at one, or the backend cannot read the values.
    send_type: Optional[TypeRef] = None

    def __post_init__(self) -> None:
        # A frozen copy, so that a trace is immutable and hashable.
        object.__setattr__(self, "arg_types", _FrozenDict(self.arg_types))

    def __hash__(self) -> int:
        # Cached: the writer hashes every recorded trace, and the recorder hands it
        # the same trace object for repeated calls with the same types.
        cached: Optional[int] = self.__dict__.get("_hash")
        if cached is None:
            cached = hash(
                (
                    self.module,
                    self.qualname,
                    self.arg_types,
                    self.return_type,
                    self.yield_type,
                    self.send_type,
                )
            )
            object.__setattr__(self, "_hash", cached)
        return cached

    def __getstate__(self) -> dict[str, object]:
        # String hashes differ between processes, so the cache is not pickled.
        return {name: value for name, value in self.__dict__.items() if name != "_hash"}

    @property
    def funcname(self) -> str:
        """``module:qualname``, the name typetrace shows for the function."""
        return f"{self.module}:{self.qualname}"


class _FrozenDict(dict):  # type: ignore[type-arg]
    """A dict that cannot change after construction and hashes by its items."""

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(self.items()))

    def _immutable(self, *args: object, **kwargs: object) -> None:
        raise TypeError("CallTrace.arg_types cannot be changed")

    def __reduce__(self) -> tuple[type[_FrozenDict], tuple[dict[str, TypeRef]]]:
        # Pickle rebuilds a dict subclass item by item, which _immutable rejects.
        return (_FrozenDict, (dict(self),))

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _immutable  # type: ignore[assignment]


class TraceSink(Protocol):
    """The receiver of the calls that the tracer records.

    :meth:`record` is called from the traced program's threads, so it must be quick and
    thread-safe. An exception it raises is logged, counted in
    :attr:`TraceStats.errors` and otherwise ignored.
    """

    def record(self, trace: CallTrace) -> None:
        """Take one recorded call."""
        ...


class TracerError(TypeTraceError, RuntimeError):
    """The tracer cannot start: it is already active, or the interpreter's tracing hooks
    are taken by another tool."""


@dataclass
class TraceStats:
    """Counters of one :func:`trace` session, updated while it runs."""

    #: Calls handed to the sink.
    calls_recorded: int = 0
    #: Errors caught inside the tracer, by kind, for example ``"sink: OSError"``.
    errors: dict[str, int] = field(default_factory=dict)


_session_lock = threading.Lock()
#: Seconds that the SIGTERM handler's thread waits for the session lock before it
#: writes the pending traces without stopping the session. A longer wait most likely
#: means that the main thread, stopped by the handler inside stop(), holds the lock.
SESSION_LOCK_WAIT = 0.1
_active_session: Optional[TraceSession] = None
_stop_registered_at_exit = False


class TraceSession:
    """A running trace session, from :func:`start` or :func:`trace` until :meth:`stop`.

    While it runs, a call of :func:`os._exit` first stops the session and closes the
    :class:`~typetrace._writer.StoreWriter` that the traces go to, also one passed as
    the sink, so that the traces of a process that ends that way are written.
    :mod:`multiprocessing` ends its forked workers so. A session started in the main
    thread of a process whose SIGTERM handler is the default also writes the traces
    of that writer at SIGTERM, within :data:`typetrace._sigterm.WRITE_TIMEOUT`
    seconds. In a child made by :func:`os.fork`, the session goes on with the calls
    the child makes, and the child's traces go to the same store.
    """

    def __init__(
        self,
        config: Optional[Config],
        sink: Optional[TraceSink],
        main_module: Optional[str],
        follow_children: bool,
        main_scripts: Optional[Mapping[str, str]] = None,
    ) -> None:
        from typetrace._recorder import Recorder
        from typetrace.config import call_config, get_default_config, prepare_default_code_filter

        if config is None:
            config = get_default_config()
        #: The session's counters, updated while it runs.
        self.stats = TraceStats()
        self._stopped = False
        self._cleanup = contextlib.ExitStack()
        self._resumer: Optional[_ResumeTimer] = None
        # Set when os.fork() stopped the timer's thread or the SIGTERM watcher's in
        # this process, which the next recorded call starts again.
        self._threads_stopped_by_fork = False
        # The writer that the session opened, when no sink was given.
        self._writer: Optional[StoreWriter] = None
        # The writer that the traces go to: the session's own, or a StoreWriter passed
        # as the sink, which os._exit() and SIGTERM write too.
        self._store_writer: Optional[StoreWriter] = None
        try:
            if sink is None:
                sink = self._writer = _open_store_writer(config, self._cleanup)
            self._store_writer = _store_writer_of(sink)
            sink = _SessionSink(self, sink)
            if follow_children:
                from typetrace._subprocess import export_child_settings

                self._cleanup.enter_context(export_child_settings(config))
            sampling = call_config(config, "sampling", config.sampling)
            # Done before the program's next line runs, so that no import of ours
            # goes through an import hook the program installs later.
            prepare_default_code_filter()
            code_filter = call_config(config, "code_filter", config.code_filter)
            self._recorder = Recorder(
                sink, code_filter, sampling, self.stats, main_module, main_scripts=main_scripts
            )
            if sampling.pause_after is not None and not sampling.all_calls:
                from typetrace._writer import join_thread_for_fork

                self._resumer = _ResumeTimer(self._recorder, sampling.max_resume_interval, join_thread_for_fork)
            self._backend = _make_backend(self._recorder)
            self._backend.install()
        except BaseException:
            if self._resumer is not None:
                self._resumer.stop()
            self._cleanup.close()
            raise

    def stop(self) -> None:
        """Stop tracing, record the calls still open with the types seen so far, and
        write the pending traces. Calling it again does nothing."""
        global _active_session
        with _session_lock:
            if self._stopped:
                return
            self._stopped = True
        try:
            self._backend.uninstall()
            if self._resumer is not None:
                self._resumer.stop()
            self._recorder.finish_all()
            self._cleanup.close()
        finally:
            with _session_lock:
                if _active_session is self:
                    _active_session = None
                    _os_exit_hook.uninstall()
                    _sigterm.uninstall()

    def _stop_before_exit(self) -> None:
        """Stop the session in a process that is about to end, and close a
        StoreWriter passed as the sink too, which os._exit() would leave unwritten.

        stop() closes that writer before it uninstalls the SIGTERM handler, because
        a SIGTERM that arrives after that ends the process at once.
        """
        writer = self._store_writer
        if writer is not None and writer is not self._writer and not self._stopped:
            self._cleanup.callback(writer.close)
        self.stop()

    @property
    def active(self) -> bool:
        """Whether the session is still tracing."""
        return not self._stopped

    def _write_before_termination(self, timeout: float) -> None:
        """Stop the session and write its pending traces within *timeout* seconds, from
        a thread other than the main thread, which a SIGTERM handler holds.

        When the main thread stopped inside the writer's :meth:`~StoreWriter.record`,
        or inside :meth:`stop` with the session lock held, stopping the session would
        wait for that lock forever, so only the pending traces are written.
        """
        deadline = time.monotonic() + timeout
        writer = self._store_writer
        if (writer is None or writer.lock_free_within()) and _session_lock_free_within():
            try:
                # Returns at once when the session is already stopping.
                self.stop()
            except Exception:
                logger.debug("Failed to stop tracing at SIGTERM", exc_info=True)
        if writer is not None:
            writer.write_at_termination(max(0.0, deadline - time.monotonic()))

    def _before_fork(self) -> None:
        # Python 3.12+ warns on the program's stderr when it forks with more than
        # one thread running, so the timer's thread ends first.
        if self._resumer is not None:
            self._resumer.stop(wait=True)

    def _after_fork_in_parent(self) -> None:
        # Restarted by the next recorded call (see _SessionSink): a thread started
        # here would make Python 3.13 warn, because it counts threads after the fork
        # handlers.
        if not self._stopped:
            self._threads_stopped_by_fork = True

    def _restart_threads(self) -> None:
        with _session_lock:
            if not self._threads_stopped_by_fork or self._stopped:
                return
            self._threads_stopped_by_fork = False
            if self._resumer is not None:
                self._resumer = self._resumer.restart()
            _sigterm.restart_watcher()

    def _after_fork_in_child(self) -> None:
        self._recorder.forget_calls()
        if self._resumer is not None:
            self._resumer = self._resumer.restart()


def start(
    config: Optional[Config] = None,
    *,
    main_module: Optional[str] = None,
    follow_children: bool = False,
) -> TraceSession:
    """Start tracing the calls of the selected code until :func:`stop` or exit.

    This is the form for long-running programs, such as a service that traces a
    sample of its calls in production. The session is stopped, and its traces are
    written, when :func:`stop` is called or the interpreter exits.

    Args:
        config: Code filter, sampling and store, as for :func:`trace`.
        main_module: Module name to record for code and classes of ``__main__``; by
            default the module the main script runs as, from ``python -m`` or from its
            file's place on the import path.
        follow_children: Also trace the Python processes that the program starts
            (see :func:`trace`).

    Returns:
        The session; ``session.stats`` holds its counters.

    Raises:
        TracerError: As :func:`trace` raises it.
    """
    return _start_session(config, None, main_module, follow_children)


def stop() -> Optional[TraceStats]:
    """Stop the active trace session, if any, and return its counters."""
    session = _active_session
    if session is None:
        return None
    session.stop()
    return session.stats


def active_session() -> Optional[TraceSession]:
    """Return the trace session running in this process, or ``None``."""
    return _active_session


def _start_session(
    config: Optional[Config],
    sink: Optional[TraceSink],
    main_module: Optional[str],
    follow_children: bool,
    main_scripts: Optional[Mapping[str, str]] = None,
) -> TraceSession:
    """Start a session as :func:`start` does. *main_scripts* maps the ``__file__`` of
    a main script to the module name to record for it, where *main_module* is None."""
    global _active_session, _stop_registered_at_exit
    with _session_lock:
        if _active_session is not None:
            raise TracerError("A trace session is already active; end it before starting another one")
        # Reserves the slot while the session starts, outside the lock.
        _active_session = _STARTING
    try:
        session = TraceSession(config, sink, main_module, follow_children, main_scripts)
    except BaseException:
        with _session_lock:
            _active_session = None
        raise
    with _session_lock:
        _active_session = session
        _os_exit_hook.install()
        _sigterm.install(_write_before_sigterm)
        if not _stop_registered_at_exit:
            _stop_registered_at_exit = True
            atexit.register(_stop_at_exit)
    return session


@contextlib.contextmanager
def trace(
    config: Optional[Config] = None,
    *,
    sink: Optional[TraceSink] = None,
    main_module: Optional[str] = None,
    follow_children: bool = False,
) -> Iterator[TraceStats]:
    """Record the types of the calls made while the block runs.

    Code is selected by ``config.code_filter()`` and calls are sampled by
    ``config.sampling()``. Calls in every thread are traced, except on 3.9 to 3.11
    without the C hook (see :mod:`typetrace._profiling`): there, threads that
    were already running when the block began are not traced.

    Tracing stops when the block exits, also when it raises. Generators and coroutines
    still suspended then are recorded with the types seen so far. Only one session
    may be active at a time in a process.

    Args:
        config: Code filter, sampling and store; :func:`~typetrace.config.get_default_config`
            when omitted.
        sink: Receives the traces. When omitted, traces are written to
            ``config.trace_store()`` by a background writer that is closed, with the
            store, when the block exits. A :class:`~typetrace._writer.StoreWriter`
            passed here stays open after the block, but is closed when the process
            ends with :func:`os._exit` or at exit while the block runs, and its
            traces are written at SIGTERM as the session's own.
        main_module: Module name to record for code and classes of ``__main__``. By
            default it is the module each main script runs as, from ``python -m`` or
            from its file's place on the import path.
        follow_children: Also trace the Python processes that the program starts
            while the block runs, writing to the same store: children of
            :mod:`multiprocessing` with any start method, and interpreters started
            with :mod:`subprocess` that inherit the environment. Needs a config that
            a child can load again (see :mod:`typetrace._subprocess`).

    Yields:
        The session's counters.

    Raises:
        TracerError: Another session is active, or the interpreter's tracing hooks are
            taken by another tool. On 3.12 and later that means no
            :mod:`sys.monitoring` tool id is free. On 3.9 to 3.11 it means another
            :func:`sys.setprofile` function is set.
    """
    session = _start_session(config, sink, main_module, follow_children)
    try:
        yield session.stats
    finally:
        session.stop()


def _open_store_writer(config: Config, cleanup: contextlib.ExitStack) -> StoreWriter:
    from typetrace._writer import StoreWriter
    from typetrace.config import call_config

    store = call_config(config, "trace_store", config.trace_store)
    cleanup.callback(store.close)
    writer = StoreWriter(store)
    cleanup.callback(writer.close)
    return writer


def _session_lock_free_within() -> bool:
    from typetrace._writer import lock_free_within

    return lock_free_within(_session_lock, SESSION_LOCK_WAIT)


def _store_writer_of(sink: TraceSink) -> Optional[StoreWriter]:
    from typetrace._writer import StoreWriter

    return sink if isinstance(sink, StoreWriter) else None


def _make_backend(recorder: Recorder) -> _Backend:
    if sys.version_info >= (3, 12):
        from typetrace._monitoring import MonitoringBackend

        return MonitoringBackend(recorder)
    from typetrace._profiling import make_profile_backend

    return make_profile_backend(recorder)


class _SessionSink:
    """Passes traces to the session's sink, restarting what a fork stopped first."""

    def __init__(self, session: TraceSession, sink: TraceSink) -> None:
        self._session = session
        self._sink = sink

    def record(self, trace: CallTrace) -> None:
        # The fast path of calls in C (typetrace/_fastcalls.h) repeats this check,
        # and the first branch of StoreWriter.record.
        if self._session._threads_stopped_by_fork:
            self._session._restart_threads()
        self._sink.record(trace)

    def store_writer(self) -> tuple[Optional[StoreWriter], TraceSession]:
        """Return the :class:`~typetrace._writer.StoreWriter` that this sink passes
        traces to, or ``None`` for another sink or a subclass, with the session."""
        from typetrace._writer import StoreWriter

        writer = self._sink if type(self._sink) is StoreWriter else None
        return writer, self._session


class _ResumeTimer:
    """Resumes the functions that sampling paused, after 1, 2, 4 ... seconds, at most
    *max_interval* apart."""

    def __init__(
        self, recorder: Recorder, max_interval: float, join_for_fork: Callable[[threading.Thread], None]
    ) -> None:
        self._recorder = recorder
        self._max_interval = max_interval
        # typetrace._writer.join_thread_for_fork, imported when the session starts,
        # because an import statement in a fork handler would go through the
        # program's builtins.__import__.
        self._join_for_fork = join_for_fork
        self._stopped = threading.Event()
        # Started before the backend installs, so that on 3.9 to 3.11 the thread has
        # no profile function.
        self._thread = threading.Thread(target=self._run, name="typetrace-resume", daemon=True)
        with signals_blocked():
            self._thread.start()

    def _run(self) -> None:
        interval = 1.0
        while not self._stopped.wait(interval):
            try:
                self._recorder.resume_paused()
            except Exception as error:  # noqa: BLE001 - the timer must keep running
                self._recorder.note_error("resume", error)
            interval = min(2 * interval, self._max_interval)

    def stop(self, wait: bool = False) -> None:
        """Stop the thread; with *wait*, also wait for it to end, as before a fork."""
        self._stopped.set()
        if wait:
            self._join_for_fork(self._thread)

    def restart(self) -> _ResumeTimer:
        """Return a new timer for this process: in a child made by :func:`os.fork`,
        the parent's thread does not exist."""
        return _ResumeTimer(self._recorder, self._max_interval, self._join_for_fork)


class _OsExitHook:
    """Replaces :func:`os._exit` while a session runs, to stop the session first."""

    def __init__(self) -> None:
        self._original: Optional[Callable[[int], NoReturn]] = None

    def install(self) -> None:
        if self._original is None:
            self._original = os._exit
            os._exit = self._exit

    def uninstall(self) -> None:
        original = self._original
        # A hook that another tool set over ours stays; ours then only passes through.
        if original is not None and os._exit == self._exit:
            os._exit = original  # type: ignore[assignment]  # restores the function replaced
            self._original = None

    def _exit(self, status: int) -> NoReturn:
        original = self._original or _real_os_exit
        session = _active_session
        if session is not None and session is not _STARTING:
            try:
                session._stop_before_exit()
            except Exception:
                logger.exception("Failed to stop tracing before os._exit(); traces may be lost")
        original(status)


_real_os_exit = os._exit
_os_exit_hook = _OsExitHook()


class _Starting:
    """Placeholder in the active-session slot while a session starts."""

    def stop(self) -> None:
        pass


_STARTING: Any = _Starting()


def _write_before_sigterm(timeout: float, in_main_thread: bool) -> None:
    session = _active_session
    if session is None or session is _STARTING:
        return
    if not in_main_thread:
        session._write_before_termination(timeout)
    elif session._store_writer is not None:
        # Stopping the session could wait forever for a lock that the main thread,
        # stopped in the handler, has taken. The writer waits for locks only with
        # timeouts.
        session._store_writer.write_at_termination(timeout)


def _stop_at_exit() -> None:
    session = _active_session
    if session is not None and session is not _STARTING:
        session._stop_before_exit()


def _after_fork_in_child() -> None:
    global _session_lock
    # The lock may have been held by a thread that does not exist in the child.
    _session_lock = threading.Lock()
    session = _active_session
    if session is not None and session is not _STARTING:
        session._after_fork_in_child()


def _before_fork() -> None:
    session = _active_session
    if session is not None and session is not _STARTING:
        session._before_fork()


def _after_fork_in_parent() -> None:
    session = _active_session
    if session is not None and session is not _STARTING:
        session._after_fork_in_parent()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child
    )


class _Backend(Protocol):
    def install(self) -> None: ...

    def uninstall(self) -> None: ...
