"""Measure typetrace's tracing overhead against untraced runs and MonkeyType.

Each workload runs as a whole process, start-up included, in every mode: untraced,
typetrace's default sampling, typetrace --all-calls and MonkeyType 23.3.0. Rounds run
the modes in turn, in a rotated order, so that a drift of the machine affects them
alike. The script prints the median, min and max of each run's wall time and of its
CPU time (user plus system, of the process and its children), each with its ratio to
the untraced median. CPU time varies less than wall time when other jobs share the
machine, but it leaves out time spent waiting, for example on disk writes.
Each run deletes the trace stores first, so that it creates a new SQLite store, the
slowest case for start-up. With --keep-store every run writes to one existing store.

On Python 3.9 to 3.11, the mode hook-floor, run only when --modes names it, runs the
workload under a C profile function that drops every event. That is close to the
least any profile function costs there. On 3.11, where typetrace traces through a
frame-evaluation function instead, the mode eval-floor runs the workload under that
function set to drop every event, the least that this backend costs.

    python benchmarks/overhead/run.py --python python3.12 --rounds 5

The first run builds a virtual environment under benchmarks/.work/ with typetrace
(from this checkout), pytest and MonkeyType, and downloads the toolz 1.2.0 sdist whose
test suite is one workload. Needs PyPI. Before each run of the script it compiles
typetrace's sources to bytecode, as an installed package would be, because an editable
install run with PYTHONDONTWRITEBYTECODE set would compile them at every start.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WORKLOADS_DIR = Path(__file__).resolve().parent / "workloads"
MODES = ("untraced", "default", "all-calls", "monkeytype")
# The cost of any profile function on Python 3.9 to 3.11: typetrace's C hook dropping
# every event. Run only when asked for.
FLOOR_MODE = "hook-floor"
# The cost of typetrace's frame-evaluation function on Python 3.11 when it drops every
# event. Run only when asked for.
EVAL_FLOOR_MODE = "eval-floor"
WORKLOADS = ("interpreter", "dataproc", "asyncserver", "manyfuncs", "toolz-tests")


def prepare(python: str) -> tuple[Path, Path]:
    """Build the benchmark's venv and work folder; return (venv python, work folder)."""
    version = subprocess.run(
        [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True, text=True, check=True
    ).stdout.strip()
    work = ROOT / "benchmarks" / ".work" / f"overhead-{version}"
    work.mkdir(parents=True, exist_ok=True)
    venv_python = work / "venv" / "bin" / "python"
    installed = work / "venv" / ".installed"
    # The editable install compiles the C extension of its Python once, so a changed C
    # source or setup.py needs a new install.
    sources = [ROOT / "setup.py", *(ROOT / "src" / "typetrace").glob("_*.[ch]")]
    if not installed.exists() or any(source.stat().st_mtime > installed.stat().st_mtime for source in sources):
        subprocess.run([python, "-m", "venv", str(work / "venv")], check=True)
        pip = [str(venv_python), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, "--upgrade", "pip"], check=True)
        subprocess.run([*pip, "-e", str(ROOT), "pytest", "MonkeyType==23.3.0"], check=True)
        installed.touch()
    hook = "_profilehook" if version in ("3.9", "3.10", "3.11") else "_fastcalls"
    for extension in (hook, "_containers"):
        check = subprocess.run(
            [str(venv_python), "-c", f"import typetrace.{extension}"],
            capture_output=True,
            text=True,
        )
        if check.returncode != 0:
            raise SystemExit(
                f"typetrace's C extension {extension} did not build for Python {version}, "
                f"so the benchmark would measure pure-Python code:\n{check.stderr}Install a C "
                f"compiler and the Python headers, then delete {installed} to reinstall."
            )
    toolz = work / "toolz-1.2.0"
    if not toolz.exists():
        subprocess.run(
            [str(venv_python), "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
             "-d", str(work), "toolz==1.2.0"],
            check=True,
        )
        with tarfile.open(work / "toolz-1.2.0.tar.gz") as archive:
            archive.extractall(work)
    subprocess.run([str(venv_python), "-m", "compileall", "-q", str(ROOT / "src")], check=True)
    generated = work / "_manyfuncs_generated.py"
    if not generated.exists():
        sys.path.insert(0, str(WORKLOADS_DIR))
        import manyfuncs

        manyfuncs.generate(str(generated))
    return venv_python, work


