"""Tests of typetrace.inference: runtime values to TypeRefs."""

from __future__ import annotations

import collections
import gc
import itertools
import platform

import pytest

from typetrace.inference import (
    HEAD_ELEMENTS,
    MAX_BASES,
    MAX_ELEMENTS,
    MAX_SHAPE_KEY_LENGTH,
    MAX_SHAPE_KEYS,
    MAX_TUPLE_LENGTH,
    PURE_PYTHON_VARIABLE,
    TypeInferrer,
    failure_counts,
    type_of,
)
from typetrace.typemodel import ANY, CALLABLE, ELLIPSIS, NONE, FunctionRef, ShapeKey, TypeRef, dict_shape, union

INT = TypeRef("builtins", "int")
STR = TypeRef("builtins", "str")
FLOAT = TypeRef("builtins", "float")
BYTES = TypeRef("builtins", "bytes")


def builtin(name: str, *args: TypeRef) -> TypeRef:
    return TypeRef("builtins", name, args)


class Plain:
    class Inner:
        pass


class Hostile:
    """Raises from every special method that inference must not call."""

    calls = 0

    def _fail(self, *args: object) -> None:
        Hostile.calls += 1
        raise AssertionError("inference called a method of the value")

    __eq__ = __hash__ = __len__ = __iter__ = __getitem__ = __getattr__ = __bool__ = _fail  # type: ignore[assignment]

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        Hostile.calls += 1
        raise AssertionError("inference read __class__")


class HostileMeta(type):
    def __eq__(cls, other: object) -> bool:
        raise AssertionError("inference compared a class")

    def __hash__(cls) -> int:
        raise AssertionError("inference hashed a class")

    def __getattribute__(cls, name: str) -> object:
        if name in ("__module__", "__qualname__", "__name__"):
            raise AssertionError("inference read a class attribute through the metaclass")
        return super().__getattribute__(name)


class WithHostileMeta(metaclass=HostileMeta):
    pass


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(1, INT, id="int"),
        pytest.param(True, builtin("bool"), id="bool"),
        pytest.param("s", STR, id="str"),
        pytest.param(b"b", BYTES, id="bytes"),
        pytest.param(1.5, FLOAT, id="float"),
        pytest.param(None, NONE, id="None"),
        pytest.param([1, 2], builtin("list", INT), id="list"),
        pytest.param([1, "a"], builtin("list", union([INT, STR])), id="list of union"),
        pytest.param([], builtin("list"), id="empty list"),
        pytest.param({1.0}, builtin("set", FLOAT), id="set"),
        pytest.param(frozenset({b""}), builtin("frozenset", BYTES), id="frozenset"),
        pytest.param({"a": 1}, dict_shape([ShapeKey("a", INT)]), id="dict"),
        pytest.param({1: None, "a": 2}, builtin("dict", union([INT, STR]), union([INT, NONE])), id="mixed dict"),
        pytest.param({}, builtin("dict"), id="empty dict"),
        pytest.param((1, "x"), builtin("tuple", INT, STR), id="tuple"),
        pytest.param((), builtin("tuple"), id="empty tuple"),
        pytest.param(tuple(range(MAX_TUPLE_LENGTH + 1)), builtin("tuple", INT, ELLIPSIS), id="long tuple"),
        pytest.param([[1], []], builtin("list", builtin("list", INT)), id="nested list"),
        pytest.param(
            collections.defaultdict(list, a=[1]),
            TypeRef("collections", "defaultdict", (STR, builtin("list", INT))),
            id="defaultdict",
        ),
        pytest.param(collections.Counter("ab"), TypeRef("collections", "Counter", (STR,)), id="Counter"),
        pytest.param(collections.deque([1]), TypeRef("collections", "deque", (INT,)), id="deque"),
        pytest.param(Plain(), TypeRef(__name__, "Plain"), id="instance"),
        pytest.param(Plain.Inner(), TypeRef(__name__, "Plain.Inner"), id="nested class instance"),
        pytest.param(int, builtin("type", INT), id="builtin class"),
        pytest.param(Plain, builtin("type", TypeRef(__name__, "Plain")), id="class"),
        pytest.param(len, TypeRef("collections.abc", "Callable"), id="builtin function"),
        pytest.param(Plain().__init__, TypeRef("collections.abc", "Callable"), id="method-wrapper"),
        pytest.param(iter([1]), TypeRef("collections.abc", "Iterator"), id="list iterator"),
        pytest.param((x for x in ()), TypeRef("collections.abc", "Generator"), id="generator"),
        pytest.param({}.keys(), TypeRef("collections.abc", "KeysView"), id="dict keys"),
    ],
)
def test_type_of(value: object, expected: TypeRef) -> None:
    assert type_of(value) == expected


