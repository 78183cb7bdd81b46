"""Type inference: the :class:`~typetrace.typemodel.TypeRef` of a runtime value.

Inference never runs code of the value itself: it reads ``type(value)`` and walks only
the exact built-in containers through their C-level element access, so hostile
``__eq__``, ``__hash__``, ``__len__``, ``__getattr__`` or ``__class__`` methods are never
called and iterators are never consumed.

The cost per value is bounded:

* At most :data:`MAX_ELEMENTS` elements are inspected per top-level value.
* Lists, tuples and deques contribute their first :data:`HEAD_ELEMENTS` elements plus
  up to :data:`SPREAD_ELEMENTS` elements spread evenly over the rest (deques only the
  first ones). Dicts and sets contribute their first :data:`HEAD_ELEMENTS` entries in
  iteration order, because they cannot be indexed.
* Containers nested deeper than :data:`MAX_DEPTH` become ``Any``, which also ends the
  walk through self-referencing containers.

An inferrer caches the references it builds: a class's, a container's with its type
arguments, a union's and a dict shape's. A value of a type seen before then gets the
same object, which also makes comparing the traces of repeated calls cheap. Each
cache keeps at most 4,096 entries and holds no value of the traced program, only
references and the key strings that dict shapes contain anyway.

The reference to a class lists its base classes (:attr:`TypeRef.bases`), read from
the MRO once per class and cached with its name, so that combining can find the
nearest common base of several classes without importing them later. At most
:data:`MAX_BASES` are kept, and only those an annotation can name.

An inferrer made with ``test_stand_ins=True`` names a class of test code or of a test
helper library (see :mod:`typetrace._testonly`) by its nearest base class that is
neither, so freezegun's ``FakeDatetime`` is recorded as ``datetime.datetime``. A class
without such a base, other than ``object``, keeps its own name.

A ``dict`` (the exact class) with at most :data:`MAX_SHAPE_KEYS` keys, each an exact
``str`` of at most :data:`MAX_SHAPE_KEY_LENGTH` characters, gets a *shape* (see
:mod:`typetrace.typemodel`): the type of the value under every key, which stubs write
as a ``TypedDict``. Such a dict has every value inspected instead of its first
:data:`HEAD_ELEMENTS`, when the element budget of the top-level value still allows it;
otherwise it is typed ``dict[str, V]`` from its first entries as before. The key
strings become part of the trace, so a store keeps the keys of small dicts, not only
types.

A Python function (``types.FunctionType``), and a bound method of one, is typed as a
bare ``collections.abc.Callable`` that names the function (a
:class:`~typetrace.typemodel.FunctionRef`): its module and qualified name, read
through the C-level attributes of the function, and whether it was bound. The stub
builder turns that into a ``Callable`` with the types that the function's own traced
calls show. Lambdas, built-in functions, method wrappers and other callable objects
are a bare ``Callable`` without a name.

On CPython, :class:`typetrace._containers.ContainerTypes` types an exact list,
tuple, set, frozenset or dict in C when the references of its elements' classes, and
those built from them, are cached already. It gives the same object as the walk in
Python, which types every other value and fills the caches. ``TYPETRACE_PURE_PYTHON=1``
leaves every value to the walk in Python.
"""

from __future__ import annotations

import collections
import gc
import itertools
import logging
import os
import sys
import threading
import types
import weakref
from typing import Any, Callable, Iterable, Mapping, Optional, TypeVar

from typetrace._publicnames import is_private, public_name
from typetrace._signals import raise_if_from_signal_handler
from typetrace._testonly import is_test_module
from typetrace.typemodel import (
    ANY,
    CALLABLE,
    ELLIPSIS,
    MAX_SHAPE_KEYS,
    NONE,
    FunctionRef,
    ShapeKey,
    TypeRef,
    dict_shape,
    union,
)

__all__ = [
    "HEAD_ELEMENTS",
    "MAX_BASES",
    "MAX_DEPTH",
    "MAX_ELEMENTS",
    "MAX_SHAPE_KEYS",
    "MAX_SHAPE_KEY_LENGTH",
    "MAX_TUPLE_LENGTH",
    "SPREAD_ELEMENTS",
    "TypeInferrer",
    "failure_counts",
    "type_of",
]