def command(python: Path, work: Path, workload: str, mode: str) -> tuple[list[str], Path]:
    """Return the command line and working folder of one run."""
    if workload == "toolz-tests":
        target = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "toolz/tests"]
        cwd = work / "toolz-1.2.0"
    elif workload == "startup":
        target = [str(WORKLOADS_DIR / "empty.py")]
        cwd = work
    else:
        target = [str(WORKLOADS_DIR / f"{workload}.py")]
        if workload == "manyfuncs":
            target.append(str(work))
        cwd = work
    db = str(work / "traces.sqlite3")
    prefix = {
        "untraced": [],
        "default": ["-m", "typetrace", "run", "--db", db],
        "all-calls": ["-m", "typetrace", "run", "--all-calls", "--db", db],
        "monkeytype": ["-m", "monkeytype", "run"],
        FLOOR_MODE: [str(Path(__file__).resolve().parent / "profile_floor.py")],
        EVAL_FLOOR_MODE: [str(Path(__file__).resolve().parent / "profile_floor.py"), "--eval"],
    }[mode]
    return [str(python), *prefix, *target], cwd


def run_once(python: Path, work: Path, workload: str, mode: str, keep_store: bool = False) -> tuple[float, float]:
    """Run one workload in one mode; return its wall time and CPU time in seconds.

    The stores are deleted first, unless *keep_store*.
    """
    args, cwd = command(python, work, workload, mode)
    if not keep_store:
        for stale in work.glob("traces.sqlite3*"):
            stale.unlink()
        for stale in work.glob("monkeytype.sqlite3*"):
            stale.unlink()
    env = {name: value for name, value in os.environ.items() if not name.startswith(("TYPETRACE", "MT_"))}
    env["MT_DB_PATH"] = str(work / "monkeytype.sqlite3")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(args, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if result.returncode != 0:
        raise RuntimeError(f"{workload} under {mode} failed with exit code {result.returncode}:\n{result.stderr[-2000:]}")
    return elapsed, cpu


def print_table(times: dict[tuple[str, str], list[float]], workloads: list[str], modes: list[str]) -> None:
    ratios: dict[str, list[float]] = {mode: [] for mode in modes}
    for workload in workloads:
        base = statistics.median(times[(workload, "untraced")]) if "untraced" in modes else float("nan")
        cells = []
        for mode in modes:
            samples = times[(workload, mode)]
            median = statistics.median(samples)
            ratio = median / base if base > 0 else float("nan")
            if workload != "startup":
                ratios[mode].append(ratio)
            cells.append(f"{mode} {median:.2f} ({min(samples):.2f}-{max(samples):.2f}) {ratio:.2f}x")
        print(f"{workload:12} " + " | ".join(cells))
    print("geometric mean of ratios: " + " | ".join(
        f"{mode} {math.exp(statistics.fmean(math.log(r) for r in values)):.2f}x" for mode, values in ratios.items() if values
    ))
    if "untraced" in modes and "default" in modes:
        startup = statistics.median(times[("startup", "default")]) - statistics.median(times[("startup", "untraced")])
        print(f"start-up added by typetrace run: {startup * 1000:.0f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", default=sys.executable, help="interpreter to benchmark (default: this one)")
    parser.add_argument("--rounds", type=int, default=5, help="runs of each workload in each mode (default: 5)")
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=[*WORKLOADS, "startup"])
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=[*MODES, FLOOR_MODE, EVAL_FLOOR_MODE])
    parser.add_argument(
        "--keep-store",
        action="store_true",
        help="keep the trace stores between runs, after one unmeasured run of each workload and mode "
        "creates them (default: delete them before each run, so that each run creates a new store)",
    )
    args = parser.parse_args()
    python, work = prepare(args.python)
    workloads = [*args.workloads, "startup"] if "startup" not in args.workloads else args.workloads
    if args.keep_store:
        for stale in [*work.glob("traces.sqlite3*"), *work.glob("monkeytype.sqlite3*")]:
            stale.unlink()
        for workload in workloads:
            for mode in args.modes:
                run_once(python, work, workload, mode, keep_store=True)
    wall: dict[tuple[str, str], list[float]] = {}
    cpu: dict[tuple[str, str], list[float]] = {}
    for round_number in range(args.rounds):
        for workload in workloads:
            # Rotate the order of the modes from round to round.
            shift = round_number % len(args.modes)
            for mode in [*args.modes[shift:], *args.modes[:shift]]:
                elapsed, used = run_once(python, work, workload, mode, keep_store=args.keep_store)
                wall.setdefault((workload, mode), []).append(elapsed)
                cpu.setdefault((workload, mode), []).append(used)
        print(f"round {round_number + 1}/{args.rounds} done", file=sys.stderr)

    version = subprocess.run([str(python), "--version"], capture_output=True, text=True).stdout.strip()
    for title, times in (("wall time", wall), ("CPU time", cpu)):
        print(f"{version}, {args.rounds} rounds, {title} per process in seconds: median (min-max) and ratio to untraced")
        print_table(times, workloads, args.modes)
        print()
    results = {"wall": wall, "cpu": cpu}
    (work / "results.json").write_text(
        json.dumps({metric: {f"{w}/{m}": v for (w, m), v in times.items()} for metric, times in results.items()}, indent=1)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