def test_hostile_value_methods_not_called() -> None:
    Hostile.calls = 0

    assert type_of(Hostile()) == TypeRef(__name__, "Hostile")
    assert type_of([Hostile(), Hostile()]) == builtin("list", TypeRef(__name__, "Hostile"))
    assert type_of({"k": Hostile()}) == dict_shape([ShapeKey("k", TypeRef(__name__, "Hostile"))])
    assert type_of({Hostile: 1}) == builtin("dict", builtin("type", TypeRef(__name__, "Hostile")), INT)
    assert Hostile.calls == 0


def test_hostile_metaclass_not_called() -> None:
    expected = TypeRef(__name__, "WithHostileMeta")

    assert type_of(WithHostileMeta()) == expected
    assert type_of(WithHostileMeta) == builtin("type", expected)
    assert type_of([WithHostileMeta(), WithHostileMeta]) == builtin("list", union([expected, builtin("type", expected)]))


def test_self_referencing_list_depth_limited() -> None:
    looped: list[object] = []
    looped.append(looped)

    result = type_of(looped)

    depth = 0
    while result.args:
        assert result.qualname == "list"
        result = result.args[0]
        depth += 1
    assert result == ANY
    assert depth == 4


def test_self_referencing_dict_depth_limited() -> None:
    looped: dict[str, object] = {}
    looped["self"] = looped

    result = type_of(looped)

    assert result.qualname == "dict"
    assert "Any" in str(result)


def test_large_list_inspects_bounded_elements() -> None:
    inferrer = TypeInferrer()
    values: list[object] = list(range(1_000_000))

    assert inferrer.type_of(values) == builtin("list", INT)
    assert inferrer.elements_inspected <= MAX_ELEMENTS
    assert inferrer.elements_inspected > HEAD_ELEMENTS


def test_large_list_samples_spread_elements() -> None:
    # Only the last element differs; the spread sample always includes it.
    values: list[object] = [0] * 100_000
    values[-1] = "last"

    assert type_of(values) == builtin("list", union([INT, STR]))


def test_nested_containers_share_budget() -> None:
    inferrer = TypeInferrer()
    nested = [[list(range(1000)) for _ in range(100)] for _ in range(100)]

    inferrer.type_of(nested)

    assert inferrer.elements_inspected <= MAX_ELEMENTS


def test_large_dict_inspects_bounded_entries() -> None:
    inferrer = TypeInferrer()

    assert inferrer.type_of({i: str(i) for i in range(100_000)}) == builtin("dict", INT, STR)
    assert inferrer.elements_inspected <= MAX_ELEMENTS


def test_iterator_not_consumed() -> None:
    numbers = iter([1, 2, 3])
    counter = itertools.count()

    type_of(numbers)
    type_of(counter)

    assert list(numbers) == [1, 2, 3]
    assert next(counter) == 0


def test_generator_not_started() -> None:
    started = []

    def generate() -> object:
        started.append(True)
        yield 1

    type_of(generate())

    assert started == []


