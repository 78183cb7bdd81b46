"""Annotation text: turn a :class:`TypeRef` into source text and the imports it needs.

Both the ``.pyi`` renderer and ``apply`` use :class:`AnnotationNamer`, so a stub and an
annotated source name the same types the same way.
"""

from __future__ import annotations

import builtins
import keyword
from dataclasses import dataclass, field
from typing import Collection, Mapping, Optional

from typetrace._publicnames import PUBLIC_NAMES, is_private
from typetrace.stubs.typeddicts import TypedDictDefinition, TypedDictItem, key_class_name
from typetrace.typemodel import (
    ANY,
    ELLIPSIS,
    NONE,
    SELF,
    ShapeKey,
    TypeRef,
    callable_parts,
    callable_type,
    is_callable,
    optional_members,
    union,
)

__all__ = [
    "TYPE_VAR_MODULE",
    "AnnotationNamer",
    "Binding",
    "NewImport",
    "RenderedAnnotation",
    "MIN_TARGET_VERSION",
    "constrained_type_var",
    "parse_target_version",
    "public_type",
    "self_module_for_target",
    "syntax_for_target",
]

#: Reserved module of a :class:`TypeRef` that is a constrained ``TypeVar``, whose
#: arguments are the constraints. :class:`AnnotationNamer` names and declares it.
TYPE_VAR_MODULE = "<TypeVar>"

#: Oldest Python that annotations can target: ``typing.OrderedDict`` and
#: ``from __future__ import annotations`` are new in 3.7.
MIN_TARGET_VERSION = (3, 7)

#: Generic classes that cannot be subscripted before Python 3.9 (PEP 585), mapped to
#: the :mod:`typing` alias that annotations use instead. Every class of
#: :mod:`collections.abc` maps to the :mod:`typing` name of the same name, except ``Set``.
_PRE_PEP585_NAMES: dict[tuple[str, str], str] = {
    ("builtins", "list"): "List",
    ("builtins", "dict"): "Dict",
    ("builtins", "set"): "Set",
    ("builtins", "frozenset"): "FrozenSet",
    ("builtins", "tuple"): "Tuple",
    ("builtins", "type"): "Type",
    ("collections", "deque"): "Deque",
    ("collections", "defaultdict"): "DefaultDict",
    ("collections", "OrderedDict"): "OrderedDict",
    ("collections", "Counter"): "Counter",
    ("collections", "ChainMap"): "ChainMap",
    ("collections.abc", "Set"): "AbstractSet",
}

_ANY_CALLABLE = callable_type(None, ANY)

#: Classes whose ``__module__`` cannot be imported from, or is not the name the
#: standard library documents, mapped to the public name.
_PUBLIC_NAMES = PUBLIC_NAMES


def constrained_type_var(constraints: tuple[TypeRef, ...]) -> TypeRef:
    """Return the reference to a ``TypeVar`` constrained to *constraints*."""
    return TypeRef(TYPE_VAR_MODULE, "TypeVar", constraints)