logger = logging.getLogger(__name__)

try:
    from typetrace import _containers
except ImportError:  # the optional C extension was not built
    _containers = None  # type: ignore[assignment]

#: Environment variable that makes every backend handle all events in Python, without
#: its C extension, and leaves every value to the walk in Python, when set to 1.
PURE_PYTHON_VARIABLE = "TYPETRACE_PURE_PYTHON"

_T = TypeVar("_T")

#: Containers nested deeper than this many levels are typed ``Any``.
MAX_DEPTH = 4
#: Maximum number of container elements inspected for one top-level value.
MAX_ELEMENTS = 64
#: Leading elements of each container that are inspected.
HEAD_ELEMENTS = 8
#: Further elements of a list or tuple inspected at evenly spread positions.
SPREAD_ELEMENTS = 8
#: Tuples up to this length get one type per position; longer ones get ``tuple[T, ...]``.
MAX_TUPLE_LENGTH = 10
#: Maximum number of base classes recorded per class, nearest first.
MAX_BASES = 8

#: Base classes that are never recorded, because an annotation gains nothing from them.
_SKIPPED_BASES = frozenset(
    {("builtins", "object"), ("typing", "Generic"), ("typing", "Protocol"), ("abc", "ABC")}
)
#: Maximum length, in characters, of the keys of a dict that gets a shape. Longer keys
#: are data rather than field names, and would make every stored trace as long.
MAX_SHAPE_KEY_LENGTH = 64

# Classes whose names are cached per inferrer; the cache is emptied when full.
_MAX_CACHED_CLASSES = 4096

_TYPE = ("builtins", "type")

# Functions and methods of every kind, typed as a ``Callable``. Classes are
# compared by id() here and below, because hashing or comparing a class may call its
# metaclass's code.
_FUNCTION_TYPE_IDS = frozenset(
    id(cls)
    for cls in (
        types.FunctionType,
        types.BuiltinFunctionType,
        types.MethodType,
        types.MethodWrapperType,
        types.MethodDescriptorType,
        types.WrapperDescriptorType,
        types.ClassMethodDescriptorType,
    )
)

#: Built-in classes whose ``builtins.<name>`` cannot be imported, typed by the abstract
#: class that an annotation uses instead.
BUILTIN_RENAMES = {
    "generator": TypeRef("collections.abc", "Generator"),
    "coroutine": TypeRef("collections.abc", "Coroutine"),
    "async_generator": TypeRef("collections.abc", "AsyncGenerator"),
    "dict_keys": TypeRef("collections.abc", "KeysView"),
    "dict_values": TypeRef("collections.abc", "ValuesView"),
    "dict_items": TypeRef("collections.abc", "ItemsView"),
    "module": TypeRef("types", "ModuleType"),
    "mappingproxy": TypeRef("types", "MappingProxyType"),
    "NoneType": NONE,
}
_ITERATOR = TypeRef("collections.abc", "Iterator")

# The C-level getters of ``type.__module__`` and ``type.__qualname__``. Calling them
# directly skips any ``__getattribute__`` or property that a metaclass defines.
_read_module: Callable[[type], object] = type.__dict__["__module__"].__get__
_read_qualname: Callable[[type], object] = type.__dict__["__qualname__"].__get__
_read_mro: Callable[[type], tuple[type, ...]] = type.__dict__["__mro__"].__get__
# The same for functions and bound methods. None of them can be overridden, because
# neither class can be subclassed.
_read_function_module: Callable[[types.FunctionType], object] = types.FunctionType.__dict__["__module__"].__get__
_read_function_qualname: Callable[[types.FunctionType], object] = types.FunctionType.__dict__[
    "__qualname__"
].__get__
_read_method_function: Callable[[types.MethodType], object] = types.MethodType.__dict__["__func__"].__get__
_read_function_globals: Callable[[types.FunctionType], dict[str, object]] = types.FunctionType.__dict__[
    "__globals__"
].__get__
_read_class_namespace: Callable[[type], Mapping[str, object]] = type.__dict__["__dict__"].__get__
_read_module_namespace: Callable[[types.ModuleType], dict[str, object]] = vars(types.ModuleType)["__dict__"].__get__

