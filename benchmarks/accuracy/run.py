"""Compare the annotations that typetrace, MonkeyType and RightTyper infer with the maintainers' ones.

Run from the repository root with the Python 3.12 environment of ``scripts/test``:

    .venv-3.12/bin/python benchmarks/accuracy/run.py                      # everything
    .venv-3.12/bin/python benchmarks/accuracy/run.py --library itsdangerous --tool typetrace

Per library of ``libraries.LIBRARIES``:

1. Create (once) a virtual environment under ``benchmarks/.work/accuracy/venv`` with
   the pinned tools and the libraries' test requirements. typetrace is not installed
   there: it runs from this checkout's ``src``.
2. Download the library's sdist and strip the annotations of every function in
   ``src/<package>`` (``@overload`` signatures are removed).
3. Run the tests on the pristine copy and drop the ones that fail there. The stripped
   copy must pass all the others.
4. For each tool, on a fresh copy of the stripped sources: trace the test suite, then
   write the annotations into every traced module of the package.
5. Measure each annotated copy against the maintainers' annotations: slots written,
   exact matches after normalizing spelling (``compare.py``), compatible matches (the
   tool's type is a subtype of the maintainers', ``compatible.py``), mypy errors the
   stripped copy does not have, and the test results.

The results are stored as JSON in ``benchmarks/.work/accuracy/results/`` (one file per
library, updated per tool) and printed as Markdown tables, with the causes of
typetrace's differences from the maintainers' annotations (``causes.py``).
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tarfile
from pathlib import Path
from typing import Any

import causes
import compare
import compatible
import libraries
import tools
from libraries import Library

WORK = tools.REPOSITORY / "benchmarks" / ".work" / "accuracy"
#: mypy options per error count. mypy's defaults skip the bodies of unannotated
#: functions, so annotating a function also reports the errors its body always had.
#: --check-untyped-defs checks those bodies in the stripped copy too.
MYPY_MODES = {"new_mypy_errors": (), "new_mypy_errors_check_untyped_defs": ("--check-untyped-defs",)}


def make_venv(work: Path) -> Path:
    """Return the benchmark environment's Python, creating or updating the environment."""
    python = work / "venv" / "bin" / "python"
    requirements = sorted(
        {*libraries.TOOL_REQUIREMENTS}
        | {requirement for library in libraries.LIBRARIES.values() for requirement in (*library.test_requirements, *library.requirements)}
    )
    marker = work / "venv" / "requirements.txt"
    if python.exists() and marker.exists() and marker.read_text(encoding="utf-8").split() == requirements:
        return python
    if not python.exists():
        tools.run([sys.executable, "-m", "venv", str(work / "venv")], cwd=work)
    tools.run([str(python), "-m", "pip", "install", "--quiet", *requirements], cwd=work)
    marker.write_text("\n".join(requirements) + "\n", encoding="utf-8")
    return python


def fetch(python: Path, library: Library, work: Path) -> Path:
    """Return the unpacked sdist of *library* in ``work / "pristine"``, downloading it once."""
    folder = work / "pristine"
    if folder.exists():
        return folder
    downloads = work / "downloads"
    command = [str(python), "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:", library.requirement, "-d", str(downloads)]
    tools.run(command, cwd=work)
    (archive,) = downloads.glob("*.tar.gz")
    unpacked = work / "unpacked"
    with tarfile.open(archive) as tar:
        tar.extractall(unpacked, filter="data")
    (root,) = unpacked.iterdir()
    root.rename(folder)
    return folder


def run_tests(python: Path, library: Library, copy: Path, deselected: list[str]) -> tuple[str, list[str]]:
    """Run the tests on *copy*; return pytest's summary line and the failed or erroring test ids."""
    result = tools.run([str(python), *tools.pytest_arguments(library, deselected)], cwd=copy, env=tools.environment(copy), check=False)
    return tools.last_line(result), tools.failed_tests(result)


def mypy_errors(python: Path, copy: Path, package: str, *options: str) -> collections.Counter[str]:
    """Return mypy's errors on the package in *copy*, as ``message  [code]``, counted.

    mypy runs with its default options (the library's own configuration is ignored)
    and *options*.
    """
    command = [str(python), "-m", "mypy", "--config-file=", "--no-incremental", "--no-error-summary",
               "--hide-error-context", "--no-pretty", "--show-error-codes", *options, f"src/{package}"]  # fmt: skip
    result = tools.run(command, cwd=copy, check=False)
    errors: collections.Counter[str] = collections.Counter()
    for line in result.stdout.splitlines():
        if ": error: " in line:
            errors[line.split(": error: ", 1)[1]] += 1
    return errors


