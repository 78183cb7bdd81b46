"""Run each annotation tool on a copy of a stripped library: trace its tests, then write annotations."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from libraries import Library

REPOSITORY = Path(__file__).resolve().parents[2]
_SUMMARY_NODE = re.compile(r"^(FAILED|ERROR) (?P<node>\S+)")


@dataclass(frozen=True)
class Annotated:
    """A copy of the stripped library that one tool annotated."""

    #: Root of the copy (the sdist's layout).
    copy: Path
    #: Wall-clock seconds for tracing the tests and writing the annotations.
    seconds: float
    #: Last line of pytest's output while the tool traced the tests.
    traced_tests: str
    #: Tests that failed or erred while the tool traced them.
    traced_failures: list[str]
    #: What the apply steps printed, for the log.
    log: str


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run *command*, echoing it; raise ``SystemExit`` when it fails and *check* is set."""
    print("$", " ".join(command), flush=True)
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        print(result.stdout[-4000:], result.stderr[-4000:], sep="\n", file=sys.stderr)
        raise SystemExit(f"failed with exit code {result.returncode}: {' '.join(command)}")
    return result


def environment(copy: Path, *, with_typetrace: bool = False) -> dict[str, str]:
    """Return the environment that imports the library from *copy* (and typetrace from this checkout)."""
    env = dict(os.environ)
    paths = [str(copy / "src")]
    if with_typetrace:
        paths.insert(0, str(REPOSITORY / "src"))
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def pytest_arguments(library: Library, deselected: list[str]) -> list[str]:
    """Return the arguments after ``python`` that run the library's tests, without *deselected*."""
    arguments = ["-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider", *library.test_paths]
    return arguments + [f"--deselect={node}" for node in deselected]


def last_line(result: subprocess.CompletedProcess[str]) -> str:
    """Return pytest's summary line from *result*, without the duration."""
    lines = result.stdout.strip().splitlines()
    if not lines:
        return f"no output (exit code {result.returncode})"
    return re.sub(r" in [\d.]+s( \([^)]*\))?$", "", lines[-1].strip("= "))


def failed_tests(result: subprocess.CompletedProcess[str]) -> list[str]:
    """Return the ids of the tests that pytest's short summary (``-rfE``) lists as failed or erred."""
    return [match["node"] for match in map(_SUMMARY_NODE.match, result.stdout.splitlines()) if match is not None]


def fresh_copy(source: Path, target: Path) -> Path:
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
    return target


def _traced_modules(output: str, package: str) -> list[str]:
    return [module for module in output.split() if module == package or module.startswith(package + ".")]


def annotate_with_typetrace(python: Path, library: Library, stripped: Path, copy: Path, deselected: list[str], *, verify: bool) -> Annotated:
    fresh_copy(stripped, copy)
    env = environment(copy, with_typetrace=True)
    typetrace = [str(python), "-m", "typetrace", "--db", str(copy / "traces.sqlite3")]
    started = time.perf_counter()
    traced = run([*typetrace, "run", "--all-calls", *pytest_arguments(library, deselected)], cwd=copy, env=env, check=False)
    listed = run([*typetrace, "list-modules"], cwd=copy, env=env)
    log = []
    for module in _traced_modules(listed.stdout, library.package):
        options = ["--verify"] if verify else []
        result = run([*typetrace, "apply", module, *options], cwd=copy, env=env, check=False)
        log.append(f"{module}: exit code {result.returncode}\n{result.stderr}")
    return Annotated(copy, time.perf_counter() - started, last_line(traced), failed_tests(traced), "".join(log))


def annotate_with_monkeytype(python: Path, library: Library, stripped: Path, copy: Path, deselected: list[str]) -> Annotated:
    """Run MonkeyType 23.3.0: trace the tests, then apply the annotations module by module.

    ``monkeytype apply`` imports the module it annotates and adds run-time imports to
    it, which can close an import cycle; then every later ``apply`` fails. So each
    module is annotated in a fresh copy of the stripped sources and copied from there.
    """
    fresh_copy(stripped, copy)
    env = environment(copy)
    env["MT_DB_PATH"] = str(copy / "monkeytype.sqlite3")
    monkeytype = [str(python), "-m", "monkeytype"]
    started = time.perf_counter()
    traced = run([*monkeytype, "run", *pytest_arguments(library, deselected)], cwd=copy, env=env, check=False)
    listed = run([*monkeytype, "list-modules"], cwd=copy, env=env)
    scratch = copy.parent / "monkeytype-apply"
    scratch_env = {**environment(scratch), "MT_DB_PATH": env["MT_DB_PATH"]}
    log = []
    for module in _traced_modules(listed.stdout, library.package):
        fresh_copy(stripped / "src", scratch / "src")
        result = run([*monkeytype, "apply", module], cwd=scratch, env=scratch_env, check=False)
        log.append(f"{module}: exit code {result.returncode} {result.stderr.strip()[-300:]}\n")
        if result.returncode == 0:
            relative = _module_file(scratch / "src", module)
            shutil.copyfile(scratch / "src" / relative, copy / "src" / relative)
    return Annotated(copy, time.perf_counter() - started, last_line(traced), failed_tests(traced), "".join(log))


def _module_file(root: Path, module: str) -> Path:
    """Return the file of *module* under *root*, relative to *root*."""
    relative = Path(*module.split("."))
    if (root / relative / "__init__.py").exists():
        return relative / "__init__.py"
    return relative.with_suffix(".py")


def annotate_with_righttyper(python: Path, library: Library, stripped: Path, copy: Path, deselected: list[str]) -> Annotated:
    """Run RightTyper 0.1.0, which traces and writes the annotations in one command.

    RightTyper 0.1.0 has no subcommands: ``python -m righttyper [OPTIONS] -m MODULE
    ARGS``. ``--no-sampling`` observes every call, like typetrace's ``--all-calls``;
    ``--include-files`` keeps it from annotating the test modules.
    """
    fresh_copy(stripped, copy)
    env = environment(copy)
    options = ["--overwrite", "--output-files", "--no-sampling", "--include-files", f"/src/{library.package}/"]
    started = time.perf_counter()
    traced = run([str(python), "-m", "righttyper", *options, *pytest_arguments(library, deselected)], cwd=copy, env=env, check=False)
    log = f"exit code {traced.returncode}\n{traced.stderr.strip()[-2000:]}\n"
    return Annotated(copy, time.perf_counter() - started, last_line(traced), failed_tests(traced), log)


def annotate(tool: str, python: Path, library: Library, stripped: Path, work: Path, deselected: list[str]) -> Annotated:
    """Annotate a fresh copy of *stripped*, in ``work / tool``, with *tool* (a name from ``libraries.TOOLS``)."""
    copy = work / tool
    if tool in ("typetrace", "typetrace-verify"):
        return annotate_with_typetrace(python, library, stripped, copy, deselected, verify=tool == "typetrace-verify")
    if tool == "monkeytype":
        return annotate_with_monkeytype(python, library, stripped, copy, deselected)
    if tool == "righttyper":
        return annotate_with_righttyper(python, library, stripped, copy, deselected)
    raise ValueError(f"unknown tool {tool!r}")
