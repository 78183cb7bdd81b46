"""The SIGTERM handler that writes a traced process's pending traces before it ends.

While a trace session runs, :func:`install` makes :func:`handle_sigterm` the SIGTERM
handler of a process whose handler is the default, ``SIG_DFL``. That is the case for
the workers that ``multiprocessing.Pool.terminate()`` ends, and for most services
that systemd or Kubernetes stop. The handler writes the pending traces, waiting at
most :data:`WRITE_TIMEOUT` seconds, then restores ``SIG_DFL`` and sends SIGTERM to
the process again. So the process ends as the default action ends it, and its parent
gets the exit status of a process killed by SIGTERM.

Python runs a signal handler in the main thread between two bytecodes, possibly while
that thread holds a lock that writing needs: the writer's, the store's, or a logging
handler's. The main thread never runs again after the handler, so it would never
release such a lock. The handler therefore writes from a new thread and waits for that
thread with a timeout, and takes none of the locks that writing uses. A write still
blocked at the timeout is abandoned, and the transaction it had open dies with the
process. When no thread can start, as during interpreter shutdown on Python 3.12, the
main thread writes, and waits for locks only with timeouts.

Python runs the handler only when the main thread next checks for signals. A SIGTERM
that arrives just before the main thread blocks in a system call would wait for that
call to return, which for a pool worker waiting for a task is never, where SIG_DFL
ends the process at once. So while the handler is installed, :class:`_Watcher` reads
the signal numbers that Python writes to the wakeup fd (:func:`signal.set_wakeup_fd`)
and sends SIGTERM to the main thread again until the handler starts.

A child made by :func:`os.fork` inherits the handler. Python discards the signals
that reach a child before its fork handlers run. So the forking thread blocks SIGTERM
from the fork handlers before the fork until those after it, and a SIGTERM in between
waits and is then handled, instead of being lost.

On platforms without POSIX signals, such as Windows, the module does nothing.
"""

from __future__ import annotations

import _thread
import logging
import os
import signal
import threading
import time
from types import FrameType
from typing import Any, Callable, Optional

from typetrace._signals import signals_blocked

__all__ = ["SUPPORTED", "WRITE_TIMEOUT", "handle_sigterm", "install", "restart_watcher", "uninstall"]

logger = logging.getLogger("typetrace.tracing")

#: Seconds that the SIGTERM handler waits for the pending traces to be written before
#: it ends the process anyway.
WRITE_TIMEOUT = 2.0
#: Seconds that the handler waits for its debug message after a timeout.
_LOG_TIMEOUT = 0.2
#: Seconds that the watcher waits for the handler to start before it sends SIGTERM to
#: the main thread again.
_NUDGE_DELAY = 0.05
#: Maximum number of times that the watcher sends SIGTERM again in one process, which
#: is 2 seconds of waiting.
_MAX_NUDGES = 40

#: Whether SIGTERM can be handled, blocked and sent again as this module needs.
SUPPORTED = (
    os.name == "posix"
    and hasattr(signal, "SIGTERM")
    and hasattr(signal, "pthread_sigmask")
    and hasattr(signal, "pthread_kill")
    and hasattr(os, "kill")
    and hasattr(os, "register_at_fork")
)

# Writes the pending traces within the seconds it is given, set by install(). Its
# second argument is true when it runs in the main thread, which the handler holds.
_write_traces: Optional[Callable[[float, bool], None]] = None
# Whether handle_sigterm() has started, for the watcher.
_handling = False
_fork_handlers_registered = False
# Ids of the threads that blocked SIGTERM for an os.fork() they run.
_blocked_for_fork: set[int] = set()
# typetrace._writer.join_thread_for_fork, which also waits until the OS has ended the
# thread. install() imports it, because an import in a fork handler would go through
# the program's builtins.__import__.
_join_for_fork: Optional[Callable[[threading.Thread], None]] = None


