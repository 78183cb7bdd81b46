"""Call traces and the tracer that records them from a running program.

:func:`trace` watches the calls of the selected code while its block runs, notes the
types of arguments, return values and yielded values, and hands one :class:`CallTrace`
per recorded call to a :class:`TraceSink`. Python 3.12 and later are traced through
:mod:`sys.monitoring`; Python 3.9 to 3.11 through :func:`sys.setprofile`.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator, Mapping, Optional, Protocol

from typetrace.exceptions import TypeTraceError
from typetrace.typemodel import TypeRef

if TYPE_CHECKING:
    from typetrace._recorder import Recorder
    from typetrace.config import Config

__all__ = ["CallTrace", "TraceSink", "TraceStats", "TracerError", "trace"]


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

    def __post_init__(self) -> None:
        # A frozen copy, so that a trace is immutable and hashable.
        object.__setattr__(self, "arg_types", _FrozenDict(self.arg_types))

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
_session_active = False


@contextlib.contextmanager
def trace(
    config: Optional[Config] = None,
    *,
    sink: Optional[TraceSink] = None,
    main_module: Optional[str] = None,
) -> Iterator[TraceStats]:
    """Record the types of the calls made while the block runs.

    Code is selected by ``config.code_filter()`` and calls are sampled by
    ``config.sampling()``. On Python 3.12 and later, calls in every thread are traced.
    On 3.9 to 3.11, calls in the thread that enters the block and in threads started
    inside it are traced, but not those in threads that were already running.

    Tracing stops when the block exits, also when it raises. Generators and coroutines
    still suspended then are recorded with the types seen so far. Only one session
    may be active at a time in a process.

    Args:
        config: Code filter, sampling and store; :func:`~typetrace.config.get_default_config`
            when omitted.
        sink: Receives the traces. When omitted, traces are written to
            ``config.trace_store()`` by a background writer that is closed, with the
            store, when the block exits.
        main_module: Module name to record for code and classes of ``__main__``, for
            example the file stem of a script run as ``__main__``.

    Yields:
        The session's counters.

    Raises:
        TracerError: Another session is active, or the interpreter's tracing hooks are
            taken by another tool. On 3.12 and later that means no
            :mod:`sys.monitoring` tool id is free. On 3.9 to 3.11 it means another
            :func:`sys.setprofile` function is set.
    """
    global _session_active
    from typetrace._recorder import Recorder
    from typetrace.config import get_default_config

    with _session_lock:
        if _session_active:
            raise TracerError("A trace session is already active; end it before starting another one")
        _session_active = True
    try:
        if config is None:
            config = get_default_config()
        stats = TraceStats()
        with contextlib.ExitStack() as cleanup:
            if sink is None:
                sink = _open_store_writer(config, cleanup)
            recorder = Recorder(sink, config.code_filter(), config.sampling(), stats, main_module)
            backend = _make_backend(recorder)
            backend.install()
            try:
                yield stats
            finally:
                backend.uninstall()
                recorder.finish_all()
    finally:
        with _session_lock:
            _session_active = False


def _open_store_writer(config: Config, cleanup: contextlib.ExitStack) -> TraceSink:
    from typetrace._writer import StoreWriter

    store = config.trace_store()
    cleanup.callback(store.close)
    writer = StoreWriter(store)
    cleanup.callback(writer.close)
    return writer


def _make_backend(recorder: Recorder) -> _Backend:
    if sys.version_info >= (3, 12):
        from typetrace._monitoring import MonitoringBackend

        return MonitoringBackend(recorder)
    from typetrace._profiling import ProfileBackend

    return ProfileBackend(recorder)


class _Backend(Protocol):
    def install(self) -> None: ...

    def uninstall(self) -> None: ...