def test_main_module_renames_main_classes() -> None:
    main_class = type("Script", (), {"__module__": "__main__"})
    inferrer = TypeInferrer(main_module="script")

    assert inferrer.type_of(main_class()) == TypeRef("script", "Script")
    assert inferrer.type_of([main_class]) == builtin("list", builtin("type", TypeRef("script", "Script")))
    assert type_of(main_class()) == TypeRef("__main__", "Script")


def test_failure_gives_any_and_is_counted() -> None:
    broken = type("Broken", (), {})
    broken.__module__ = 5  # type: ignore[assignment]
    before = sum(failure_counts().values())

    assert type_of(broken()) == ANY
    assert type_of([broken()]) == ANY
    assert sum(failure_counts().values()) == before + 2


def test_element_type_of_args_and_kwargs() -> None:
    inferrer = TypeInferrer()

    assert inferrer.element_type((1, "a")) == union([INT, STR])
    assert inferrer.element_type({"x": 1.0}) == FLOAT
    assert inferrer.element_type(()) is None
    assert inferrer.element_type({}) is None


# Base classes and test stand-ins. This module is test code by its name, so its own
# classes are test classes, and library-like classes get a module of their own.


def library_class(name: str, *bases: type) -> type:
    return type(name, bases or (object,), {"__module__": "shapes"})


def test_bases_nearest_first() -> None:
    shape = library_class("Shape")
    polygon = library_class("Polygon", shape)
    square = library_class("Square", polygon)

    ref = TypeInferrer().type_of(square())

    assert ref == TypeRef("shapes", "Square")
    assert ref.bases == (TypeRef("shapes", "Polygon"), TypeRef("shapes", "Shape"))


def test_bases_leave_out_unnameable_classes() -> None:
    import abc
    import io
    from typing import Generic, TypeVar

    def make_local() -> type:
        class Local:
            pass

        return Local

    local = make_local()
    local.__module__ = "shapes"
    element = TypeVar("element")

    class Mixed(local, abc.ABC, Generic[element]):  # type: ignore[valid-type,misc]
        __module__ = "shapes"

    assert TypeInferrer().type_of(Mixed()).bases == ()
    # The private bases _io._TextIOBase and _io._IOBase are listed by their io names.
    assert TypeInferrer().type_of(io.StringIO()).bases == (TypeRef("io", "TextIOBase"), TypeRef("io", "IOBase"))


def test_private_classes_named_publicly() -> None:
    """Classes of private modules and platform-specific classes are recorded by their
    public names, and private bases such as typing._Final are left out."""
    import io
    import pathlib
    import threading
    import typing

    inferrer = TypeInferrer()

    assert inferrer.type_of(io.BytesIO()) == TypeRef("io", "BytesIO")
    assert inferrer.type_of(threading.Lock()) == TypeRef("threading", "Lock")
    path = inferrer.type_of(pathlib.Path("."))
    assert path == TypeRef("pathlib", "Path")
    assert path.bases == (TypeRef("pathlib", "PurePath"),)
    alias = inferrer.type_of(typing.List[int])
    assert alias == TypeRef("typing", "_GenericAlias")
    assert alias.bases == ()


def test_bases_capped() -> None:
    classes = [library_class("Base0")]
    for number in range(1, MAX_BASES + 3):
        classes.append(library_class(f"Base{number}", classes[-1]))

    bases = TypeInferrer().type_of(classes[-1]()).bases

    assert len(bases) == MAX_BASES
    assert bases[0] == TypeRef("shapes", f"Base{MAX_BASES + 1}")


def test_builtin_bases_kept() -> None:
    assert type_of(True).bases == (INT,)
    assert type_of(KeyError()).bases == (
        TypeRef("builtins", "LookupError"),
        TypeRef("builtins", "Exception"),
        TypeRef("builtins", "BaseException"),
    )