def public_type(ref: TypeRef, module: Optional[str] = None) -> TypeRef:
    """Return *ref* with every class replaced by a name that can be imported, or ``Any``.

    Classes of ``__main__``, classes defined inside functions (``<locals>``) and names
    that are not identifiers become ``Any``. A private class (a part of its module or
    qualified name starts with an underscore) without a public alias becomes its
    nearest recorded base class, or ``Any`` without one, unless it belongs to the
    top-level package of *module*, the module the annotation is written in.
    ``typing.Self`` loses the type of the observed receivers, which only the stub
    builder uses. A bare ``Callable`` becomes ``Callable[..., Any]``, which strict type
    checkers accept where they reject a generic class without arguments.
    """
    if ref.is_receiver:
        return SELF
    if is_callable(ref) and not ref.args:
        return _ANY_CALLABLE
    args = tuple(public_type(arg, module) for arg in ref.args)
    if ref.module == TYPE_VAR_MODULE:
        return TypeRef(ref.module, ref.qualname, args)
    if ref.is_union:
        # A member that became Any absorbs the others.
        return union(args)
    if ref in (NONE, ELLIPSIS):
        return ref
    mapped = _PUBLIC_NAMES.get((ref.module, ref.qualname))
    if mapped is not None:
        return mapped if mapped.args or not args else TypeRef(mapped.module, mapped.qualname, args)
    if not _is_nameable(ref):
        return ANY
    if is_private(ref.module, ref.qualname) and not _in_package(ref.module, module):
        return _public_base(ref)
    if ref.module == "builtins" and not hasattr(builtins, ref.qualname):
        # Types such as list_iterator report builtins as their module but are not
        # attributes of it.
        return TypeRef("typing", "Iterator") if ref.qualname.endswith("iterator") else ANY
    shape = tuple(ShapeKey(key.name, public_type(key.value, module), key.required) for key in ref.shape)
    return TypeRef(ref.module, ref.qualname, args, shape, bases=ref.bases)


def _in_package(ref_module: str, module: Optional[str]) -> bool:
    return module is not None and ref_module.split(".")[0] == module.split(".")[0]


def _public_base(ref: TypeRef) -> TypeRef:
    """Return the nearest base of the private class *ref* that an annotation can name,
    without type arguments, or ``Any`` when it has none."""
    for base in ref.bases:
        mapped = _PUBLIC_NAMES.get((base.module, base.qualname), base)
        if not is_private(mapped.module, mapped.qualname) and _is_nameable(mapped):
            return TypeRef(mapped.module, mapped.qualname, mapped.args, bases=mapped.bases)
    return ANY


def syntax_for_target(target_version: tuple[int, int]) -> tuple[bool, bool]:
    """Return the ``pep604`` and ``pep585`` flags of :class:`AnnotationNamer` for *target_version*.

    Raises:
        ValueError: *target_version* is older than :data:`MIN_TARGET_VERSION`.
    """
    if tuple(target_version) < MIN_TARGET_VERSION:
        oldest = ".".join(map(str, MIN_TARGET_VERSION))
        raise ValueError(f"Target version {target_version[0]}.{target_version[1]} is not supported; use {oldest} or newer")
    return target_version >= (3, 10), target_version >= (3, 9)


def self_module_for_target(target_version: Optional[tuple[int, int]]) -> str:
    """Return the module that ``Self`` is imported from for *target_version*.

    ``typing.Self`` is new in Python 3.11. Without a target version the stub may be
    checked for any Python, so it takes ``typing_extensions.Self``, which mypy and
    pyright know from typeshed without the package being installed.
    """
    if target_version is not None and tuple(target_version) >= (3, 11):
        return "typing"
    return "typing_extensions"


def parse_target_version(text: str) -> tuple[int, int]:
    """Parse a Python version written ``X.Y``, such as ``3.9``, and check it is supported.

    Raises:
        ValueError: *text* is not of the form ``X.Y``, is not a Python 3 version, or
            names a version older than :data:`MIN_TARGET_VERSION`.
    """
    parts = text.strip().split(".")
    if len(parts) != 2 or not all(part.isdigit() for part in parts):
        raise ValueError(f"Invalid target version {text!r}: expected MAJOR.MINOR, such as 3.9")
    version = (int(parts[0]), int(parts[1]))
    if version[0] != 3:
        raise ValueError(f"Invalid target version {text!r}: only Python 3 versions are supported, such as 3.9")
    syntax_for_target(version)
    return version


def _pre_pep585_name(ref: TypeRef) -> Optional[str]:
    alias = _PRE_PEP585_NAMES.get((ref.module, ref.qualname))
    if alias is None and ref.module == "collections.abc":
        return ref.qualname
    return alias


def _is_nameable(ref: TypeRef) -> bool:
    if ref.module == "__main__":
        return False
    parts = [*ref.module.split("."), *ref.qualname.split(".")]
    return all(part.isidentifier() and not keyword.iskeyword(part) for part in parts)


