"""StoreWriter: the tracer's sink, which batches traces and writes them in the background."""

from __future__ import annotations

import atexit
import collections
import dataclasses
import logging
import os
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Optional

from typetrace._signals import raise_if_from_signal_handler, signals_blocked
from typetrace.db.base import CallTraceStore
from typetrace.tracing import CallTrace

__all__ = ["StoreWriter", "WriterStats"]

logger = logging.getLogger(__name__)

#: Maximum wait in seconds between two attempts to write after failures.
MAX_RETRY_DELAY = 30.0
#: Seconds that os.fork() waits for the writer thread to end before forking anyway.
FORK_JOIN_TIMEOUT = 5.0
#: Seconds that :meth:`StoreWriter.write_at_termination` waits for the lock of the
#: pending traces before it takes them without the lock. Threads hold that lock only to
#: update the pending traces, so a longer wait most likely means that the main thread,
#: stopped by a signal handler, holds it.
TERMINATION_LOCK_WAIT = 0.1
#: Maximum number of traces that :meth:`StoreWriter.record` collects for the writer's
#: thread to merge. Until the thread has merged them, later traces take the locked path.
INBOX_LIMIT = 65_536
#: Seconds between two checks of the writer's thread for traces to merge.
MERGE_INTERVAL = 0.05


@dataclass(frozen=True)
class WriterStats:
    """Counters of a :class:`StoreWriter`, in calls (the sum of ``call_count``).

    Once the writer is idle, ``recorded == written + dropped + pending``.
    """

    #: Calls passed to :meth:`StoreWriter.record`.
    recorded: int
    #: Calls that the store accepted.
    written: int
    #: Calls discarded because the buffer was full, the trace was unhashable, or the
    #: writer was closed.
    dropped: int
    #: Calls waiting in the buffer.
    pending: int
    #: Calls of ``store.add()`` that raised.
    failed_writes: int


def lock_free_within(lock: threading.Lock | threading.RLock, timeout: float) -> bool:
    """Return whether *lock* could be taken within *timeout* seconds. It is released
    again at once."""
    if not lock.acquire(timeout=timeout):
        return False
    lock.release()
    return True


