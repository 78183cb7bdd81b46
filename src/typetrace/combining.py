"""Combining: turn the types observed in one slot (a parameter, a return, a yield) into one type.

:func:`combine_types` starts from the union of the observed types and then makes it
shorter where a type checker accepts the shorter form for every observed value:

* Numeric tower (PEP 484): where ``float`` appears, ``int`` is dropped, and where
  ``complex`` appears, ``int`` and ``float`` are, because type checkers accept an
  ``int`` for ``float`` and both for ``complex``. ``bool`` is a subclass of ``int``,
  so it is dropped next to any of the three.
* ``None`` stays a member, so ``X | None`` is kept.
* An empty container next to a non-empty one of the same class is dropped
  (``list | list[int]`` is ``list[int]``), as :func:`typetrace.typemodel.union` does.
* Generic classes that differ only in their arguments are merged argument by argument:
  ``list[int] | list[str]`` becomes ``list[int | str]`` and
  ``dict[str, int] | dict[str, str]`` becomes ``dict[str, int | str]``.
* Classes that share a base class are replaced by their nearest common base class
  (``Circle | Square`` with both deriving from ``Shape`` becomes ``Shape``), and a
  class next to one of its own bases is dropped (``date | datetime`` is ``date``).
  The bases come from the trace (:attr:`TypeRef.bases`), which the recorder reads
  from each class's MRO, because the stub generator cannot import the classes and
  the source of a traced module does not show the bases of classes imported into
  it. See :func:`_join_siblings` for the rule and why two classes suffice.
* Two or more concrete :mod:`io` classes become ``typing.TextIO`` when all are text
  streams, ``typing.BinaryIO`` when all are binary, and ``typing.IO[Any]`` for a mix
  (``BytesIO | TextIOWrapper`` is ``IO[Any]``); see :func:`_merge_streams`.
* Tuples of one fixed length are merged position by position
  (``tuple[int, str] | tuple[float, str]`` is ``tuple[float, str]``). Tuples of
  different lengths, or next to a ``tuple[T, ...]`` or an empty tuple, become
  ``tuple[T, ...]`` with ``T`` the combined type of all their elements. So do
  tuples of one element: ``("a",)`` is almost always a sequence that held one item,
  and an annotation of exactly one element would reject the same sequence with two.
* ``Callable`` members merge into one, without joining parameter types, because a
  union of parameter types would accept callables that reject some of them. Equal
  signatures stay as they are. Callables with one parameter list get the combined
  return type (``Callable[[int], int] | Callable[[int], str]`` is ``Callable[[int],
  int | str]``), and other lists become ``...``: ``Callable[..., R]`` with the
  combined return type ``R``. A bare ``Callable`` among them, whose signature is
  unknown, makes the result bare, and so does a ``Callable[..., Any]``.
* A union with more than *max_union_size* members other than ``None`` is widened. When
  every member is a built-in container (``list``, ``tuple``, ``set``, ``frozenset``,
  ``dict``), it becomes the most specific :mod:`collections.abc` class they all
  derive from, with the combined element type: past the limit,
  ``list[int] | tuple[str]`` widens to ``Sequence[int | str]``. Any other union
  widens to ``Any``. ``object`` would be the tighter bound, but every use of an
  ``object`` value is a type error, in the function body for a parameter and at the
  call sites for a return. ``Any`` only stops checking, as an unannotated slot does.

* Test doubles (the classes of :mod:`unittest.mock` and of the ``mock`` backport)
  show nothing about the types a function takes in real use, so they are dropped from
  a union with other members. A slot where only test doubles were seen becomes
  ``Any``. :func:`drop_test_classes` does the same for classes of test modules; the
  stub builder applies it unless the stubbed module is test code itself.
* A method's return observed as its receiver (``typing.Self`` with the value's type
  as argument, see :func:`typetrace.typemodel.receiver`) combines to ``Self`` when
  every observed value other than ``None`` was the receiver. When some calls
  returned another value, the receivers count as their own types, so a method that
  returned ``self`` once and a new instance of its class once gets the class.
* Dict shapes (``TypedDict`` candidates, see :mod:`typetrace.typemodel`) merge into one
  shape when their keys are *stable*: every ``dict`` member of the union has a shape
  (an empty dict or a ``dict[K, V]`` has none), the shapes have at most
  :data:`~typetrace.typemodel.MAX_SHAPE_KEYS` keys together and at most
  :data:`MAX_SHAPE_KEY_SETS` different sets of keys, and at least one key is required
  in all of them. A key that is required in every shape stays required, and every
  other key becomes ``NotRequired``. The value types of a key are combined over the
  shapes that have it. Shapes that are not stable degrade to ``dict[str, V]``, with
  ``V`` the combined type of all their values.

The rules apply at every depth, so the arguments of a container are combined the same
way. Members keep the order of :func:`~typetrace.typemodel.union`, so the result does
not depend on the order in which the types were observed.

:func:`combine_calls` combines the types of a slot together with the number of calls
each type was seen in, and keeps dict shapes only where at least
:data:`MIN_SHAPE_CALLS` calls had one, because the keys of a single call are weak
evidence of the keys a function takes or returns.

:func:`match_type_var` looks across the calls of one function instead of one slot: it
finds parameters whose type is the return type in every call, which a stub writes
with a constrained ``TypeVar``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable, Mapping, Optional, Sequence

from typetrace._publicnames import public_name
from typetrace._testonly import is_test_module
from typetrace.typemodel import (
    ANY,
    CALLABLE,
    ELLIPSIS,
    MAX_SHAPE_KEYS,
    NONE,
    SELF,
    ShapeKey,
    TypeRef,
    callable_parts,
    callable_type,
    dict_shape,
    has_shape,
    is_callable,
    receiver,
    union,
    without_shapes,
)

__all__ = [
    "DEFAULT_MAX_UNION_SIZE",
    "MAX_SHAPE_KEY_SETS",
    "MIN_SHAPE_CALLS",
    "TypeVarMatch",
    "combine_calls",
    "combine_types",
    "drop_test_classes",
    "match_type_var",
]

#: Default maximum number of members other than ``None`` that a combined union keeps.
DEFAULT_MAX_UNION_SIZE = 5
#: Maximum number of different key sets among the dict shapes of one union that still
#: merge into one shape. More sets suggest keys that are data, not field names.
MAX_SHAPE_KEY_SETS = 4
#: Minimum number of calls of a slot whose type has a dict shape for the shape to be
#: kept by :func:`combine_calls`.
MIN_SHAPE_CALLS = 2

_BOOL = TypeRef("builtins", "bool")
_INT = TypeRef("builtins", "int")
_FLOAT = TypeRef("builtins", "float")
_COMPLEX = TypeRef("builtins", "complex")
#: Each numeric type and the types it makes redundant in a union.
_NUMERIC_TOWER = (
    (_COMPLEX, frozenset({_FLOAT, _INT, _BOOL})),
    (_FLOAT, frozenset({_INT, _BOOL})),
    (_INT, frozenset({_BOOL})),
)
_TUPLE = ("builtins", "tuple")
_DICT = ("builtins", "dict")
_STR = TypeRef("builtins", "str")

#: For each built-in container, the :mod:`collections.abc` classes it derives from,
#: most specific first. ``dict`` is the only built-in mapping and the dicts of a union
#: are merged into one, so a widened union never ends in ``Mapping``.
_CONTAINER_ABCS: dict[str, tuple[str, ...]] = {
    "list": ("MutableSequence", "Sequence", "Collection", "Iterable"),
    "tuple": ("Sequence", "Collection", "Iterable"),
    "set": ("MutableSet", "Set", "Collection", "Iterable"),
    "frozenset": ("Set", "Collection", "Iterable"),
    "dict": ("Collection", "Iterable"),
}


def combine_types(types: Iterable[TypeRef], *, max_union_size: int = DEFAULT_MAX_UNION_SIZE) -> TypeRef:
    """Combine the observed *types* of one slot into one type, by the rules of this module.

    Raises:
        ValueError: *types* is empty, or *max_union_size* is less than 1.
    """
    if max_union_size < 1:
        raise ValueError(f"max_union_size must be at least 1, not {max_union_size!r}")
    members = _flatten(types)
    if not members:
        raise ValueError("combine_types() needs at least one type")
    real = [member for member in members if not _is_test_double(member)]
    if not real:
        return ANY
    members = real
    if ANY in members:
        return ANY
    has_none = NONE in members
    others = [member for member in members if member != NONE]
    if any(member.is_receiver for member in others):
        if all(member.is_receiver for member in others):
            combined_self = _combine_receivers(others, max_union_size)
            return union([combined_self, NONE]) if has_none else combined_self
        others = _flatten(map(_receiver_value, others))
        if ANY in others:
            return ANY
    if others:
        others = _merge_tuples(others, max_union_size)
        others = _merge_shapes(others, max_union_size)
        others = _merge_callables(others, max_union_size)
        others = _merge_generics(others, max_union_size)
        others = _drop_numeric_subtypes(others)
        # union() drops empty containers next to non-empty ones, so count after it.
        combined = union(others)
        others = list(combined.args) if combined.is_union else [combined]
        others = _merge_streams(others)
        others = _join_siblings(others)
        if len(others) > max_union_size:
            others = [_widen(others, max_union_size)]
    return union([*others, NONE] if has_none else others)


def _receiver_value(ref: TypeRef) -> TypeRef:
    # The value's own type; the combined Self has lost it and counts as Any.
    if not ref.is_receiver:
        return ref
    return ref.args[0] if ref.args else ANY


def _combine_receivers(members: list[TypeRef], max_union_size: int) -> TypeRef:
    """Combine returns that were all the receiver into ``Self`` with the combined type
    of the values as argument, which the stub builder needs to check the receivers."""
    values = [member.args[0] for member in members if member.args]
    if not values:
        return SELF
    return receiver(combine_types(values, max_union_size=max_union_size))


#: Modules whose classes are test doubles.
_TEST_DOUBLE_MODULES = frozenset({"unittest.mock", "mock", "mock.mock"})


def _is_test_double(ref: TypeRef) -> bool:
    return ref.module in _TEST_DOUBLE_MODULES


def _flatten(types: Iterable[TypeRef]) -> list[TypeRef]:
    # Unions nested in the input are opened, and duplicates dropped in first-seen order.
    # Of equal references, one that lists bases is kept, since a trace written before
    # bases were recorded names the same class without them.
    seen: dict[TypeRef, TypeRef] = {}
    for ref in types:
        for member in ref.args if ref.is_union else (ref,):
            kept = seen.setdefault(member, member)
            if member.bases and not kept.bases:
                seen[member] = member
    return list(seen.values())


def _combine_args(ref: TypeRef, max_union_size: int) -> TypeRef:
    """Return *ref* with each type argument combined on its own."""
    if not ref.args:
        return ref
    args = tuple(arg if arg == ELLIPSIS else combine_types([arg], max_union_size=max_union_size) for arg in ref.args)
    return TypeRef(ref.module, ref.qualname, args)


def _merge_tuples(members: list[TypeRef], max_union_size: int) -> list[TypeRef]:
    tuples = [member for member in members if (member.module, member.qualname) == _TUPLE]
    parameterized = [member for member in tuples if member.args]
    if not parameterized:
        return members
    rest = [member for member in members if (member.module, member.qualname) != _TUPLE]
    lengths = {len(member.args) for member in tuples}
    is_variadic = any(member.args[-1:] == (ELLIPSIS,) for member in parameterized)
    # One-element tuples are taken for sequences that held one item, not for records.
    if len(lengths) == 1 and not is_variadic and lengths != {1}:
        # One fixed length, and no empty tuple since that would be a second length.
        positions = zip(*(member.args for member in parameterized))
        args = tuple(combine_types(position, max_union_size=max_union_size) for position in positions)
    else:
        elements = [arg for member in parameterized for arg in member.args if arg != ELLIPSIS]
        args = (combine_types(elements, max_union_size=max_union_size), ELLIPSIS)
    return [*rest, TypeRef(*_TUPLE, args)]


def _merge_callables(members: list[TypeRef], max_union_size: int) -> list[TypeRef]:
    """Merge the ``Callable`` members into one, by the rule in the module documentation."""
    callables = [member for member in members if is_callable(member)]
    if len(callables) < 2:
        return members
    rest = [member for member in members if not is_callable(member)]
    signatures = [callable_parts(member) for member in callables]
    parameter_lists = set()
    returns = []
    for signature in signatures:
        if signature is None:
            return [*rest, CALLABLE]
        parameter_lists.add(signature[0])
        returns.append(signature[1])
    combined_return = combine_types(returns, max_union_size=max_union_size)
    parameters = parameter_lists.pop() if len(parameter_lists) == 1 else None
    if parameters is None and combined_return == ANY:
        return [*rest, CALLABLE]
    return [*rest, callable_type(parameters, combined_return)]


def _merge_generics(members: list[TypeRef], max_union_size: int) -> list[TypeRef]:
    """Merge the members that differ only in their type arguments, argument by argument."""
    groups: dict[tuple[str, str, int], list[TypeRef]] = defaultdict(list)
    for member in members:
        groups[(member.module, member.qualname, len(member.args))].append(member)
    merged: list[TypeRef] = []
    for (module, qualname, arity), group in groups.items():
        if len(group) == 1 and group[0].shape:
            # The one dict shape that _merge_shapes left, its values combined already.
            merged.append(group[0])
            continue
        if arity == 0 or (module, qualname) == _TUPLE:
            # Tuples were merged already: their arguments are positions, not one
            # element type, and a second tuple member cannot remain.
            merged.extend(_combine_args(member, max_union_size) for member in group)
            continue
        args = tuple(
            arg_group[0] if ELLIPSIS in arg_group else combine_types(arg_group, max_union_size=max_union_size)
            for arg_group in zip(*(member.args for member in group))
        )
        merged.append(TypeRef(module, qualname, args))
    return merged


def combine_calls(
    observations: Iterable[tuple[TypeRef, int]], *, max_union_size: int = DEFAULT_MAX_UNION_SIZE
) -> TypeRef:
    """Combine the types of one slot, each given with the number of calls that had it.

    The result is that of :func:`combine_types`, except that dict shapes become
    ``dict[str, V]`` when fewer than :data:`MIN_SHAPE_CALLS` calls had a type with a
    shape.

    Raises:
        ValueError: as :func:`combine_types`.
    """
    observed = list(observations)
    combined = combine_types((ref for ref, _ in observed), max_union_size=max_union_size)
    shaped_calls = sum(count for ref, count in observed if has_shape(ref))
    return combined if shaped_calls >= MIN_SHAPE_CALLS else without_shapes(combined)


def _merge_shapes(members: list[TypeRef], max_union_size: int) -> list[TypeRef]:
    """Merge the dict shapes among *members* into one, or degrade them all (see above)."""
    # Sorted, so that the keys come in an order that does not depend on the order in
    # which the types were observed.
    shapes = sorted(member for member in members if member.shape)
    if not shapes:
        return members
    rest = [member for member in members if not member.shape]
    dicts = [member for member in rest if (member.module, member.qualname) == _DICT]
    key_sets = {frozenset(key.name for key in shape.shape) for shape in shapes}
    all_keys = [key.name for shape in shapes for key in shape.shape]
    required = set.intersection(*({key.name for key in shape.shape if key.required} for shape in shapes))
    is_stable = (
        not dicts
        and len(set(all_keys)) <= MAX_SHAPE_KEYS
        and len(key_sets) <= MAX_SHAPE_KEY_SETS
        and bool(required)
    )
    if not is_stable:
        values = [key.value for shape in shapes for key in shape.shape]
        value_type = combine_types(values, max_union_size=max_union_size)
        return [*rest, TypeRef(*_DICT, (_STR, value_type))]
    merged = []
    for name in dict.fromkeys(all_keys):
        values = [key.value for shape in shapes for key in shape.shape if key.name == name]
        merged.append(ShapeKey(name, combine_types(values, max_union_size=max_union_size), name in required))
    value_type = combine_types([without_shapes(key.value) for key in merged], max_union_size=max_union_size)
    return [*rest, dict_shape(merged, value_type)]


def _drop_numeric_subtypes(members: list[TypeRef]) -> list[TypeRef]:
    present = set(members)
    redundant: set[TypeRef] = set()
    for wider, narrower in _NUMERIC_TOWER:
        if wider in present:
            redundant |= narrower
    return [member for member in members if member not in redundant]


def _join_siblings(members: list[TypeRef]) -> list[TypeRef]:
    """Replace the classes that share a base class by their nearest common base class.

    Classes without type arguments take part, with their recorded bases. Classes that
    share a base other than ``object`` form one group, also when ``A`` shares one base
    with ``B`` and ``B`` another with ``C``. Each group of two or more becomes the
    first class of the first member's MRO that every member derives from. A class
    counts as deriving from itself, so a class next to its base becomes the base.

    Two classes are enough: the common base accepts every observed value, a subclass
    not seen in the trace does not break the annotation, and it is what a person
    writes for a function that handles several kinds of one thing. The union would
    stay more precise for a caller of a function that returns siblings. The base
    costs that caller an ``isinstance`` check, which the union needed too. The recorder
    leaves ``typing.Generic``, ``typing.Protocol``, ``abc.ABC`` and classes that an
    annotation cannot name out of the bases, so they never become the common base.
    """
    groups: list[tuple[list[TypeRef], list[TypeRef]]] = []
    for member in members:
        if member.args or member.module == "typing":
            continue
        groups.append(([member], [member, *member.bases]))
    merged = True
    while merged:
        merged = False
        for first in range(len(groups)):
            for second in range(first + 1, len(groups)):
                ancestors = set(groups[second][1])
                common = [base for base in groups[first][1] if base in ancestors]
                if common:
                    groups[first] = (groups[first][0] + groups[second][0], common)
                    del groups[second]
                    merged = True
                    break
            if merged:
                break
    replaced: dict[TypeRef, TypeRef] = {}
    for group_members, common in groups:
        if len(group_members) > 1:
            nearest = TypeRef(common[0].module, common[0].qualname, bases=tuple(common[1:]))
            for member in group_members:
                replaced[member] = nearest
    if not replaced:
        return members
    joined = union(replaced.get(member, member) for member in members)
    return list(joined.args) if joined.is_union else [joined]


#: Concrete :mod:`io` classes that typeshed declares as subclasses of
#: ``typing.TextIO`` and ``typing.BinaryIO``. ``BufferedRWPair`` is neither there.
_TEXT_STREAMS = frozenset({TypeRef("io", "TextIOWrapper"), TypeRef("io", "StringIO")})
_BINARY_STREAMS = frozenset(
    TypeRef("io", name) for name in ("BytesIO", "BufferedReader", "BufferedWriter", "BufferedRandom", "FileIO")
)
_TEXT_IO = TypeRef("typing", "TextIO")
_BINARY_IO = TypeRef("typing", "BinaryIO")
_ANY_IO = TypeRef("typing", "IO", (ANY,))


def _stream_kind(ref: TypeRef) -> Optional[str]:
    """Return ``"text"`` or ``"binary"`` for a concrete io class or a subclass of one,
    else ``None``."""
    if ref.args:
        return None
    for name in (ref, *ref.bases):
        public = public_name(name.module, name.qualname) or name
        if public in _TEXT_STREAMS:
            return "text"
        if public in _BINARY_STREAMS:
            return "binary"
    return None


def _merge_streams(members: list[TypeRef]) -> list[TypeRef]:
    """Replace two or more concrete io classes by ``TextIO``, ``BinaryIO`` or ``IO[Any]``.

    Every observed stream is an instance of the result, because typeshed derives each
    class of :data:`_TEXT_STREAMS` from ``TextIO`` and each of :data:`_BINARY_STREAMS`
    from ``BinaryIO``. Their nearest common base, ``io.IOBase``, would declare
    neither ``read`` nor ``write``.
    """
    kinds = {member: _stream_kind(member) for member in members}
    streams = [member for member, kind in kinds.items() if kind is not None]
    if len(streams) < 2:
        return members
    found = {kinds[member] for member in streams}
    if found == {"text"}:
        merged = _TEXT_IO
    elif found == {"binary"}:
        merged = _BINARY_IO
    else:
        merged = _ANY_IO
    rest = [member for member in members if kinds[member] is None]
    combined = union([*rest, merged])
    return list(combined.args) if combined.is_union else [combined]


def drop_test_classes(types: Iterable[TypeRef]) -> list[TypeRef]:
    """Return *types* without the classes of test modules (see :mod:`typetrace._testonly`).

    A class of a test module is dropped from a union, and a type argument that was
    only such classes becomes ``Any``. An observed type that is such a class is left
    out of the result, so a result that is empty means only test classes were seen.
    """
    kept = []
    for ref in types:
        cleaned = _without_test_classes(ref)
        if cleaned is not None:
            kept.append(cleaned)
    return kept


def _without_test_classes(ref: TypeRef) -> Optional[TypeRef]:
    if ref.is_union:
        cleaned_members = map(_without_test_classes, ref.args)
        members = [member for member in cleaned_members if member is not None]
        return union(members) if members else None
    if is_test_module(ref.module):
        return None
    if not ref.args:
        return ref
    cleaned_args = map(_without_test_classes, ref.args)
    args = tuple(ANY if cleaned is None else cleaned for cleaned in cleaned_args)
    shape = tuple(
        ShapeKey(key.name, _without_test_classes(key.value) or ANY, key.required) for key in ref.shape
    )
    return TypeRef(ref.module, ref.qualname, args, shape, bases=ref.bases)


def _widen(members: list[TypeRef], max_union_size: int) -> TypeRef:
    """Return one type that covers every member: a common container ABC, or ``Any``."""
    if not all(member.module == "builtins" and member.qualname in _CONTAINER_ABCS for member in members):
        return ANY
    candidates = _CONTAINER_ABCS[members[0].qualname]
    common = next(abc for abc in candidates if all(abc in _CONTAINER_ABCS[m.qualname] for m in members))
    elements = [element for member in members for element in _elements(member)]
    # Empty containers contribute no element types.
    element = combine_types(elements, max_union_size=max_union_size) if elements else ANY
    return TypeRef("collections.abc", common, (element,))


def _elements(container: TypeRef) -> list[TypeRef]:
    """Return the types that iterating over *container* yields; dicts yield their keys."""
    if (container.module, container.qualname) == _TUPLE:
        return [arg for arg in container.args if arg != ELLIPSIS]
    return list(container.args[:1])


@dataclass(frozen=True)
class TypeVarMatch:
    """Parameters whose type is the return type in every observed call."""

    #: Names of the parameters that take the type variable, in the order given.
    parameters: tuple[str, ...]
    #: The distinct types the return took, in union order: the constraints of the
    #: type variable.
    constraints: tuple[TypeRef, ...]


def match_type_var(
    calls: Sequence[tuple[Mapping[str, TypeRef], Optional[TypeRef]]],
    candidates: Iterable[str],
    *,
    max_constraints: int = DEFAULT_MAX_UNION_SIZE,
) -> Optional[TypeVarMatch]:
    """Find parameters whose type moves together with the return type across *calls*.

    Each call is its argument types by parameter name and its return type (``None``
    when the call raised). A match needs every call to fit the pattern:

    * every call returned a single type other than ``None`` and ``Any``;
    * at least one of the *candidates* had exactly the return type in every call;
    * every other parameter, the candidates that do not match included, had one and
      the same type in all calls, so nothing else can explain the return type;
    * the return took between 2 and *max_constraints* types, each of a different class,
      because a constrained type variable needs two constraints and ``list`` next to
      ``list[int]`` would be one class twice.

    ``add(int, int) -> int`` and ``add(str, str) -> str`` match with the constraints
    ``(int, str)``, so the stub can read ``def add(a: T, b: T) -> T``.
    """
    if len(calls) < 2:
        return None
    linked = list(dict.fromkeys(candidates))
    returned_types: list[TypeRef] = []
    for arg_types, returned in calls:
        if returned is None or returned in (NONE, ANY) or returned.is_union:
            return None
        linked = [name for name in linked if arg_types.get(name) == returned]
        returned_types.append(returned)
    if not linked:
        return None
    names = {name for arg_types, _ in calls for name in arg_types}
    for name in names - set(linked):
        if len({arg_types.get(name) for arg_types, _ in calls}) != 1:
            return None
    constraints = union(returned_types)
    if not constraints.is_union or len(constraints.args) > max_constraints:
        return None
    classes = {(ref.module, ref.qualname) for ref in constraints.args}
    if len(classes) != len(constraints.args):
        return None
    return TypeVarMatch(tuple(linked), constraints.args)