def install(write_traces: Callable[[float, bool], None]) -> bool:
    """Make :func:`handle_sigterm` the SIGTERM handler, which calls *write_traces* with
    the seconds it may take and whether it runs in the main thread.

    Only the main thread can set a handler, and only a default handler is replaced, so
    a program's own handler, or ``SIG_IGN``, stays.

    Returns:
        Whether :func:`handle_sigterm` is the handler now.
    """
    global _write_traces, _fork_handlers_registered, _join_for_fork
    if not SUPPORTED or not _in_main_thread():
        return False
    if not _fork_handlers_registered:
        # The import registers the writer's fork handlers, if not done yet, before
        # these: in a child, the parent's open calls and pending traces are gone
        # before the handler can run.
        from typetrace._writer import join_thread_for_fork

        _join_for_fork = join_thread_for_fork
        _fork_handlers_registered = True
        os.register_at_fork(
            before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child
        )
    try:
        current = signal.getsignal(signal.SIGTERM)
        if current is not handle_sigterm:
            # getsignal() returns None for a handler that was not set from Python.
            if current is not signal.SIG_DFL:
                return False
            signal.signal(signal.SIGTERM, handle_sigterm)
    except (OSError, ValueError) as error:
        # ValueError: a thread that Python does not count as the main thread, as in a
        # subinterpreter.
        logger.debug(
            "Failed to install the SIGTERM handler; SIGTERM loses pending traces: %s", error
        )
        return False
    _write_traces = write_traces
    try:
        _watcher.start()
    except (OSError, RuntimeError) as error:
        # Out of file descriptors or threads: the handler works without the watcher.
        logger.debug("Failed to start the SIGTERM watcher: %s", error)
    return True


def uninstall() -> None:
    """Restore ``SIG_DFL`` if :func:`handle_sigterm` is still the SIGTERM handler.

    A handler that the program set meanwhile stays. Python sets handlers only from the
    main thread, so when called from another thread, :func:`handle_sigterm` stays too.
    With no session to write for, it then only ends the process as ``SIG_DFL`` would.
    """
    global _write_traces
    _write_traces = None
    if not SUPPORTED or not _in_main_thread():
        return
    _watcher.stop()
    try:
        if signal.getsignal(signal.SIGTERM) is handle_sigterm:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
    except (OSError, ValueError) as error:
        logger.debug("Failed to restore the default SIGTERM handler: %s", error)


def restart_watcher() -> None:
    """Start the watcher thread again, in a parent process whose fork stopped it."""
    _watcher.restart_after_fork()


def handle_sigterm(signum: int, frame: Optional[FrameType]) -> None:
    """Write the pending traces, then end the process as SIGTERM's default action does.

    Waits at most :data:`WRITE_TIMEOUT` seconds for the traces. A program that saved
    this handler as its previous one and calls it gets the same: the process ends,
    killed by SIGTERM.
    """
    global _handling
    _handling = True
    try:
        # A second SIGTERM while the traces are written ends the process at once.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _write_within_timeout()
    except BaseException:  # noqa: BLE001 - as KeyboardInterrupt from a SIGINT while waiting
        # The process ends by SIGTERM all the same.
        pass
    # With SIG_DFL, the kernel ends the process before kill() returns to this thread.
    os.kill(os.getpid(), signal.SIGTERM)


def _write_within_timeout() -> None:
    write_traces = _write_traces
    if write_traces is None:
        return
    try:
        finished = _call_in_thread(lambda: write_traces(WRITE_TIMEOUT, False), WRITE_TIMEOUT)
    except RuntimeError:
        # No thread can start, as during interpreter shutdown on Python 3.12.
        # NOTE: only the store's own timeouts bound the write from the main thread.
        write_traces(WRITE_TIMEOUT, True)
        return
    if not finished:
        _call_in_thread(_log_timeout, _LOG_TIMEOUT)


def _in_main_thread() -> bool:
    # Compared by id: threading.current_thread() in a thread that _thread started
    # registers a dummy Thread, which takes the threading module's lock.
    return threading.get_ident() == threading.main_thread().ident


def _call_in_thread(function: Callable[[], None], timeout: float) -> bool:
    """Call *function* in a new thread and wait at most *timeout* seconds for it to
    return; return whether it did.

    The thread comes from :mod:`_thread`, because ``threading.Thread.start()`` takes a
    lock of the threading module that the main thread, stopped in the handler, may hold.

    Raises:
        RuntimeError: The thread cannot start.
    """
    done = _thread.allocate_lock()
    done.acquire()

    def run() -> None:
        try:
            function()
        except Exception:
            logger.debug("Failed to write the pending traces at SIGTERM", exc_info=True)
        finally:
            done.release()

    _thread.start_new_thread(run, ())
    return done.acquire(timeout=timeout)


