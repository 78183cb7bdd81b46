"""Tell the exceptions of the program's signal handlers from the tracer's own errors.

Python runs a signal handler in the main thread at the next bytecode boundary, which
is often inside the tracer's callbacks or the code they call. An exception that the
handler raises, such as the ``TimeoutError`` of a SIGALRM handler, then surfaces in
the tracer, whose error handling would swallow it. The catch sites pass each caught
exception to :func:`raise_if_from_signal_handler`, which raises it again when a
signal handler of the program raised it.
"""

from __future__ import annotations

import contextlib
import functools
import signal
import threading
from types import CodeType, FunctionType, MethodType, TracebackType
from typing import Iterator, Optional

__all__ = [
    "raise_if_from_signal_handler",
    "raised_by_signal_handler",
    "signal_handler_traceback",
    "signals_blocked",
]

_CAN_BLOCK = hasattr(signal, "pthread_sigmask") and hasattr(signal, "valid_signals")

# Maximum number of wrappers (bound methods, functools.partial) unwrapped to find the
# code of a handler.
_MAX_UNWRAP = 8


def signal_handler_traceback(error: BaseException) -> Optional[TracebackType]:
    """Return the traceback entry of the signal handler that raised *error*, or None
    when no handler did.

    A handler raised *error* when its traceback contains a frame that runs the code of
    a Python function installed as a signal handler: a function, a bound method, a
    :func:`functools.partial` of one, or an object whose class defines ``__call__``
    in Python.

    NOTE: a handler that is no longer installed when *error* is checked, because it
    replaced itself before raising, is not recognized.
    """
    # Python runs signal handlers only in the main thread.
    if threading.get_ident() != threading.main_thread().ident:
        return None
    entries: dict[CodeType, TracebackType] = {}
    entry = error.__traceback__
    while entry is not None:
        entries.setdefault(entry.tb_frame.f_code, entry)
        entry = entry.tb_next
    if not entries:
        return None
    for signum in signal.valid_signals():
        try:
            handler = signal.getsignal(signum)
        except (OSError, ValueError):
            continue
        code = _code_of(handler)
        if code is not None and code in entries:
            return entries[code]
    return None


def raised_by_signal_handler(error: BaseException) -> bool:
    """Return whether a signal handler of the program raised *error*."""
    return signal_handler_traceback(error) is not None


def raise_if_from_signal_handler(error: BaseException) -> None:
    """Raise *error* again if a signal handler of the program raised it.

    The traceback then starts at the handler's frame, so that the tracer's frames
    between the interrupted code and the handler are left out, except the frames
    that the exception passes on its way back to the program.
    """
    entry = signal_handler_traceback(error)
    if entry is not None:
        raise error.with_traceback(entry)


def _code_of(handler: object) -> Optional[CodeType]:
    for _ in range(_MAX_UNWRAP):
        if isinstance(handler, FunctionType):
            return handler.__code__
        if isinstance(handler, MethodType):
            handler = handler.__func__
        elif isinstance(handler, functools.partial):
            handler = handler.func
        else:
            # Looked up in the class dicts, so that no __getattr__ of the program runs.
            for klass in type(handler).__mro__:
                call = klass.__dict__.get("__call__")
                if call is not None:
                    handler = call
                    break
            else:
                return None
            if not isinstance(handler, FunctionType):
                return None
    return None


@contextlib.contextmanager
def signals_blocked() -> Iterator[None]:
    """Block every signal in the calling thread for the ``with`` body, where the
    tracer starts a thread of its own.

    A signal handler's exception inside :meth:`threading.Thread.start` can leave the
    new thread running but unregistered, and its start-up then fails with a KeyError
    printed on stderr. Python runs the handlers of signals that are already pending
    on entry, which may raise before anything changes, and those of signals that
    arrived during the body on exit, after the body. A thread started in the body
    inherits the blocked set, so that the process's signals go to the program's
    threads. Does nothing where :func:`signal.pthread_sigmask` is missing.
    """
    if not _CAN_BLOCK:
        yield
        return
    # An empty SIG_BLOCK changes nothing, but runs the pending handlers.
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, ())
    try:
        signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
