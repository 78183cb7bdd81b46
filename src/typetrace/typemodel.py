"""Type references: the plain, importable-free form in which typetrace keeps types.

A :class:`TypeRef` names a class by module and qualified name, with optional type
arguments. It never stores the class object itself, so traces can be stored, decoded,
combined and rendered without importing the traced program.

Special forms use reserved names:

* ``typing.Any`` is an unknown type.
* ``builtins.None`` is the type of ``None``.
* ``typing.Union`` with two or more arguments is a union; build it with :func:`union`.
* ``builtins.Ellipsis`` appears only as the second argument of ``builtins.tuple``,
  where it means a tuple of any length (``tuple[int, ...]``), and as the first
  argument of a ``Callable``, where it means any parameters (see below).
* A container without arguments (``builtins.list`` with ``args == ()``) is a container
  whose element types were not observed, for example an empty list.
* ``typing.Self`` with one argument is the type of a value that a method returned
  and that was its receiver (see :func:`receiver`); the argument is the value's own
  type. Without arguments it is the ``Self`` that an annotation writes.

A ``builtins.dict`` may also carry a *shape*: its keys, each a string with the type of
its value and whether it is required (see :class:`ShapeKey`). Such a reference stands
for a ``TypedDict``. Its ``args`` are still ``(str, V)``, with ``V`` the union of the
value types with any shapes in them removed (see :func:`dict_shape`). So code that
reads only ``module``, ``qualname`` and ``args`` sees the ``dict[str, V]`` that the
shape degrades to, and a ``TypeRef`` rebuilt from those three fields is that
``dict[str, V]``. Keeping nested shapes out of ``V`` also keeps the encoded form of
nested shapes from doubling in size at each level.

``collections.abc.Callable`` (or ``typing.Callable``) without arguments is a callable
whose signature is unknown. With arguments, the last one is the return type and the
others are the parameter types, so ``(int, str, bool)`` is ``Callable[[int, str],
bool]`` and ``(bool,)`` is ``Callable[[], bool]``. A first argument of
``builtins.Ellipsis`` followed by the return type is ``Callable[..., R]``: see
:func:`callable_type` and :func:`callable_parts`.

A bare ``collections.abc.Callable`` may also carry a *function*: the module and
qualified name of the Python function that the value was (see :class:`FunctionRef`).
Inference records it, and the stub builder replaces it by a ``Callable`` with the
parameter and return types that the function's own traced calls show. Unlike the
bases, the function is part of equality and hashing, so traces that passed different
functions stay apart, but not of ordering. A ``TypeRef`` rebuilt from ``module``,
``qualname`` and ``args`` alone is the bare ``Callable``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, NamedTuple, Optional, Sequence

__all__ = [
    "ANY",
    "CALLABLE",
    "ELLIPSIS",
    "FunctionRef",
    "MAX_SHAPE_KEYS",
    "NONE",
    "SELF",
    "ShapeKey",
    "TypeRef",
    "callable_parts",
    "callable_type",
    "dict_shape",
    "has_shape",
    "is_callable",
    "receiver",
    "union",
    "optional_members",
    "without_shapes",
]

#: Maximum number of keys of a dict shape: inference records no shape for a dict with
#: more keys, and combining degrades shapes whose keys add up to more.
MAX_SHAPE_KEYS = 16


@dataclass(frozen=True, order=True)
class TypeRef:
    """A reference to a type by name, with type arguments."""

    #: Module that defines the class, as in ``cls.__module__``.
    module: str
    #: Qualified name of the class inside its module, as in ``cls.__qualname__``.
    qualname: str
    #: Type arguments, for example ``(str, int)`` for ``dict[str, int]``.
    args: tuple[TypeRef, ...] = ()
    #: The keys of a ``builtins.dict`` whose keys were all observed, in the order first
    #: seen; empty for every other reference. See the module documentation.
    shape: tuple[ShapeKey, ...] = ()
    #: Base classes of the class, nearest first as in its MRO, without arguments.
    #: Only the bases that an annotation may name are listed, and never ``object``.
    #: Not part of equality, hashing or ordering: a reference decoded from a trace
    #: written without bases names the same class.
    bases: tuple[TypeRef, ...] = field(default=(), compare=False, repr=False)
    #: The Python function that a bare ``collections.abc.Callable`` was, or ``None``.
    #: Part of equality and hashing (see :meth:`__eq__`) but not of ordering, because
    #: ``None`` and a :class:`FunctionRef` cannot be ordered.
    function: Optional[FunctionRef] = field(default=None, compare=False)

    def __eq__(self, other: object) -> bool:
        # Written out because the generated method would leave out ``function``. The
        # dataclass decorator keeps a method that the class defines itself.
        if not isinstance(other, TypeRef):
            return NotImplemented
        return (
            self.module == other.module
            and self.qualname == other.qualname
            and self.args == other.args
            and self.shape == other.shape
            and self.function == other.function
        )

    def __hash__(self) -> int:
        # Cached, because traces hash their types on every comparison, and type
        # references are shared between traces.
        cached: Optional[int] = self.__dict__.get("_hash")
        if cached is None:
            cached = hash((self.module, self.qualname, self.args, self.shape, self.function))
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


class ShapeKey(NamedTuple):
    """One key of a dict shape: a ``TypedDict`` item.

    A named tuple rather than a dataclass, because inference builds one for every key
    of every small dict, and tuples are built, hashed and compared in C.
    """

    #: The key.
    name: str
    #: Type of the value under the key.
    value: TypeRef
    #: Whether the key was in every dict observed; a ``NotRequired`` item otherwise.
    required: bool = True


class FunctionRef(NamedTuple):
    """The Python function that a callable value was, by name."""

    #: Module that defines the function, as in ``function.__module__``.
    module: str
    #: Qualified name of the function, as in ``function.__qualname__``. It contains
    #: ``<locals>`` for a function defined inside another.
    qualname: str
    #: Whether the value was a bound method, whose first parameter (``self`` or
    #: ``cls``) the caller does not pass.
    bound: bool = False


ANY = TypeRef("typing", "Any")
NONE = TypeRef("builtins", "None")
ELLIPSIS = TypeRef("builtins", "Ellipsis")
SELF = TypeRef("typing", "Self")
CALLABLE = TypeRef("collections.abc", "Callable")
_CALLABLE_NAMES = frozenset({("collections.abc", "Callable"), ("typing", "Callable")})


def is_callable(ref: TypeRef) -> bool:
    """Return whether *ref* is ``collections.abc.Callable`` or ``typing.Callable``."""
    return (ref.module, ref.qualname) in _CALLABLE_NAMES


def callable_type(parameters: Optional[Sequence[TypeRef]], returns: TypeRef) -> TypeRef:
    """Build ``Callable[[*parameters], returns]``, or ``Callable[..., returns]`` when
    *parameters* is ``None``."""
    params = (ELLIPSIS,) if parameters is None else tuple(parameters)
    return TypeRef(CALLABLE.module, CALLABLE.qualname, (*params, returns))


def callable_parts(ref: TypeRef) -> Optional[tuple[Optional[tuple[TypeRef, ...]], TypeRef]]:
    """Split the ``Callable`` *ref* into its parameter types (``None`` for ``...``) and
    its return type. Return ``None`` for a bare ``Callable`` or another type."""
    if not is_callable(ref) or not ref.args:
        return None
    *params, returns = ref.args
    if params[:1] == [ELLIPSIS]:
        return None, returns
    return tuple(params), returns


def receiver(ref: TypeRef) -> TypeRef:
    """Return the type of a returned value of type *ref* that was the method's receiver.

    The recorder marks a return so when the value is the call's first argument, or an
    instance of exactly that argument when the argument is a class (a classmethod
    returning an instance of ``cls``).
    """
    return TypeRef(SELF.module, SELF.qualname, (ref,))


_STR = TypeRef("builtins", "str")


def dict_shape(keys: Iterable[ShapeKey], value_type: Optional[TypeRef] = None) -> TypeRef:
    """Build the ``builtins.dict`` reference with the shape *keys*.

    Its value type argument is the union of the value types, without shapes, unless
    *value_type* gives it.

    Raises:
        ValueError: *keys* is empty or names a key twice.
    """
    shape = tuple(keys)
    if not shape:
        raise ValueError("dict_shape() needs at least one key")
    if len({key.name for key in shape}) != len(shape):
        raise ValueError(f"dict_shape() got a key twice: {[key.name for key in shape]!r}")
    if value_type is None:
        # A type without arguments has no shape in it, which skips most calls on this
        # path, the one that inference takes for every small dict.
        value_type = union(without_shapes(key.value) if key.value.args else key.value for key in shape)
    else:
        value_type = without_shapes(value_type)
    return TypeRef("builtins", "dict", (_STR, value_type), shape)


def has_shape(ref: TypeRef) -> bool:
    """Return whether *ref*, or a type nested in it, is a dict shape."""
    return bool(ref.shape) or any(has_shape(arg) for arg in ref.args)


def without_shapes(ref: TypeRef) -> TypeRef:
    """Return *ref* with every dict shape in it replaced by its ``dict[str, V]``."""
    if not has_shape(ref):
        return ref
    args = tuple(without_shapes(arg) for arg in ref.args)
    return union(args) if ref.is_union else TypeRef(ref.module, ref.qualname, args, bases=ref.bases)


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
    # A dict shape does not absorb an empty dict, because the empty dict lacks the
    # shape's required keys, and a Callable with a signature does not absorb a bare
    # Callable, whose signature is unknown rather than empty.
    parameterized = {(m.module, m.qualname) for m in flat if m.args and not m.shape and not is_callable(m)}
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
    if ref.shape:
        items = (f"{key.name!r}{'' if key.required else '?'}: {render_plain(key.value)}" for key in ref.shape)
        return "{" + ", ".join(items) + "}"
    name = ref.qualname if ref.module == "builtins" else ref.dotted_name
    if ref.function is not None:
        bound = " bound" if ref.function.bound else ""
        return f"{name}[<{ref.function.module}:{ref.function.qualname}{bound}>]"
    parts = callable_parts(ref)
    if parts is not None:
        params, returns = parts
        written = "..." if params is None else "[" + ", ".join(render_plain(p) for p in params) + "]"
        return f"{name}[{written}, {render_plain(returns)}]"
    if not ref.args:
        return name
    return f"{name}[{', '.join(render_plain(a) for a in ref.args)}]"
