"""Stub value objects: the annotations typetrace proposes for one module."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Iterator, Optional

from typetrace.stubs.annotations import NewImport
from typetrace.typemodel import TypeRef

__all__ = [
    "ClassStub",
    "FunctionStub",
    "ModuleStub",
    "ParameterKind",
    "ParameterStub",
    "PropertyAccessor",
]


class ParameterKind(enum.Enum):
    """Kinds of parameters, named as in :class:`inspect.Parameter`."""

    POSITIONAL_ONLY = "positional-only"
    POSITIONAL_OR_KEYWORD = "positional-or-keyword"
    VAR_POSITIONAL = "var-positional"
    KEYWORD_ONLY = "keyword-only"
    VAR_KEYWORD = "var-keyword"


class PropertyAccessor(enum.Enum):
    """The accessor a function defines on a property, if it is one."""

    GETTER = "getter"
    SETTER = "setter"
    DELETER = "deleter"


@dataclass(frozen=True)
class ParameterStub:
    """One parameter of a stubbed function."""

    #: Parameter name, without ``*`` or ``**``.
    name: str
    kind: ParameterKind
    #: Whether the source gives the parameter a default value.
    has_default: bool = False
    #: Traced type to write; ``None`` leaves the parameter as the source has it.
    annotation: Optional[TypeRef] = None
    #: Annotation text kept from the source; ``None`` when the source has none or
    #: :attr:`annotation` replaces it.
    existing: Optional[str] = None


@dataclass(frozen=True)
class FunctionStub:
    """A function or method whose signature gets annotations from traces."""

    #: Function name as written after ``def``.
    name: str
    #: Qualified name inside the module, as in ``func.__qualname__``.
    qualname: str
    parameters: tuple[ParameterStub, ...]
    #: Return annotation to write, already wrapped for generators (``Iterator[int]``);
    #: ``None`` leaves the return as the source has it.
    return_annotation: Optional[TypeRef] = None
    #: Return annotation text kept from the source.
    existing_return: Optional[str] = None
    is_async: bool = False
    #: Decorators written in the stub, as source text without the ``@``.
    decorators: tuple[str, ...] = ()
    #: Property accessor defined by this function; ``None`` for other functions.
    accessor: Optional[PropertyAccessor] = None
    #: Number of calls behind the annotations: the sum of the call counts of the
    #: traces read for this function.
    call_count: int = 0

    @property
    def has_annotations(self) -> bool:
        """Whether this stub adds at least one annotation from traces."""
        return self.return_annotation is not None or any(
            parameter.annotation is not None for parameter in self.parameters
        )


@dataclass(frozen=True)
class ClassStub:
    """A class with its stubbed methods and nested classes."""

    name: str
    qualname: str
    functions: tuple[FunctionStub, ...] = ()
    classes: tuple[ClassStub, ...] = ()
    #: Base classes and keywords such as ``metaclass=ABCMeta``, as source text.
    bases: tuple[str, ...] = ()
    #: Items of a ``TypedDict`` class, as ``(key, annotation text)`` from its body. The
    #: text is ``None`` where the source annotation cannot be written in the stub, and
    #: the tuple is empty for every other class.
    typed_dict_items: tuple[tuple[str, Optional[str]], ...] = ()

    def iter_functions(self) -> Iterator[FunctionStub]:
        """Yield the functions of this class and of its nested classes."""
        yield from self.functions
        for nested in self.classes:
            yield from nested.iter_functions()


@dataclass(frozen=True)
class ModuleStub:
    """The stub of one module: its stubbed functions and classes, ready to render or apply."""

    #: Dotted name of the module.
    module: str
    functions: tuple[FunctionStub, ...] = ()
    classes: tuple[ClassStub, ...] = ()
    #: Whether annotations from traces replace annotations already in the source.
    overwrite_existing: bool = False
    #: Imports from the source that kept annotations, decorators and bases need.
    source_imports: tuple[NewImport, ...] = ()
    #: Names bound at the top level or in a class body of the source module, which
    #: imports added for annotations must not rebind.
    source_names: frozenset[str] = field(default_factory=frozenset)
    #: Whether the module is a package's ``__init__``, which its relative imports
    #: are relative to.
    is_package: bool = False

    @property
    def package(self) -> str:
        """The package that the module's relative imports start from."""
        return self.module if self.is_package else self.module.rpartition(".")[0]

    def iter_functions(self) -> Iterator[FunctionStub]:
        """Yield every stubbed function, methods of nested classes included."""
        yield from self.functions
        for cls in self.classes:
            yield from cls.iter_functions()

    @property
    def function_count(self) -> int:
        """Number of functions that get at least one annotation from traces."""
        return sum(1 for function in self.iter_functions() if function.has_annotations)

    def function(
        self, qualname: str, accessor: Optional[PropertyAccessor] = None
    ) -> Optional[FunctionStub]:
        """Return the stub of the function *qualname*, or ``None`` if it has none.

        Property accessors share one qualified name, so *accessor* selects among them.
        """
        for function in self.iter_functions():
            if function.qualname == qualname and function.accessor == accessor:
                return function
        return None

    def render(
        self, *, target_version: Optional[tuple[int, int]] = None, show_counts: bool = False
    ) -> str:
        """Render the stub as the text of a ``.pyi`` file for Python *target_version*.

        See :func:`~typetrace.stubs.render.render_module_stub` for the syntax used and
        for *show_counts*.
        """
        from typetrace.stubs.render import render_module_stub

        return render_module_stub(self, target_version=target_version, show_counts=show_counts)
