"""Measure typetrace's SQLiteStore against MonkeyType 23.3.0's SQLiteStore.

Run from the repository root:

    python benchmarks/store/run.py            # full run, a few minutes
    python benchmarks/store/run.py --quick    # smaller workloads, to check the script

The script creates a virtual environment under benchmarks/.work/venv, installs
MonkeyType==23.3.0 there, and runs itself again in that environment with the
repository's src/ on the import path. It prints:

1. insert throughput of ``add()`` of both stores on the same call traces;
2. the store file size of both after the same workloads;
3. ``filter()`` and ``list_modules()`` latency of typetrace's store after it has
   absorbed 10 million calls over 100,000 distinct signatures.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path
from typing import Any, Callable

REPOSITORY = Path(__file__).resolve().parents[2]
WORK = REPOSITORY / "benchmarks" / ".work"
VENV = WORK / "venv"
MONKEYTYPE_REQUIREMENT = "MonkeyType==23.3.0"

# Calls are spread over the distinct signatures with Zipf-like weights (1/rank), as a
# few hot functions take most calls in real programs.
SEED = 20240601


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="run workloads 10 times smaller")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return run_benchmarks(quick=args.quick)
    python = prepare_venv()
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY / "src")}
    command = [str(python), __file__, "--worker", *(["--quick"] if args.quick else [])]
    return subprocess.call(command, env=environment)


def prepare_venv() -> Path:
    """Create the benchmark venv with MonkeyType once, and return its Python."""
    python = VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    marker = VENV / "monkeytype-installed"
    if not marker.exists():
        print(f"Creating {VENV} and installing {MONKEYTYPE_REQUIREMENT} ...", flush=True)
        venv.create(VENV, with_pip=True, clear=True)
        subprocess.check_call([str(python), "-m", "pip", "install", "-q", MONKEYTYPE_REQUIREMENT])
        marker.write_text(MONKEYTYPE_REQUIREMENT + "\n", encoding="utf-8")
    return python


# --- workloads ---------------------------------------------------------------------


class Workload:
    """Distinct call signatures in both stores' forms, and a stream of calls over them."""

    def __init__(self, modules: int, functions_per_module: int, variants: int) -> None:
        import typing

        from typetrace.tracing import CallTrace as TTCallTrace
        from typetrace.typemodel import NONE, TypeRef, union

        from monkeytype.tracing import CallTrace as MTCallTrace

        int_ref, str_ref, float_ref = (TypeRef("builtins", n) for n in ("int", "str", "float"))
        # Pairs of (MonkeyType type, typetrace TypeRef) for the same observed type.
        kinds: list[tuple[Any, Any]] = [
            (int, int_ref),
            (str, str_ref),
            (float, float_ref),
            (typing.List[int], TypeRef("builtins", "list", (int_ref,))),
            (typing.Dict[str, int], TypeRef("builtins", "dict", (str_ref, int_ref))),
            (typing.Optional[int], union([int_ref, NONE])),
            (typing.Tuple[int, str], TypeRef("builtins", "tuple", (int_ref, str_ref))),
            (typing.List[typing.Dict[str, float]], TypeRef("builtins", "list", (TypeRef("builtins", "dict", (str_ref, float_ref)),))),
        ]  # fmt: skip
        self.monkeytype: list[Any] = []
        self.typetrace: list[Any] = []
        for m in range(modules):
            module = f"bench.pkg{m // 50}.mod{m}"
            for f in range(functions_per_module):
                function = _make_function(module, f"Handler{f % 7}.handle_{f}")
                for v in range(variants):
                    a, b, r = kinds[v % 8], kinds[(v // 8 + f) % 8], kinds[(v + m) % 8]
                    self.monkeytype.append(MTCallTrace(function, {"a": a[0], "b": b[0]}, r[0]))
                    self.typetrace.append(
                        TTCallTrace(module, function.__qualname__, {"a": a[1], "b": b[1]}, r[1])
                    )

    @property
    def distinct(self) -> int:
        return len(self.typetrace)

    def call_indexes(self, calls: int) -> list[int]:
        generator = random.Random(SEED)
        weights = [1.0 / (rank + 1) for rank in range(self.distinct)]
        return generator.choices(range(self.distinct), weights=weights, k=calls)


def _make_function(module: str, qualname: str) -> Any:
    namespace: dict[str, Any] = {"__name__": module}
    exec("def function(a, b):\n    return a\n", namespace)
    function = namespace["function"]
    function.__qualname__ = qualname
    return function


# --- measurements ------------------------------------------------------------------


def insert(store: Any, traces: list[Any], indexes: list[int], batch: int) -> float:
    """Add the traces at *indexes* in batches of *batch*; return the seconds taken."""
    batches = [[traces[i] for i in indexes[s : s + batch]] for s in range(0, len(indexes), batch)]
    started = time.perf_counter()
    for chunk in batches:
        store.add(chunk)
    return time.perf_counter() - started


def file_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def compare_inserts(workload: Workload, calls: int, batch: int, folder: Path) -> dict[str, float]:
    from typetrace.db.sqlite import SQLiteStore as TTStore

    from monkeytype.db.sqlite import SQLiteStore as MTStore

    indexes = workload.call_indexes(calls)
    mt_path = folder / f"monkeytype-{calls}-{batch}-{workload.distinct}.sqlite3"
    tt_path = folder / f"typetrace-{calls}-{batch}-{workload.distinct}.sqlite3"
    mt_store = MTStore.make_store(str(mt_path))
    mt_seconds = insert(mt_store, workload.monkeytype, indexes, batch)
    mt_store.conn.close()
    tt_store = TTStore.make_store(str(tt_path))
    tt_seconds = insert(tt_store, workload.typetrace, indexes, batch)
    tt_store.close()  # the last connection's close checkpoints the WAL into the file
    return {
        "calls": calls,
        "batch": batch,
        "distinct": workload.distinct,
        "mt_rate": calls / mt_seconds,
        "tt_rate": calls / tt_seconds,
        "mt_size": file_size(mt_path),
        "tt_size": file_size(tt_path),
    }


def build_large_store(path: Path, workload: Workload, rounds: int, batch: int) -> float:
    """Add every distinct trace *rounds* times with a call count of 10 per add.

    Each round writes all distinct signatures again, so the store gets the row updates
    that a long-running fleet of writers would cause, with
    ``distinct * rounds * 10`` calls in total.
    """
    import dataclasses

    from typetrace.db.sqlite import SQLiteStore

    counted = [dataclasses.replace(trace, call_count=10) for trace in workload.typetrace]
    store = SQLiteStore.make_store(str(path))
    started = time.perf_counter()
    for _ in range(rounds):
        for start in range(0, len(counted), batch):
            store.add(counted[start : start + batch])
    seconds = time.perf_counter() - started
    store.close()
    return seconds


def latency(operation: Callable[[], object], repeats: int) -> tuple[float, float, float]:
    """Return the first, median and maximum milliseconds of *repeats* runs."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        operation()
        times.append((time.perf_counter() - started) * 1000)
    return times[0], statistics.median(times), max(times)


# --- report ------------------------------------------------------------------------


def run_benchmarks(quick: bool) -> int:
    import platform

    import monkeytype  # noqa: F401 - fails early when the venv lacks it

    from typetrace.db.sqlite import SQLiteStore

    scale = 10 if quick else 1
    print(f"Python {platform.python_version()}, SQLite {__import__('sqlite3').sqlite_version}, "
          f"{os.cpu_count()} CPUs, {platform.machine()}")  # fmt: skip
    small = Workload(modules=20, functions_per_module=10, variants=5)
    double = Workload(modules=40, functions_per_module=10, variants=5)
    with tempfile.TemporaryDirectory(dir=WORK) as folder_name:
        folder = Path(folder_name)
        print("\n1-2. add() throughput (calls per second) and file size")
        print(f"{'calls':>9} {'batch':>6} {'distinct':>8} {'MonkeyType/s':>13} {'typetrace/s':>12}"
              f" {'ratio':>6} {'MT size':>10} {'tt size':>10}")  # fmt: skip
        cases = [
            (small, 20_000, 1000),
            (small, 200_000, 1000),
            (small, 20_000, 10_000),
            (small, 200_000, 10_000),
            (double, 200_000, 10_000),
        ]
        for workload, calls, batch in cases:
            row = compare_inserts(workload, calls // scale, batch, folder)
            print(
                f"{row['calls']:>9,.0f} {row['batch']:>6,.0f} {row['distinct']:>8,.0f} "
                f"{row['mt_rate']:>13,.0f} "
                f"{row['tt_rate']:>12,.0f} {row['tt_rate'] / row['mt_rate']:>5.1f}x "
                f"{row['mt_size'] / 1e6:>8.2f}MB {row['tt_size'] / 1e6:>8.2f}MB"
            )

        print("\n3. typetrace store with 100,000 distinct signatures and 10,000,000 calls")
        large = Workload(modules=500 // scale, functions_per_module=40, variants=5)
        path = folder / "large.sqlite3"
        rounds = 10
        seconds = build_large_store(path, large, rounds, 10_000)
        total_calls = large.distinct * rounds * 10
        print(
            f"built through add() in {seconds:.1f} s: {large.distinct:,} signatures, "
            f"{total_calls:,} calls, {rounds} writes per signature, "
            f"file {file_size(path) / 1e6:.1f} MB"
        )
        store = SQLiteStore.make_store(str(path))
        modules = store.list_modules()
        generator = random.Random(SEED)
        sampled = [generator.choice(modules) for _ in range(50)]
        queue = iter(sampled * 2)
        first, median, worst = latency(lambda: store.filter(next(queue), limit=2000), 50)
        print(f"filter(module, limit=2000), {len(modules)} modules of 200 signatures: "
              f"first {first:.2f} ms, median {median:.2f} ms, max {worst:.2f} ms")  # fmt: skip
        queue = iter(sampled * 2)
        first, median, worst = latency(
            lambda: [t.to_trace() for t in store.filter(next(queue), limit=2000)], 50
        )
        print(f"filter() and decoding every trace: first {first:.2f} ms, "
              f"median {median:.2f} ms, max {worst:.2f} ms")  # fmt: skip
        first, median, worst = latency(store.list_modules, 20)
        print(f"list_modules(): first {first:.2f} ms, median {median:.2f} ms, max {worst:.2f} ms")
        started = time.perf_counter()
        scanned = sum(1 for _ in store.iter_rows())
        print(f"iter_rows() over all {scanned:,} rows: {time.perf_counter() - started:.2f} s")
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