#: Module names under which a program's main script runs. ``__mp_main__`` is the
#: parent's main script imported again in a child that multiprocessing starts with
#: spawn or forkserver.
MAIN_NAMES = frozenset({"__main__", "__mp_main__"})

#: Returns the module name to record for a main-script module, from its name (one of
#: MAIN_NAMES) and its globals.
MainNameResolver = Callable[[str, Mapping[str, object]], str]

_failures: collections.Counter[str] = collections.Counter()
_failures_lock = threading.Lock()


def failure_counts() -> dict[str, int]:
    """Return how often inference failed and gave ``Any``, by kind of failure."""
    with _failures_lock:
        return dict(_failures)


def _note_failure(kind: str, error: BaseException) -> None:
    with _failures_lock:
        _failures[kind] += 1
        first = _failures[kind] == 1
    if first:
        logger.warning(
            "Type inference failed (%s: %r); the value is typed Any. "
            "Later failures of this kind are only counted.",
            kind,
            error,
        )


class TypeInferrer:
    """Infers types of values, caching the names of the classes it has seen.

    One inferrer may be used from many threads at once.

    Args:
        main_module: Module name to record for classes defined in ``__main__``.
        max_elements: Maximum number of container elements inspected per value.
        test_stand_ins: Whether a class of a test module is named by its nearest base
            class outside test code, as for a traced function that is not test code.
        resolve_main: Function that returns the module name to record for a function
            or class of a main script, from the globals it was defined in. A runner
            such as pdb or coverage runs as ``__main__`` and then runs the program as
            another ``__main__``, so the module name alone cannot tell their classes
            apart.
    """

    def __init__(
        self,
        main_module: Optional[str] = None,
        *,
        max_elements: int = MAX_ELEMENTS,
        test_stand_ins: bool = False,
        resolve_main: Optional[MainNameResolver] = None,
    ) -> None:
        self.main_module = main_module
        self.resolve_main = resolve_main
        self.test_stand_ins = test_stand_ins
        #: Module names of main scripts, such as ``"__mp_main__"``, to the names
        #: recorded for their classes; used where *main_module* is not given.
        self.main_names: dict[str, str] = {}
        if type(max_elements) is not int or max_elements < 0:
            raise ValueError(f"max_elements must be an int of 0 or more, not {max_elements!r}")
        self._max_elements = min(max_elements, sys.maxsize)
        # Container elements inspected by the walk in Python. Updated without a lock,
        # so the total may undercount when threads infer at the same time.
        self._walked_elements = 0
        # id(class) -> (weak reference to the class, its TypeRef). The weak reference
        # distinguishes a live entry from a stale one whose id now belongs to another
        # class, and keeps no class alive.
        self._class_refs: dict[int, tuple[Callable[[], object], TypeRef]] = {}
        # The same, for classes whose instances are typed by the class alone.
        self._plain_refs: dict[int, tuple[Callable[[], object], TypeRef]] = {}
        #: Changes whenever an entry of the plain classes may be removed or stand for
        #: another class: when the cache is cleared and when a cached class dies,
        #: whose id a new class may then take. A type that a caller derived from these
        #: entries stays valid while the generation is the same.
        self.generation = 0
        # Ids of the parts of a generic or union reference built before -> the parts
        # and the reference. Each entry keeps its parts alive, so their ids are not
        # reused while the entry exists. Returning the same object for the same type
        # also lets later comparisons of traces succeed on identity.
        self._built_refs: dict[tuple[int, ...], tuple[tuple[TypeRef, ...], TypeRef]] = {}
        # The same for dict shapes, keyed by the key strings and the ids of the value
        # types.
        self._shape_refs: dict[tuple[object, ...], tuple[tuple[TypeRef, ...], TypeRef]] = {}
        # id(function) -> (weak reference to the function, its Callable), for plain
        # functions and for the functions of bound methods.
        self._function_refs: dict[int, tuple[Callable[[], object], TypeRef]] = {}
        self._method_refs: dict[int, tuple[Callable[[], object], TypeRef]] = {}
        #: The C walk of containers over the caches above, or ``None``.
        self.container_types: Optional[_containers.ContainerTypes] = None
        if _containers is not None and os.environ.get(PURE_PYTHON_VARIABLE) != "1":
            self.container_types = _containers.ContainerTypes(
                self._class_refs,
                self._plain_refs,
                self._built_refs,
                self._shape_refs,
                NONE,
                ANY,
                ELLIPSIS,
                max_elements=self._max_elements,
                max_depth=MAX_DEPTH,
                head_elements=HEAD_ELEMENTS,
                spread_elements=SPREAD_ELEMENTS,
                max_tuple_length=MAX_TUPLE_LENGTH,
                max_shape_keys=MAX_SHAPE_KEYS,
                max_shape_key_length=MAX_SHAPE_KEY_LENGTH,
            )

    @property
    def max_elements(self) -> int:
        """Maximum number of container elements inspected per value, fixed when the
        inferrer is made."""
        return self._max_elements

    @property
    def elements_inspected(self) -> int:
        """Container elements inspected so far, over all values."""
        walked = self._walked_elements
        return walked if self.container_types is None else walked + self.container_types.elements

    def rename_main(self, module: str, name: str) -> None:
        """Record the classes of the main-script module *module* under *name*."""
        self.main_names[module] = name
        self.generation += 1
        # Forget the names cached before, which may hold the old module name.
        self._class_refs.clear()
        self._plain_refs.clear()
        self._built_refs.clear()
        self._shape_refs.clear()
        self._function_refs.clear()
        self._method_refs.clear()

    def type_of(self, value: object) -> TypeRef:
        """Return the type of *value*; ``Any`` when it cannot be inferred. Raises only
        the exception of a signal handler of the program that ran meanwhile."""
        # Fast path: a class seen before that is not a container, class or function.
        entry = self._plain_refs.get(id(type(value)))
        if entry is not None and entry[0]() is type(value):
            return entry[1]
        if self.container_types is not None:
            ref = self.container_types.infer(value)
            if ref is not None:
                return ref
        try:
            return _Walk(self).infer(value, 0)
        except Exception as error:  # noqa: BLE001 - inference must never raise
            raise_if_from_signal_handler(error)
            _note_failure(type(error).__name__, error)
            return ANY

    def element_type(self, values: Iterable[object]) -> Optional[TypeRef]:
        """Return the union of the element types of a ``*args`` tuple or of the value
        types of a ``**kwargs`` dict. Return ``None`` when it is empty. Raises only the
        exception of a signal handler of the program that ran meanwhile."""
        try:
            walk = _Walk(self)
            if type(values) is dict:
                sampled = walk.sample_values(values)
            else:
                sampled = walk.sample_sequence(values)  # type: ignore[arg-type]
            return walk.union_at(sampled, 0) if sampled else None
        except Exception as error:  # noqa: BLE001 - inference must never raise
            raise_if_from_signal_handler(error)
            _note_failure(type(error).__name__, error)
            return ANY

    def class_ref(self, cls: type) -> TypeRef:
        """Return the reference to *cls* by name, without type arguments."""
        entry = self._class_refs.get(id(cls))
        if entry is not None and entry[0]() is cls:
            return entry[1]
        ref = self._name_class(cls)
        try:
            alive: Callable[[], object] = weakref.ref(cls, self._class_died)
        except TypeError:
            return ref
        if len(self._class_refs) >= _MAX_CACHED_CLASSES:
            self.generation += 1
            self._class_refs.clear()
            self._plain_refs.clear()
        self._class_refs[id(cls)] = (alive, ref)
        if id(cls) not in _CONTAINERS and id(cls) not in _FUNCTION_TYPE_IDS and not issubclass(cls, type):
            self._plain_refs[id(cls)] = (alive, ref)
        return ref

    def _class_died(self, _ref: object) -> None:
        self.generation += 1

    def plain_type(self, value: object) -> Optional[TypeRef]:
        """Return the type of *value* when its class alone decides it and the class
        was seen before, else ``None``. Such a type stays valid while
        :attr:`generation` is the same."""
        if value is None:
            return NONE
        cls = type(value)
        entry = self._plain_refs.get(id(cls))
        if entry is not None and entry[0]() is cls:
            return entry[1]
        return None

    def callable_ref(self, value: object) -> TypeRef:
        """Return the ``Callable`` that names the function of *value*, a function or a
        bound method, or a bare ``Callable`` when the function has no usable name."""
        if type(value) is types.MethodType:
            function = _read_method_function(value)
            cache = self._method_refs
        else:
            function = value
            cache = self._function_refs
        if type(function) is not types.FunctionType:
            return CALLABLE
        entry = cache.get(id(function))
        if entry is not None and entry[0]() is function:
            return entry[1]
        ref = self._name_function(function, bound=cache is self._method_refs)
        if len(cache) >= _MAX_CACHED_CLASSES:
            cache.clear()
        cache[id(function)] = (weakref.ref(function), ref)
        return ref

    def _name_function(self, function: types.FunctionType, *, bound: bool) -> TypeRef:
        module = _read_function_module(function)
        qualname = _read_function_qualname(function)
        if type(module) is not str or type(qualname) is not str:
            return CALLABLE
        # Lambdas and the functions of comprehensions have names such as <lambda>
        # that no source definition has.
        if not qualname.rpartition(".")[2].isidentifier():
            return CALLABLE
        if module in MAIN_NAMES:
            module = self._main_name(module, _read_function_globals(function))
        return TypeRef(CALLABLE.module, CALLABLE.qualname, function=FunctionRef(module, qualname, bound))

    def _main_name(self, module: str, module_globals: Optional[Mapping[str, object]]) -> str:
        """Return the module name to record for *module*, which may be a main script
        whose *module_globals* are known."""
        if module == "__main__" and self.main_module:
            return self.main_module
        if self.resolve_main is not None and module in MAIN_NAMES:
            if module_globals is None:
                module_globals = _main_globals(module)
            return self.resolve_main(module, module_globals)
        return self.main_names.get(module, module)

    def _name_class(self, cls: type) -> TypeRef:
        module, qualname = self._names_of(cls)
        if module == "builtins":
            renamed = BUILTIN_RENAMES.get(qualname)
            if renamed is not None:
                return renamed
            if qualname.endswith("iterator"):
                return _ITERATOR
        if self.test_stand_ins and is_test_module(module):
            stand_in = self._stand_in(cls)
            if stand_in is not None:
                return stand_in
            return TypeRef(module, qualname)
        public = _public_class_name(module, qualname)
        if public is not None:
            module, qualname = public
        return TypeRef(module, qualname, bases=self._bases_of(cls, (module, qualname)))

    def _names_of(self, cls: type) -> tuple[str, str]:
        module = _read_module(cls)
        qualname = _read_qualname(cls)
        if not isinstance(module, str) or not isinstance(qualname, str):
            raise TypeError(f"class name is not a string: {module!r}.{qualname!r}")
        if module in MAIN_NAMES:
            module = self._main_name(module, _class_globals(cls, module))
        return module, qualname

    def _bases_of(self, cls: type, name: tuple[str, str]) -> tuple[TypeRef, ...]:
        """Return the base classes of *cls* that an annotation can name, nearest first.

        A base with a public alias (see :mod:`typetrace._publicnames`) is listed by
        it, once, and never when the alias is *name*, the name recorded for *cls*.
        Classes defined inside functions, private classes (a part of the module or
        class name starts with an underscore, as in ``_io`` or ``typing._Final``)
        and, for an inferrer with test stand-ins, classes of test modules are left out.
        """
        bases: list[TypeRef] = []
        for base in _read_mro(cls)[1:]:
            try:
                module, qualname = self._names_of(base)
            except TypeError:
                continue
            public = _public_class_name(module, qualname)
            if public is not None:
                module, qualname = public
            if (module, qualname) in _SKIPPED_BASES or "<locals>" in qualname:
                continue
            if is_private(module, qualname) or (module, qualname) == name:
                continue
            if self.test_stand_ins and is_test_module(module):
                continue
            ref = TypeRef(module, qualname)
            if ref in bases:
                continue
            bases.append(ref)
            if len(bases) == MAX_BASES:
                break
        return tuple(bases)

    def _stand_in(self, cls: type) -> Optional[TypeRef]:
        """Return the reference to the nearest base of the test class *cls* that is not
        test code, or ``None`` when ``object`` is the only one."""
        for base in _read_mro(cls)[1:]:
            try:
                module, qualname = self._names_of(base)
            except TypeError:
                continue
            if (module, qualname) in _SKIPPED_BASES or is_test_module(module):
                continue
            return self.class_ref(base)
        return None


