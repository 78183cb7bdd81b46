"""Verify: keep only the annotations of a stub that add no type-checker errors to its package.

:func:`verify_stub` type-checks the module's package as it is, then with the stub
applied to the module, and compares the errors of every file the checker reports.
Each error that only the annotated run has is blamed on the annotations that
introduced it (see :func:`typetrace._blame.blame`). Those annotations are dropped,
and the check repeats until there is no new error. Then the restore step puts back
the annotations that a blame only guessed at (see :func:`_restore`). The user's file
is never written here, so the caller decides what to write. mypy reads the annotated
text from a temporary folder through ``--shadow-file``, and checks the whole top-level
package, so that calls of the module's functions in other modules are checked against
the new annotations. pyright has no such option, so for pyright the text is written
to a copy beside the file, named ``_typetrace_verify_<name>.py``, only that copy is
checked, and the copy is removed after the check.

mypy runs in two modes, both with the project's own configuration (the file that
mypy finds from the folder that contains the top-level package): once with
``--no-check-untyped-defs`` and once with ``--check-untyped-defs``. One of the two is
mypy as the project runs it. The first mode skips the bodies of functions without
annotations, so annotating such a function makes mypy report the errors its body
always had. Those count as new, and are blamed on the function's annotations (see
:meth:`_Verification._blame`). The second mode checks every body, so the calls made
in unannotated functions are checked against the new annotations. A check of the
annotated text passes when no mode reports a new error.

The errors of each mode are compared with the baseline of the same mode, by checker,
file, error code and message, not by line, because the imports that ``apply`` adds
move every line below them.

Number of checks per module: at most :data:`MAX_ROUNDS` to drop, and for the restore
step at most ``1 + 2 * k * ceil(log2(n))``, where *n* is the number of annotations (a
``TypeVar`` with its uses counts as one) whose drop was a guess and *k* the number of
them that stay dropped. :data:`MAX_RESTORE_CHECKS` caps the restore step. A check runs
the modes one after another and stops at the first that reports a new error, with the
mode that last reported one first. The restore step runs only the modes that check
every body. Then one check in every mode confirms what it put back, and drops the
annotations that a certain blame names for a new error (at most :data:`MAX_ROUNDS`
more checks). If an error has no certain blame, the restore step runs again from its
start with every mode, which at most doubles its checks. No text is checked twice in
one mode, so mypy runs twice for the baseline and at most twice per check, and pyright
once each. Each mode of mypy has its own cache, and each run reuses the cache of the
previous run in that mode.
"""

from __future__ import annotations

import collections
import dataclasses
import difflib
import hashlib
import logging
import math
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

from typetrace._blame import (
    Blame,
    BlameContext,
    ErrorSite,
    Slot,
    annotation_of,
    blame,
    body_owner,
    function_of,
    function_slots,
    is_type_var,
    stub_slots,
    unannotated_functions,
    with_type_var_partners,
)
from typetrace._checkers import CHECK_TIMEOUT as CHECK_TIMEOUT
from typetrace._checkers import CheckerError as CheckerError
from typetrace._checkers import CheckerRunner, CheckMode
from typetrace._checkers import VerifyError as VerifyError
from typetrace._checkers import available_checkers as available_checkers
from typetrace.apply import apply_stub_to_source
from typetrace.stubs.model import ClassStub, FunctionStub, ModuleStub

__all__ = [
    "CheckerError",
    "DroppedAnnotation",
    "Slot",
    "VerifyError",
    "VerifyResult",
    "available_checkers",
    "restore_check_bound",
    "verify_stub",
]

logger = logging.getLogger(__name__)

#: Maximum number of drop rounds before every remaining annotation is dropped.
MAX_ROUNDS = 10
#: Maximum number of checker runs of the restore step; annotations not tried by then
#: stay dropped.
MAX_RESTORE_CHECKS = 60

#: mypy error codes that report missing annotations, not wrong ones. Dropping one
#: annotation of a function makes it partly annotated, which these codes report under
#: ``disallow_untyped_defs`` and ``disallow_untyped_calls`` with new messages, so
#: they are never counted as new errors.
_COMPLETENESS_CODES = frozenset({"no-untyped-def", "no-untyped-call"})

_Baseline = collections.Counter[tuple[str, str, str, str]]


