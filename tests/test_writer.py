"""StoreWriter: batching, bounds, retries, closing and fork()."""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional

import pytest
from support import locked_by_other_process

from typetrace._writer import INBOX_LIMIT, TERMINATION_LOCK_WAIT, StoreWriter
from typetrace.db.base import CallTraceStore, CallTraceThunk
from typetrace.db.sqlite import SQLiteStore
from typetrace.tracing import CallTrace
from typetrace.typemodel import TypeRef

INT = TypeRef("builtins", "int")
NEVER = 3600.0


def make_trace(qualname: str = "f", call_count: int = 1) -> CallTrace:
    return CallTrace("pkg", qualname, {"x": INT}, INT, call_count=call_count)


class ControlledStore(CallTraceStore):
    """An SQLite store whose add() can fail a number of times or wait for an event."""

    def __init__(self, failures: int = 0, release: Optional[threading.Event] = None) -> None:
        self.inner = SQLiteStore(":memory:")
        self.failures = failures
        self.release = release
        self.batches: list[list[CallTrace]] = []

    @classmethod
    def make_store(cls, connection_string: str) -> ControlledStore:
        return cls()

    def add(self, traces: Iterable[CallTrace]) -> None:
        batch = list(traces)
        if self.release is not None:
            self.release.wait()
        if self.failures:
            self.failures -= 1
            raise OSError("store unavailable")
        self.batches.append(batch)
        self.inner.add(batch)

    def filter(
        self, module: str, qualname_prefix: Optional[str] = None, limit: int = 2000
    ) -> list[CallTraceThunk]:
        return self.inner.filter(module, qualname_prefix, limit)

    def list_modules(self) -> list[str]:
        return self.inner.list_modules()

    def close(self) -> None:
        self.inner.close()

    def counts(self) -> dict[str, int]:
        traces = [thunk.to_trace() for thunk in self.inner.filter("pkg")]
        return {trace.qualname: trace.call_count for trace in traces}


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


@pytest.fixture
def store() -> Iterator[ControlledStore]:
    created = ControlledStore()
    yield created
    created.close()


