"""Checkers: run mypy and pyright on a module's package and read the errors they report.

:mod:`typetrace.verify` runs each check through a :class:`CheckerRunner`, in each
:class:`CheckMode` that :meth:`CheckerRunner.modes` returns.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from typetrace.exceptions import TypeTraceError

__all__ = ["CHECK_TIMEOUT", "CheckMode", "CheckerError", "CheckerRunner", "VerifyError", "available_checkers"]

logger = logging.getLogger(__name__)

#: Seconds one type-checker run may take.
CHECK_TIMEOUT = 600

_MYPY_LINE = re.compile(r"^(?P<path>.+?):(?P<line>\d+):(?P<column>\d+): error: (?P<message>.*?)(?:  \[(?P<code>[\w-]+)\])?$")


class VerifyError(TypeTraceError):
    """A type checker cannot be run, or its output cannot be read."""


@dataclass(frozen=True)
class CheckerError:
    """One error a type checker reported on the checked module or its package."""

    #: Name of the checker, such as ``mypy``.
    checker: str
    #: Line and column, 1-based, in the checked text.
    line: int
    column: int
    message: str
    #: Error code, such as ``arg-type``; empty when the checker gave none.
    code: str = ""
    #: Path of the file, relative to the folder of the top-level package; empty for
    #: the module that is verified.
    file: str = ""
    #: The option that verify added to the project's configuration for the run that
    #: reported the error, such as ``--check-untyped-defs``. Empty when the
    #: configuration sets that option already.
    options: str = ""

    @property
    def key(self) -> tuple[str, str, str, str]:
        """Checker, file, code and message: the fields that two runs compare, without the position."""
        return (self.checker, self.file, self.code, self.message)

    def __str__(self) -> str:
        code = f"  [{self.code}]" if self.code else ""
        where = f"{self.file} line {self.line}" if self.file else f"line {self.line}"
        checker = f"{self.checker} {self.options}" if self.options else self.checker
        return f"{checker}: {where}: {self.message}{code}"


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


@dataclass(frozen=True)
class CheckMode:
    """One way to run a type checker: the checker and the options verify adds to the project's configuration."""

    checker: str
    #: Options added to the command line.
    flags: tuple[str, ...] = ()
    #: The option that reports show for errors of this mode, or empty when the
    #: project's configuration sets it already.
    label: str = ""
    #: Whether the checker skips the bodies of functions without annotations.
    skips_untyped_bodies: bool = False


#: Prints whether the mypy configuration found from the working folder sets
#: ``check_untyped_defs``, and the path of that configuration. ``process_options``
#: reads mypy's command line and configuration file (checked with mypy 1.19.1
#: and 2.4.1). It is not a public API, so when it fails, only the order of the modes
#: and the labels in reports change.
_CONFIGURATION_PROBE = """\
import sys
from mypy.main import process_options
_, options = process_options(sys.argv[1:])
print(options.check_untyped_defs)
print(options.config_file or "")
"""


