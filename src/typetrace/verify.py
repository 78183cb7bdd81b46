"""Verify: keep only the annotations of a stub that add no type-checker errors to its module.

:func:`verify_stub` type-checks the module as it is, then with the stub applied, and
compares the errors. Each error that only the annotated module has is blamed on the
annotations that introduced it (see :func:`_blame`). Those annotations are dropped,
and the check repeats until the annotated module has no new errors. The user's file
is never written here, so the caller decides what to write. mypy reads the annotated
text from a temporary folder through ``--shadow-file``. pyright has no such option, so
for pyright the text is written to a copy beside the file, named
``_typetrace_verify_<name>.py``, and the copy is removed after the check.

Errors are compared by checker, error code and message, not by line, because the
imports that ``apply`` adds move every line below them.
"""

from __future__ import annotations

import ast
import collections
import dataclasses
import difflib
import logging
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

from typetrace.apply import apply_stub_to_source
from typetrace.exceptions import TypeTraceError
from typetrace.stubs.annotations import TYPE_VAR_MODULE
from typetrace.stubs.model import ClassStub, FunctionStub, ModuleStub, PropertyAccessor
from typetrace.stubs.scan import FunctionNode, scan_module
from typetrace.typemodel import TypeRef

__all__ = [
    "CheckerError",
    "DroppedAnnotation",
    "Slot",
    "VerifyError",
    "VerifyResult",
    "available_checkers",
    "verify_stub",
]

logger = logging.getLogger(__name__)

#: Maximum number of check rounds before every remaining annotation is dropped.
MAX_ROUNDS = 10
#: Maximum number of dropped groups that are tried again one at a time.
MAX_RESTORES = 20
#: Seconds one type-checker run may take.
CHECK_TIMEOUT = 600

_MYPY_LINE = re.compile(r"^(?P<path>.+?):(?P<line>\d+):(?P<column>\d+): error: (?P<message>.*?)(?:  \[(?P<code>[\w-]+)\])?$")
#: mypy error codes that report missing annotations, not wrong ones. Dropping one
#: annotation of a function makes it partly annotated, which these codes report under
#: ``disallow_untyped_defs`` and ``disallow_untyped_calls`` with new messages, so
#: they are never counted as new errors.
_COMPLETENESS_CODES = frozenset({"no-untyped-def", "no-untyped-call"})
_QUOTED_NAME = re.compile(r'"([A-Za-z_][A-Za-z0-9_]*)"')


class VerifyError(TypeTraceError):
    """A type checker cannot be run, or its output cannot be read."""


@dataclass(frozen=True)
class Slot:
    """One annotation a stub adds: a parameter's, or the return's when *parameter* is ``None``."""

    qualname: str
    parameter: Optional[str]
    accessor: Optional[str] = None

    @property
    def sort_key(self) -> tuple[str, str, bool, str]:
        """Order of the slots in reports: by function, parameters before the return."""
        return (self.qualname, self.accessor or "", self.parameter is None, self.parameter or "")

    def __str__(self) -> str:
        suffix = f" ({self.accessor})" if self.accessor else ""
        if self.parameter is None:
            return f"{self.qualname}{suffix} return"
        return f"{self.qualname}{suffix} parameter {self.parameter}"


@dataclass(frozen=True)
class CheckerError:
    """One error a type checker reported on the checked module."""

    #: Name of the checker, such as ``mypy``.
    checker: str
    #: Line and column, 1-based, in the checked text.
    line: int
    column: int
    message: str
    #: Error code, such as ``arg-type``; empty when the checker gave none.
    code: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        """What two runs compare: checker, code and message, without the position."""
        return (self.checker, self.code, self.message)

    def __str__(self) -> str:
        code = f"  [{self.code}]" if self.code else ""
        return f"{self.checker}: line {self.line}: {self.message}{code}"