def _class_globals(cls: type, module: str) -> Optional[Mapping[str, object]]:
    """Return the globals of the first function defined in the body of *cls*, the
    class of the main-script module *module*, or ``None`` when it has no such function."""
    for value in _read_class_namespace(cls).values():
        if type(value) in (classmethod, staticmethod):
            value = value.__func__  # type: ignore[attr-defined]
        elif type(value) is property:
            value = value.fget
        if type(value) is types.FunctionType:
            function_globals = _read_function_globals(value)
            if dict.get(function_globals, "__name__") == module:
                return function_globals
    return None


def _main_globals(module: str) -> Mapping[str, object]:
    """Return the globals of the module now imported as *module*, or an empty mapping."""
    main = sys.modules.get(module)
    if isinstance(main, types.ModuleType):
        return _read_module_namespace(main)
    return {}


def _public_class_name(module: str, qualname: str) -> Optional[tuple[str, str]]:
    """Return the public module and name of a class that has a plain public alias,
    such as ``io.TextIOWrapper`` for ``_io.TextIOWrapper``; ``None`` for others."""
    public = public_name(module, qualname)
    if public is None or public.args or public.module == "builtins":
        return None
    return public.module, public.qualname


class _Walk:
    """One top-level inference, with its own element budget."""

    __slots__ = ("inferrer", "budget")

    def __init__(self, inferrer: TypeInferrer) -> None:
        self.inferrer = inferrer
        self.budget = inferrer._max_elements

    def infer(self, value: object, depth: int) -> TypeRef:
        if value is None:
            return NONE
        cls = type(value)
        if issubclass(cls, type):
            return TypeRef(*_TYPE, (self.inferrer.class_ref(value),))  # type: ignore[arg-type]
        if id(cls) in _FUNCTION_TYPE_IDS:
            if cls is types.FunctionType or cls is types.MethodType:
                return self.inferrer.callable_ref(value)
            return CALLABLE
        base = self.inferrer.class_ref(cls)
        walker = _CONTAINERS.get(id(cls))
        if walker is None:
            return base
        if depth >= MAX_DEPTH:
            return ANY
        return walker(self, value, base, depth + 1)

    def element(self, value: object, depth: int) -> TypeRef:
        """Return the type of *value*, an element of a container, at *depth*."""
        cls = type(value)
        entry = self.inferrer._plain_refs.get(id(cls))
        if entry is not None and entry[0]() is cls:
            return entry[1]
        return self.infer(value, depth)

    def take(self, count: int) -> int:
        """Reserve up to *count* elements of the budget; return how many were granted."""
        budget = self.budget
        granted = count if count <= budget else max(budget, 0)
        self.budget = budget - granted
        self.inferrer._walked_elements += granted
        return granted

    def sample_sequence(self, values: list[object] | tuple[object, ...]) -> list[object]:
        # len() and slicing run in C: values is an exact list or tuple.
        length = len(values)
        if length <= HEAD_ELEMENTS:
            return list(values[: self.take(length)])
        spread = _spread_positions(length)
        granted = self.take(HEAD_ELEMENTS + len(spread))
        sampled = list(values[: min(granted, HEAD_ELEMENTS)])
        for position in spread[: max(0, granted - HEAD_ELEMENTS)]:
            try:
                sampled.append(values[position])
            except IndexError:  # another thread shortened the list
                break
        return sampled

    def sample_iterable(self, values: Iterable[_T]) -> list[_T]:
        granted = self.take(HEAD_ELEMENTS)
        return list(itertools.islice(values, granted))

    def sample_values(self, values: dict[Any, object]) -> list[object]:
        return self.sample_iterable(dict.values(values))

    def union_at(self, values: Iterable[object], depth: int) -> TypeRef:
        """Return the union of the types of *values*, each of them at *depth*.

        A value of a class seen before that is typed by the class alone adds that
        class's reference once, without a walk.
        """
        plain = self.inferrer._plain_refs
        members: list[TypeRef] = []
        added: set[int] = set()
        previous: Optional[type] = None
        for value in values:
            cls = type(value)
            if cls is previous:
                continue
            entry = plain.get(id(cls))
            if entry is not None and entry[0]() is cls:
                previous = cls
                if id(cls) not in added:
                    added.add(id(cls))
                    members.append(entry[1])
            else:
                members.append(self.infer(value, depth))
        if len(members) == 1:
            return members[0]
        return self.built(None, tuple(members))

    def generic(self, base: TypeRef, args: tuple[TypeRef, ...]) -> TypeRef:
        """Return *base* with the type arguments *args*."""
        return self.built(base, args)

    def built(self, base: Optional[TypeRef], parts: tuple[TypeRef, ...]) -> TypeRef:
        """Return *base* with the arguments *parts*, or the union of *parts* when
        *base* is ``None``, reusing the reference built before from the same objects."""
        cache = self.inferrer._built_refs
        key = (id(base), id(parts[0])) if len(parts) == 1 else (id(base), *[id(part) for part in parts])
        entry = cache.get(key)
        if entry is not None:
            return entry[1]
        if base is None:
            ref = union(parts)
        else:
            ref = TypeRef(base.module, base.qualname, parts)
        if len(cache) >= _MAX_CACHED_CLASSES:
            cache.clear()
        # The key's ids stay valid while the entry keeps base and parts alive.
        cache[key] = ((base, *parts) if base is not None else parts, ref)
        return ref


