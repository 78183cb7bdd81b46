"""Worker process for the concurrency tests: adds a known mix of traces to one store.

Usage: python concurrent_writer.py URL WORKER_INDEX BATCHES START_AT

Waits until the wall-clock time START_AT (epoch seconds), so that all workers start
writing together. Then calls ``add()`` BATCHES times with 100 traces each: 5 calls of
each of the shared traces ``shared:shared0`` to ``shared:shared18``, and 5 calls of
``workerN:batchM``, a trace private to this worker and batch. Prints the seconds
spent writing.
"""

from __future__ import annotations

import sys
import time

from typetrace.db import store_from_url
from typetrace.tracing import CallTrace
from typetrace.typemodel import TypeRef

SHARED_TRACES = 19
CALLS_PER_TRACE = 5
INT = TypeRef("builtins", "int")


def batch(worker: int, index: int) -> list[CallTrace]:
    traces = [
        CallTrace("shared", f"shared{number}", {"x": INT}, INT)
        for number in range(SHARED_TRACES)
        for _ in range(CALLS_PER_TRACE)
    ]
    unique = CallTrace(f"worker{worker}", f"batch{index}", {"x": INT}, None)
    traces.extend([unique] * CALLS_PER_TRACE)
    return traces


def main() -> None:
    url, worker, batches, start_at = (
        sys.argv[1],
        int(sys.argv[2]),
        int(sys.argv[3]),
        float(sys.argv[4]),
    )
    store = store_from_url(url)
    time.sleep(max(0.0, start_at - time.time()))
    started = time.perf_counter()
    for index in range(batches):
        store.add(batch(worker, index))
    print(f"{time.perf_counter() - started:.3f}")
    store.close()


if __name__ == "__main__":
    main()
