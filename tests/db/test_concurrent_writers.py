"""Eight processes write to one store at once; the stored counts must add up exactly."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from typetrace.db import store_from_url

WORKERS = 8
WORKER_SCRIPT = Path(__file__).with_name("concurrent_writer.py")
SHARED_TRACES = 19
CALLS_PER_TRACE = 5
TRACES_PER_BATCH = (SHARED_TRACES + 1) * CALLS_PER_TRACE


def run_workers(url: str, batches: int) -> list[float]:
    """Start the workers together and return each one's seconds spent writing."""
    # Enough time for every interpreter to start and import typetrace first.
    start_at = time.time() + 2.0
    processes = [
        subprocess.Popen(
            [sys.executable, str(WORKER_SCRIPT), url, str(worker), str(batches), str(start_at)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for worker in range(WORKERS)
    ]
    durations = []
    try:
        for worker, process in enumerate(processes):
            stdout, stderr = process.communicate(timeout=120)
            assert process.returncode == 0, f"worker {worker} failed:\n{stderr}"
            assert stderr == "", f"worker {worker} wrote to stderr:\n{stderr}"
            durations.append(float(stdout))
    finally:
        # After a failure, end the other workers and close their pipes, so that no
        # warning about them reaches a later test.
        for process in processes:
            if process.returncode is None:
                process.kill()
                process.communicate()
    return durations


def check_counts(url: str, batches: int) -> None:
    store = store_from_url(url)
    try:
        shared = store.filter("shared")
        counts = {thunk.to_trace().qualname: thunk.to_trace().call_count for thunk in shared}
        assert len(shared) == SHARED_TRACES
        expected = WORKERS * batches * CALLS_PER_TRACE
        assert counts == {f"shared{number}": expected for number in range(SHARED_TRACES)}
        for worker in range(WORKERS):
            unique = store.filter(f"worker{worker}")
            assert len(unique) == batches
            assert {thunk.to_trace().call_count for thunk in unique} == {CALLS_PER_TRACE}
    finally:
        store.close()


def store_url(request: pytest.FixtureRequest, tmp_path: Path, store_kind: str) -> str:
    if store_kind == "sqlite":
        return str(tmp_path / "traces.sqlite3")
    url: str = request.getfixturevalue(f"{store_kind}_url")
    return url


@pytest.mark.parametrize(
    ("store_kind", "batches"),
    [
        pytest.param("sqlite", 100, id="sqlite"),
        pytest.param("postgresql", 100, id="postgresql"),
        pytest.param("mysql", 100, id="mysql"),
    ],
)
def test_concurrent_writers_keep_exact_counts(
    request: pytest.FixtureRequest, tmp_path: Path, store_kind: str, batches: int
) -> None:
    url = store_url(request, tmp_path, store_kind)
    # Create the tables before the race, as a deployed store would have them.
    store_from_url(url).close()

    durations = run_workers(url, batches)

    check_counts(url, batches)
    traces = WORKERS * batches * TRACES_PER_BATCH
    print(f"{store_kind}: {traces} traces by {WORKERS} processes in {max(durations):.2f} s")


@pytest.mark.parametrize("store_kind", ["sqlite", "postgresql", "mysql"])
def test_concurrent_first_open_creates_schema(
    request: pytest.FixtureRequest, tmp_path: Path, store_kind: str
) -> None:
    # No tables exist yet, so all workers create them at the same moment.
    url = store_url(request, tmp_path, store_kind)

    run_workers(url, 1)

    check_counts(url, 1)