def prepare(python: Path, library: Library, work: Path) -> tuple[Path, Path, dict[str, Any]]:
    """Fetch and strip *library*, check its tests; return the pristine and stripped copies and facts about them."""
    pristine = fetch(python, library, work)
    stripped = tools.fresh_copy(pristine, work / "stripped")
    removed = compare.strip_package(stripped / "src" / library.package)
    print(f"{library.requirement}: stripped {removed} annotations", flush=True)
    pristine_tests, failing = run_tests(python, library, pristine, [])
    print("pristine copy:", pristine_tests, flush=True)
    stripped_tests, stripped_failing = run_tests(python, library, stripped, failing)
    print("stripped copy:", stripped_tests, flush=True)
    if stripped_failing:
        raise SystemExit(
            f"{library.requirement}: tests fail on the stripped copy but not on the pristine one: {stripped_failing}; "
            "check the stripping in compare.py"
        )
    facts = {
        "annotations_removed": removed,
        "pristine_tests": pristine_tests,
        "dropped_tests": failing,
        "stripped_tests": stripped_tests,
        "facts": causes.package_facts(pristine / "src" / library.package),
    }
    return pristine, stripped, facts


def measure(python: Path, library: Library, pristine: Path, annotated: tools.Annotated, baselines: dict[str, collections.Counter[str]], deselected: list[str], work: Path) -> dict[str, Any]:
    """Compare one tool's annotated copy with the maintainers' annotations; return the figures and per-slot details."""
    expected = compare.collect_annotations(pristine / "src" / library.package)
    expected_source = compare.collect_source_annotations(pristine / "src" / library.package)
    package = annotated.copy / "src" / library.package
    generated = compare.collect_annotations(package)
    generated_source = compare.collect_source_annotations(package)
    score = compare.score(expected, generated)
    pairs = [compatible.Pair(slot, generated_source[slot], expected_source[slot]) for slot, _, _ in score.mismatches]
    subtypes = compatible.check_subtypes(python, pristine / "src" / library.package, package, pairs, work / "subtype-checks")
    errors: dict[str, Any] = {}
    for mode, options in MYPY_MODES.items():
        new_errors = mypy_errors(python, annotated.copy, library.package, *options) - baselines[mode]
        errors[mode] = sum(new_errors.values())
        errors[f"{mode}_list"] = sorted(f"{count}x {error}" for error, count in new_errors.items())
    tests, failed = run_tests(python, library, annotated.copy, deselected)
    slots = []
    for slot in sorted(expected):
        slots.append({
            "slot": list(slot),
            "expected": expected[slot],
            "expected_source": expected_source[slot],
            "generated": generated.get(slot),
            "generated_source": generated_source.get(slot),
            "narrower": slot in subtypes.narrower,
            "wider": slot in subtypes.wider,
        })  # fmt: skip
    expected_functions = {slot[:2] for slot in expected}
    written_functions = {slot[:2] for slot in expected if slot in generated}
    return {
        "functions_expected": len(expected_functions),
        "functions_written": len(written_functions),
        "slots_expected": len(expected),
        "slots_written": score.written,
        "exact": score.exact,
        "compatible": score.exact + len(subtypes.narrower),
        **errors,
        "tests": tests,
        "failed_tests": failed,
        "traced_tests": annotated.traced_tests,
        "traced_failures": annotated.traced_failures,
        "seconds": round(annotated.seconds, 1),
        "test_names": causes.test_names(package),
        "slots": slots,
    }