class TestStandIns:
    def test_test_class_named_by_library_base(self) -> None:
        shape = library_class("Shape")
        fake = type("FakeShape", (shape,), {})

        ref = TypeInferrer(test_stand_ins=True).type_of(fake())

        assert ref == TypeRef("shapes", "Shape")
        assert TypeInferrer().type_of(fake()) == TypeRef(__name__, "FakeShape")

    def test_fake_datetime_named_datetime(self) -> None:
        from freezegun.api import FakeDatetime

        inferrer = TypeInferrer(test_stand_ins=True)
        value = FakeDatetime(2024, 1, 2)

        assert inferrer.type_of(value) == TypeRef("datetime", "datetime")
        assert inferrer.type_of(value).bases == (TypeRef("datetime", "date"),)
        assert inferrer.type_of(FakeDatetime) == builtin("type", TypeRef("datetime", "datetime"))
        assert type_of(value) == TypeRef("freezegun.api", "FakeDatetime")

    def test_class_without_library_base_kept(self) -> None:
        assert TypeInferrer(test_stand_ins=True).type_of(Plain()) == TypeRef(__name__, "Plain")

    def test_test_bases_left_out(self) -> None:
        fake = type("FakeShape", (), {})
        wrapper = type("Wrapper", (fake,), {"__module__": "shapes"})

        assert TypeInferrer(test_stand_ins=True).type_of(wrapper()).bases == ()
        assert TypeInferrer().type_of(wrapper()).bases == (TypeRef(__name__, "FakeShape"),)

    def test_mock_kept(self) -> None:
        from unittest import mock

        assert TypeInferrer(test_stand_ins=True).type_of(mock.Mock()) == TypeRef("unittest.mock", "Mock")
class StrSubclass(str):
    pass


class TestDictShapes:
    def test_keys_in_insertion_order(self) -> None:
        result = type_of({"name": "x", "id": 1, "score": None})

        assert [key.name for key in result.shape] == ["name", "id", "score"]
        assert [key.value for key in result.shape] == [STR, INT, NONE]
        assert all(key.required for key in result.shape)

    def test_degrades_to_dict_of_value_union(self) -> None:
        result = type_of({"name": "x", "id": 1})

        assert result.args == (STR, union([STR, INT]))
        assert str(result) == "{'name': str, 'id': int}"

    def test_nested_shape(self) -> None:
        result = type_of({"user": {"id": 1}, "tags": ["a"]})

        inner = dict_shape([ShapeKey("id", INT)])
        assert result.shape == (ShapeKey("user", inner), ShapeKey("tags", builtin("list", STR)))
        # The value type argument contains the nested dict without its shape.
        assert result.args == (STR, union([builtin("dict", STR, INT), builtin("list", STR)]))

    def test_every_value_inspected(self) -> None:
        values: dict[str, object] = {f"k{i}": i for i in range(MAX_SHAPE_KEYS)}
        values[f"k{MAX_SHAPE_KEYS - 1}"] = "last"

        result = type_of(values)

        assert len(result.shape) == MAX_SHAPE_KEYS
        assert result.shape[-1] == ShapeKey(f"k{MAX_SHAPE_KEYS - 1}", STR)

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            pytest.param({"a": 1, 2: 2}, builtin("dict", union([INT, STR]), INT), id="non-str key"),
            pytest.param({StrSubclass("a"): 1}, builtin("dict", TypeRef(__name__, "StrSubclass"), INT), id="str subclass key"),
            pytest.param({"a" * (MAX_SHAPE_KEY_LENGTH + 1): 1}, builtin("dict", STR, INT), id="long key"),
            pytest.param({str(i): i for i in range(MAX_SHAPE_KEYS + 1)}, builtin("dict", STR, INT), id="too many keys"),
            pytest.param(collections.OrderedDict(a=1), TypeRef("collections", "OrderedDict", (STR, INT)), id="OrderedDict"),
            pytest.param(collections.defaultdict(int, a=1), TypeRef("collections", "defaultdict", (STR, INT)), id="defaultdict"),
        ],
    )
    def test_no_shape(self, value: object, expected: TypeRef) -> None:
        result = type_of(value)

        assert result == expected
        assert result.shape == ()

    def test_longest_key_allowed(self) -> None:
        key = "a" * MAX_SHAPE_KEY_LENGTH

        assert type_of({key: 1}).shape == (ShapeKey(key, INT),)

    def test_huge_dict_inspects_bounded_entries(self) -> None:
        inferrer = TypeInferrer()

        result = inferrer.type_of({str(i): i for i in range(100_000)})

        assert result == builtin("dict", STR, INT)
        assert inferrer.elements_inspected <= HEAD_ELEMENTS

    def test_budget_too_small_gives_plain_dict(self) -> None:
        inferrer = TypeInferrer(max_elements=3)

        result = inferrer.type_of({"a": 1, "b": 2, "c": 3, "d": "x"})

        assert result == builtin("dict", STR, INT)
        assert inferrer.elements_inspected == 3

    def test_shapes_share_budget(self) -> None:
        inferrer = TypeInferrer()
        records = [{f"k{i}": i for i in range(MAX_SHAPE_KEYS)} for _ in range(100)]

        result = inferrer.type_of(records)

        assert inferrer.elements_inspected <= MAX_ELEMENTS
        # The first records take the budget; the rest are typed from what is left.
        assert {member.shape == () for member in result.args[0].args} == {True, False}

    def test_hostile_values_not_called(self) -> None:
        Hostile.calls = 0

        result = type_of({"a": Hostile(), "b": [Hostile()]})

        assert result.shape[0] == ShapeKey("a", TypeRef(__name__, "Hostile"))
        assert Hostile.calls == 0

    def test_empty_dict_next_to_shape_kept(self) -> None:
        result = type_of([{"a": 1}, {}])

        assert result == builtin("list", union([builtin("dict"), dict_shape([ShapeKey("a", INT)])]))


