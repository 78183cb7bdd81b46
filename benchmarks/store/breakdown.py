"""Split the time of typetrace's SQLiteStore.add() for batches of 1,000 calls into its steps.

Run from the repository root:

    python benchmarks/store/breakdown.py

It uses the environment and the workload of run.py: 200,000 calls over 1,000 distinct
signatures, in batches of 1,000, after 20 batches that fill the store and its caches.
For each batch it times, as add() runs them:

1. merging the batch and looking up (or computing) each trace's encoded form;
2. building the parameters;
3. the SQL statements of write_counts();
4. BEGIN IMMEDIATE and COMMIT.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # noqa: E402 - the benchmark next to this file

BATCH = 1000
CALLS = 200_000
WARM_UP_BATCHES = 20


def main() -> int:
    if "--worker" not in sys.argv:
        python = run.prepare_venv()
        environment = {**os.environ, "PYTHONPATH": str(run.REPOSITORY / "src")}
        return subprocess.call([str(python), __file__, "--worker"], env=environment)
    return measure()


def measure() -> int:
    from typetrace.db import _writes
    from typetrace.db import sqlite as sqlite_module
    from typetrace.db.sqlite import SQLiteStore

    workload = run.Workload(modules=20, functions_per_module=10, variants=5)
    indexes = workload.call_indexes(CALLS)
    batches = [
        [workload.typetrace[i] for i in indexes[start : start + BATCH]]
        for start in range(0, len(indexes), BATCH)
    ]
    with tempfile.TemporaryDirectory() as folder:
        store = SQLiteStore(os.path.join(folder, "traces.sqlite3"))
        connection = store._connection
        assert connection is not None
        for batch in batches[:WARM_UP_BATCHES]:
            store.add(batch)
        steps = {
            "merge and encode": 0.0,
            "parameters": 0.0,
            "statements": 0.0,
            "begin and commit": 0.0,
        }
        started = time.perf_counter()
        for number, batch in enumerate(batches):
            now = 1.7e9 + number
            t0 = time.perf_counter()
            merged = _writes.merge_traces(batch)
            t1 = time.perf_counter()
            entries = [(encoded, count, now, now) for encoded, count in merged]
            t2 = time.perf_counter()
            connection.execute("BEGIN IMMEDIATE")
            t3 = time.perf_counter()
            resolved = _writes.write_counts(
                connection.cursor(),
                sqlite_module._STATEMENTS,
                sqlite_module._update_counts,
                entries,
                store._row_ids.ids,
            )
            t4 = time.perf_counter()
            connection.execute("COMMIT")
            t5 = time.perf_counter()
            store._row_ids.update(resolved)
            steps["merge and encode"] += t1 - t0
            steps["parameters"] += t2 - t1
            steps["statements"] += t4 - t3
            steps["begin and commit"] += (t3 - t2) + (t5 - t4)
        seconds = time.perf_counter() - started
        store.close()
    print(
        f"{seconds / len(batches) * 1000:.2f} ms per batch of {BATCH:,} calls "
        f"({CALLS / seconds:,.0f} calls/s)"
    )
    for name, total in steps.items():
        print(f"  {name}: {total / len(batches) * 1000:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