def benchmark(python: Path, library: Library, selected_tools: list[str], work: Path, *, measure_only: bool = False) -> dict[str, Any]:
    """Run *selected_tools* on *library* and store the figures; with *measure_only*, measure the copies of the last run again."""
    work.mkdir(parents=True, exist_ok=True)
    pristine, stripped, facts = prepare(python, library, work)
    deselected: list[str] = facts["dropped_tests"]
    baselines = {mode: mypy_errors(python, stripped, library.package, *options) for mode, options in MYPY_MODES.items()}
    results_file = WORK / "results" / f"{library.name}.json"
    stored = json.loads(results_file.read_text(encoding="utf-8")) if results_file.exists() else {}
    if stored.get("version") != library.version:
        stored = {}
    stored.update({"library": library.name, "version": library.version, **facts})
    stored.setdefault("tools", {})
    for tool in selected_tools:
        if measure_only:
            if tool not in stored["tools"] or not (work / tool).exists():
                continue
            previous = stored["tools"][tool]
            annotated = tools.Annotated(work / tool, previous["seconds"], previous["traced_tests"], previous.get("traced_failures", []), "")
        else:
            annotated = tools.annotate(tool, python, library, stripped, work, deselected)
            (work / f"{tool}.log").write_text(annotated.log, encoding="utf-8")
        stored["tools"][tool] = measure(python, library, pristine, annotated, baselines, deselected, work)
        results_file.parent.mkdir(parents=True, exist_ok=True)
        results_file.write_text(json.dumps(stored, indent=1) + "\n", encoding="utf-8")
        print(f"{tool}: {stored['tools'][tool]['tests']}", flush=True)
    return stored


def percent(part: int, whole: int) -> str:
    return f"{part / whole:.0%}" if whole else "-"


def report(results: list[dict[str, Any]]) -> str:
    """Return the Markdown tables of *results* (one stored result per library)."""
    out = []
    for result in results:
        tools_results: dict[str, dict[str, Any]] = result["tools"]
        first = next(iter(tools_results.values()))
        functions, slots = first["functions_expected"], first["slots_expected"]
        out.append(f"### {result['library']} {result['version']}\n")
        out.append(
            f"{result['annotations_removed']} annotations stripped; the maintainers annotated {slots} slots in {functions} functions. "
            f"Tests on the pristine copy: {result['pristine_tests']}; dropped {len(result['dropped_tests'])} (failing on the pristine copy); "
            f"stripped copy: {result['stripped_tests']}.\n"
        )
        out.append(f"| Tool | Functions annotated (of {functions}) | Slots written (of {slots}) | Exact matches | Compatible matches | New mypy errors (default options / --check-untyped-defs) | Tests while tracing | Tests on the annotated copy | Trace and apply (s) |")
        out.append("|---|---|---|---|---|---|---|---|---|")
        for tool in libraries.TOOLS:
            if tool not in tools_results:
                continue
            r = tools_results[tool]
            out.append(
                f"| {libraries.TOOL_TITLES[tool]} | {r['functions_written']} ({percent(r['functions_written'], functions)}) "
                f"| {r['slots_written']} ({percent(r['slots_written'], slots)}) | {r['exact']} ({percent(r['exact'], slots)}) "
                f"| {r['compatible']} ({percent(r['compatible'], slots)}) | {r['new_mypy_errors']} / {r.get('new_mypy_errors_check_untyped_defs', '-')} | {r['traced_tests']} | {r['tests']} | {r['seconds']} |"
            )
        out.append("")
    return "\n".join(out)


def load_results(names: list[str]) -> list[dict[str, Any]]:
    results = []
    for name in names:
        path = WORK / "results" / f"{name}.json"
        if path.exists():
            results.append(json.loads(path.read_text(encoding="utf-8")))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--library", action="append", choices=sorted(libraries.LIBRARIES), help="run only this library (repeatable); default: all")
    parser.add_argument("--tool", action="append", choices=libraries.TOOLS, help="run only this tool (repeatable); default: all")
    parser.add_argument("--report", action="store_true", help="print the tables from the stored results without running anything")
    parser.add_argument("--measure-only", action="store_true", help="measure the annotated copies of the last run again, without tracing")
    args = parser.parse_args(argv)
    names = args.library or list(libraries.LIBRARIES)
    if not args.report:
        WORK.mkdir(parents=True, exist_ok=True)
        python = make_venv(WORK)
        for name in names:
            benchmark(python, libraries.LIBRARIES[name], args.tool or list(libraries.TOOLS), WORK / name, measure_only=args.measure_only)
    results = load_results(names)
    print(report(results))
    packages = {name: library.package for name, library in libraries.LIBRARIES.items()}
    print(causes.report(results, packages, WORK))
    return 0


if __name__ == "__main__":
    sys.exit(main())