class StoreWriter:
    """Collect traces in memory and write them to *store* from a daemon thread.

    :meth:`record` appends a trace object that is already pending to a list, which the
    thread merges later, and merges other traces at once. Merges take a lock that is
    held for such updates alone, so the traced program never waits for store I/O.
    Identical traces are merged into one entry with a call count. At most
    *max_pending* distinct traces wait, and calls beyond that are dropped and counted. A failed write is logged and retried with exponential backoff, and
    its traces stay buffered within the same bound.

    In a child made by :func:`os.fork`, the writer starts with an empty buffer and
    zero counters, and starts its own thread at the first :meth:`record`, so the
    parent's pending traces are written only by the parent. The child uses the same
    store object: typetrace's stores open a new connection in the child, and a store
    of your own must do the same or must not be shared across ``fork()``.

    Writers still open when the interpreter exits are closed then, so their pending
    traces are written.

    Args:
        store: Where traces go; only the writer's thread uses it until :meth:`close`.
        flush_interval: Seconds between writes.
        max_pending: Maximum number of distinct traces waiting to be written.
        close_timeout: Seconds that :meth:`close` waits for the last write.
    """

    def __init__(
        self,
        store: CallTraceStore,
        flush_interval: float = 1.0,
        max_pending: int = 100_000,
        close_timeout: float = 10.0,
    ) -> None:
        if flush_interval <= 0:
            raise ValueError(f"flush_interval must be positive, got {flush_interval!r}")
        if max_pending < 1:
            raise ValueError(f"max_pending must be at least 1, got {max_pending!r}")
        self.store = store
        self.flush_interval = flush_interval
        self.max_pending = max_pending
        self.close_timeout = close_timeout
        self._reset_state()
        _live_writers.add(self)

    def _reset_state(self) -> None:
        # Called from __init__ and in a forked child, where the parent's lock may be
        # held by a thread that does not exist in the child.
        # Reentrant, so that record() can release a hold that Python 3.9 can leave
        # when a signal handler raises between a with block's end and its __exit__.
        # NOTE: the recorder's error lock and logging's locks have the same gap on 3.9.
        self._lock = threading.RLock()
        # Serializes store.add() between the thread and flush()/close().
        self._write_lock = threading.Lock()
        self._wake = threading.Event()
        # Each pending distinct trace maps to its slot, which contains its number of
        # calls and the id of the latest equal object queued into it besides the
        # first, or 0.
        # _pending_ids finds the slot by the id of the first and of the latest object.
        # The recorder hands over the same object for repeated calls, and an int is
        # much cheaper to look up than a trace is to hash and compare. The entries
        # reference the trace objects, so no id is reused while they exist, and at
        # most two objects per slot stay alive until the next write.
        self._pending: dict[CallTrace, list[int]] = {}
        self._pending_ids: dict[int, tuple[CallTrace, list[int]]] = {}
        # The id of the last equal object that _queue() did not register.
        self._unregistered_id = 0
        # Traces recorded since the last merge, once per record() call. record()
        # appends without the lock. The merge removes the items it took from the same
        # list object, never replacing it, and the GIL runs each append and removal
        # whole, so no append is lost.
        self._inbox: list[CallTrace] = []
        self._thread: Optional[threading.Thread] = None
        self._closed = False
        # Set by close() for the writer's thread, which then merges the inbox, sets
        # _closed and writes once more.
        self._close_requested = False
        # Set by the first close(), under self._lock, so that a second one waits for
        # _close_finished instead of closing too.
        self._close_started = False
        # Set once close() or write_at_termination() has written what it could, so
        # that a second close() returns after that.
        self._close_finished = threading.Event()
        # Set while os.fork() runs, so that the thread ends without writing.
        self._pausing = False
        # The id of the thread that runs _merge_inbox(), or 0.
        self._merging_thread_id = 0
        self._recorded = 0
        self._written = 0
        # Calls in the store.add() call in progress, which are neither pending nor
        # written until it returns.
        self._writing = 0
        self._dropped = 0
        self._failed_writes = 0
        self._consecutive_failures = 0
        self._drop_logged = False

    def record(self, trace: CallTrace) -> None:
        """Queue *trace* for writing.

        Logs every :class:`Exception` it catches and raises again only one that a
        signal handler of the program raised. A trace that it could not queue counts
        as dropped. Does not wait for store I/O.
        """
        # Only an object already pending goes to the inbox. A new object is merged at
        # once, so that one equal to a pending trace is freed at once instead of
        # waiting in the inbox, which would keep many objects alive when a function's
        # types change from call to call.
        known = self._pending_ids.get(id(trace))
        if known is not None and known[0] is trace and self._thread is not None and not self._closed:
            # Only the writer's thread merges while the program runs, because a signal
            # handler of the program runs in the main thread, and its exception must
            # not interrupt a merge of many calls. This does not wake the thread either,
            # because an exception raised inside Event.set() can leave the event's
            # lock held.
            inbox = self._inbox
            if len(inbox) < INBOX_LIMIT:
                inbox.append(trace)
                return
        queued = False
        try:
            with self._lock:
                count = trace.call_count
                self._recorded += count
                if self._closed:
                    self._drop(count, "the writer is closed")
                    return
                if not self._queue(trace, count):
                    return
                queued = True
                if self._thread is None:
                    self._start_thread()
        except BaseException as error:
            self._release_left_hold()
            if not isinstance(error, Exception):
                raise
            if not queued:
                with self._lock:
                    self._dropped += 1
            raise_if_from_signal_handler(error)
            # A trace that cannot be hashed or counted must not break the traced program.
            try:
                if queued:
                    # The trace stays pending, and the next record() starts the thread again.
                    logger.exception("Failed to start the trace writer thread for %r", self.store)
                else:
                    logger.exception("Failed to record trace %r; dropping it", trace)
            except RecursionError:
                # Near the program's recursion limit logging fails too. The dropped
                # trace is counted, and close() reports it.
                pass

    def _release_left_hold(self) -> None:
        # record() never runs inside a block that holds the lock, so a hold of this
        # thread here is one that an exception left.
        while self._lock._is_owned():  # type: ignore[attr-defined]
            self._lock.release()

    def flush(self) -> bool:
        """Write the pending traces now, from the calling thread.

        Returns:
            Whether the write succeeded; on failure the traces stay pending.
        """
        with self._write_lock:
            return self._write_pending()

    def close(self) -> None:
        """Stop the thread and write the pending traces once more.

        Waits at most ``close_timeout`` seconds for a write in progress, and then
        logs a warning with the number of calls not written. Does not close the
        store. A call while another thread closes the writer returns when that close
        has written, or after ``close_timeout`` seconds.
        """
        with self._lock:
            closing_elsewhere = self._close_started or self._closed
            self._close_started = True
        if closing_elsewhere:
            self._close_finished.wait(self.close_timeout)
            return
        try:
            self._close()
        finally:
            self._close_finished.set()

    def _close(self) -> None:
        with self._lock:
            if self._closed or self._close_requested:
                return
            thread = self._thread
            if thread is not None and thread.is_alive():
                # The thread merges the inbox. A merge in this thread could be stopped
                # by a signal handler that never returns, such as SIGTERM's, while
                # the merged calls are only in its local variables, where
                # write_at_termination() cannot find them.
                self._close_requested = True
            else:
                self._merge_inbox()
                self._closed = True
        self._wake.set()
        if thread is not None:
            thread.join(self.close_timeout)
            if thread.is_alive():
                self._log_close_timeout()
                return
        with self._lock:
            # The thread ended without closing the writer when os.fork() paused it.
            if not self._closed:
                self._merge_inbox()
                self._closed = True
            # Empty once the thread has written. This thread then does not take the
            # write lock, because write_at_termination() would wait for it until its
            # timeout if a SIGTERM handler stopped this thread while it held the lock.
            has_pending = bool(self._pending)
        if has_pending:
            self._write_left_at_close()
        stats = self.stats()
        if stats.dropped or stats.pending:
            logger.warning(
                "Trace writer to %r closed: of the recorded calls, %d were written, "
                "%d dropped and %d not written",
                self.store,
                stats.written,
                stats.dropped,
                stats.pending,
            )

    def _log_close_timeout(self) -> None:
        # NOTE: a program that goes on running after close() can still see the write
        # in progress succeed, and its calls are then written after all.
        with self._lock:
            writing = self._writing
        stats = self.stats()
        logger.warning(
            "Trace writer to %r did not finish within %.1f s, so %d recorded calls were "
            "not written: %d in a write still waiting for the store and %d pending "
            "(%d were written and %d dropped). Check that the store is reachable and that "
            "no other process holds a lock on it, or trace to another store with --db or "
            "TYPETRACE_DB.",
            self.store,
            self.close_timeout,
            writing + stats.pending,
            writing,
            stats.pending,
            stats.written,
            stats.dropped,
        )

    def _write_left_at_close(self) -> None:
        if not self._write_lock.acquire(timeout=self.close_timeout):
            logger.warning("Trace writer to %r is still busy; pending traces are lost", self.store)
            return
        try:
            self._write_pending()
        finally:
            self._write_lock.release()

    def lock_free_within(self, timeout: float = TERMINATION_LOCK_WAIT) -> bool:
        """Return whether the lock of the pending traces could be taken within
        *timeout* seconds. The lock is released again at once."""
        return lock_free_within(self._lock, timeout)

    def write_at_termination(self, timeout: float) -> None:
        """Close the writer and write the pending traces of a process that is about to
        end, waiting at most *timeout* seconds.

        A SIGTERM handler runs in the main thread between two bytecodes, possibly
        inside :meth:`record` with the lock of the pending traces held, and that thread
        never runs again. So when the lock stays taken for :data:`TERMINATION_LOCK_WAIT`
        seconds, the pending traces are taken without it. The GIL keeps each dictionary
        operation whole, so at worst the calls that the stopped thread was adding are
        missing. A thread other than the main thread that holds the lock to merge the
        inbox, as the writer's thread does at :meth:`close`, is waited for until the
        timeout. Traces not written in time are lost, which is logged at debug level.
        """
        try:
            self._write_at_termination(timeout)
        finally:
            self._close_finished.set()

    def _write_at_termination(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        locked = self._lock.acquire(timeout=min(TERMINATION_LOCK_WAIT, timeout))
        merging_thread_id = self._merging_thread_id
        if not locked and merging_thread_id not in (0, threading.main_thread().ident):
            locked = self._lock.acquire(timeout=max(0.0, deadline - time.monotonic()))
        try:
            self._merge_inbox()
            self._closed = True
            slots = self._pending
            self._pending = {}
            self._pending_ids = {}
        finally:
            if locked:
                self._lock.release()
        # list() copies the items in one step, in case a thread still adds to them.
        batch = {trace: slot[0] for trace, slot in list(slots.items()) if slot[0] > 0}
        calls = sum(batch.values())
        # Taken also when there is nothing left to write, to wait for a write of the
        # writer's thread that is in progress.
        if not self._write_lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            logger.debug(
                "Trace writer to %r is still writing at termination; "
                "that write and %d pending calls are lost",
                self.store,
                calls,
            )
            return
        try:
            if not batch:
                return
            traces = [
                dataclasses.replace(trace, call_count=count) for trace, count in batch.items()
            ]
            self.store.add(traces)
        except Exception:
            logger.debug(
                "Failed to write %d pending calls to %r at termination; they are lost",
                calls,
                self.store,
                exc_info=True,
            )
            return
        finally:
            self._write_lock.release()
        if self._lock.acquire(blocking=False):
            self._written += calls
            self._lock.release()

    def stats(self) -> WriterStats:
        """Return a snapshot of the counters.

        The traces in the inbox count as pending, or as dropped once the writer is
        closed, as the next merge would count them. The inbox is not merged here,
        so that a signal handler that stops the calling thread loses no calls.
        """
        with self._lock:
            # list() copies the inbox in one step, while threads may append to it.
            inbox_calls = sum(trace.call_count for trace in list(self._inbox))
            pending = sum(slot[0] for slot in self._pending.values())
            dropped = self._dropped
            if self._closed:
                dropped += inbox_calls
            else:
                pending += inbox_calls
            return WriterStats(
                recorded=self._recorded + inbox_calls,
                written=self._written,
                dropped=dropped,
                pending=pending,
                failed_writes=self._failed_writes,
            )

    # Background thread

    def _start_thread(self) -> None:
        thread = threading.Thread(target=self._run, name="typetrace-writer", daemon=True)
        with signals_blocked():
            thread.start()
            self._thread = thread

    def _run(self) -> None:
        write_at = time.monotonic() + self._next_delay()
        while True:
            self._wake.wait(min(MERGE_INTERVAL, max(0.0, write_at - time.monotonic())))
            self._wake.clear()
            with self._lock:
                if self._pausing:
                    return
                if self._close_requested:
                    self._merge_inbox()
                    self._closed = True
                    break
                if self._closed:
                    break
                if time.monotonic() < write_at:
                    # Only a large inbox is merged before the write is due. A merge
                    # holds the lock, which a SIGTERM handler waits for only briefly.
                    if len(self._inbox) >= INBOX_LIMIT // 2:
                        self._merge_inbox()
                    continue
            self._write_in_thread()
            write_at = time.monotonic() + self._next_delay()
        self._write_in_thread()

    def _pause_for_fork(self) -> None:
        """End the thread before :func:`os.fork`, which Python 3.12+ warns about (on
        the program's stderr) when the process has more than one thread."""
        with self._lock:
            thread = self._thread
            if thread is None or self._closed:
                return
            self._pausing = True
        self._wake.set()
        join_thread_for_fork(thread)

    def _resume_after_fork(self) -> None:
        # The next record() starts a new thread. Starting it here would make Python
        # 3.13 warn all the same, because it counts threads after the fork handlers.
        with self._lock:
            self._pausing = False
            thread = self._thread
            if thread is not None and not thread.is_alive():
                self._thread = None

    def _write_in_thread(self) -> None:
        try:
            with self._write_lock:
                self._write_pending()
        except Exception:
            # Keeps the thread alive; store errors are handled in _write_pending.
            logger.exception("Unexpected error in the trace writer to %r", self.store)

    def _next_delay(self) -> float:
        if self._consecutive_failures == 0:
            return self.flush_interval
        backoff = self.flush_interval * 2.0 ** min(self._consecutive_failures, 16)
        return min(backoff, max(MAX_RETRY_DELAY, self.flush_interval))

    def _write_pending(self) -> bool:
        # The caller holds self._write_lock.
        with self._lock:
            self._merge_inbox()
            slots = self._pending
            self._pending = {}
            self._pending_ids = {}
        if not slots:
            return True
        batch = {trace: slot[0] for trace, slot in slots.items()}
        traces = [dataclasses.replace(trace, call_count=count) for trace, count in batch.items()]
        calls = sum(batch.values())
        with self._lock:
            self._writing = calls
        try:
            self.store.add(traces)
        except Exception as error:
            self._restore(batch, error)
            return False
        with self._lock:
            self._writing = 0
            self._written += calls
            if self._consecutive_failures:
                logger.info(
                    "Wrote traces to %r after %d failed attempts",
                    self.store,
                    self._consecutive_failures,
                )
            self._consecutive_failures = 0
        return True

    def _restore(self, batch: dict[CallTrace, int], error: Exception) -> None:
        with self._lock:
            self._writing = 0
            self._failed_writes += 1
            self._consecutive_failures += 1
            failures = self._consecutive_failures
            for trace, count in batch.items():
                self._queue(trace, count)
        # Log the first failures, then every power of two, so a store that stays down
        # does not flood the log.
        if failures <= 3 or failures & (failures - 1) == 0:
            logger.warning(
                "Failed to write %d distinct traces to %r (attempt %d); retrying in %.1f s: %s",
                len(batch),
                self.store,
                failures,
                self._next_delay(),
                error,
            )
            # The traced program's stderr gets the message; the traceback only
            # with debug logging on.
            logger.debug("Traceback of the failed write", exc_info=error)

    def _merge_inbox(self) -> None:
        """Move the traces of the inbox to the pending traces, or count them as dropped
        once the writer is closed. The caller holds self._lock."""
        # Read by write_at_termination(), which waits for a merge of a thread that no
        # signal handler stopped.
        self._merging_thread_id = threading.get_ident()
        try:
            self._queue_inbox()
        finally:
            self._merging_thread_id = 0

    def _queue_inbox(self) -> None:
        inbox = self._inbox
        batch = inbox[: len(inbox)]
        if not batch:
            return
        del inbox[: len(batch)]

        traces_by_id: dict[int, CallTrace] = {}

        def trace_of(trace_id: int) -> CallTrace:
            # The batch references each of its objects, so an object that
            # _pending_ids references under the same id is the same object. Only
            # traces queued since the last write can be missing there.
            known = self._pending_ids.get(trace_id)
            if known is not None:
                return known[0]
            if not traces_by_id:
                traces_by_id.update(zip(map(id, batch), batch))
            return traces_by_id[trace_id]

        repeats: Optional[list[tuple[int, int]]] = None
        merged = 0
        try:
            # In the order of their first record() call, which decides what a full
            # buffer drops.
            repeats = list(collections.Counter(map(id, batch)).items())
            for trace_id, times in repeats:
                trace = trace_of(trace_id)
                try:
                    count = trace.call_count * times
                    self._recorded += count
                    if self._closed:
                        self._drop(count, "the writer is closed")
                    else:
                        self._queue(trace, count)
                except Exception as error:
                    self._dropped += times
                    logger.exception("Failed to record trace %r; dropping it", trace)
                    raise_if_from_signal_handler(error)
                merged += 1
        except BaseException:
            # An exception of the program's signal handler, in a merge that the calling
            # thread runs. The traces not merged go back to the inbox, and one that the
            # exception interrupted after its merge is counted twice.
            if repeats is None:
                inbox[:0] = batch
            else:
                for trace_id, times in repeats[merged:]:
                    inbox[:0] = [trace_of(trace_id)] * times
            raise

    def _queue(self, trace: CallTrace, count: int) -> bool:
        """Add *count* calls of *trace* to the pending traces, or drop them when the
        buffer is full; return whether they were added. The caller holds self._lock."""
        known = self._pending_ids.get(id(trace))
        if known is not None and known[0] is trace:
            known[1][0] += count
            return True
        slot = self._pending.get(trace)
        if slot is None:
            if len(self._pending) >= self.max_pending:
                self._drop(count, f"{self.max_pending} distinct traces are waiting")
                return False
            slot = [0, 0]
            self._pending[trace] = slot
            self._pending_ids[id(trace)] = (trace, slot)
        elif self._unregistered_id != id(trace):
            # An equal object. Most are handed over once, when a function's types
            # change from call to call, so it is registered only when it comes again.
            self._unregistered_id = id(trace)
        else:
            # It replaces the equal object registered before it.
            if slot[1]:
                del self._pending_ids[slot[1]]
            slot[1] = id(trace)
            self._pending_ids[id(trace)] = (trace, slot)
        slot[0] += count
        return True

    def _drop(self, count: int, reason: str) -> None:
        # The caller holds self._lock.
        self._dropped += count
        if not self._drop_logged:
            self._drop_logged = True
            logger.warning(
                "Dropping traces because %s; later drops are counted but not logged", reason
            )


_live_writers: weakref.WeakSet[StoreWriter] = weakref.WeakSet()


def _reset_writers_after_fork() -> None:
    for writer in list(_live_writers):
        closed = writer._closed
        writer._reset_state()
        writer._closed = closed


def join_thread_for_fork(thread: threading.Thread) -> None:
    """Join *thread* and wait until the operating system has ended it too.

    Before Python 3.13, join() returns when the thread's Python state is released,
    a moment before the OS thread exits, and os.fork() counts OS threads (on Linux,
    from /proc). Waiting for the thread's /proc entry to go keeps the count exact.
    """
    thread.join(FORK_JOIN_TIMEOUT)
    task = f"/proc/self/task/{thread.native_id}"
    deadline = time.monotonic() + 0.1
    while thread.native_id is not None and os.path.exists(task) and time.monotonic() < deadline:
        time.sleep(0.0002)


def _pause_writers_before_fork() -> None:
    for writer in list(_live_writers):
        writer._pause_for_fork()


def _resume_writers_in_parent() -> None:
    for writer in list(_live_writers):
        writer._resume_after_fork()


def _close_writers_at_exit() -> None:
    for writer in list(_live_writers):
        writer.close()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_pause_writers_before_fork,
        after_in_parent=_resume_writers_in_parent,
        after_in_child=_reset_writers_after_fork,
    )
atexit.register(_close_writers_at_exit)