@dataclass(frozen=True)
class Binding:
    """The target of a name that an import binds in the target module."""

    #: Dotted name of the module (``import x``) or object (``from m import x``).
    target: str
    is_module: bool
    #: Whether the import runs at run time; ``False`` under ``if TYPE_CHECKING:``.
    runtime: bool = True


@dataclass(frozen=True, order=True)
class NewImport:
    """An import that annotations need and the target module does not have yet."""

    module: str
    #: Imported name for ``from module import name``; ``None`` for ``import module``.
    name: Optional[str] = None
    alias: Optional[str] = None

    @property
    def bound_name(self) -> str:
        if self.alias is not None:
            return self.alias
        return self.name if self.name is not None else self.module.split(".")[0]

    def binding(self, *, runtime: bool = True) -> Binding:
        """Return what the bound name of this import refers to."""
        if self.name is not None:
            return Binding(f"{self.module}.{self.name}", is_module=False, runtime=runtime)
        # ``import a.b`` binds ``a``; ``import a.b as x`` binds ``x`` to ``a.b``.
        target = self.module if self.alias is not None else self.bound_name
        return Binding(target, is_module=True, runtime=runtime)

    def statement(self) -> str:
        suffix = f" as {self.alias}" if self.alias is not None else ""
        if self.name is None:
            return f"import {self.module}{suffix}"
        return f"from {self.module} import {self.name}{suffix}"


@dataclass(frozen=True)
class RenderedAnnotation:
    """Annotation text, and whether it names something not defined at run time."""

    text: str
    #: The text uses a class of the module itself or a name imported only for type
    #: checking, so it must be quoted unless annotations are not evaluated.
    forward: bool


