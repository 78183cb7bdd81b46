"""Check with mypy whether a tool's annotation is a subtype of the maintainers' one.

For every slot where the two differ, a one-line check function is appended to a copy
of the maintainers' module, so that the maintainers' annotation resolves in its own
namespace:

    def _subtype_check_7(x: <tool's annotation>) -> <maintainers' annotation>: return x

mypy accepts ``return x`` exactly when the tool's type is assignable to the
maintainers' one: ``int`` to ``int | None``, ``list[str]`` to ``Sequence[str]``,
``bool`` to ``int``, any type to ``Any`` and ``Any`` to any type. The reverse check
(maintainers' annotation as the parameter) shows whether the tool's type is wider.
The imports and ``TYPE_CHECKING`` declarations of the tool's annotated module are
appended before the checks, so that the names the tool used resolve too.

Limits: a check line counts as failed for any error on it, including a name that does
not resolve. So ``Self`` (valid only in a class), a type parameter of the function or
class (a ``TypeVar`` of the maintainers is not a supertype of a concrete type) and
names that the tool used without importing them count as not compatible. Assignability
is mypy's (default options), so ``Any`` on either side always passes.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from compare import Slot

_ERROR_LINE = re.compile(r"^(?P<path>[^:]+):(?P<line>\d+): error: ")


@dataclass(frozen=True)
class Pair:
    """The tool's and the maintainers' annotations of one slot, as source text."""

    slot: Slot
    #: The tool's annotation.
    generated: str
    #: The maintainers' annotation.
    expected: str


@dataclass
class SubtypeResult:
    """Slots whose tool annotation is a subtype (``narrower``) or supertype (``wider``) of the maintainers'."""

    narrower: set[Slot]
    wider: set[Slot]


def check_subtypes(python: Path, pristine_package: Path, annotated_package: Path, pairs: Iterable[Pair], scratch: Path) -> SubtypeResult:
    """Run mypy once over check functions for every pair and return which checks passed.

    *pristine_package* is the maintainers' package, *annotated_package* the tool's
    annotated copy (for its imports), *scratch* a folder that this function replaces.
    """
    if scratch.exists():
        shutil.rmtree(scratch)
    package = scratch / pristine_package.name
    shutil.copytree(pristine_package, package)
    by_module: dict[str, list[Pair]] = {}
    for pair in pairs:
        by_module.setdefault(pair.slot[0], []).append(pair)

    # (module path, line) -> (slot, direction)
    lines: dict[tuple[str, int], tuple[Slot, str]] = {}
    for module, module_pairs in by_module.items():
        path = package / module
        text = path.read_text(encoding="utf-8").rstrip("\n") + "\n\n"
        text += _imports_of(annotated_package / module)
        line = text.count("\n") + 1
        checks = []
        for index, pair in enumerate(module_pairs):
            checks.append(f"def _subtype_check_{index}(x: {pair.generated}) -> {pair.expected}: return x")
            lines[(module, line)] = (pair.slot, "narrower")
            checks.append(f"def _supertype_check_{index}(x: {pair.expected}) -> {pair.generated}: return x")
            lines[(module, line + 1)] = (pair.slot, "wider")
            line += 2
        path.write_text(text + "\n".join(checks) + "\n", encoding="utf-8")

    command = [str(python), "-m", "mypy", "--config-file=", "--no-incremental", "--no-error-summary",
               "--hide-error-context", "--no-pretty", "--follow-imports=silent", package.name]  # fmt: skip
    result = subprocess.run(command, cwd=scratch, capture_output=True, text=True)
    if result.returncode not in (0, 1):
        raise RuntimeError(f"mypy failed on the subtype checks (exit code {result.returncode}): {result.stderr[-2000:]}")
    failed: set[tuple[Slot, str]] = set()
    for output_line in result.stdout.splitlines():
        match = _ERROR_LINE.match(output_line)
        if match is None:
            continue
        relative = Path(match["path"]).relative_to(package.name).as_posix()
        key = (relative, int(match["line"]))
        if key in lines:
            failed.add(lines[key])
    checked = {(slot, direction) for slot, direction in lines.values()}
    passed = checked - failed
    return SubtypeResult(
        narrower={slot for slot, direction in passed if direction == "narrower"},
        wider={slot for slot, direction in passed if direction == "wider"},
    )


def _imports_of(annotated: Path) -> str:
    """Return the top-level imports of *annotated* and the statements of its ``if TYPE_CHECKING:`` blocks."""
    if not annotated.exists():
        return ""
    tree = ast.parse(annotated.read_text(encoding="utf-8"))
    statements: list[str] = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            if isinstance(node, ast.ImportFrom) and node.module == "__future__":
                continue
            statements.append(ast.unparse(node))
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            statements.extend(ast.unparse(statement) for statement in node.body)
    return "".join(f"{statement}\n" for statement in statements)