class TestReuse:
    """An inferrer returns the reference it built before for the same type."""

    @pytest.mark.parametrize(
        "make",
        [
            pytest.param(lambda: [1, 2, 3], id="list"),
            pytest.param(lambda: [1, "a", None], id="union elements"),
            pytest.param(lambda: (1, "a"), id="tuple"),
            pytest.param(lambda: {"a": 1, "b": [2.0]}, id="shape"),
            pytest.param(lambda: {1: "a"}, id="dict"),
        ],
    )
    def test_same_object_for_same_type(self, make: object) -> None:
        inferrer = TypeInferrer()

        first = inferrer.type_of(make())  # type: ignore[operator]
        second = inferrer.type_of(make())  # type: ignore[operator]

        assert second is first
        assert second == type_of(make())  # type: ignore[operator]

    def test_other_keys_other_shape(self) -> None:
        inferrer = TypeInferrer()

        first = inferrer.type_of({"a": 1})
        second = inferrer.type_of({"b": 1})

        assert first.shape == (ShapeKey("a", INT),)
        assert second.shape == (ShapeKey("b", INT),)

    def test_new_element_class_in_union(self) -> None:
        inferrer = TypeInferrer()

        inferrer.type_of([1, 2])
        result = inferrer.type_of([1, 2, "a"])

        assert result == builtin("list", union([INT, STR]))

    def test_cache_bounded(self) -> None:
        inferrer = TypeInferrer()

        for length in range(1, 5000):
            inferrer.type_of({f"k{length}": 1})
            inferrer.type_of((1,) * (length % MAX_TUPLE_LENGTH + 1) + ("a",) * (length // MAX_TUPLE_LENGTH % 5))

        assert len(inferrer._built_refs) <= 4096
        assert len(inferrer._shape_refs) <= 4096


def named(qualname: str, bound: bool = False, module: str = __name__) -> TypeRef:
    return TypeRef("collections.abc", "Callable", function=FunctionRef(module, qualname, bound))


class Handler:
    def run(self, value: int) -> int:
        return value

    @classmethod
    def create(cls) -> Handler:
        return cls()

    @staticmethod
    def check(value: int) -> bool:
        return value > 0


def make_inner() -> object:
    def inner() -> None:
        pass

    return inner


class TestFunctions:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            pytest.param(builtin, named("builtin"), id="function"),
            pytest.param(Handler().run, named("Handler.run", bound=True), id="bound-method"),
            pytest.param(Handler.create, named("Handler.create", bound=True), id="classmethod"),
            pytest.param(Handler.check, named("Handler.check"), id="staticmethod"),
            pytest.param(Handler.run, named("Handler.run"), id="method-from-class"),
            pytest.param(make_inner(), named("make_inner.<locals>.inner"), id="locals"),
            pytest.param(lambda: None, CALLABLE, id="lambda"),
            pytest.param(len, CALLABLE, id="builtin"),
            pytest.param([].append, CALLABLE, id="builtin-method"),
            pytest.param(Plain().__init__, CALLABLE, id="method-wrapper"),
            pytest.param(str.join, CALLABLE, id="method-descriptor"),
            pytest.param(Plain().__class__.__subclasshook__, CALLABLE, id="builtin-classmethod"),
        ],
    )
    def test_named_function(self, value: object, expected: TypeRef) -> None:
        ref = type_of(value)

        assert ref == expected
        assert ref.function == expected.function

    def test_partial_is_its_class(self) -> None:
        import functools

        assert type_of(functools.partial(builtin, "int")) == TypeRef("functools", "partial")

    def test_method_of_callable_object_is_bare(self) -> None:
        import types

        method = types.MethodType(len, Plain())

        assert type_of(method) == CALLABLE

    def test_unnamed_module_is_bare(self) -> None:
        def function() -> None:
            pass

        function.__module__ = None  # type: ignore[assignment]

        assert type_of(function) == CALLABLE

    def test_renamed_function_keeps_its_names(self) -> None:
        def original() -> None:
            pass

        original.__qualname__ = "Renamed.name"
        original.__module__ = "pkg.other"

        assert type_of(original) == named("Renamed.name", module="pkg.other")

    def test_hostile_receiver_not_called(self) -> None:
        Hostile.calls = 0

        class Receiver(Hostile):
            def method(self) -> None:
                pass

        bound = Receiver.method.__get__(Receiver())
        qualname = Receiver.method.__qualname__

        assert type_of(bound) == named(qualname, bound=True)
        assert Hostile.calls == 0

    def test_in_container(self) -> None:
        assert type_of([builtin, len]) == builtin("list", union([named("builtin"), CALLABLE]))

    def test_main_module_renames_main_functions(self) -> None:
        def function() -> None:
            pass

        function.__module__ = "__main__"
        inferrer = TypeInferrer(main_module="script")

        assert inferrer.type_of(function) == named(function.__qualname__, module="script")

    def test_rename_main_forgets_cached_names(self) -> None:
        def function() -> None:
            pass

        function.__module__ = "__mp_main__"
        inferrer = TypeInferrer()
        assert inferrer.type_of(function) == named(function.__qualname__, module="__mp_main__")

        inferrer.rename_main("__mp_main__", "script")

        assert inferrer.type_of(function) == named(function.__qualname__, module="script")

    def test_cached_reference_is_shared(self) -> None:
        inferrer = TypeInferrer()
        receiver = Handler()

        assert inferrer.type_of(receiver.run) is inferrer.type_of(receiver.run)
        assert inferrer.type_of(builtin) is inferrer.type_of(builtin)
        assert inferrer.type_of(builtin) != inferrer.type_of(Handler.run)


