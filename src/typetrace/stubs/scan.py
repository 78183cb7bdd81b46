"""Source scan: the functions, classes, imports and names of a module, read with ``ast``.

Nothing here imports or runs the scanned module.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Iterator, NamedTuple, Optional, Union

from typetrace.stubs.annotations import Binding, NewImport
from typetrace.stubs.model import ParameterKind, PropertyAccessor

__all__ = ["ClassNode", "FunctionNode", "ModuleScan", "Parameter", "absolute_module", "scan_module"]

AnyFunctionDef = Union[ast.FunctionDef, ast.AsyncFunctionDef]
_IMPLICIT_CLASS_METHODS = frozenset({"__new__", "__init_subclass__", "__class_getitem__"})


class Parameter(NamedTuple):
    """One parameter of a ``def``."""

    arg: ast.arg
    kind: ParameterKind
    #: The default value's expression; ``None`` when the parameter has no default.
    default: Optional[ast.expr]


@dataclass
class FunctionNode:
    """A ``def`` at module level or in a class body."""

    qualname: str
    node: AnyFunctionDef
    #: Whether the function is defined in a class body.
    is_method: bool
    decorators: list[str]
    accessor: Optional[PropertyAccessor]

    @property
    def is_staticmethod(self) -> bool:
        return "staticmethod" in self.decorators

    @property
    def takes_class(self) -> bool:
        """Whether Python passes the class as first argument: a classmethod, or a method
        that is one without a decorator (``__new__``, ``__init_subclass__``,
        ``__class_getitem__``)."""
        return "classmethod" in self.decorators or self.node.name in _IMPLICIT_CLASS_METHODS

    @property
    def is_overload(self) -> bool:
        return any(name in ("overload", "typing.overload") for name in self.decorators)

    @property
    def is_generator(self) -> bool:
        return _contains_yield(self.node)

    def parameters(self) -> list[Parameter]:
        """Return the parameters in the order of the signature, ``self`` included."""
        args = self.node.args
        positional = [*args.posonlyargs, *args.args]
        defaults_start = len(positional) - len(args.defaults)
        result = []
        for index, arg in enumerate(positional):
            if index < len(args.posonlyargs):
                kind = ParameterKind.POSITIONAL_ONLY
            else:
                kind = ParameterKind.POSITIONAL_OR_KEYWORD
            default = args.defaults[index - defaults_start] if index >= defaults_start else None
            result.append(Parameter(arg, kind, default))
        if args.vararg is not None:
            result.append(Parameter(args.vararg, ParameterKind.VAR_POSITIONAL, None))
        for arg, keyword_default in zip(args.kwonlyargs, args.kw_defaults):
            result.append(Parameter(arg, ParameterKind.KEYWORD_ONLY, keyword_default))
        if args.kwarg is not None:
            result.append(Parameter(args.kwarg, ParameterKind.VAR_KEYWORD, None))
        return result


@dataclass
class ClassNode:
    """A class at module level or in a class body, with the definitions in its body."""

    qualname: str
    node: ast.ClassDef
    members: list[Union[FunctionNode, ClassNode]] = field(default_factory=list)


@dataclass
class ModuleScan:
    """The definitions and imports that the source of a module contains."""

    members: list[Union[FunctionNode, ClassNode]] = field(default_factory=list)
    #: Imports by bound name; the last import of a name wins.
    imports: dict[str, NewImport] = field(default_factory=dict)
    #: Names bound only by imports under ``if TYPE_CHECKING:``.
    type_checking_names: set[str] = field(default_factory=set)
    #: Names bound at module level or in any class body.
    names: set[str] = field(default_factory=set)
    #: Whether the module starts with ``from __future__ import annotations``.
    future_annotations: bool = False

    def iter_functions(self) -> Iterator[FunctionNode]:
        yield from _iter_functions(self.members)

    def iter_classes(self) -> Iterator[ClassNode]:
        yield from _iter_classes(self.members)

    def bindings(self, package: Optional[str] = None) -> dict[str, Binding]:
        """Return the imports as :class:`Binding` values, by bound name.

        A relative import's target is made absolute against *package*, the package
        that contains the module (the module itself for an ``__init__``). Without
        *package*, it stays relative.
        """
        result = {}
        for name, new in self.imports.items():
            runtime = name not in self.type_checking_names
            result[name] = _absolute_import(new, package).binding(runtime=runtime)
        # ``import a.b`` makes the expression ``a.b`` name that module. Keyed by that
        # expression, it is reused by :meth:`AnnotationNamer.module_expression`.
        for name, new in self.imports.items():
            if new.name is None and new.alias is None and "." in new.module:
                result[new.module] = Binding(new.module, True, result[name].runtime)
        return result


def absolute_module(module: str, package: str) -> Optional[str]:
    """Return the absolute name of *module*, as an import in *package* names it.

    ``None`` when a relative *module* goes above the top-level package.
    """
    relative = module.lstrip(".")
    level = len(module) - len(relative)
    if level == 0:
        return module
    parts = package.split(".") if package else []
    if level - 1 >= len(parts):
        return None
    base = parts[: len(parts) - (level - 1)]
    return ".".join([*base, relative] if relative else base)


def _absolute_import(new: NewImport, package: Optional[str]) -> NewImport:
    if package is None:
        return new
    module = absolute_module(new.module, package)
    return new if module is None else NewImport(module, new.name, new.alias)


def _iter_functions(members: list[Union[FunctionNode, ClassNode]]) -> Iterator[FunctionNode]:
    for member in members:
        if isinstance(member, FunctionNode):
            yield member
        else:
            yield from _iter_functions(member.members)


def _iter_classes(members: list[Union[FunctionNode, ClassNode]]) -> Iterator[ClassNode]:
    for member in members:
        if isinstance(member, ClassNode):
            yield member
            yield from _iter_classes(member.members)


def scan_module(tree: ast.Module) -> ModuleScan:
    """Scan the parsed source of a module."""
    scan = ModuleScan()
    scan.future_annotations = any(
        isinstance(statement, ast.ImportFrom)
        and statement.module == "__future__"
        and any(alias.name == "annotations" for alias in statement.names)
        for statement in tree.body
    )
    scan.members = _scan_body(tree.body, "", scan, is_class=False, type_checking=False)
    return scan


def _scan_body(
    body: list[ast.stmt], prefix: str, scan: ModuleScan, *, is_class: bool, type_checking: bool
) -> list[Union[FunctionNode, ClassNode]]:
    members: list[Union[FunctionNode, ClassNode]] = []
    for statement in body:
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
            scan.names.add(statement.name)
            decorators = [ast.unparse(d) for d in statement.decorator_list]
            members.append(
                FunctionNode(
                    qualname=prefix + statement.name,
                    node=statement,
                    is_method=is_class,
                    decorators=decorators,
                    accessor=_accessor(decorators, statement.name),
                )
            )
        elif isinstance(statement, ast.ClassDef):
            scan.names.add(statement.name)
            qualname = prefix + statement.name
            node = ClassNode(qualname, statement)
            node.members = _scan_body(
                statement.body, qualname + ".", scan, is_class=True, type_checking=False
            )
            members.append(node)
        elif isinstance(statement, (ast.Import, ast.ImportFrom)):
            _scan_import(statement, scan, type_checking=type_checking and not is_class)
        elif isinstance(statement, ast.If):
            nested_type_checking = _is_type_checking_test(statement.test)
            members += _scan_body(
                statement.body, prefix, scan, is_class=is_class, type_checking=nested_type_checking
            )
            members += _scan_body(
                statement.orelse, prefix, scan, is_class=is_class, type_checking=type_checking
            )
        elif isinstance(statement, ast.Try):
            for block in (statement.body, *(h.body for h in statement.handlers)):
                members += _scan_body(
                    block, prefix, scan, is_class=is_class, type_checking=type_checking
                )
            for block in (statement.orelse, statement.finalbody):
                members += _scan_body(
                    block, prefix, scan, is_class=is_class, type_checking=type_checking
                )
        else:
            scan.names.update(_bound_names(statement))
    return members


def _scan_import(statement: Union[ast.Import, ast.ImportFrom], scan: ModuleScan, *, type_checking: bool) -> None:
    for alias in statement.names:
        if alias.name == "*":
            continue
        if isinstance(statement, ast.Import):
            new = NewImport(alias.name, alias=alias.asname)
        else:
            module = "." * statement.level + (statement.module or "")
            new = NewImport(module, alias.name, alias.asname)
        bound = new.bound_name
        scan.names.add(bound)
        scan.imports[bound] = new
        if type_checking:
            scan.type_checking_names.add(bound)
        else:
            scan.type_checking_names.discard(bound)


def _is_type_checking_test(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _bound_names(statement: ast.stmt) -> set[str]:
    names = set()
    for node in ast.walk(statement):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return names


def _accessor(decorators: list[str], name: str) -> Optional[PropertyAccessor]:
    for decorator in decorators:
        if decorator in ("property", "functools.cached_property", "cached_property"):
            return PropertyAccessor.GETTER
        if decorator == f"{name}.setter":
            return PropertyAccessor.SETTER
        if decorator == f"{name}.deleter":
            return PropertyAccessor.DELETER
    return None


def _contains_yield(function: AnyFunctionDef) -> bool:
    # Only the function's own scope counts: a yield in a nested function, lambda or
    # class body does not make it a generator.
    pending: list[ast.AST] = [*function.body]
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.Yield, ast.YieldFrom)):
            return True
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        pending.extend(ast.iter_child_nodes(node))
    return False