class TestAggregation:
    def test_identical_traces_become_one_entry(self, store: ControlledStore) -> None:
        writer = StoreWriter(store, flush_interval=NEVER)
        for _ in range(1000):
            writer.record(make_trace("a"))
        writer.record(make_trace("a", call_count=5))
        writer.record(make_trace("b"))

        assert writer.flush()

        assert len(store.batches) == 1
        assert len(store.batches[0]) == 2
        assert store.counts() == {"a": 1005, "b": 1}
        stats = writer.stats()
        assert (stats.recorded, stats.written, stats.dropped, stats.pending) == (1006, 1006, 0, 0)
        writer.close()

    def test_same_object_and_equal_objects_share_an_entry(self, store: ControlledStore) -> None:
        writer = StoreWriter(store, flush_interval=NEVER)
        repeated = make_trace("a")
        for _ in range(10):
            writer.record(repeated)
            writer.record(make_trace("a", call_count=2))
        assert writer.stats().pending == 30
        assert writer.flush()
        # A new batch starts empty, so an object seen before is counted once more.
        writer.record(repeated)
        assert writer.flush()

        assert [len(batch) for batch in store.batches] == [1, 1]
        assert store.counts() == {"a": 31}
        writer.close()

    def test_equal_objects_handed_over_again(self, store: ControlledStore) -> None:
        writer = StoreWriter(store, flush_interval=NEVER)
        first = make_trace("a")
        writer.record(first)
        for _ in range(3):
            # A new equal object, then the same object again, as the recorder hands
            # them over when a function's types change back.
            again = make_trace("a")
            for _ in range(4):
                writer.record(again)

        assert writer.stats().pending == 13
        # The first object and the latest equal one.
        assert len(writer._pending_ids) == 2
        writer.close()
        assert store.counts() == {"a": 13}

    def test_writes_every_flush_interval(self, store: ControlledStore) -> None:
        writer = StoreWriter(store, flush_interval=0.05)
        writer.record(make_trace("a"))

        wait_for(lambda: writer.stats().written == 1)

        assert store.counts() == {"a": 1}
        writer.close()

    def test_threads_record_concurrently(self, store: ControlledStore) -> None:
        writer = StoreWriter(store, flush_interval=0.01)

        def record_many(thread_index: int) -> None:
            for number in range(5000):
                writer.record(make_trace(f"f{(thread_index + number) % 10}"))

        threads = [threading.Thread(target=record_many, args=(index,)) for index in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        writer.close()

        assert writer.stats().written == 40_000
        assert sum(store.counts().values()) == 40_000
        assert store.counts() == {f"f{number}": 4000 for number in range(10)}

    def test_threads_share_one_trace_object(self, store: ControlledStore) -> None:
        # The recorder hands the writer the same trace object for repeated calls, and
        # the writer's thread takes the recorded traces away while threads add more.
        writer = StoreWriter(store, flush_interval=0.001)
        shared = make_trace("shared")

        def record_many() -> None:
            for number in range(20_000):
                writer.record(shared)
                if number % 2000 == 0:
                    time.sleep(0.005)  # lets the writer's thread take a batch

        threads = [threading.Thread(target=record_many) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        writer.close()

        assert store.counts() == {"shared": 80_000}
        assert len(store.batches) > 1

    def test_full_inbox_stays_bounded(self, store: ControlledStore) -> None:
        writer = StoreWriter(store, flush_interval=NEVER)
        trace = make_trace("a")
        for _ in range(2 * INBOX_LIMIT + 10):
            writer.record(trace)

        # The memory held between writes stays bounded, whenever the thread merges.
        assert len(writer._inbox) <= INBOX_LIMIT
        assert writer.stats().pending == 2 * INBOX_LIMIT + 10
        writer.close()
        assert store.counts() == {"a": 2 * INBOX_LIMIT + 10}

    def test_thread_is_a_daemon(self, store: ControlledStore) -> None:
        writer = StoreWriter(store, flush_interval=NEVER)
        writer.record(make_trace())

        assert writer._thread is not None
        assert writer._thread.daemon
        writer.close()

        assert not writer._thread.is_alive()


class Tick(Exception):
    pass


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs signal.setitimer")
def test_raising_signal_handler_loses_one_call(store: ControlledStore) -> None:
    # Each exception of the program's handler may cost the call that it interrupted,
    # but never a batch of merged calls.
    writer = StoreWriter(store, flush_interval=0.05)
    trace = make_trace("a")
    armed = False
    ticks = 0

    def on_alarm(signum: int, frame: object) -> None:
        nonlocal armed, ticks
        if armed:
            armed = False
            ticks += 1
            raise Tick

    calls = 0
    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, 0.005, 0.005)
    try:
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            try:
                armed = True
                for _ in range(1000):
                    calls += 1
                    writer.record(trace)
                armed = False
            except Tick:
                pass
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
        signal.signal(signal.SIGALRM, previous)
    writer.close()

    stats = writer.stats()
    assert ticks > 10
    assert stats.written + stats.dropped <= calls
    assert calls - stats.written - stats.dropped <= ticks
    assert store.counts().get("a", 0) == stats.written


class TestBound:
    def test_drops_are_counted_and_logged_once(
        self, store: ControlledStore, caplog: pytest.LogCaptureFixture
    ) -> None:
        writer = StoreWriter(store, flush_interval=NEVER, max_pending=2)

        with caplog.at_level(logging.WARNING, logger="typetrace._writer"):
            writer.record(make_trace("a"))
            writer.record(make_trace("b"))
            writer.record(make_trace("c"))
            writer.record(make_trace("d", call_count=2))
            writer.record(make_trace("a"))

        stats = writer.stats()
        assert stats.dropped == 3
        assert stats.pending == 3
        assert stats.recorded == 6
        drop_messages = [r for r in caplog.records if "Dropping traces" in r.getMessage()]
        assert len(drop_messages) == 1
        assert "2 distinct traces are waiting" in drop_messages[0].getMessage()
        writer.close()
        assert store.counts() == {"a": 2, "b": 1}

    def test_unhashable_trace_is_dropped(
        self, store: ControlledStore, caplog: pytest.LogCaptureFixture
    ) -> None:
        writer = StoreWriter(store, flush_interval=NEVER)
        unhashable = TypeRef("builtins", "list", [INT])  # type: ignore[arg-type]

        with caplog.at_level(logging.ERROR, logger="typetrace._writer"):
            writer.record(CallTrace("pkg", "f", {"x": unhashable}, None))

        assert writer.stats().dropped == 1
        assert "Failed to record trace" in caplog.text
        writer.close()

    @pytest.mark.parametrize(
        ("arguments", "message"),
        [({"flush_interval": 0}, "flush_interval"), ({"max_pending": 0}, "max_pending")],
    )
    def test_invalid_settings_are_rejected(
        self, store: ControlledStore, arguments: dict[str, float], message: str
    ) -> None:
        with pytest.raises(ValueError, match=message):
            StoreWriter(store, **arguments)  # type: ignore[arg-type]


class TestFailures:
    def test_failed_writes_are_retried(self, caplog: pytest.LogCaptureFixture) -> None:
        store = ControlledStore(failures=3)
        writer = StoreWriter(store, flush_interval=0.01)

        with caplog.at_level(logging.INFO, logger="typetrace._writer"):
            for _ in range(100):
                writer.record(make_trace("a"))
            wait_for(lambda: writer.stats().written == 100)

        stats = writer.stats()
        assert stats.failed_writes == 3
        assert stats.dropped == 0
        assert store.counts() == {"a": 100}
        failures = [r for r in caplog.records if "Failed to write" in r.getMessage()]
        assert len(failures) == 3
        assert "store unavailable" in failures[0].getMessage()
        assert "after 3 failed attempts" in caplog.text
        writer.close()
        store.close()

    def test_store_that_always_fails_keeps_the_bound(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        store = ControlledStore(failures=10**9)
        writer = StoreWriter(store, flush_interval=0.01, max_pending=3)

        with caplog.at_level(logging.WARNING, logger="typetrace._writer"):
            for name in "abcde":
                writer.record(make_trace(name))
            wait_for(lambda: writer.stats().failed_writes >= 3)
            writer.record(make_trace("a"))
            writer.close()

        stats = writer.stats()
        assert stats.written == 0
        assert stats.pending == 4
        assert stats.dropped == 2
        assert "closed: of the recorded calls, 0 were written, 2 dropped and 4 not written" in caplog.text
        store.close()


class TestClose:
    def test_close_writes_pending_traces(self, store: ControlledStore) -> None:
        writer = StoreWriter(store, flush_interval=NEVER)
        writer.record(make_trace("a"))
        writer.record(make_trace("a"))

        writer.close()

        assert store.counts() == {"a": 2}
        assert writer.stats().written == 2

    def test_close_without_records(self, store: ControlledStore) -> None:
        writer = StoreWriter(store, flush_interval=NEVER)

        writer.close()

        assert store.batches == []

    def test_record_after_close_is_dropped(self, store: ControlledStore) -> None:
        writer = StoreWriter(store, flush_interval=NEVER)
        writer.close()

        writer.record(make_trace())
        writer.close()

        assert writer.stats().dropped == 1
        assert store.batches == []

    def test_second_close_returns_after_write(self) -> None:
        """A close() while another thread closes the writer returns once the traces
        are written, not before."""
        release = threading.Event()
        store = ControlledStore(release=release)
        writer = StoreWriter(store, flush_interval=NEVER)
        writer.record(make_trace("a"))
        first = threading.Thread(target=writer.close)
        first.start()
        wait_for(lambda: writer._write_lock.locked())
        batches_seen: list[int] = []

        def close_again() -> None:
            writer.close()
            batches_seen.append(len(store.batches))

        second = threading.Thread(target=close_again)
        second.start()
        time.sleep(0.2)
        release.set()
        second.join(10)
        first.join(10)

        assert batches_seen == [1]
        assert store.counts() == {"a": 1}
        store.close()

    def test_close_waits_a_bounded_time(self, caplog: pytest.LogCaptureFixture) -> None:
        release = threading.Event()
        store = ControlledStore(release=release)
        writer = StoreWriter(store, flush_interval=0.01, close_timeout=0.2)
        writer.record(make_trace())
        wait_for(lambda: writer._write_lock.locked())

        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="typetrace._writer"):
            writer.close()
        elapsed = time.monotonic() - started

        release.set()
        writer._thread.join()  # type: ignore[union-attr]
        store.close()
        assert elapsed < 2.0
        assert "did not finish within 0.2 s" in caplog.text

    def test_close_counts_calls_of_a_locked_store(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """With another process holding the SQLite store's write lock, close() and
        the store's close() return in time, and the warning counts the calls that are
        in the write still waiting for the lock."""
        path = tmp_path / "traces.sqlite3"
        store = SQLiteStore(str(path))
        writer = StoreWriter(store, flush_interval=NEVER, close_timeout=1.0)
        writer.record(make_trace("f", call_count=3))
        writer.record(make_trace("g", call_count=2))

        with locked_by_other_process(path):
            started = time.monotonic()
            with caplog.at_level(logging.WARNING, logger="typetrace._writer"):
                writer.close()
            closed_writer = time.monotonic() - started
            # A thread, so that a store whose close() waits for the write does not
            # hang the test.
            closer = threading.Thread(target=store.close, daemon=True)
            closer.start()
            closer.join(5.0)
            closed_store = time.monotonic() - started

        assert closed_writer < 2.0
        assert not closer.is_alive()
        assert closed_store < 2.0
        assert "5 recorded calls were not written" in caplog.text
        assert "5 in a write still waiting for the store" in caplog.text
        assert "SQLiteStore(" in caplog.text
        assert str(path) in caplog.text
        assert "no other process holds a lock on it" in caplog.text


class GatedCount:
    """A descriptor for CallTrace.call_count whose reads wait while the trace's gate
    is cleared, and set its ``waiting`` event meanwhile."""

    def __get__(self, trace: Optional[CallTrace], owner: type) -> Any:
        if trace is None:
            return self
        if not trace.__dict__["gate"].is_set():
            trace.__dict__["waiting"].set()
            trace.__dict__["gate"].wait()
        return trace.__dict__["call_count"]

    def __set__(self, trace: CallTrace, value: int) -> None:
        trace.__dict__["call_count"] = value


class GatedTrace(CallTrace):
    """A trace whose merge stops the merging thread until its gate is set, as when
    the operating system does not run that thread for a while."""

    call_count = GatedCount()  # type: ignore[assignment]

    def __post_init__(self) -> None:
        super().__post_init__()
        self.__dict__["gate"] = threading.Event()
        self.__dict__["gate"].set()
        self.__dict__["waiting"] = threading.Event()


class TestTermination:
    def test_writes_while_lock_held_by_stopped_thread(self, store: ControlledStore) -> None:
        """Another thread holds the lock, as the main thread does when a SIGTERM
        handler stops it inside record() and the handler writes from a new thread."""
        writer = StoreWriter(store, flush_interval=NEVER)
        writer.record(make_trace("a"))
        writer.record(make_trace("a"))
        writer.record(make_trace("b"))

        with lock_held_by_other_thread(writer._lock):
            started = time.monotonic()
            writer.write_at_termination(2.0)
            elapsed = time.monotonic() - started

        assert store.counts() == {"a": 2, "b": 1}
        assert TERMINATION_LOCK_WAIT <= elapsed < 1.5
        assert writer.stats().pending == 0

    def test_gives_up_when_write_lock_stays_held(
        self, store: ControlledStore, caplog: pytest.LogCaptureFixture
    ) -> None:
        writer = StoreWriter(store, flush_interval=NEVER)
        writer.record(make_trace("a"))

        writer._write_lock.acquire()
        started = time.monotonic()
        try:
            with caplog.at_level(logging.DEBUG, logger="typetrace._writer"):
                writer.write_at_termination(0.3)
        finally:
            writer._write_lock.release()
        elapsed = time.monotonic() - started

        assert elapsed < 1.5
        assert store.batches == []
        assert "that write and 1 pending calls are lost" in caplog.text

    def test_failed_write_is_logged_at_debug_level(self, caplog: pytest.LogCaptureFixture) -> None:
        store = ControlledStore(failures=1)
        writer = StoreWriter(store, flush_interval=NEVER)
        writer.record(make_trace("a"))

        with caplog.at_level(logging.DEBUG, logger="typetrace._writer"):
            writer.write_at_termination(1.0)

        assert [record.levelno for record in caplog.records] == [logging.DEBUG]
        assert "Failed to write 1 pending calls" in caplog.text
        store.close()

    def test_records_after_termination_are_dropped(self, store: ControlledStore) -> None:
        writer = StoreWriter(store, flush_interval=NEVER)
        writer.record(make_trace("a"))

        writer.write_at_termination(1.0)
        writer.record(make_trace("a"))

        assert store.counts() == {"a": 1}
        stats = writer.stats()
        assert (stats.written, stats.dropped, stats.pending) == (1, 1, 0)

    def test_waits_for_merge_of_writer_thread(self, store: ControlledStore) -> None:
        """The writer's thread holds the lock longer than TERMINATION_LOCK_WAIT while
        it merges the inbox at close. It ends that merge, because no signal handler
        stops it, so write_at_termination() waits for it and writes every call."""
        writer = StoreWriter(store, flush_interval=NEVER)
        trace = GatedTrace("pkg", "a", {"x": INT}, INT)
        # The first call starts the thread, and the others go to the inbox.
        for _ in range(5):
            writer.record(trace)
        trace.__dict__["gate"].clear()
        closer = threading.Thread(target=writer.close)
        closer.start()
        assert trace.__dict__["waiting"].wait(10.0)

        opener = threading.Timer(3 * TERMINATION_LOCK_WAIT, trace.__dict__["gate"].set)
        opener.start()
        writer.write_at_termination(2.0)
        written_at_termination = store.counts()
        opener.join()
        closer.join()

        assert written_at_termination == {"a": 5}
        assert store.counts() == {"a": 5}

    def test_lock_free_within(self, store: ControlledStore) -> None:
        writer = StoreWriter(store, flush_interval=NEVER)

        assert writer.lock_free_within(0.0)
        with lock_held_by_other_thread(writer._lock):
            assert not writer.lock_free_within(0.05)
        assert writer.lock_free_within(0.0)


@contextlib.contextmanager
def lock_held_by_other_thread(lock: Any) -> Iterator[None]:
    """Hold *lock* in a new thread for the ``with`` body. The writer's lock is
    reentrant, so the test's own thread would take it again at once."""
    taken = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with lock:
            taken.set()
            release.wait()

    thread = threading.Thread(target=hold)
    thread.start()
    taken.wait()
    try:
        yield
    finally:
        release.set()
        thread.join()


FORK_SCRIPT = """
import dataclasses, json, os, sys
from typetrace._writer import INBOX_LIMIT, TERMINATION_LOCK_WAIT, StoreWriter
from typetrace.db.sqlite import SQLiteStore
from typetrace.tracing import CallTrace
from typetrace.typemodel import TypeRef

INT = TypeRef("builtins", "int")
store = SQLiteStore(sys.argv[1])
writer = StoreWriter(store, flush_interval=float(sys.argv[2]))
for _ in range(3):
    writer.record(CallTrace("pkg", "parent", {"x": INT}, INT))
pid = os.fork()
if pid == 0:
    for _ in range(2):
        writer.record(CallTrace("pkg", "child", {"x": INT}, INT))
    writer.close()
    print(json.dumps({"child": dataclasses.asdict(writer.stats())}), flush=True)
    os._exit(0)
os.waitpid(pid, 0)
writer.record(CallTrace("pkg", "parent", {"x": INT}, INT))
writer.close()
print(json.dumps({"parent": dataclasses.asdict(writer.stats())}), flush=True)
"""


@pytest.mark.parametrize(
    "flush_interval", [NEVER, 0.001], ids=["pending-at-fork", "writing-at-fork"]
)
def test_fork_writes_each_trace_once(tmp_path: Path, flush_interval: float) -> None:
    path = tmp_path / "traces.sqlite3"

    result = subprocess.run(
        [
            sys.executable,
            "-W",
            "ignore::DeprecationWarning",
            "-c",
            FORK_SCRIPT,
            str(path),
            str(flush_interval),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    stats = {}
    for line in result.stdout.splitlines():
        stats.update(json.loads(line))
    assert stats["child"]["recorded"] == 2
    assert stats["child"]["written"] == 2
    assert stats["parent"]["recorded"] == 4
    assert stats["parent"]["written"] == 4
    store = SQLiteStore(str(path))
    counts = {t.to_trace().qualname: t.to_trace().call_count for t in store.filter("pkg")}
    store.close()
    assert counts == {"parent": 4, "child": 2}