class TestPlainType:
    def test_known_plain_class(self) -> None:
        inferrer = TypeInferrer()
        assert inferrer.plain_type(3) is None
        int_type = inferrer.type_of(3)

        assert inferrer.plain_type(4) is int_type

    def test_none_is_plain(self) -> None:
        assert TypeInferrer().plain_type(None) is NONE

    def test_containers_are_not_plain(self) -> None:
        inferrer = TypeInferrer()
        inferrer.type_of([1])

        assert inferrer.plain_type([1]) is None

    def test_generation_changes_when_a_class_dies(self) -> None:
        inferrer = TypeInferrer()
        short_lived = type("ShortLived", (), {})
        inferrer.type_of(short_lived())
        before = inferrer.generation

        del short_lived
        gc.collect()

        assert inferrer.generation != before


def _inferrer(
    monkeypatch: pytest.MonkeyPatch, *, pure: bool, max_elements: int = MAX_ELEMENTS
) -> TypeInferrer:
    if pure:
        monkeypatch.setenv(PURE_PYTHON_VARIABLE, "1")
    else:
        monkeypatch.delenv(PURE_PYTHON_VARIABLE, raising=False)
    inferrer = TypeInferrer(max_elements=max_elements)
    monkeypatch.delenv(PURE_PYTHON_VARIABLE, raising=False)
    return inferrer


