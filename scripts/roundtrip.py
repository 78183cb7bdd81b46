"""Trace a real library's test suite, stub and apply the result, and test it again.

Steps, each of which must succeed:

1. Download the library's sdist from PyPI (``pip download --no-binary``) and unpack it.
2. Run its test suite under ``typetrace run --all-calls -m pytest``.
3. Write a stub for every traced module with ``typetrace stub --output-dir`` and
   check them with mypy.
4. Apply the annotations to every traced module of a fresh copy of the library and
   run its test suite again.

Usage::

    python scripts/roundtrip.py [--requirement toolz==1.2.0] [--package toolz]
        [--tests toolz/tests] [--work DIR]

The Python running this script needs typetrace, pytest and mypy installed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path


def run(command: list[str], cwd: Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    print("$", " ".join(command), flush=True)
    result = subprocess.run(command, cwd=cwd, text=True, capture_output=True, **kwargs)  # type: ignore[call-overload]
    if result.returncode != 0:
        print(result.stdout[-5000:], result.stderr[-5000:], sep="\n", file=sys.stderr)
        raise SystemExit(f"failed with exit code {result.returncode}: {' '.join(command)}")
    return result  # type: ignore[no-any-return]


def fetch_sdist(requirement: str, work: Path) -> Path:
    """Download and unpack the sdist of *requirement*; return the unpacked folder."""
    downloads = work / "downloads"
    run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
         requirement, "-d", str(downloads)],
        cwd=work,
    )
    (archive,) = downloads.glob("*.tar.gz")
    with tarfile.open(archive) as tar:
        tar.extractall(work / "src")  # noqa: S202 - an sdist from PyPI that this script just fetched
    (folder,) = (work / "src").iterdir()
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requirement", default="toolz==1.2.0")
    parser.add_argument("--package", default="toolz", help="the import name of the library")
    parser.add_argument("--tests", default="toolz/tests", help="test path inside the sdist")
    parser.add_argument("--work", type=Path, help="work folder (default: a temporary one)")
    args = parser.parse_args(argv)

    work = args.work or Path(tempfile.mkdtemp(prefix="typetrace-roundtrip-"))
    work.mkdir(parents=True, exist_ok=True)
    pristine = fetch_sdist(args.requirement, work)
    traced = work / "traced"
    shutil.copytree(pristine, traced)
    db = str(work / "traces.sqlite3")
    typetrace = [sys.executable, "-m", "typetrace", "--db", db]
    pytest_args = ["-q", "-p", "no:cacheprovider", args.tests]

    baseline = run([sys.executable, "-m", "pytest", *pytest_args], cwd=traced)
    print(baseline.stdout.strip().splitlines()[-1])
    traced_run = run([*typetrace, "run", "--all-calls", "-m", "pytest", *pytest_args], cwd=traced)
    print(traced_run.stdout.strip().splitlines()[-1])

    modules = run([*typetrace, "list-modules"], cwd=traced).stdout.split()
    library_modules = [m for m in modules if m == args.package or m.startswith(args.package + ".")]
    print(f"traced modules: {len(modules)}, of {args.package}: {len(library_modules)}")

    stubs = work / "stubs"
    for module in library_modules:
        run([*typetrace, "stub", module, "--output-dir", str(stubs)], cwd=traced)
    stub_files = sorted(str(path) for path in stubs.rglob("*.pyi"))
    # The stubs come first on mypy's path. Modules without a stub (untraced ones, and
    # other top-level packages of the sdist) are read from the unannotated source,
    # and errors in that source are not reported.
    mypy_env = {**os.environ, "MYPYPATH": os.pathsep.join([str(stubs), str(pristine)])}
    run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--follow-imports=silent", *stub_files],
        cwd=work,
        env=mypy_env,
    )
    print(f"mypy accepts {len(stub_files)} stubs")

    annotated = work / "annotated"
    shutil.copytree(pristine, annotated)
    for module in library_modules:
        run([*typetrace, "apply", module], cwd=annotated)
    changed = [
        path for path in annotated.rglob("*.py")
        if path.read_bytes() != (pristine / path.relative_to(annotated)).read_bytes()
    ]
    print(f"annotated {len(changed)} files")
    if not changed:
        raise SystemExit("apply changed no file")
    after = run([sys.executable, "-m", "pytest", *pytest_args], cwd=annotated)
    print(after.stdout.strip().splitlines()[-1])
    print(f"round trip of {args.requirement} passed; work folder: {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