@dataclass(frozen=True)
class DroppedAnnotation:
    """An annotation left out because the module had a new error with it."""

    slot: Slot
    #: The annotation as the stub renders it.
    annotation: str
    #: The new error blamed on it.
    error: CheckerError


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of :func:`verify_stub`."""

    #: The stub without the dropped annotations.
    stub: ModuleStub
    kept: tuple[Slot, ...]
    dropped: tuple[DroppedAnnotation, ...]
    #: Names of the type checkers that were run.
    checkers: tuple[str, ...]
    #: Number of times the annotated module was checked.
    rounds: int

    def report(self, *, verbose: bool = False) -> str:
        """Return the counts and the dropped annotations as text; *verbose* lists the kept ones too."""
        lines = [
            f"Verified {self.stub.module} with {', '.join(self.checkers)} in {self.rounds} round(s): "
            f"kept {len(self.kept)} annotation(s), dropped {len(self.dropped)}"
        ]
        if verbose:
            lines.extend(f"  kept {slot}" for slot in self.kept)
        lines.extend(f"  dropped {item.slot}: {item.annotation} ({item.error})" for item in self.dropped)
        return "\n".join(lines) + "\n"


def available_checkers() -> tuple[str, ...]:
    """Return the type checkers that can be run: ``mypy`` if importable, ``pyright`` if on ``PATH``."""
    names = []
    probe = subprocess.run(
        [sys.executable, "-c", "import mypy.api"], capture_output=True, text=True, timeout=CHECK_TIMEOUT
    )
    if probe.returncode == 0:
        names.append("mypy")
    if shutil.which("pyright") is not None:
        names.append("pyright")
    return tuple(names)


def verify_stub(
    stub: ModuleStub,
    path: Path,
    *,
    target_version: tuple[int, int] = (sys.version_info[0], sys.version_info[1]),
    checkers: Optional[Sequence[str]] = None,
) -> VerifyResult:
    """Drop the annotations of *stub* that add type-checker errors to the module at *path*.

    *checkers* names the type checkers to run (``mypy``, ``pyright``); by default every
    one of :func:`available_checkers`. The file at *path* is read, never written.

    Raises:
        VerifyError: no type checker is available, one fails to run, or the file
            cannot be read.
    """
    checkers = tuple(checkers) if checkers is not None else available_checkers()
    if not checkers:
        raise VerifyError("No type checker found for --verify: install mypy (pip install mypy) or pyright")
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise VerifyError(f"Failed to read {path}: {error}") from error
    with tempfile.TemporaryDirectory(prefix="typetrace-verify-") as folder:
        runner = _Runner(path.resolve(), Path(folder), checkers)
        baseline = collections.Counter(error.key for error in runner.check(None))
        return _drop_until_clean(stub, source, baseline, runner, target_version)


def _drop_until_clean(
    original: ModuleStub,
    source: str,
    baseline: collections.Counter[tuple[str, str, str]],
    runner: _Runner,
    target_version: tuple[int, int],
) -> VerifyResult:
    """Drop blamed annotations until the module has no new errors, then restore what fits.

    Blame is coarse when one line calls several stubbed functions. So afterwards each
    group of annotations dropped together, one function's in one round, is put back
    on its own in the order dropped. It stays if the module has no new errors with it.
    """
    removed: dict[Slot, CheckerError] = {}
    groups: list[set[Slot]] = []
    rounds = 0
    while True:
        stub = _without(original, removed)
        annotated = apply_stub_to_source(source, stub, target_version=target_version)
        if annotated == source:
            break
        rounds += 1
        new_errors = _new_errors(runner.check(annotated), baseline)
        if not new_errors:
            break
        blamed: dict[Slot, CheckerError] = {}
        functions = _locate(annotated, stub)
        lines = annotated.splitlines()
        to_source_line = _line_mapper(lines, source.splitlines())
        for error in new_errors:
            # Reported with the line of the user's file, not of the annotated text.
            reported = dataclasses.replace(error, line=to_source_line(error.line))
            for slot in _blame(error, functions, lines, stub):
                blamed.setdefault(slot, reported)
        if not blamed or rounds >= MAX_ROUNDS:
            # An error that no rule blames drops every remaining annotation; the
            # restore step below puts back the functions that do not cause it.
            logger.info("Dropping every annotation of %s: %d new error(s) not attributed", original.module, len(new_errors))
            blamed = {slot: new_errors[0] for slot in _slots(stub)}
        removed.update(blamed)
        for qualname in sorted({slot.qualname for slot in blamed}):
            groups.append({slot for slot in blamed if slot.qualname == qualname})

    for group in groups[:MAX_RESTORES] if len(groups) > 1 else []:
        trial = {slot: error for slot, error in removed.items() if slot not in group}
        annotated = apply_stub_to_source(source, _without(original, trial), target_version=target_version)
        rounds += 1
        if not _new_errors(runner.check(annotated), baseline):
            removed = trial

    dropped = [
        DroppedAnnotation(slot, _annotation_text(original, slot), error)
        for slot, error in sorted(removed.items(), key=lambda item: item[0].sort_key)
    ]
    stub = _without(original, removed)
    return VerifyResult(stub, tuple(_slots(stub)), tuple(dropped), runner.checkers, rounds)


def _line_mapper(annotated: list[str], source: list[str]) -> Callable[[int], int]:
    """Map 1-based line numbers of the annotated text to those of the source.

    ``apply`` inserts import lines and rewrites signature lines in place. A rewritten
    line maps to the line it replaced, and an inserted one to the next source line.
    """
    mapping: dict[int, int] = {}
    matcher = difflib.SequenceMatcher(None, annotated, source, autojunk=False)
    for tag, a_start, a_end, b_start, b_end in matcher.get_opcodes():
        for offset, line in enumerate(range(a_start, a_end)):
            if tag == "equal":
                mapping[line + 1] = b_start + offset + 1
            elif tag == "replace":
                mapping[line + 1] = b_start + min(offset, b_end - b_start - 1) + 1
            else:
                mapping[line + 1] = min(b_start + 1, max(len(source), 1))
    return lambda line: mapping.get(line, line)


def _new_errors(errors: list[CheckerError], baseline: collections.Counter[tuple[str, str, str]]) -> list[CheckerError]:
    """Return the errors that the baseline does not have, counting repeats."""
    remaining = collections.Counter(baseline)
    new = []
    for error in errors:
        if error.code in _COMPLETENESS_CODES:
            continue
        if remaining[error.key] > 0:
            remaining[error.key] -= 1
        else:
            new.append(error)
    return new


# --- Running the checkers ----------------------------------------------------------


class _Runner:
    """Runs the type checkers on the module, as it is or with another text in its place."""

    def __init__(self, path: Path, folder: Path, checkers: tuple[str, ...]) -> None:
        unknown = [name for name in checkers if name not in ("mypy", "pyright")]
        if unknown:
            raise VerifyError(f"Unknown type checker {unknown[0]!r}: use mypy or pyright")
        self.path = path
        self.folder = folder
        self.checkers = checkers
        self.shadow = folder / path.name
        # The checkers run in the folder that contains the module's top-level package,
        # where ``import pkg.other`` resolves as at run time.
        self.root = path.parent
        while (self.root / "__init__.py").is_file() and self.root.parent != self.root:
            self.root = self.root.parent

    def check(self, text: Optional[str]) -> list[CheckerError]:
        """Check the module, with *text* in place of its source unless it is ``None``."""
        if text is not None:
            self.shadow.write_text(text, encoding="utf-8")
        errors: list[CheckerError] = []
        for name in self.checkers:
            errors.extend(self._mypy(text is not None) if name == "mypy" else self._pyright(text))
        return errors

    def _mypy(self, shadowed: bool) -> list[CheckerError]:
        # --shadow-file makes mypy read the annotated text for the user's file, so
        # imports of the module's package resolve as they do for the file itself.
        # --check-untyped-defs also checks the calls made in unannotated functions
        # against the new annotations.
        command = [
            sys.executable, "-m", "mypy", "--check-untyped-defs",
            "--show-column-numbers", "--no-error-summary", "--hide-error-context", "--no-pretty",
            "--show-absolute-path", "--follow-imports=silent", "--cache-dir", str(self.folder / "mypy-cache"),
        ]  # fmt: skip
        if shadowed:
            command += ["--shadow-file", str(self.path), str(self.shadow)]
        command.append(str(self.path))
        result = _run(command, self.root)
        # mypy exits with 1 when it found errors and 2 when it failed.
        if result.returncode not in (0, 1):
            raise VerifyError(f"mypy failed on {self.path} (exit code {result.returncode}): {result.stderr.strip()[-2000:]}")
        errors = []
        for line in result.stdout.splitlines():
            match = _MYPY_LINE.match(line)
            if match is None or Path(match["path"]) != self.path:
                continue
            errors.append(CheckerError("mypy", int(match["line"]), int(match["column"]), match["message"], match["code"] or ""))
        return errors

    def _pyright(self, text: Optional[str]) -> list[CheckerError]:
        # pyright has no shadow files, so the annotated text is checked as a copy next
        # to the original, where its imports resolve the same way. pyright skips files
        # whose names start with a dot, so the copy's name starts with an underscore.
        import json

        target = self.path
        copy: Optional[Path] = None
        if text is not None:
            copy = self.path.with_name(f"_typetrace_verify_{self.path.name}")
            copy.write_text(text, encoding="utf-8")
            target = copy
        try:
            result = _run(["pyright", "--outputjson", str(target)], self.root)
        finally:
            if copy is not None:
                copy.unlink()
        try:
            report = json.loads(result.stdout)
        except ValueError as error:
            raise VerifyError(f"pyright failed on {self.path} (exit code {result.returncode}): {result.stderr.strip()[-2000:]}") from error
        errors = []
        for item in report.get("generalDiagnostics", []):
            if item.get("severity") != "error":
                continue
            start = item["range"]["start"]
            errors.append(CheckerError("pyright", start["line"] + 1, start["character"] + 1, item["message"], item.get("rule", "")))
        return errors


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    logger.info("Running %s", " ".join(command))
    try:
        return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=CHECK_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise VerifyError(f"Failed to run {command[0]}: {error}") from error


# --- Blaming annotations -----------------------------------------------------------


@dataclass(frozen=True)
class _Located:
    """A stubbed function, found in the annotated text."""

    function: FunctionStub
    node: FunctionNode

    @property
    def start(self) -> int:
        return self.node.node.lineno

    @property
    def body_start(self) -> int:
        return self.node.node.body[0].lineno

    @property
    def end(self) -> int:
        return self.node.node.end_lineno or self.start


def _locate(annotated: str, stub: ModuleStub) -> list[_Located]:
    scan = scan_module(ast.parse(annotated))
    located = []
    for node in scan.iter_functions():
        function = stub.function(node.qualname, node.accessor)
        if function is not None and function.has_annotations:
            located.append(_Located(function, node))
    return located


def _blame(error: CheckerError, functions: list[_Located], lines: list[str], stub: ModuleStub) -> set[Slot]:
    """Return the annotations that *error* is blamed on; empty when no rule applies.

    The first rule that blames anything wins:

    1. An error in a signature is blamed on the parameter or return annotation at its
       column, or on every annotation of that signature.
    2. An error that names a stubbed function in quotes (``Argument 1 to "f"``) or on
       whose line a stubbed function is called is blamed on every annotation of those
       functions, because a call site shows a wrong parameter or return type.
    3. An error in a function body on a ``return`` line, or with the code
       ``return-value``, is blamed on the return annotation; another one on the
       annotated parameters named on its line.

    Rule 2 comes before rule 3, so that when the callee's annotation is the cause,
    the caller's stays. If the error remains, the next round blames the caller.
    A blamed annotation that is a ``TypeVar`` takes its other uses in the same
    signature with it.
    """
    line_text = lines[error.line - 1] if 0 < error.line <= len(lines) else ""
    signature = set()
    body = set()
    for located in functions:
        if located.start <= error.line < located.body_start:
            signature |= _blame_signature(located, error)
        elif located.body_start <= error.line <= located.end:
            body |= _blame_body(located, error, line_text)
    named = set(_QUOTED_NAME.findall(error.message))
    called = set(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*\(", line_text))
    callees = set()
    for located in functions:
        if located.function.name in named or located.function.name in called:
            callees |= set(_function_slots(located.function))
    for slots in (signature, callees, body):
        if slots:
            return _with_type_var_partners(slots, stub)
    return set()


def _blame_signature(located: _Located, error: CheckerError) -> set[Slot]:
    node = located.node.node
    arguments = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
    arguments += [arg for arg in (node.args.vararg, node.args.kwarg) if arg is not None]
    for argument in arguments:
        if _covers(argument, error) or (argument.annotation is not None and _covers(argument.annotation, error)):
            slot = _slot(located.function, argument.arg)
            return {slot} if slot is not None else set()
    if node.returns is not None and _covers(node.returns, error):
        slot = _slot(located.function, None)
        return {slot} if slot is not None else set()
    return set(_function_slots(located.function))


def _blame_body(located: _Located, error: CheckerError, line_text: str) -> set[Slot]:
    if error.code == "return-value" or line_text.lstrip().startswith("return"):
        slot = _slot(located.function, None)
        if slot is not None:
            return {slot}
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", line_text))
    slots = set()
    for parameter in located.function.parameters:
        if parameter.name in words:
            slot = _slot(located.function, parameter.name)
            if slot is not None:
                slots.add(slot)
    return slots


def _covers(node: ast.AST, error: CheckerError) -> bool:
    start = (node.lineno, node.col_offset + 1)  # type: ignore[attr-defined]
    end = (node.end_lineno, node.end_col_offset + 1)  # type: ignore[attr-defined]
    return start <= (error.line, error.column) <= end


def _with_type_var_partners(slots: set[Slot], stub: ModuleStub) -> set[Slot]:
    result = set(slots)
    for slot in slots:
        function = _function(stub, slot)
        if function is None or not _is_type_var(_annotation(function, slot)):
            continue
        type_var = _annotation(function, slot)
        result |= {other for other in _function_slots(function) if _annotation(function, other) == type_var}
    return result


# --- Slots of a stub ---------------------------------------------------------------


def _slot(function: FunctionStub, parameter: Optional[str]) -> Optional[Slot]:
    """Return the slot of *parameter* (``None``: the return) if the stub annotates it."""
    slot = Slot(function.qualname, parameter, function.accessor.value if function.accessor else None)
    return slot if _annotation(function, slot) is not None else None


def _function_slots(function: FunctionStub) -> list[Slot]:
    names: list[Optional[str]] = [parameter.name for parameter in function.parameters]
    slots = [_slot(function, name) for name in [*names, None]]
    return [slot for slot in slots if slot is not None]


def _slots(stub: ModuleStub) -> list[Slot]:
    return [slot for function in stub.iter_functions() for slot in _function_slots(function)]


def _function(stub: ModuleStub, slot: Slot) -> Optional[FunctionStub]:
    accessor = PropertyAccessor(slot.accessor) if slot.accessor else None
    return stub.function(slot.qualname, accessor)


def _annotation(function: FunctionStub, slot: Slot) -> Optional[TypeRef]:
    if slot.parameter is None:
        return function.return_annotation
    for parameter in function.parameters:
        if parameter.name == slot.parameter:
            return parameter.annotation
    return None


def _is_type_var(ref: Optional[TypeRef]) -> bool:
    return ref is not None and ref.module == TYPE_VAR_MODULE


def _annotation_text(stub: ModuleStub, slot: Slot) -> str:
    function = _function(stub, slot)
    ref = _annotation(function, slot) if function is not None else None
    if ref is None:
        return "?"
    if _is_type_var(ref):
        return f"TypeVar constrained to {', '.join(str(arg) for arg in ref.args)}"
    return str(ref)


def _without(stub: ModuleStub, slots: Iterable[Slot]) -> ModuleStub:
    """Return *stub* with the annotations of *slots* removed."""
    removed = set(slots)

    def strip(function: FunctionStub) -> FunctionStub:
        accessor = function.accessor.value if function.accessor else None
        parameters = tuple(
            dataclasses.replace(parameter, annotation=None)
            if Slot(function.qualname, parameter.name, accessor) in removed
            else parameter
            for parameter in function.parameters
        )
        returns = None if Slot(function.qualname, None, accessor) in removed else function.return_annotation
        return dataclasses.replace(function, parameters=parameters, return_annotation=returns)

    def strip_class(cls: ClassStub) -> ClassStub:
        return dataclasses.replace(
            cls,
            functions=tuple(strip(function) for function in cls.functions),
            classes=tuple(strip_class(nested) for nested in cls.classes),
        )

    return dataclasses.replace(
        stub,
        functions=tuple(strip(function) for function in stub.functions),
        classes=tuple(strip_class(cls) for cls in stub.classes),
    )