def _log_timeout() -> None:
    logger.debug(
        "The pending traces were not written within %.1f s of SIGTERM; the rest is lost",
        WRITE_TIMEOUT,
    )


# Fork handlers


def _before_fork() -> None:
    _watcher.stop_for_fork()
    if signal.getsignal(signal.SIGTERM) is not handle_sigterm:
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    if signal.SIGTERM not in previous:
        _blocked_for_fork.add(threading.get_ident())


def _after_fork_in_parent() -> None:
    # The watcher starts again at the next recorded call (see restart_watcher()): a
    # thread started here would make Python 3.13 warn about a fork with threads.
    # NOTE: until then, a SIGTERM that arrives just before the parent's main thread
    # blocks in a system call waits for that call to end.
    ident = threading.get_ident()
    if ident in _blocked_for_fork:
        _blocked_for_fork.discard(ident)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})


def _after_fork_in_child() -> None:
    # The forking thread keeps its id in the child, where the parent's other threads,
    # which may have been forking too, do not exist.
    blocked = threading.get_ident() in _blocked_for_fork
    _blocked_for_fork.clear()
    _watcher.start_in_child()
    if blocked:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})


# The watcher


class _Watcher:
    """A thread that sends SIGTERM to the main thread again until
    :func:`handle_sigterm` starts.

    Python's own signal handler writes the number of each signal to the wakeup fd, the
    pipe that this thread reads. The program keeps its use of
    :func:`signal.set_wakeup_fd`: while the watcher is installed,
    ``signal.set_wakeup_fd`` is replaced by a function that sets the program's fd and
    returns -1 where the previous fd was the watcher's. The watcher then receives no
    more signal numbers, and the program's wakeup fd wakes its main thread instead.
    When the program sets -1, the watcher takes the wakeup fd back.
    """

    # Written to the pipe to end the thread. Signal numbers start at 1, so no signal
    # writes it.
    _STOP = b"\0"
    # Seconds that stop() waits for the thread to end.
    _STOP_TIMEOUT = 1.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._read_fd = -1
        self._write_fd = -1
        self._thread: Optional[threading.Thread] = None
        # The thread that last read the pipe, which must end before the pipe closes.
        self._reader: Optional[threading.Thread] = None
        # Whether start() ran and stop() did not, whether the wakeup fd is the pipe,
        # and whether a fork stopped the thread.
        self._installed = False
        self._has_wakeup_fd = False
        self._stopped_by_fork = False
        self._nudges = 0
        self._real_set_wakeup_fd: Callable[..., int] = (
            signal.set_wakeup_fd if SUPPORTED else _no_wakeup_fd
        )

    def start(self) -> None:
        """Take the wakeup fd if no one has it, and start the thread. Call it from the
        main thread only."""
        if self._installed:
            return
        self._installed = True
        signal.set_wakeup_fd = self._set_wakeup_fd_for_program
        previous = self._take_wakeup_fd()
        if previous != -1:
            # The program's wakeup fd stays. NOTE: Python cannot read back the
            # warn_on_full_buffer that the program set, so it is True again.
            self._real_set_wakeup_fd(previous)
            self._has_wakeup_fd = False
            return
        self._start_thread()

    def stop(self) -> None:
        """Give the wakeup fd back and end the thread. Call it from the main thread
        only."""
        self._installed = False
        self._stopped_by_fork = False
        if signal.set_wakeup_fd == self._set_wakeup_fd_for_program:
            signal.set_wakeup_fd = self._real_set_wakeup_fd
        if self._has_wakeup_fd:
            self._has_wakeup_fd = False
            current = self._real_set_wakeup_fd(-1)
            if current != self._write_fd:
                # Set by C code, which bypasses the replaced signal.set_wakeup_fd.
                self._real_set_wakeup_fd(current)
        thread = self._end_thread()
        if thread is not None:
            thread.join(self._STOP_TIMEOUT)

    def stop_for_fork(self) -> None:
        # Python 3.12+ warns on the program's stderr when it forks with more than
        # one thread running.
        thread = self._end_thread()
        if thread is not None:
            self._stopped_by_fork = True
            if _join_for_fork is not None:
                _join_for_fork(thread)

    def restart_after_fork(self) -> None:
        if self._stopped_by_fork:
            self._stopped_by_fork = False
            self._start_thread()

    def start_in_child(self) -> None:
        # The pipe is shared with the parent, whose watcher must not see the child's
        # signals, so the child gets a pipe of its own.
        self._lock = threading.Lock()
        self._thread = self._reader = None
        self._stopped_by_fork = False
        self._nudges = 0
        try:
            if self._has_wakeup_fd:
                # No signal number reaches the old pipe, or a closed fd, from here on.
                self._real_set_wakeup_fd(-1)
                self._has_wakeup_fd = False
            if self._read_fd >= 0:
                os.close(self._read_fd)
                os.close(self._write_fd)
                self._read_fd = self._write_fd = -1
            if self._installed and self._take_wakeup_fd() == -1:
                self._start_thread()
        except (OSError, RuntimeError, ValueError) as error:
            # An exception from a fork handler would be printed on the program's stderr.
            logger.debug("Failed to start the SIGTERM watcher in the child: %s", error)

    def _take_wakeup_fd(self) -> int:
        """Make the pipe the wakeup fd and return the previous wakeup fd."""
        self._open_pipe()
        previous = self._real_set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        self._has_wakeup_fd = True
        return int(previous)

    def _open_pipe(self) -> None:
        if self._read_fd >= 0:
            if self._reader is not None and self._reader.is_alive():
                return
            os.close(self._read_fd)
            os.close(self._write_fd)
        # A new pipe, so that no stop byte is left over from an earlier thread.
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._write_fd, False)

    def _start_thread(self) -> None:
        # Blocked outside the lock, so that the handlers that run when the signals
        # are unblocked can set a wakeup fd, which takes the lock.
        with signals_blocked(), self._lock:
            if self._thread is not None or not self._has_wakeup_fd:
                return
            thread = threading.Thread(
                target=self._run, args=(self._read_fd,), name="typetrace-sigterm", daemon=True
            )
            thread.start()
            self._thread = self._reader = thread

    def _end_thread(self) -> Optional[threading.Thread]:
        with self._lock:
            thread = self._thread
            self._thread = None
        if thread is not None:
            try:
                os.write(self._write_fd, self._STOP)
            except OSError as error:
                # The pipe is full, so the thread reads the stop byte once it has
                # read the signal numbers before it.
                logger.debug("Failed to stop the SIGTERM watcher: %s", error)
        return thread

    def _run(self, read_fd: int) -> None:
        sigterm = bytes([signal.SIGTERM])
        while True:
            try:
                data = os.read(read_fd, 256)
            except OSError:
                return
            if not data or self._STOP in data:
                return
            if sigterm in data:
                self._nudge()

    def _nudge(self) -> None:
        """Send SIGTERM to the main thread again while the handler has not started."""
        while self._nudges < _MAX_NUDGES:
            time.sleep(_NUDGE_DELAY)
            if _handling or signal.getsignal(signal.SIGTERM) is not handle_sigterm:
                return
            main = threading.main_thread().ident
            if main is None:
                return
            self._nudges += 1
            # Interrupts the system call that the main thread blocks in, which then
            # runs the handler. NOTE: should the handler start and restore SIG_DFL just
            # before this, the signal ends the process without writing the traces.
            signal.pthread_kill(main, signal.SIGTERM)

    def _set_wakeup_fd_for_program(self, fd: int, /, *, warn_on_full_buffer: bool = True) -> int:
        previous = self._real_set_wakeup_fd(fd, warn_on_full_buffer=warn_on_full_buffer)
        self._has_wakeup_fd = False
        if previous == self._write_fd:
            previous = -1
        if fd == -1 and self._installed:
            try:
                self._take_wakeup_fd()
                self._start_thread()
            except (OSError, RuntimeError) as error:
                logger.debug("Failed to start the SIGTERM watcher again: %s", error)
        return int(previous)


def _no_wakeup_fd(fd: int, /, **options: Any) -> int:
    return -1


_watcher = _Watcher()