@dataclass(frozen=True)
class DroppedAnnotation:
    """An annotation left out because the package had a new error with it."""

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
    #: Number of different annotated texts of the module checked, the baseline not
    #: included. mypy checks a text in up to two modes (see the module docstring).
    rounds: int
    #: Number of type-checker runs, the baseline runs included.
    runs: int = 0

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


def restore_check_bound(guessed: int, kept_dropped: int) -> int:
    """Return the most checker runs the restore step makes, before :data:`MAX_RESTORE_CHECKS`.

    *guessed* is the number of annotations whose drop was a guess, and *kept_dropped*
    the number of them that stay dropped (each ``TypeVar`` with its uses counts once).
    """
    if guessed <= 1:
        return guessed
    return 1 + 2 * kept_dropped * math.ceil(math.log2(guessed))


def verify_stub(
    stub: ModuleStub,
    path: Path,
    *,
    target_version: tuple[int, int] = (sys.version_info[0], sys.version_info[1]),
    checkers: Optional[Sequence[str]] = None,
    cache_dir: Optional[Path] = None,
) -> VerifyResult:
    """Drop the annotations of *stub* that add type-checker errors to the module at *path*.

    The baseline is the package as it is on disk when this is called, so when several
    modules are annotated one after another, each is compared with the package that
    has the earlier ones written. *checkers* names the type checkers to run (``mypy``,
    ``pyright``); by default every one of :func:`available_checkers`. mypy runs with
    the project's configuration, once with ``--no-check-untyped-defs`` and once with
    ``--check-untyped-defs`` (see the module docstring), so the result adds no error
    under either setting. *cache_dir* is the folder for mypy's caches, a temporary one
    by default, with a subfolder for each mode. Passing one folder for several modules of
    a package lets each check reuse the analysis of the earlier ones. The file at
    *path* is read, never written.

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
        runner = CheckerRunner(path.resolve(), Path(folder), checkers, cache_dir or Path(folder) / "mypy-cache")
        modes = runner.modes()
        try:
            baselines = {mode: collections.Counter(error.key for error in runner.check(None, mode)) for mode in modes}
        except VerifyError as error:
            if runner.target == runner.path:
                raise
            # A syntax error in any file of the package stops mypy (exit code 2),
            # but the module alone can still be checked.
            logger.warning("Checking %s alone, because checking its package failed: %s", path, error)
            runner.target = runner.path
            baselines = {mode: collections.Counter(error.key for error in runner.check(None, mode)) for mode in modes}
        return _Verification(stub, source, baselines, runner, target_version).run()


@dataclass
class _Round:
    """One check of the stub minus some annotations: the text checked and the new errors of each run."""

    annotated: str
    stub: ModuleStub
    #: New errors of each mode that ran, in the order they ran. The check stops at the
    #: first mode with a new error, so only the last one can have any.
    errors: dict[CheckMode, list[CheckerError]] = dataclasses.field(default_factory=dict)

    @property
    def failed(self) -> Optional[CheckMode]:
        """The mode that reported new errors, or ``None`` if none did."""
        if self.errors:
            mode, errors = list(self.errors.items())[-1]
            if errors:
                return mode
        return None


class _Verification:
    """The drop rounds and the restore step for one module."""

    def __init__(
        self,
        original: ModuleStub,
        source: str,
        baselines: dict[CheckMode, _Baseline],
        runner: CheckerRunner,
        target_version: tuple[int, int],
    ) -> None:
        self.original = original
        self.source = source
        self.baselines = baselines
        self.runner = runner
        self.target_version = target_version
        #: The modes in the order a check runs them: the one that last reported a new
        #: error comes first, because it is the most likely to report one again.
        self.order = list(baselines)
        #: Functions that the source leaves without annotations, by qualified name and accessor.
        self.unannotated = unannotated_functions(source)
        self.to_source_line: Callable[[int], int] = lambda line: line
        #: Dropped slots, with the error that each was dropped for.
        self.removed: dict[Slot, CheckerError] = {}
        #: Dropped slots whose blame was a guess; the restore step tries them again.
        self.guessed: set[Slot] = set()
        #: Dropped slots that a certain blame named, and whose error went with them.
        self.confirmed: set[Slot] = set()
        #: New errors of each mode and annotated text, by mode and SHA-256 of the text.
        self.results: dict[tuple[CheckMode, bytes], list[CheckerError]] = {}
        #: SHA-256 of each annotated text checked.
        self.texts: set[bytes] = set()
        self.rounds = 0
        self.runs = len(baselines)

    def run(self) -> VerifyResult:
        self._drop_until_clean()
        before_restore = dict(self.removed)
        if self._restore(self._restore_modes()) and not self._drop_until_clean(certain_only=True):
            # The annotations put back add an error in a mode that the restore step did
            # not run, and no certain blame explains it.
            logger.info("Restore step of %s runs again with every mode", self.original.module)
            self.removed = before_restore
            self._restore(self.order)
        dropped = [
            DroppedAnnotation(slot, _annotation_text(self.original, slot), error)
            for slot, error in sorted(self.removed.items(), key=lambda item: item[0].sort_key)
        ]
        stub = _without(self.original, self.removed)
        return VerifyResult(stub, tuple(stub_slots(stub)), tuple(dropped), self.runner.checkers, self.rounds, self.runs)

    def _check(self, removed: Iterable[Slot], modes: Optional[Sequence[CheckMode]] = None) -> _Round:
        """Check the package with the stub minus *removed* in *modes* (default: all), up to the first with new errors.

        The new errors of each text and mode are kept, so a text is checked at most
        once in each mode, and :attr:`rounds` counts each text once.
        """
        stub = _without(self.original, removed)
        annotated = apply_stub_to_source(self.source, stub, target_version=self.target_version)
        checked = _Round(annotated, stub)
        if annotated == self.source:
            return checked
        digest = hashlib.sha256(annotated.encode("utf-8")).digest()
        if digest not in self.texts:
            self.texts.add(digest)
            self.rounds += 1
        for mode in [mode for mode in self.order if modes is None or mode in modes]:
            if (mode, digest) not in self.results:
                self.runs += 1
                self.results[mode, digest] = _new_errors(self.runner.check(annotated, mode), self.baselines[mode])
            new_errors = self.results[mode, digest]
            checked.errors[mode] = new_errors
            if new_errors:
                self.order.remove(mode)
                self.order.insert(0, mode)
                break
        return checked

    def _restore_modes(self) -> list[CheckMode]:
        """Return the modes that the restore step runs: those that check every body.

        An error that only a mode skipping untyped bodies reports is mostly in the body
        of a function that the source leaves unannotated and the stub annotates. When
        the drop rounds find one, it drops all of the function's annotations for
        certain, so the restore step does not try them again. A function whose drop
        was a guess may not have been checked that way, so one check in every mode
        confirms what the restore step puts back.
        """
        checking = {mode.checker for mode in self.order if not mode.skips_untyped_bodies}
        return [mode for mode in self.order if not (mode.skips_untyped_bodies and mode.checker in checking)]

    def _drop_until_clean(self, *, certain_only: bool = False) -> bool:
        """Drop blamed annotations until the package has no new errors in any mode; return ``True`` then.

        A certain blame is confirmed when its error is gone the next time its mode
        runs, and its annotations are not tried again even if another blame guessed at
        them. Otherwise they count as guessed too. With *certain_only*, an error
        without a certain blame, or a check after :data:`MAX_ROUNDS`, returns ``False``
        where it would otherwise drop a guess.
        """
        pending: dict[tuple[CheckMode, tuple[str, str, str, str]], set[Slot]] = {}
        attempt = 0
        while True:
            attempt += 1
            checked = self._check(self.removed)
            for mode, errors in checked.errors.items():
                remaining = collections.Counter(error.key for error in errors)
                for pending_mode, key in [item for item in pending if item[0] == mode]:
                    slots = pending.pop((pending_mode, key))
                    if remaining[key]:
                        self.guessed |= slots
                    else:
                        self.confirmed |= slots
            failed = checked.failed
            if failed is None:
                return True
            new_errors = checked.errors[failed]
            context = BlameContext(checked.stub, checked.annotated, self.runner.root)
            self.to_source_line = _line_mapper(checked.annotated.splitlines(), self.source.splitlines())
            blamed: dict[Slot, CheckerError] = {}
            for error in new_errors:
                found = self._blame(error, failed, context)
                if certain_only and not (found.certain and found.slots):
                    return False
                for slot in found.slots:
                    blamed.setdefault(slot, self._reported(error))
                if found.certain:
                    pending.setdefault((failed, error.key), set()).update(found.slots)
                else:
                    self.guessed |= found.slots
            if not blamed or attempt >= MAX_ROUNDS:
                if certain_only:
                    return False
                # An error that no rule blames drops every remaining annotation, and the
                # restore step puts back the ones that do not cause it.
                logger.info(
                    "Dropping every annotation of %s: %d new error(s) not attributed",
                    self.original.module, len(new_errors),
                )  # fmt: skip
                everything = stub_slots(checked.stub)
                blamed = {slot: self._reported(new_errors[0]) for slot in everything}
                self.guessed |= set(everything)
            self.removed.update(blamed)

    def _blame(self, error: CheckerError, mode: CheckMode, context: BlameContext) -> Blame:
        """Attribute *error*, found in *mode*, to annotations of ``context.stub``.

        A mode that skips the bodies of functions without annotations checks such a
        body once the stub annotates its function, so an error there may be one that
        the body always had. Dropping every annotation of the function makes the
        checker skip the body again, so that blame is certain. It applies when
        :func:`blame` finds no annotation, or when the error is in the baseline of a
        mode that checks every body, so that no annotation causes it.

        NOTE: mypy's default options also give the attributes that an unannotated
        method sets the type ``Any``. Annotating the method gives them their inferred
        types, which can add errors elsewhere. No rule blames those, so they drop every
        annotation and the restore step bisects.
        """
        site = ErrorSite(error.file, error.line, error.column, error.code, error.message)
        found = blame(site, context)
        if not mode.skips_untyped_bodies:
            return found
        owner = body_owner(site, context)
        if owner is None or (owner.qualname, owner.accessor) not in self.unannotated:
            return found
        always_there = any(
            baseline[error.key] for other, baseline in self.baselines.items()
            if other.checker == mode.checker and not other.skips_untyped_bodies
        )  # fmt: skip
        if found.slots and not always_there:
            return found
        return Blame(frozenset(function_slots(owner)), True)

    def _reported(self, error: CheckerError) -> CheckerError:
        """Return *error* with the line of the user's file, not of the annotated text."""
        if error.file:
            return error
        return dataclasses.replace(error, line=self.to_source_line(error.line))

    def _restore(self, modes: Sequence[CheckMode]) -> bool:
        """Put back the guessed drops that add no new error in *modes*, bisecting batches that do.

        Return whether anything was put back.

        A batch of dropped annotations is added back in one check. If errors come back,
        the batch is split in halves and each half is tried, the first half on top of
        what was already put back. When the first half is put back whole, the second
        half is known to fail without a check, because the package would then be the
        one of the failed batch. So each annotation that stays dropped costs at most
        two checks per halving, ``2 * ceil(log2(n))``.
        """
        candidates = sorted((self.guessed - self.confirmed) & set(self.removed), key=lambda slot: slot.sort_key)
        units: list[frozenset[Slot]] = []
        seen: set[Slot] = set()
        for slot in candidates:
            if slot not in seen:
                unit = frozenset(with_type_var_partners({slot}, self.original) & set(self.removed))
                seen |= unit
                units.append(unit)
        self.restore_checks = 0
        remaining = len(self.removed)
        if units:
            self._restore_batch(units, modes, known_to_fail=False)
        return len(self.removed) < remaining

    def _restore_batch(self, units: list[frozenset[Slot]], modes: Sequence[CheckMode], *, known_to_fail: bool) -> bool:
        """Try to put back *units*; return whether all of them were put back."""
        if not known_to_fail:
            if self.restore_checks >= MAX_RESTORE_CHECKS:
                logger.info("Restore step of %s stopped after %d checks", self.original.module, MAX_RESTORE_CHECKS)
                return False
            batch = set().union(*units)
            trial = [slot for slot in self.removed if slot not in batch]
            self.restore_checks += 1
            if self._check(trial, modes).failed is None:
                for slot in batch:
                    del self.removed[slot]
                return True
        if len(units) == 1:
            return False
        half = len(units) // 2
        first_put_back = self._restore_batch(units[:half], modes, known_to_fail=False)
        self._restore_batch(units[half:], modes, known_to_fail=first_put_back)
        return False


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


def _new_errors(errors: list[CheckerError], baseline: _Baseline) -> list[CheckerError]:
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


# --- Changing the stub -------------------------------------------------------------


def _annotation_text(stub: ModuleStub, slot: Slot) -> str:
    function = function_of(stub, slot)
    ref = annotation_of(function, slot) if function is not None else None
    if ref is None:
        return "?"
    if is_type_var(ref):
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