class CheckerRunner:
    """Runs the type checkers on the module's package, with the module as it is or with another text."""

    def __init__(self, path: Path, folder: Path, checkers: tuple[str, ...], cache_dir: Path) -> None:
        unknown = [name for name in checkers if name not in ("mypy", "pyright")]
        if unknown:
            raise VerifyError(f"Unknown type checker {unknown[0]!r}: use mypy or pyright")
        self.path = path
        self.folder = folder
        self.checkers = checkers
        self.cache_dir = cache_dir
        self.shadow = folder / path.name
        # The checkers run in the folder that contains the module's top-level package,
        # where ``import pkg.other`` resolves as at run time.
        self.root = path.parent
        while (self.root / "__init__.py").is_file() and self.root.parent != self.root:
            self.root = self.root.parent
        # mypy checks the whole top-level package, or the module alone if it is in none.
        relative = path.relative_to(self.root)
        self.target = self.root / relative.parts[0] if len(relative.parts) > 1 else path

    def modes(self) -> list[CheckMode]:
        """Return the ways to run each checker, in the order a check first runs them.

        mypy has two modes, both with the project's configuration: one adds
        ``--no-check-untyped-defs`` and one ``--check-untyped-defs`` (see
        :mod:`typetrace.verify` for why). The mode that the configuration selects comes first, and errors of
        the other name its option in reports.
        """
        modes = []
        for name in self.checkers:
            if name == "pyright":
                modes.append(CheckMode("pyright"))
                continue
            configured = self._configured_check_untyped_defs()
            skipping = CheckMode(
                "mypy", ("--no-check-untyped-defs",), "" if configured is False else "--no-check-untyped-defs", True
            )
            checking = CheckMode("mypy", ("--check-untyped-defs",), "" if configured is True else "--check-untyped-defs")
            modes.extend([checking, skipping] if configured else [skipping, checking])
        return modes

    def _configured_check_untyped_defs(self) -> Optional[bool]:
        """Return whether the project's mypy configuration checks every body, or ``None`` if that is unknown.

        mypy 2.4.1 reads ``mypy.ini``, ``.mypy.ini``, ``pyproject.toml`` (``[tool.mypy]``)
        or ``setup.cfg`` (``[mypy]``) from the folder it runs in, else from the nearest
        parent folder that has one, up to the root of a git or Mercurial checkout, else
        the user's configuration file. The probe runs where the checks run, so it reads
        the same file.
        """
        result = _run([sys.executable, "-c", _CONFIGURATION_PROBE, str(self.target)], self.root)
        lines = result.stdout.splitlines()
        if result.returncode != 0 or len(lines) != 2 or lines[0] not in ("True", "False"):
            logger.info(
                "Failed to read the mypy configuration for %s, so reports name the option of both modes: %s",
                self.target, result.stderr.strip()[-2000:],
            )  # fmt: skip
            return None
        logger.info("mypy reads its configuration from %s", lines[1] or "no file (mypy's defaults)")
        return lines[0] == "True"

    def check(self, text: Optional[str], mode: CheckMode) -> list[CheckerError]:
        """Check the package in *mode*, with *text* in place of the module's source unless it is ``None``."""
        if mode.checker == "pyright":
            return self._pyright(text)
        if text is not None:
            self.shadow.write_text(text, encoding="utf-8")
        return self._mypy(text is not None, mode)

    def _mypy(self, shadowed: bool, mode: CheckMode) -> list[CheckerError]:
        # --shadow-file makes mypy read the annotated text for the user's file, so
        # imports of the module's package resolve as they do for the file itself.
        # Besides the mode's flags, the options set the output format, the cache and how
        # imports are followed, and override the project's configuration only there.
        # mypy's cache depends on the options, so each mode has its own.
        command = [
            sys.executable, "-m", "mypy", *mode.flags,
            "--show-column-numbers", "--hide-error-end", "--show-error-codes", "--no-error-summary",
            "--hide-error-context", "--no-pretty", "--show-absolute-path", "--follow-imports=silent",
            "--cache-dir", str(self.cache_dir / mode.flags[0].lstrip("-")),
        ]  # fmt: skip
        if shadowed:
            command += ["--shadow-file", str(self.path), str(self.shadow)]
        command.append(str(self.target))
        result = _run(command, self.root)

        # mypy exits with 1 when it found errors and 2 when it failed.
        if result.returncode not in (0, 1):
            raise VerifyError(f"mypy failed on {self.target} (exit code {result.returncode}): {result.stderr.strip()[-2000:]}")

        errors = []
        for line in result.stdout.splitlines():
            match = _MYPY_LINE.match(line)
            if match is None:
                continue
            path = Path(match["path"])
            if path == self.path:
                file = ""
            elif path.is_relative_to(self.root):
                file = path.relative_to(self.root).as_posix()
            else:
                continue
            errors.append(
                CheckerError("mypy", int(match["line"]), int(match["column"]), match["message"], match["code"] or "", file, mode.label)
            )
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