# Values that take every branch of the walk: short and long lists and tuples, sets,
# dicts by shape and by their first items, nesting to the depth limit, and None.
_WALKED_VALUES: list[object] = [
    [],
    [1],
    [1, "a", 1, None, None],
    [None, None],
    [0] * 9,
    [0] * 99 + ["last"],
    list(range(10_000)),
    [[1], [2, "b"], []],
    [(1, "a"), (2, "b")],
    [Plain(), 1, Plain()],
    (),
    (1,),
    (1, "a", None, 2.5),
    tuple(range(MAX_TUPLE_LENGTH)),
    tuple(range(MAX_TUPLE_LENGTH + 1)),
    (1,) * 30 + ("x",),
    ((1, 2), [3]),
    set(),
    {1, "a"},
    frozenset({1.0}),
    {"a": {1, 2}},
    {},
    {"a": 1},
    {"a": 1, "b": "x", "c": None},
    {1: "a", 2: "b"},
    {"a" * (MAX_SHAPE_KEY_LENGTH + 1): 1},
    {f"k{i}": i for i in range(MAX_SHAPE_KEYS + 1)},
    {f"k{i}": i for i in range(MAX_SHAPE_KEYS)},
    {"a": 1, 2: "b"},
    {"id": 1, "tags": ("a", "b"), "rows": [{"x": 1.5}]},
    [[[[[[1]]]]]],
    [{"a": [{"b": (1, [2])}]}] * 20,
    [{f"k{i}": i for i in range(MAX_SHAPE_KEYS)} for _ in range(10)],
    None,
]


