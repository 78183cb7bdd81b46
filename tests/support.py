"""Helpers shared by the test modules: trace builders, a list sink and CLI runs."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional

from typetrace.config import Config, Sampling
from typetrace.db.base import CallTraceStore
from typetrace.encoding import CallTraceRow
from typetrace.tracing import CallTrace
from typetrace.typemodel import NONE, TypeRef

#: The tracing_backend fixture's backends that run without typetrace's C extension.
PURE_PYTHON_BACKENDS = ("pure-python", "monitoring-python")

#: Module of the traces that make_trace() builds, and of the sources they stub.
MODULE = "pkg.mod"


def make_trace(
    qualname: str,
    args: Mapping[str, TypeRef],
    returns: Optional[TypeRef] = NONE,
    yields: Optional[TypeRef] = None,
) -> CallTrace:
    """Build a trace of *qualname* in :data:`MODULE`."""
    return CallTrace(MODULE, qualname, args, returns, yields)


def raw_row_statements(
    row: CallTraceRow, signature: str, placeholder: str = "?", last_seen: float = 0.0
) -> list[tuple[str, tuple[Any, ...]]]:
    """Return the statements that store *row* as it is, past a SQL store's checks.

    The trace gets *signature*, the row's call count, and *last_seen* as both of its
    times.
    """
    markers = ", ".join([placeholder] * 8)
    p = placeholder
    return [
        (
            "INSERT INTO typetrace_traces (signature, module, qualname, arg_types, "
            f"return_type, yield_type, format_version, send_type) VALUES ({markers})",
            (signature, row.module, row.qualname, row.arg_types, row.return_type,
             row.yield_type, row.format_version, row.send_type),
        ),
        (
            "INSERT INTO typetrace_counts (id, check_key, call_count, first_seen, last_seen) "
            f"SELECT id, 0, {p}, {p}, {p} FROM typetrace_traces WHERE signature = {p}",
            (row.call_count, last_seen, last_seen, signature),
        ),
    ]


class ListSink:
    """A trace sink that keeps every trace in a list, for tracing tests."""

    def __init__(self) -> None:
        self.traces: list[CallTrace] = []

    def record(self, trace: CallTrace) -> None:
        self.traces.append(trace)

    def of(self, qualname: str) -> list[CallTrace]:
        return [trace for trace in self.traces if trace.qualname == qualname]

    def one(self, qualname: str) -> CallTrace:
        found = self.of(qualname)
        assert len(found) == 1, f"{len(found)} traces of {qualname}: {self.traces}"
        return found[0]

    def arg_types(self, qualname: str, name: str) -> set[TypeRef]:
        return {trace.arg_types[name] for trace in self.of(qualname)}


class SinkOnlyConfig(Config):
    """A config for sessions that get a sink, so they never open a store."""

    def __init__(self, sampling: Optional[Sampling] = None) -> None:
        self._sampling = sampling or Sampling(all_calls=True)

    def trace_store(self) -> CallTraceStore:
        raise AssertionError("the tests pass a sink")

    def sampling(self) -> Sampling:
        return self._sampling


def run_typetrace(
    cwd: Path,
    *args: str,
    env: Optional[dict[str, str]] = None,
    stdin: Optional[str] = None,
    default_db: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m typetrace ARGS`` in *cwd*.

    With *default_db*, the store is ``cwd/traces.sqlite3`` through ``TYPETRACE_DB``;
    without it the variable is unset, so the arguments must name the store.
    """
    environment = dict(os.environ)
    environment.pop("PYTHONPATH", None)
    if default_db:
        environment["TYPETRACE_DB"] = str(cwd / "traces.sqlite3")
    else:
        environment.pop("TYPETRACE_DB", None)
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "typetrace", *args],
        cwd=cwd,
        env=environment,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


_LOCKER = """
import sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
if sys.argv[2] == "exclusive-mode":
    # Keeps the lock after COMMIT, which then blocks readers too.
    connection.execute("PRAGMA locking_mode=EXCLUSIVE")
connection.execute("BEGIN EXCLUSIVE")
if sys.argv[2] == "exclusive-mode":
    connection.execute("SELECT count(*) FROM sqlite_master").fetchall()
    connection.execute("COMMIT")
print("locked", flush=True)
time.sleep(60)
"""


@contextlib.contextmanager
def locked_by_other_process(path: Path, exclusive_mode: bool = False) -> Iterator[None]:
    """Lock the SQLite file *path* from a child process while the block runs.

    The child holds a write transaction, which in WAL mode still lets others read,
    or with *exclusive_mode* keeps the file in exclusive locking mode, which blocks
    readers too.
    """
    mode = "exclusive-mode" if exclusive_mode else "write-transaction"
    locker = subprocess.Popen(
        [sys.executable, "-c", _LOCKER, str(path), mode], stdout=subprocess.PIPE, text=True
    )
    try:
        assert locker.stdout is not None
        assert locker.stdout.readline() == "locked\n"
        yield
    finally:
        locker.kill()
        locker.wait()
        if locker.stdout is not None:
            locker.stdout.close()
