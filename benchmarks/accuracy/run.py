"""Compare typetrace's and MonkeyType's annotations with the ones itsdangerous's maintainers wrote.

Run from the repository root with a Python that has typetrace's dependencies:

    .venv-3.12/bin/python benchmarks/accuracy/run.py

Steps:

1. Create a virtual environment under ``benchmarks/.work/accuracy/venv`` with
   MonkeyType 23.3.0, pytest, freezegun 1.4.0 (itsdangerous's tests need it), mypy and
   libcst. typetrace is not installed there: it runs from this repository's ``src``.
2. Download the itsdangerous 2.2.0 sdist and strip the annotations of every function
   in ``src/itsdangerous`` (``@overload`` signatures are removed, since without
   annotations they would only repeat the implementation).
3. For each tool, on a fresh copy of the stripped sources: trace the test suite, then
   write the annotations into every traced module of itsdangerous. typetrace runs
   twice, without and with ``--verify``.
4. Measure each annotated copy: how many of the maintainers' annotations the tool
   wrote and how many match exactly after normalizing spelling (see ``compare.py``),
   the mypy errors that the stripped copy does not have, and the test results.

The figures are printed as a Markdown table.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import compare

REPOSITORY = Path(__file__).resolve().parents[2]
REQUIREMENT = "itsdangerous==2.2.0"
PACKAGE = "itsdangerous"
TOOLS = ("MonkeyType==23.3.0", "pytest", "freezegun==1.4.0", "mypy", "libcst")
PYTEST = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"]


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    print("$", " ".join(command), flush=True)
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        print(result.stdout[-4000:], result.stderr[-4000:], sep="\n", file=sys.stderr)
        raise SystemExit(f"failed with exit code {result.returncode}: {' '.join(command)}")
    return result


def make_venv(work: Path) -> Path:
    python = work / "venv" / "bin" / "python"
    if not python.exists():
        run([sys.executable, "-m", "venv", str(work / "venv")], cwd=work)
        run([str(python), "-m", "pip", "install", "--quiet", *TOOLS], cwd=work)
    return python


def fetch(python: Path, work: Path) -> Path:
    folder = work / "pristine"
    if folder.exists():
        return folder
    downloads = work / "downloads"
    run([str(python), "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:", REQUIREMENT, "-d", str(downloads)], cwd=work)
    (archive,) = downloads.glob("*.tar.gz")
    unpacked = work / "unpacked"
    with tarfile.open(archive) as tar:
        tar.extractall(unpacked)  # noqa: S202 - the sdist this script just fetched from PyPI
    (root,) = unpacked.iterdir()
    root.rename(folder)
    return folder


def environment(copy: Path, *, with_typetrace: bool) -> dict[str, str]:
    import os

    env = dict(os.environ)
    paths = [str(copy / "src")]
    if with_typetrace:
        paths.insert(0, str(REPOSITORY / "src"))
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def fresh_copy(stripped: Path, work: Path, name: str) -> Path:
    copy = work / name
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(stripped, copy)
    return copy


def annotate_with_typetrace(python: Path, stripped: Path, work: Path, *, verify: bool) -> tuple[Path, float, str]:
    copy = fresh_copy(stripped, work, "typetrace-verify" if verify else "typetrace")
    env = environment(copy, with_typetrace=True)
    typetrace = [str(python), "-m", "typetrace", "--db", str(copy / "traces.sqlite3")]
    started = time.perf_counter()
    run([*typetrace, "run", "--all-calls", *PYTEST], cwd=copy, env=env)
    modules = [m for m in run([*typetrace, "list-modules"], cwd=copy, env=env).stdout.split() if m.startswith(PACKAGE)]
    report = []
    for module in modules:
        options = ["--verify"] if verify else []
        result = run([*typetrace, "apply", module, *options], cwd=copy, env=env)
        report.append(result.stderr)
    return copy, time.perf_counter() - started, "".join(report)


def annotate_with_monkeytype(python: Path, stripped: Path, work: Path) -> tuple[Path, float, str]:
    copy = fresh_copy(stripped, work, "monkeytype")
    env = environment(copy, with_typetrace=False)
    env["MT_DB_PATH"] = str(copy / "monkeytype.sqlite3")
    monkeytype = [str(python), "-m", "monkeytype"]
    started = time.perf_counter()
    run([*monkeytype, "run", *PYTEST], cwd=copy, env=env)
    modules = [m for m in run([*monkeytype, "list-modules"], cwd=copy, env=env).stdout.split() if m.startswith(PACKAGE)]
    report = []
    for module in modules:
        result = run([*monkeytype, "apply", module], cwd=copy, env=env, check=False)
        report.append(f"{module}: exit code {result.returncode} {result.stderr.strip()[-300:]}\n")
    return copy, time.perf_counter() - started, "".join(report)


def mypy_errors(python: Path, copy: Path) -> collections.Counter[str]:
    """Return mypy's errors on the package in *copy*, as ``code: message``, counted."""
    command = [str(python), "-m", "mypy", "--config-file=", "--no-incremental", "--no-error-summary",
               "--hide-error-context", "--no-pretty", "--show-error-codes", f"src/{PACKAGE}"]  # fmt: skip
    result = run(command, cwd=copy, check=False)
    errors: collections.Counter[str] = collections.Counter()
    for line in result.stdout.splitlines():
        if ": error: " in line:
            errors[line.split(": error: ", 1)[1]] += 1
    return errors


def summarize_tests(python: Path, copy: Path) -> str:
    result = run([str(python), *PYTEST], cwd=copy, env=environment(copy, with_typetrace=False), check=False)
    lines = result.stdout.strip().splitlines()
    return lines[-1] if lines else f"no output (exit code {result.returncode})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=REPOSITORY / "benchmarks" / ".work" / "accuracy")
    args = parser.parse_args(argv)
    work: Path = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)

    python = make_venv(work)
    pristine = fetch(python, work)
    stripped = fresh_copy(pristine, work, "stripped")
    removed = compare.strip_package(stripped / "src" / PACKAGE)
    print(f"stripped {removed} annotations")
    print("stripped copy:", summarize_tests(python, stripped))
    baseline = mypy_errors(python, stripped)

    results = {
        "typetrace": annotate_with_typetrace(python, stripped, work, verify=False),
        "typetrace --verify": annotate_with_typetrace(python, stripped, work, verify=True),
        "MonkeyType 23.3.0": annotate_with_monkeytype(python, stripped, work),
    }
    expected = compare.collect_annotations(pristine / "src" / PACKAGE)
    rows = []
    for name, (copy, seconds, report) in results.items():
        print(f"--- {name} ---\n{report}")
        generated = compare.collect_annotations(copy / "src" / PACKAGE)
        score = compare.score(expected, generated)
        new_errors = mypy_errors(python, copy) - baseline
        rows.append((name, score, sum(new_errors.values()), summarize_tests(python, copy), seconds))
        for mismatch in score.mismatches:
            print("  differs:", mismatch)
        for error, count in sorted(new_errors.items()):
            print(f"  new mypy error ({count}x): {error}")

    total = len(expected)
    print(f"\nAnnotation slots the maintainers annotated: {total}\n")
    print("| Tool | Slots written | Exact matches | Written but different | New mypy errors | Tests on the annotated copy | Trace and apply (s) |")
    print("|---|---|---|---|---|---|---|")
    for name, score, errors, tests, seconds in rows:
        print(
            f"| {name} | {score.written} ({score.written / total:.0%}) | {score.exact} ({score.exact / total:.0%}) "
            f"| {score.written - score.exact} | {errors} | {tests} | {seconds:.1f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
