"""Callee resolution: find the function of a module's source that a call names.

Resolution reads source only (see :mod:`typetrace.stubs.scan`), in the stubbed module
and in the modules it imports from, and gives up wherever the source cannot tell:

* ``f(...)``: a function or class of the module, or one imported into it, followed
  through re-exports. A name that the calling function binds itself is not resolved.
* ``self.m(...)`` and ``cls.m(...)`` in a method: ``m`` in the method resolution
  order of the class that defines the method, computed with C3 from the bases that
  the source names.
* ``super().m(...)``: the same, starting after that class.
* ``Class.m(...)`` and ``module.f(...)``, for a class or module the name is bound to.
* ``Class(...)``: the class's ``__init__``.

A base class outside the traced modules (``Exception``, a third-party class) ends the
search before it, unless it is a built-in class that has no attribute of that name,
because its own methods are unknown.
"""

from __future__ import annotations

import ast
import builtins
from dataclasses import dataclass
from typing import Callable, Optional, Union

from typetrace.stubs.model import ParameterKind
from typetrace.stubs.scan import ClassNode, FunctionNode, ModuleScan, Parameter, absolute_module

__all__ = ["Callee", "CalleeResolver", "ScannedModule"]

#: Bases that add no methods that a call in the class body would mean.
_IGNORED_BASES = frozenset({"object", "Generic", "Protocol"})
#: How many imports a name is followed through before resolution gives up.
_MAX_IMPORT_HOPS = 8
_POSITIONAL = (ParameterKind.POSITIONAL_ONLY, ParameterKind.POSITIONAL_OR_KEYWORD)
_KEYWORD = (ParameterKind.POSITIONAL_OR_KEYWORD, ParameterKind.KEYWORD_ONLY)
_NESTED_SCOPES = (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
#: Decorators, by their last name, that leave the parameters of the function as the
#: source writes them (``classmethod`` and ``staticmethod`` are read separately).
_SIGNATURE_KEEPING_DECORATORS = frozenset(
    {
        "abstractmethod", "cache", "cached_property", "classmethod", "contextmanager",
        "asynccontextmanager", "final", "lru_cache", "override", "staticmethod",
    }
)  # fmt: skip


@dataclass(frozen=True)
class ScannedModule:
    """The scan of a module's source, and whether it is a package's ``__init__``."""

    name: str
    scan: ModuleScan
    is_package: bool = False


@dataclass(frozen=True)
class Callee:
    """The function that a call runs."""

    module: str
    function: FunctionNode
    #: Whether the call fills the function's first parameter itself: a method called
    #: on an instance or class, a classmethod, or ``__init__`` run by a class call.
    bound: bool

    def parameter(self, position: Optional[int], keyword: Optional[str]) -> Optional[Parameter]:
        """Return the parameter that the positional argument *position*, or the
        keyword argument *keyword*, fills; ``None`` when no named parameter does."""
        parameters = self.function.parameters()
        positional = [parameter for parameter in parameters if parameter.kind in _POSITIONAL]
        if self.bound:
            if not positional:
                return None
            first = positional[0]
            positional = positional[1:]
            parameters = [parameter for parameter in parameters if parameter is not first]
        if position is not None:
            return positional[position] if position < len(positional) else None
        for parameter in parameters:
            if parameter.arg.arg == keyword and parameter.kind in _KEYWORD:
                return parameter
        return None


#: A class with the name of the module that defines it.
_ClassRef = tuple[str, ClassNode]
#: An entry of a method resolution order: a class of a module with source, or the
#: source text of a base class outside them.
_MroEntry = Union[_ClassRef, str]
#: A resolved name: a function or class with its module, or a module name.
_Target = Union[tuple[str, FunctionNode], _ClassRef, str]


class CalleeResolver:
    """Resolve calls in the functions of one module to functions of traced modules.

    *load* returns the scan of a module by name, or ``None`` when its source is not
    available.
    """

    def __init__(
        self, module: ScannedModule, load: Callable[[str], Optional[ScannedModule]]
    ) -> None:
        self.module = module
        self._load = load
        self._mros: dict[tuple[str, str], Optional[list[_MroEntry]]] = {}
        #: Names each function binds, by the ``id`` of its ``ast`` node.
        self._locals: dict[tuple[int, bool], set[str]] = {}

    def resolve(self, call: ast.Call, function: FunctionNode) -> Optional[Callee]:
        """Return the function that *call*, in the body of *function*, runs.

        A decorator may change which parameters a call's arguments fill, as click's
        ``pass_context`` does. So a function is returned only when each of its
        decorators is known to keep the signature or returns the function it is given.
        """
        callee = self._resolve(call, function)
        if callee is None or not self._keeps_signature(callee.module, callee.function):
            return None
        return callee

    def _resolve(self, call: ast.Call, function: FunctionNode) -> Optional[Callee]:
        func = call.func
        if isinstance(func, ast.Name):
            if func.id in self._local_names(function):
                return None
            return self._callee(self._lookup(self.module.name, func.id, 0))
        if not isinstance(func, ast.Attribute):
            return None
        owner = self._owner_class(function)
        value = func.value
        if owner is not None and _is_super_call(value):
            found = self._method(owner, func.attr, skip_first=True)
            return self._bound_callee(found, is_instance=True)
        receiver = _receiver_name(function)
        if owner is not None and isinstance(value, ast.Name) and value.id == receiver:
            if receiver in self._local_names(function, include_parameters=False):
                return None
            found = self._method(owner, func.attr, skip_first=False)
            # The receiver of a classmethod is the class, which does not bind ``self``.
            return self._bound_callee(found, is_instance=not function.takes_class)
        if isinstance(value, ast.Name) and value.id not in self._local_names(function):
            target = self._lookup(self.module.name, value.id, 0)
            if isinstance(target, str):
                return self._callee(self._lookup(target, func.attr, 0))
            if isinstance(target, tuple) and isinstance(target[1], ClassNode):
                found = self._method((target[0], target[1]), func.attr, skip_first=False)
                return self._bound_callee(found, is_instance=False)
        return None

    def _local_names(self, function: FunctionNode, *, include_parameters: bool = True) -> set[str]:
        key = (id(function.node), include_parameters)
        if key not in self._locals:
            self._locals[key] = _local_names(function, include_parameters=include_parameters)
        return self._locals[key]

    def _callee(self, target: Optional[_Target]) -> Optional[Callee]:
        if target is None or isinstance(target, str):
            return None
        module, node = target
        if isinstance(node, FunctionNode):
            return None if node.accessor is not None else Callee(module, node, bound=False)
        init = self._method((module, node), "__init__", skip_first=False)
        if init is None or init[1].node.name != "__init__":
            return None
        return Callee(init[0], init[1], bound=True)

    def _bound_callee(
        self, found: Optional[tuple[str, FunctionNode]], *, is_instance: bool
    ) -> Optional[Callee]:
        """Return the callee for a method found on an instance, or on a class when
        *is_instance* is false."""
        if found is None or found[1].accessor is not None:
            return None
        module, method = found
        if method.is_staticmethod:
            return Callee(module, method, bound=False)
        if "classmethod" in method.decorators:
            return Callee(module, method, bound=True)
        return Callee(module, method, bound=is_instance)

    def _keeps_signature(self, module: str, function: FunctionNode) -> bool:
        for decorator in function.node.decorator_list:
            text = ast.unparse(decorator.func if isinstance(decorator, ast.Call) else decorator)
            if text.rsplit(".", 1)[-1] in _SIGNATURE_KEEPING_DECORATORS:
                continue
            if not isinstance(decorator, ast.Name):
                return False
            target = self._lookup(module, decorator.id, 0)
            if not (isinstance(target, tuple) and isinstance(target[1], FunctionNode)):
                return False
            if not _returns_first_argument(target[1]):
                return False
        return True

    # --- names --------------------------------------------------------------------

    def _scanned(self, module: str) -> Optional[ScannedModule]:
        if module == self.module.name:
            return self.module
        return self._load(module)

    def _lookup(self, module: str, name: str, hops: int) -> Optional[_Target]:
        """Resolve the module-level *name* of *module*, following imports."""
        scanned = self._scanned(module)
        if scanned is None or hops > _MAX_IMPORT_HOPS:
            return None
        found: Optional[_Target] = None
        for member in scanned.scan.members:
            if isinstance(member, FunctionNode) and member.qualname == name:
                found = (module, member)
            elif isinstance(member, ClassNode) and member.qualname == name:
                found = (module, member)
        if found is not None:
            return found
        new = scanned.scan.imports.get(name)
        if new is None:
            # A submodule is an attribute of its package once imported.
            submodule = f"{module}.{name}"
            if scanned.is_package and self._scanned(submodule) is not None:
                return submodule
            return None
        imported = _absolute(new.module, scanned)
        if imported is None:
            return None
        if new.name is None:
            # ``import a.b`` binds ``a``; ``import a.b as c`` binds ``c`` to ``a.b``.
            return imported if new.alias is not None else imported.split(".")[0]
        return self._lookup(imported, new.name, hops + 1)

    # --- classes ------------------------------------------------------------------

    def _owner_class(self, function: FunctionNode) -> Optional[_ClassRef]:
        if not function.is_method or "." not in function.qualname:
            return None
        owner = function.qualname.rsplit(".", 1)[0]
        for cls in self.module.scan.iter_classes():
            if cls.qualname == owner:
                return (self.module.name, cls)
        return None

    def _method(
        self, cls: _ClassRef, name: str, *, skip_first: bool
    ) -> Optional[tuple[str, FunctionNode]]:
        """Find method *name* in the method resolution order of *cls*."""
        mro = self._mro(cls)
        if mro is None:
            return None
        for entry in mro[1:] if skip_first else mro:
            if isinstance(entry, str):
                builtin = getattr(builtins, entry, None)
                if isinstance(builtin, type) and not hasattr(builtin, name):
                    continue
                return None
            module, node = entry
            methods = [
                member
                for member in node.members
                if isinstance(member, FunctionNode) and member.node.name == name
            ]
            if methods:
                method = methods[-1]
                return None if method.is_overload else (module, method)
            nested = [member for member in node.members if isinstance(member, ClassNode)]
            if any(member.node.name == name for member in nested):
                return None
            if name in _class_attributes(node.node):
                return None
        return None

    def _mro(self, cls: _ClassRef) -> Optional[list[_MroEntry]]:
        key = (cls[0], cls[1].qualname)
        if key in self._mros:
            return self._mros[key]
        # Set before the bases are computed, so that a cycle of bases ends here.
        self._mros[key] = None
        linearizations: list[list[_MroEntry]] = []
        for base in cls[1].node.bases:
            resolved = self._base(cls[0], base)
            if resolved is None:
                continue
            if isinstance(resolved, str):
                linearizations.append([resolved])
                continue
            base_mro = self._mro(resolved)
            if base_mro is None:
                return None
            linearizations.append(base_mro)
        bases = [linearization[0] for linearization in linearizations]
        merged = _c3_merge([*linearizations, bases])
        result = None if merged is None else [cls, *merged]
        self._mros[key] = result
        return result

    def _base(self, module: str, base: ast.expr) -> Optional[_MroEntry]:
        """Resolve the base class *base* of a class in *module*.

        Returns ``None`` for a base to ignore, and the base's source text for a class
        outside the traced modules.
        """
        if isinstance(base, ast.Subscript):
            base = base.value
        text = ast.unparse(base)
        if text.rsplit(".", 1)[-1] in _IGNORED_BASES:
            return None
        target: Optional[_Target] = None
        if isinstance(base, ast.Name):
            target = self._lookup(module, base.id, 0)
        elif isinstance(base, ast.Attribute) and isinstance(base.value, ast.Name):
            owner = self._lookup(module, base.value.id, 0)
            if isinstance(owner, str):
                target = self._lookup(owner, base.attr, 0)
        if isinstance(target, tuple) and isinstance(target[1], ClassNode):
            return (target[0], target[1])
        return text


def _c3_merge(sequences: list[list[_MroEntry]]) -> Optional[list[_MroEntry]]:
    """Merge linearizations as C3 does; ``None`` when no consistent order exists."""

    def key(entry: _MroEntry) -> str:
        return entry if isinstance(entry, str) else f"{entry[0]}:{entry[1].qualname}"

    pending = [[*sequence] for sequence in sequences if sequence]
    result: list[_MroEntry] = []
    while pending:
        for sequence in pending:
            head = key(sequence[0])
            if not any(head in map(key, other[1:]) for other in pending):
                break
        else:
            return None
        chosen = sequence[0]
        result.append(chosen)
        pending = [[entry for entry in other if key(entry) != key(chosen)] for other in pending]
        pending = [other for other in pending if other]
    return result


def _absolute(module: str, importer: ScannedModule) -> Optional[str]:
    """Return the absolute name of *module* as imported in *importer*."""
    package = importer.name if importer.is_package else importer.name.rpartition(".")[0]
    return absolute_module(module, package)


def _returns_first_argument(function: FunctionNode) -> bool:
    """Whether every ``return`` of *function* returns its first parameter, as a
    decorator that only marks the function it is given does."""
    positional = [*function.node.args.posonlyargs, *function.node.args.args]
    if not positional:
        return False
    returns = [node for node in _own_nodes(function.node) if isinstance(node, ast.Return)]
    first = positional[0].arg
    return bool(returns) and all(
        isinstance(node.value, ast.Name) and node.value.id == first for node in returns
    )


def _own_nodes(node: ast.AST) -> list[ast.AST]:
    """Return the nodes of *node*'s body, without those of nested functions and classes."""
    result: list[ast.AST] = []
    pending = list(ast.iter_child_nodes(node))
    while pending:
        child = pending.pop()
        result.append(child)
        if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            pending.extend(ast.iter_child_nodes(child))
    return result


def _receiver_name(function: FunctionNode) -> Optional[str]:
    if not function.is_method or function.is_staticmethod:
        return None
    positional = [*function.node.args.posonlyargs, *function.node.args.args]
    return positional[0].arg if positional else None


def _is_super_call(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "super"
        and not node.args
        and not node.keywords
    )


def _local_names(function: FunctionNode, *, include_parameters: bool = True) -> set[str]:
    """Return the names that *function* binds in its own scope."""
    node = function.node
    names: set[str] = set()
    if include_parameters:
        arguments = node.args
        every = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
        every += [arg for arg in (arguments.vararg, arguments.kwarg) if arg is not None]
        names.update(arg.arg for arg in every)
    pending: list[ast.AST] = [*node.body]
    while pending:
        child = pending.pop()
        if isinstance(child, ast.Name) and isinstance(child.ctx, (ast.Store, ast.Del)):
            names.add(child.id)
        elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(child.name)
            continue
        elif isinstance(child, (ast.Import, ast.ImportFrom)):
            names.update(alias.asname or alias.name.split(".")[0] for alias in child.names)
        elif isinstance(child, ast.ExceptHandler) and child.name:
            names.add(child.name)
        elif isinstance(child, (ast.Global, ast.Nonlocal)):
            names.update(child.names)
        if isinstance(child, _NESTED_SCOPES):
            continue
        pending.extend(ast.iter_child_nodes(child))
    return names


def _class_attributes(node: ast.ClassDef) -> set[str]:
    """Return the names that the body of class *node* binds other than by ``def``."""
    names: set[str] = set()
    for statement in node.body:
        if isinstance(statement, ast.Assign):
            for target in statement.targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
            names.add(statement.target.id)
    return names