class TestContainerTypesInC:
    def test_built_on_cpython(self, monkeypatch: pytest.MonkeyPatch) -> None:
        if platform.python_implementation() != "CPython":
            pytest.skip("the C extension is built on CPython only")
        try:
            from typetrace import _containers  # noqa: F401
        except ImportError as error:
            pytest.fail(
                f"typetrace._containers did not build ({error}); install a C compiler and the "
                "Python headers, then reinstall typetrace"
            )

        assert _inferrer(monkeypatch, pure=False).container_types is not None

    def test_pure_python_variable_turns_it_off(self, monkeypatch: pytest.MonkeyPatch) -> None:
        assert _inferrer(monkeypatch, pure=True).container_types is None

    @pytest.mark.parametrize("max_elements", [MAX_ELEMENTS, 3, 0])
    @pytest.mark.parametrize(
        "value",
        _WALKED_VALUES,
        ids=[f"{type(value).__name__}-{index}" for index, value in enumerate(_WALKED_VALUES)],
    )
    def test_same_type_and_budget_as_python_walk(
        self, monkeypatch: pytest.MonkeyPatch, value: object, max_elements: int
    ) -> None:
        in_c = _inferrer(monkeypatch, pure=False, max_elements=max_elements)
        in_python = _inferrer(monkeypatch, pure=True, max_elements=max_elements)
        container_types = in_c.container_types
        if container_types is None:
            pytest.skip("typetrace._containers is not built")
        # The first value of its form fills the caches with the references of its
        # classes, and the second with the unions built from them.
        for _ in range(2):
            in_c.type_of(value)
            in_python.type_of(value)
        typed = container_types.typed
        elements = (in_c.elements_inspected, in_python.elements_inspected)

        result = in_c.type_of(value)

        assert container_types.typed == typed + 1
        assert result == in_python.type_of(value)
        assert in_c.elements_inspected - elements[0] == in_python.elements_inspected - elements[1]
        # The walk in Python gives the same object from the same caches.
        in_c.container_types = None
        assert in_c.type_of(value) is result

    def test_new_element_class_goes_to_python_walk(self, monkeypatch: pytest.MonkeyPatch) -> None:
        inferrer = _inferrer(monkeypatch, pure=False)
        container_types = inferrer.container_types
        if container_types is None:
            pytest.skip("typetrace._containers is not built")
        inferrer.type_of([1])

        assert inferrer.type_of([Plain()]) == builtin("list", TypeRef(__name__, "Plain"))
        assert container_types.typed == 0
        assert inferrer.type_of([Plain()]) == builtin("list", TypeRef(__name__, "Plain"))
        assert container_types.typed == 1

    def test_dead_class_is_not_named(self, monkeypatch: pytest.MonkeyPatch) -> None:
        inferrer = _inferrer(monkeypatch, pure=False)
        if inferrer.container_types is None:
            pytest.skip("typetrace._containers is not built")
        for name in ("First", "Second", "Third"):
            short_lived = type(name, (), {})
            values = [short_lived(), short_lived()]
            inferrer.type_of(values)

            assert inferrer.type_of(values).args[0].qualname == name
            del short_lived, values
            gc.collect()

    def test_cleared_caches_go_to_python_walk(self, monkeypatch: pytest.MonkeyPatch) -> None:
        inferrer = _inferrer(monkeypatch, pure=False)
        container_types = inferrer.container_types
        if container_types is None:
            pytest.skip("typetrace._containers is not built")
        inferrer.type_of({"a": [1]})
        inferrer.rename_main("__main__", "script")

        assert inferrer.type_of({"a": [1]}) == dict_shape([ShapeKey("a", builtin("list", INT))])
        assert container_types.typed == 0

    def test_second_init_rejected(self, monkeypatch: pytest.MonkeyPatch) -> None:
        inferrer = _inferrer(monkeypatch, pure=False)
        container_types = inferrer.container_types
        if container_types is None:
            pytest.skip("typetrace._containers is not built")
        for _ in range(3):
            inferrer.type_of(list(range(5000)))
        # Limits that overflowed the walk's arrays when a failed init kept them.
        limits = {
            "max_elements": 1_000_000,
            "max_depth": 4,
            "head_elements": 1000,
            "spread_elements": 8,
            "max_tuple_length": MAX_TUPLE_LENGTH,
            "max_shape_keys": MAX_SHAPE_KEYS,
            "max_shape_key_length": MAX_SHAPE_KEY_LENGTH,
        }

        with pytest.raises(RuntimeError, match="initialized already"):
            second_init = container_types.__init__  # type: ignore[misc]
            second_init({}, {}, {}, {}, NONE, ANY, ELLIPSIS, **limits)
        assert container_types.infer(list(range(5000))) == builtin("list", INT)


@pytest.mark.parametrize("pure", [False, True], ids=["c", "python"])
@pytest.mark.parametrize("max_elements", [-1, 2.0, True])
def test_invalid_max_elements_rejected(
    monkeypatch: pytest.MonkeyPatch, pure: bool, max_elements: object
) -> None:
    with pytest.raises(ValueError, match="max_elements must be an int"):
        _inferrer(monkeypatch, pure=pure, max_elements=max_elements)  # type: ignore[arg-type]


def test_max_elements_is_read_only() -> None:
    inferrer = TypeInferrer(max_elements=3)

    with pytest.raises(AttributeError):
        inferrer.max_elements = 5  # type: ignore[misc]
    assert inferrer.max_elements == 3