@dataclass
class AnnotationNamer:
    """Names types in one target module and collects the imports the names need.

    Each name it introduces is checked against *taken*, the names the module already
    binds, so an added import never shadows one of them: it gets an alias instead.
    """

    #: Dotted name of the module the annotations are written in.
    module: str
    #: Qualified names of the classes that module defines, by which they are written.
    local_classes: Collection[str] = ()
    #: Names bound in the module (or a class body) that imports must not rebind.
    taken: Collection[str] = ()
    #: Further names that a declared ``TypeVar`` must not rebind. A ``.pyi`` stub does
    #: not bind every name of its module, but must not give any of them a new meaning.
    type_var_taken: Collection[str] = ()
    #: Imports the module already has, by bound name, reused where they fit.
    bindings: Mapping[str, Binding] = field(default_factory=dict)
    #: Whether unions are written ``X | Y``; otherwise ``Optional`` and ``Union``.
    pep604: bool = True
    #: Whether built-in and :mod:`collections` classes are subscripted themselves
    #: (``list[int]``); otherwise through their :mod:`typing` aliases (``List[int]``).
    pep585: bool = True
    #: Whether added ``typing`` and ``typing_extensions`` imports run at run time.
    #: ``apply`` sets it to False so that it binds no new public name in the module,
    #: which ``from m import *`` of a module without ``__all__`` would pass on, and
    #: imports nothing that the module's users may not have installed.
    typing_at_runtime: bool = True
    #: Module that ``Self`` is imported from: see :func:`self_module_for_target`.
    self_module: str = "typing_extensions"
    #: Oldest Python the annotations must work on, which decides whether ``TypedDict``
    #: and ``NotRequired`` come from :mod:`typing` or ``typing_extensions``. ``None``
    #: means any version that a type checker may check for.
    target_version: Optional[tuple[int, int]] = None
    #: Imports added so far.
    imports: list[NewImport] = field(default_factory=list)
    #: Names of the type variables used so far, by their reference.
    type_vars: dict[TypeRef, str] = field(default_factory=dict)
    #: TypedDict classes that annotations rendered so far use, each after the ones
    #: its items use.
    typed_dicts: list[TypedDictDefinition] = field(default_factory=list)
    _names: dict[tuple[str, Optional[str]], str] = field(default_factory=dict)
    # Names of the TypedDict classes, by the keys of their shape.
    _typed_dict_names: dict[frozenset[ShapeKey], str] = field(default_factory=dict)
    # Name for the next TypedDict class of the annotation being rendered; None renders
    # dict shapes as dict[str, V].
    _typed_dict_base: Optional[str] = None

    def render(self, ref: TypeRef, *, typed_dict_name: Optional[str] = None) -> RenderedAnnotation:
        """Render *ref* as annotation text, adding the imports it needs.

        A dict shape in *ref* is written as a TypedDict class that is added to
        :attr:`typed_dicts`, named *typed_dict_name* unless that name is taken or the
        same shape has a class already. Without *typed_dict_name*, shapes are written
        ``dict[str, V]``.
        """
        forward: list[bool] = []
        self._typed_dict_base = typed_dict_name
        try:
            text = self._render(public_type(ref, self.module), forward)
        finally:
            self._typed_dict_base = None
        return RenderedAnnotation(text, any(forward))

    def _render(self, ref: TypeRef, forward: list[bool]) -> str:
        if ref == NONE:
            return "None"
        if ref == ELLIPSIS:
            return "..."
        if ref.is_union:
            return self._render_union(ref, forward)
        if ref == SELF:
            return self._self_name(forward)
        if ref.module == TYPE_VAR_MODULE:
            return self._type_var_name(ref, forward)
        if ref.shape:
            if self._typed_dict_base is not None:
                return self._typed_dict_name(ref, self._typed_dict_base, forward)
            ref = TypeRef(ref.module, ref.qualname, ref.args)
        if not ref.args:
            return self._name(ref, forward)
        alias = None if self.pep585 else _pre_pep585_name(ref)
        name = self._name(ref, forward) if alias is None else self.typing_name(alias, forward)
        parts = callable_parts(ref)
        if parts is not None:
            params, returns = parts
            if params is None:
                written = "..."
            else:
                written = "[" + ", ".join(self._render(param, forward) for param in params) + "]"
            return f"{name}[{written}, {self._render(returns, forward)}]"
        args = ", ".join(self._render(arg, forward) for arg in ref.args)
        return f"{name}[{args}]"

    def _render_union(self, ref: TypeRef, forward: list[bool]) -> str:
        others, has_none = optional_members(ref)
        parts = [self._render(member, forward) for member in others]
        if self.pep604:
            return " | ".join([*parts, "None"] if has_none else parts)
        inner = parts[0] if len(parts) == 1 else f"{self.typing_name('Union', forward)}[{', '.join(parts)}]"
        if has_none:
            return f"{self.typing_name('Optional', forward)}[{inner}]"
        return inner

    def _name(self, ref: TypeRef, forward: list[bool]) -> str:
        if ref.module == "builtins":
            if ref.qualname not in self.taken:
                return ref.qualname
            return f"{self.module_expression('builtins', forward)}.{ref.qualname}"
        if ref.module == "typing":
            return self.typing_name(ref.qualname, forward)
        if ref.module == self.module:
            if ref.qualname in self.local_classes:
                forward.append(True)
                return ref.qualname
            return self.typing_name("Any", forward)
        imported = self._imported_name(ref)
        if imported is not None:
            # Quoted like an added import: an import at the end of the module, as
            # import cycles need, has not run yet where the annotation is evaluated.
            forward.append(True)
            return imported
        return f"{self.module_expression(ref.module, forward)}.{ref.qualname}"

    def _imported_name(self, ref: TypeRef) -> Optional[str]:
        """Return the name that an import of the module binds to the class *ref*, if any."""
        target = f"{ref.module}.{ref.qualname}"
        for bound, binding in self.bindings.items():
            if binding.target == target and not binding.is_module:
                return bound
        return None

    def typing_name(self, name: str, forward: Optional[list[bool]] = None) -> str:
        """Return the expression for ``typing.<name>``, importing it if needed."""
        return self._typing_module_name("typing", name, forward)

    def _self_name(self, forward: list[bool]) -> str:
        # A ``Self`` that the module imports already is reused, from either module.
        for module in ("typing", "typing_extensions"):
            bound = self._bound_name(f"{module}.Self", forward)
            if bound is not None:
                return bound
        return self._typing_module_name(self.self_module, "Self", forward)

    def _bound_name(self, target: str, forward: Optional[list[bool]]) -> Optional[str]:
        for bound, binding in self.bindings.items():
            if binding.target == target and not binding.is_module:
                if not binding.runtime and forward is not None:
                    forward.append(True)
                return bound
        return None

    def _typing_module_name(self, module: str, name: str, forward: Optional[list[bool]]) -> str:
        """Return the expression for ``<module>.<name>``, where *module* is ``typing``
        or ``typing_extensions``, importing the name if needed."""
        bound = self._bound_name(f"{module}.{name}", forward)
        if bound is not None:
            return bound
        key = (module, name)
        if not self.typing_at_runtime and forward is not None:
            forward.append(True)
        if key not in self._names:
            alias = self._free_name(name)
            self._names[key] = alias
            self.imports.append(NewImport(module, name, None if alias == name else alias))
        return self._names[key]

    def module_expression(self, module: str, forward: Optional[list[bool]] = None) -> str:
        """Return the expression that names *module*, importing it if needed."""
        for bound, binding in self.bindings.items():
            if binding.is_module and binding.target == module:
                if forward is not None:
                    forward.append(not binding.runtime)
                return bound
        if forward is not None:
            forward.append(True)
        key = (module, None)
        if key not in self._names:
            root = module.split(".")[0]
            root_binding = self.bindings.get(root)
            # A plain ``import a.b`` binds ``a`` to the package, so it may rebind a root
            # that an import of the same package already binds.
            root_is_package = root_binding is not None and root_binding.target == root
            root_is_ours = any(
                new.name is None and new.alias is None and new.bound_name == root
                for new in self.imports
            )
            root_free = root not in self.taken and root not in self._allocated()
            if root_free or root_is_package or root_is_ours:
                self._names[key] = module
                self.imports.append(NewImport(module))
            else:
                alias = self._free_name(module.replace(".", "_"))
                self._names[key] = alias
                self.imports.append(NewImport(module, alias=alias))
        return self._names[key]

    def _type_var_name(self, ref: TypeRef, forward: list[bool]) -> str:
        # Declared where the typing imports go, so it exists at run time only when
        # they do.
        # NOTE: an existing TypeVar of the module is never reused, so applying again
        # with overwrite_existing declares _T1 and leaves the earlier _T unused.
        if not self.typing_at_runtime:
            forward.append(True)
        if ref not in self.type_vars:
            number = 0
            name = "_T"
            unavailable = {*self.taken, *self.type_var_taken, *self._allocated(), *self.bindings}
            while name in unavailable:
                number += 1
                name = f"_T{number}"
            self.type_vars[ref] = name
        return self.type_vars[ref]

    def type_var_declarations(self, *, quote_forward: bool) -> list[str]:
        """Return the ``TypeVar`` assignments for the type variables used so far.

        Call it after the annotations are rendered and before the imports are read,
        because the constraints may add imports, ``TypeVar`` itself included. With
        *quote_forward*, a constraint that names a class of the module is quoted, since
        the declaration may come before the class definition.
        """
        lines = []
        for ref, name in self.type_vars.items():
            constraints = []
            for constraint in ref.args:
                rendered = self.render(constraint)
                quoted = rendered.forward and quote_forward and self._names_local_class(constraint)
                constraints.append(f'"{rendered.text}"' if quoted else rendered.text)
            type_var = self.typing_name("TypeVar")
            arguments = ", ".join([f'"{name}"', *constraints])
            lines.append(f"{name} = {type_var}({arguments})")
        return lines

    def _names_local_class(self, ref: TypeRef) -> bool:
        if ref.module == self.module:
            return True
        return any(self._names_local_class(arg) for arg in ref.args)

    def _typed_dict_name(self, ref: TypeRef, base: str, forward: list[bool]) -> str:
        # The class exists for type checkers only: apply defines it under
        # ``if TYPE_CHECKING:``.
        # NOTE: a TypedDict class already in the module is never reused, so applying
        # again with overwrite_existing defines FooArg2 and leaves FooArg unused.
        forward.append(True)
        key = frozenset(ref.shape)
        name = self._typed_dict_names.get(key)
        if name is not None:
            return name
        name = base
        number = 1
        while name in self._unavailable():
            number += 1
            name = f"{base}{number}"
        self._typed_dict_names[key] = name
        items = []
        for shape_key in ref.shape:
            self._typed_dict_base = key_class_name(name, shape_key.name)
            value = self._render(shape_key.value, [])
            local = self._names_local_class(shape_key.value)
            items.append(TypedDictItem(shape_key.name, value, shape_key.required, local))
        self._typed_dict_base = base
        # Appended after the classes its items use, which functional-syntax
        # definitions must follow.
        self.typed_dicts.append(TypedDictDefinition(name, tuple(items)))
        return name

    def typed_dict_declarations(self, *, quote_forward: bool) -> list[str]:
        """Return the definitions of the TypedDict classes used so far, one statement each.

        Call it after the annotations are rendered and before the imports are read,
        because the definitions import ``TypedDict`` and ``NotRequired``. A statement of
        the class syntax spans several lines. With *quote_forward*, a value type that
        names a class of the module is quoted, since the definition may come before the
        class.
        """
        if not self.typed_dicts:
            return []
        typed_dict = self._typing_feature("TypedDict", (3, 8))
        statements = []
        for definition in self.typed_dicts:
            not_required = None
            if definition.needs_not_required:
                not_required = self._typing_feature("NotRequired", (3, 11))
            lines = definition.lines(typed_dict, not_required, quote_local=quote_forward)
            statements.append("\n".join(lines))
        return statements

    def _typing_feature(self, name: str, added: tuple[int, int]) -> str:
        """Return the expression for *name* from :mod:`typing`, new in Python *added*.

        For a target version older than *added*, the name comes from
        ``typing_extensions``, which type checkers know whatever Python version they
        check for. Without a target version, names new in 3.8 or earlier come from
        :mod:`typing`, where typeshed declares them for every version it covers.
        """
        oldest = self.target_version if self.target_version is not None else (3, 8)
        if oldest >= added:
            return self.typing_name(name)
        for bound, binding in self.bindings.items():
            if binding.target == f"typing_extensions.{name}" and not binding.is_module:
                return bound
        key = ("typing_extensions", name)
        if key not in self._names:
            alias = self._free_name(name)
            self._names[key] = alias
            self.imports.append(NewImport("typing_extensions", name, None if alias == name else alias))
        return self._names[key]

    def _unavailable(self) -> set[str]:
        # Built-in names too, because annotations write built-in classes by their bare
        # names, such as ValueError.
        return {*self.taken, *self.type_var_taken, *self.bindings, *self._allocated(), *dir(builtins)}

    def _allocated(self) -> set[str]:
        names = {new.bound_name for new in self.imports} | set(self.type_vars.values())
        return names | set(self._typed_dict_names.values())

    def free_name(self, name: str) -> str:
        """Return *name*, or *name* with leading underscores, so that it binds nothing taken."""
        return self._free_name(name)

    def _free_name(self, name: str) -> str:
        allocated = self._allocated()
        candidate = name
        while candidate in self.taken or candidate in allocated or candidate in self.bindings:
            candidate = f"_{candidate}"
        return candidate
