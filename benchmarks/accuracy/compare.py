"""Strip function annotations from a package, and compare two packages' annotations.

Annotations are compared after normalizing their spelling, so that equal types written
differently count as equal:

* a dotted name is reduced to its last part (``t.Any``, ``typing.Any`` and ``Any``);
* ``typing`` aliases become the class they stand for (``List`` is ``list``,
  ``AbstractSet`` is ``Set``, ``Text`` is ``str``);
* ``Optional[X]``, ``Union[X, Y]`` and ``X | Y`` become one union, with its members
  sorted and deduplicated;
* a generic class whose type arguments are all ``Any`` is written bare, as type
  checkers read a bare generic class (``Callable[..., Any]`` is ``Callable``,
  ``tuple[Any, ...]`` is ``tuple``, ``Iterator[Any]`` is ``Iterator``), but
  ``tuple[Any]``, a tuple of one element, stays;
* string annotations are parsed.

Nothing else is equated: ``int`` and ``float``, a ``TypeVar`` and its constraints,
or ``Mapping`` and ``dict`` stay different.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

import libcst as cst

#: An annotation slot: module file path relative to the package, function qualified
#: name, parameter name or ``return``.
Slot = tuple[str, str, str]

_ALIASES = {
    "List": "list",
    "Dict": "dict",
    "Tuple": "tuple",
    "Set": "set",
    "FrozenSet": "frozenset",
    "Type": "type",
    "Text": "str",
    "Deque": "deque",
    "DefaultDict": "defaultdict",
    "AbstractSet": "Set",
    "NoneType": "None",
}
_OVERLOAD_NAMES = frozenset({"overload", "t.overload", "typing.overload"})
#: Subscripted forms that are not generic classes, so ``X[Any]`` is not the bare ``X``.
_SPECIAL_FORMS = frozenset(
    {
        "Annotated", "ClassVar", "Concatenate", "Final", "Literal", "NotRequired", "Optional",
        "ReadOnly", "Required", "TypeGuard", "TypeIs", "Union", "Unpack",
    }
)  # fmt: skip


class _Stripper(cst.CSTTransformer):
    """Removes parameter and return annotations, and ``@overload`` signatures."""

    def __init__(self) -> None:
        super().__init__()
        self.removed = 0

    def leave_Param(self, original_node: cst.Param, updated_node: cst.Param) -> cst.Param:
        if updated_node.annotation is None:
            return updated_node
        self.removed += 1
        return updated_node.with_changes(annotation=None, equal=cst.MaybeSentinel.DEFAULT)

    def leave_FunctionDef(
        self, original_node: cst.FunctionDef, updated_node: cst.FunctionDef
    ) -> cst.FunctionDef | cst.RemovalSentinel:
        names = {cst.Module([]).code_for_node(decorator.decorator) for decorator in updated_node.decorators}
        if names & _OVERLOAD_NAMES:
            return cst.RemoveFromParent()
        if updated_node.returns is None:
            return updated_node
        self.removed += 1
        return updated_node.with_changes(returns=None)


def strip_package(package: Path) -> int:
    """Strip the function annotations of every module in *package*; return how many were removed."""
    removed = 0
    for path in sorted(package.rglob("*.py")):
        stripper = _Stripper()
        module = cst.parse_module(path.read_text(encoding="utf-8"))
        path.write_text(module.visit(stripper).code, encoding="utf-8")
        removed += stripper.removed
    return removed


def collect_annotations(package: Path) -> dict[Slot, str]:
    """Return the normalized annotation of every annotated slot of the functions in *package*.

    ``self`` and ``cls`` are skipped, and so are ``@overload`` signatures and functions
    nested in functions.
    """
    return {slot: normalize(node) for slot, node in _annotation_nodes(package).items()}


def collect_source_annotations(package: Path) -> dict[Slot, str]:
    """Return every annotated slot of *package* as written in the source (``ast.unparse``)."""
    return {slot: ast.unparse(node) for slot, node in _annotation_nodes(package).items()}


def _annotation_nodes(package: Path) -> dict[Slot, ast.expr]:
    slots: dict[Slot, ast.expr] = {}
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        _collect(tree.body, path.relative_to(package).as_posix(), "", False, slots)
    return slots


def _collect(body: list[ast.stmt], module: str, prefix: str, in_class: bool, slots: dict[Slot, ast.expr]) -> None:
    for node in body:
        if isinstance(node, ast.ClassDef):
            _collect(node.body, module, f"{prefix}{node.name}.", True, slots)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            decorators = {ast.unparse(decorator) for decorator in node.decorator_list}
            if decorators & _OVERLOAD_NAMES:
                continue
            qualname = prefix + node.name
            arguments = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
            arguments += [arg for arg in (node.args.vararg, node.args.kwarg) if arg is not None]
            skip_first = in_class and "staticmethod" not in decorators
            for index, argument in enumerate(arguments):
                if skip_first and index == 0 and argument is not node.args.vararg:
                    continue
                if argument.annotation is not None:
                    slots[(module, qualname, argument.arg)] = argument.annotation
            if node.returns is not None:
                slots[(module, qualname, "return")] = node.returns
        elif isinstance(node, (ast.If, ast.Try)):
            _collect(node.body, module, prefix, in_class, slots)


def normalize(annotation: ast.expr) -> str:
    """Return the annotation as text in one spelling per type."""
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        annotation = ast.parse(annotation.value, mode="eval").body
    if isinstance(annotation, ast.Constant) and annotation.value is None:
        return "None"
    if isinstance(annotation, ast.Constant) and annotation.value is Ellipsis:
        return "..."
    if isinstance(annotation, ast.BinOp) and isinstance(annotation.op, ast.BitOr):
        return _union([annotation.left, annotation.right])
    if isinstance(annotation, (ast.Name, ast.Attribute)):
        name = ast.unparse(annotation).rsplit(".", 1)[-1]
        return _ALIASES.get(name, name)
    if isinstance(annotation, ast.Subscript):
        base = normalize(annotation.value)
        elements = annotation.slice.elts if isinstance(annotation.slice, ast.Tuple) else [annotation.slice]
        if base == "Optional":
            return _union([*elements, ast.Constant(None)])
        if base == "Union":
            return _union(elements)
        if base == "Literal":
            # The strings in Literal[...] are values, not forward references.
            return f"Literal[{', '.join(ast.unparse(element) for element in elements)}]"
        arguments = [normalize(element) for element in elements]
        if base not in _SPECIAL_FORMS and _all_any(base, arguments):
            return base
        return f"{base}[{', '.join(arguments)}]"
    if isinstance(annotation, ast.List):
        return f"[{', '.join(normalize(element) for element in annotation.elts)}]"
    return ast.unparse(annotation)


def _all_any(base: str, arguments: list[str]) -> bool:
    """Check whether the normalized *arguments* of the generic class *base* are all ``Any``."""
    if base == "Callable":
        return arguments == ["...", "Any"]
    if base == "tuple":
        return arguments == ["Any", "..."]
    return all(argument == "Any" for argument in arguments)


def _union(members: list[ast.expr]) -> str:
    parts: set[str] = set()
    for member in members:
        parts.update(normalize(member).split(" | "))
    return " | ".join(sorted(parts))


@dataclass
class Score:
    """Comparison of generated annotations with the expected ones, over the expected slots."""

    #: Expected slots that the tool annotated.
    written: int = 0
    #: Expected slots whose annotation the tool wrote exactly, after normalizing.
    exact: int = 0
    #: (slot, expected, generated) for the slots written differently.
    mismatches: list[tuple[Slot, str, str]] = field(default_factory=list)


def score(expected: dict[Slot, str], generated: dict[Slot, str]) -> Score:
    """Compare *generated* with *expected* on the slots that *expected* annotates."""
    result = Score()
    for slot, annotation in sorted(expected.items()):
        if slot not in generated:
            continue
        result.written += 1
        if generated[slot] == annotation:
            result.exact += 1
        else:
            result.mismatches.append((slot, annotation, generated[slot]))
    return result
