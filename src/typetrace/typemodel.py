"""Type references: the plain, importable-free form in which typetrace keeps types.

A :class:`TypeRef` names a class by module and qualified name, with optional type
arguments. It never stores the class object itself, so traces can be stored, decoded,
combined and rendered without importing the traced program.

Special forms use reserved names:

* ``typing.Any`` is an unknown type.
* ``builtins.None`` is the type of ``None``.
* ``typing.Union`` with two or more arguments is a union; build it with :func:`union`.
* ``builtins.Ellipsis`` appears only as the second argument of ``builtins.tuple`` and
  means a tuple of any length: ``tuple[int, ...]``.
* A container without arguments (``builtins.list`` with ``args == ()``) is a container
  whose element types were not observed, for example an empty list.
* ``typing.Self`` with one argument is the type of a value that a method returned
  and that was its receiver (see :func:`receiver`); the argument is the value's own
  type. Without arguments it is the ``Self`` that an annotation writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Optional

__all__ = [
    "ANY",
    "ELLIPSIS",
    "NONE",
    "SELF",
    "TypeRef",
    "receiver",
    "union",
    "optional_members",
]


@dataclass(frozen=True, order=True)
class TypeRef:
    """A reference to a type by name, with type arguments."""

    #: Module that defines the class, as in ``cls.__module__``.
    module: str
    #: Qualified name of the class inside its module, as in ``cls.__qualname__``.
    qualname: str
    #: Type arguments, for example ``(str, int)`` for ``dict[str, int]``.
    args: tuple[TypeRef, ...] = ()
    #: Base classes of the class, nearest first as in its MRO, without arguments.
    #: Only the bases that an annotation may name are listed, and never ``object``.
    #: Not part of equality, hashing or ordering: a reference decoded from a trace
    #: written without bases names the same class.
    bases: tuple[TypeRef, ...] = field(default=(), compare=False, repr=False)

    def __hash__(self) -> int:
        # Cached, because traces hash their types on every comparison, and type
        # references are shared between traces.
        cached: Optional[int] = self.__dict__.get("_hash")
        if cached is None:
            cached = hash((self.module, self.qualname, self.args))
            object.__setattr__(self, "_hash", cached)
        return cached

    def __getstate__(self) -> dict[str, object]:
        # String hashes differ between processes, so the cache is not pickled.
        return {name: value for name, value in self.__dict__.items() if name != "_hash"}

    @property
    def is_union(self) -> bool:
        """Whether this reference is a ``typing.Union``."""
        return self.module == "typing" and self.qualname == "Union"

    @property
    def is_receiver(self) -> bool:
        """Whether this reference is ``typing.Self``, observed (with its argument) or
        combined (without)."""
        return self.module == "typing" and self.qualname == "Self"

    @property
    def dotted_name(self) -> str:
        """The name as written in an import-qualified annotation: ``module.qualname``."""
        return f"{self.module}.{self.qualname}"

    def __str__(self) -> str:
        return render_plain(self)


ANY = TypeRef("typing", "Any")
NONE = TypeRef("builtins", "None")
ELLIPSIS = TypeRef("builtins", "Ellipsis")
SELF = TypeRef("typing", "Self")


def receiver(ref: TypeRef) -> TypeRef:
    """Return the type of a returned value of type *ref* that was the method's receiver.

    The recorder marks a return so when the value is the call's first argument, or an
    instance of exactly that argument when the argument is a class (a classmethod
    returning an instance of ``cls``).
    """
    return TypeRef(SELF.module, SELF.qualname, (ref,))


def union(members: Iterable[TypeRef]) -> TypeRef:
    """Build the union of *members*: flattened, deduplicated and in a stable order.

    ``Any`` absorbs every other member. A container without arguments is dropped when
    the same container also appears with arguments, so an empty list observed next to
    a ``list[int]`` gives ``list[int]``. One member is returned as it is.
    """
    flat: set[TypeRef] = set()
    for member in members:
        if member.is_union:
            flat.update(member.args)
        else:
            flat.add(member)
    if not flat:
        raise ValueError("union() needs at least one member")
    if ANY in flat:
        return ANY
    parameterized = {(m.module, m.qualname) for m in flat if m.args}
    flat = {m for m in flat if m.args or (m.module, m.qualname) not in parameterized}
    if len(flat) == 1:
        return flat.pop()
    return TypeRef("typing", "Union", tuple(sorted(flat, key=_union_sort_key)))


def optional_members(ref: TypeRef) -> tuple[tuple[TypeRef, ...], bool]:
    """Split *ref* into its members other than ``None``, and whether ``None`` was one."""
    members = ref.args if ref.is_union else (ref,)
    others = tuple(m for m in members if m != NONE)
    return others, len(others) != len(members)


def _union_sort_key(ref: TypeRef) -> tuple[int, str, str, str]:
    # Builtins first, ``None`` last; ties broken by the rendered text, which is
    # deterministic for a given set of members.
    if ref == NONE:
        rank = 2
    elif ref.module == "builtins":
        rank = 0
    else:
        rank = 1
    return (rank, ref.module, ref.qualname, render_plain(ref))


def render_plain(ref: TypeRef) -> str:
    """Render *ref* as fully qualified text, for logs and error messages."""
    if ref == NONE:
        return "None"
    if ref == ELLIPSIS:
        return "..."
    if ref.is_union:
        return " | ".join(render_plain(m) for m in ref.args)
    name = ref.qualname if ref.module == "builtins" else ref.dotted_name
    if not ref.args:
        return name
    return f"{name}[{', '.join(render_plain(a) for a in ref.args)}]"