def _spread_positions(length: int) -> tuple[int, ...]:
    """Return the positions after the head of a sequence of *length* elements whose
    elements are inspected: spread evenly over the rest, the last one included."""
    positions = _SPREAD_POSITIONS.get(length)
    if positions is None:
        rest = length - HEAD_ELEMENTS
        spread = {HEAD_ELEMENTS + rest * k // SPREAD_ELEMENTS for k in range(1, SPREAD_ELEMENTS)}
        positions = tuple(sorted(spread | {length - 1}))
        if len(_SPREAD_POSITIONS) >= _MAX_CACHED_CLASSES:
            _SPREAD_POSITIONS.clear()
        _SPREAD_POSITIONS[length] = positions
    return positions


# Sequence length -> the positions that _spread_positions() returns for it.
_SPREAD_POSITIONS: dict[int, tuple[int, ...]] = {}


def _walk_sequence(walk: _Walk, value: Any, base: TypeRef, depth: int) -> TypeRef:
    sampled = walk.sample_sequence(value)
    if not sampled:
        return base
    return walk.generic(base, (walk.union_at(sampled, depth),))


def _walk_tuple(walk: _Walk, value: Any, base: TypeRef, depth: int) -> TypeRef:
    length = len(value)
    if length == 0:
        return base
    if length <= MAX_TUPLE_LENGTH:
        granted = walk.take(length)
        members = [walk.element(value[i], depth) if i < granted else ANY for i in range(length)]
        return walk.generic(base, tuple(members))
    sampled = walk.sample_sequence(value)
    if not sampled:
        return walk.generic(base, (ANY, ELLIPSIS))
    return walk.generic(base, (walk.union_at(sampled, depth), ELLIPSIS))


def _walk_iterable(walk: _Walk, value: Any, base: TypeRef, depth: int) -> TypeRef:
    # Sets and deques are iterated by their own C iterators, which call no Python code.
    sampled = walk.sample_iterable(value)
    if not sampled:
        return base
    return walk.generic(base, (walk.union_at(sampled, depth),))


def _walk_mapping(walk: _Walk, value: Any, base: TypeRef, depth: int) -> TypeRef:
    # dict.items() unbound reads the C-level table even for subclasses of dict.
    items = walk.sample_iterable(dict.items(value))
    if not items:
        return base
    keys = walk.union_at((key for key, _ in items), depth)
    if base.qualname == "Counter":
        return walk.generic(base, (keys,))
    values = walk.union_at((item for _, item in items), depth)
    return walk.generic(base, (keys, values))


def _walk_dict(walk: _Walk, value: Any, base: TypeRef, depth: int) -> TypeRef:
    # Called for exact dicts only, so len() and dict.items() run no Python code, and
    # ``type(key) is str`` lets no str subclass through.
    if not 0 < len(value) <= min(MAX_SHAPE_KEYS, walk.budget):
        return _walk_mapping(walk, value, base, depth)
    # One copy of the entries, checked and used as it is, because another thread may
    # change the dict between two reads of it.
    items = list(dict.items(value))
    if not 0 < len(items) <= min(MAX_SHAPE_KEYS, walk.budget) or not all(
        type(key) is str and len(key) <= MAX_SHAPE_KEY_LENGTH for key, _ in items
    ):
        return _walk_mapping(walk, value, base, depth)
    walk.take(len(items))
    value_types = [walk.element(item, depth) for _, item in items]
    # NOTE: the shape keeps the program's key strings themselves, not copies. They are
    # immutable exact str objects, at most MAX_SHAPE_KEY_LENGTH characters long.
    names = tuple(key for key, _ in items)
    cache = walk.inferrer._shape_refs
    cache_key = (names, *[id(value_type) for value_type in value_types])
    entry = cache.get(cache_key)
    if entry is not None:
        return entry[1]
    ref = dict_shape(ShapeKey(name, value_type) for name, value_type in zip(names, value_types))
    if len(cache) >= _MAX_CACHED_CLASSES:
        cache.clear()
    # The key's ids stay valid while the entry keeps the value types alive.
    cache[cache_key] = (tuple(value_types), ref)
    return ref


_CONTAINERS: dict[int, Callable[[_Walk, Any, TypeRef, int], TypeRef]] = {
    id(list): _walk_sequence,
    id(tuple): _walk_tuple,
    id(set): _walk_iterable,
    id(frozenset): _walk_iterable,
    id(collections.deque): _walk_iterable,
    id(dict): _walk_dict,
    id(collections.defaultdict): _walk_mapping,
    id(collections.OrderedDict): _walk_mapping,
    id(collections.Counter): _walk_mapping,
}


def unwrap_async_yield(wrapper: object) -> object:
    """Return the value inside CPython's ``async_generator_wrapped_value``.

    An async generator's ``yield`` hands the tracer its value in this wrapper on
    CPython 3.9 to 3.13. The wrapper has no Python attribute for the value, but its
    GC traversal visits exactly that value.
    """
    referents = gc.get_referents(wrapper)
    return referents[0] if referents else None


def is_async_yield_wrapper(value: object) -> bool:
    """Whether *value* is the wrapper of a value that an async generator yielded."""
    cls = type(value)
    return _read_qualname(cls) == "async_generator_wrapped_value" and _read_module(cls) == "builtins"


_default_inferrer = TypeInferrer()


def type_of(value: object) -> TypeRef:
    """Return the type of *value*; ``Any`` when it cannot be inferred. Never raises.

    See the module documentation for what is inspected and the bounds on the cost.
    """
    return _default_inferrer.type_of(value)
