"""Tests for combining the observed types of one slot into one annotation."""

from __future__ import annotations

import itertools
from typing import Optional

import pytest

from typetrace.combining import (
    DEFAULT_MAX_UNION_SIZE,
    MAX_SHAPE_KEY_SETS,
    MIN_SHAPE_CALLS,
    TypeVarMatch,
    combine_calls,
    combine_types,
    drop_test_classes,
    match_type_var,
)
from typetrace.typemodel import (
    ANY,
    CALLABLE,
    ELLIPSIS,
    MAX_SHAPE_KEYS,
    NONE,
    SELF,
    FunctionRef,
    ShapeKey,
    TypeRef,
    callable_type,
    dict_shape,
    receiver,
    union,
    without_shapes,
)

BOOL = TypeRef("builtins", "bool")
INT = TypeRef("builtins", "int")
FLOAT = TypeRef("builtins", "float")
COMPLEX = TypeRef("builtins", "complex")
STR = TypeRef("builtins", "str")
BYTES = TypeRef("builtins", "bytes")
DECIMAL = TypeRef("decimal", "Decimal")
PATH = TypeRef("pathlib", "Path")


def generic(name: str, *args: TypeRef) -> TypeRef:
    return TypeRef("builtins", name, args)


def text(*types: TypeRef, max_union_size: int = DEFAULT_MAX_UNION_SIZE) -> str:
    return str(combine_types(types, max_union_size=max_union_size))


class TestNumericTower:
    @pytest.mark.parametrize(
        ("types", "expected"),
        [
            ((INT, FLOAT), "float"),
            ((INT, FLOAT, COMPLEX), "complex"),
            ((FLOAT, COMPLEX), "complex"),
            ((INT, COMPLEX), "complex"),
            ((BOOL, INT), "int"),
            ((BOOL, FLOAT), "float"),
            ((BOOL, INT, FLOAT, COMPLEX), "complex"),
            ((BOOL,), "bool"),
            ((BOOL, STR), "bool | str"),
            ((INT, STR), "int | str"),
            ((INT, FLOAT, STR), "float | str"),
            ((INT, DECIMAL), "int | decimal.Decimal"),
        ],
    )
    def test_merged(self, types: tuple[TypeRef, ...], expected: str) -> None:
        assert text(*types) == expected

    def test_inside_containers(self) -> None:
        assert text(generic("list", union([INT, FLOAT]))) == "list[float]"

    def test_none_kept(self) -> None:
        assert text(INT, FLOAT, NONE) == "float | None"


class TestNone:
    def test_optional_kept(self) -> None:
        assert text(STR, NONE) == "str | None"

    def test_only_none(self) -> None:
        assert combine_types([NONE]) == NONE

    def test_none_not_counted_in_size(self) -> None:
        assert text(INT, STR, NONE, max_union_size=2) == "int | str | None"


class TestContainers:
    def test_empty_merged_with_non_empty(self) -> None:
        assert text(generic("list"), generic("list", INT)) == "list[int]"

    def test_empty_alone_kept(self) -> None:
        assert text(generic("dict")) == "dict"

    def test_list_elements_merged(self) -> None:
        assert text(generic("list", INT), generic("list", STR)) == "list[int | str]"

    def test_dict_values_merged(self) -> None:
        assert text(generic("dict", STR, INT), generic("dict", STR, STR)) == "dict[str, int | str]"

    def test_nested_merged(self) -> None:
        inner_int = generic("list", INT)
        inner_str = generic("list", STR)
        assert text(generic("dict", STR, inner_int), generic("dict", STR, inner_str)) == "dict[str, list[int | str]]"

    def test_different_classes_kept_apart(self) -> None:
        assert text(generic("list", INT), generic("set", STR)) == "list[int] | set[str]"

    def test_callable_ellipsis_kept(self) -> None:
        callable_ref = TypeRef("typing", "Callable", (ELLIPSIS, ANY))
        assert combine_types([callable_ref, callable_ref]) == callable_ref


class TestCallables:
    @pytest.mark.parametrize(
        ("types", "expected"),
        [
            pytest.param(
                [callable_type([INT], STR), callable_type([INT], STR)],
                callable_type([INT], STR),
                id="identical",
            ),
            pytest.param(
                [callable_type([INT], STR), callable_type([INT], INT)],
                callable_type([INT], union([INT, STR])),
                id="same-parameters",
            ),
            pytest.param(
                [callable_type([INT], STR), callable_type([STR], STR)],
                callable_type(None, STR),
                id="other-parameters",
            ),
            pytest.param(
                [callable_type([INT], STR), callable_type([INT, INT], BYTES)],
                callable_type(None, union([BYTES, STR])),
                id="other-arity",
            ),
            pytest.param(
                [callable_type(None, INT), callable_type([INT], FLOAT)],
                callable_type(None, FLOAT),
                id="ellipsis-and-list",
            ),
            pytest.param([callable_type([INT], STR), CALLABLE], CALLABLE, id="bare"),
            pytest.param(
                [callable_type([INT], ANY), callable_type([STR], INT)],
                CALLABLE,
                id="nothing-shared",
            ),
            pytest.param(
                [
                    TypeRef("collections.abc", "Callable", function=FunctionRef("m", "f")),
                    TypeRef("collections.abc", "Callable", function=FunctionRef("m", "g")),
                ],
                CALLABLE,
                id="unresolved-functions",
            ),
        ],
    )
    def test_merged(self, types: list[TypeRef], expected: TypeRef) -> None:
        assert combine_types(types) == expected

    def test_parameters_never_joined(self) -> None:
        """A union of parameter types would accept callables that reject one of them."""
        combined = combine_types([callable_type([INT], NONE), callable_type([STR], NONE)])

        assert combined == callable_type(None, NONE)

    def test_other_members_kept(self) -> None:
        combined = combine_types([callable_type([INT], STR), INT, callable_type([STR], INT), NONE])

        assert combined == union([INT, callable_type(None, union([INT, STR])), NONE])

    def test_nested_in_list(self) -> None:
        first = generic("list", callable_type([INT], STR))
        second = generic("list", callable_type([STR], STR))

        assert combine_types([first, second]) == generic("list", callable_type(None, STR))

    def test_bare_callable_kept_in_union(self) -> None:
        assert union([CALLABLE, callable_type([INT], STR)]).is_union


class TestTuples:
    def test_same_length_elementwise(self) -> None:
        first = generic("tuple", INT, STR)
        second = generic("tuple", BYTES, STR)
        assert text(first, second) == "tuple[bytes | int, str]"

    def test_same_length_numeric(self) -> None:
        assert text(generic("tuple", INT, STR), generic("tuple", FLOAT, STR)) == "tuple[float, str]"

    def test_varying_length_becomes_variadic(self) -> None:
        assert text(generic("tuple", INT), generic("tuple", INT, STR)) == "tuple[int | str, ...]"

    def test_empty_tuple_makes_variadic(self) -> None:
        assert text(generic("tuple"), generic("tuple", INT)) == "tuple[int, ...]"

    def test_variadic_with_fixed(self) -> None:
        variadic = generic("tuple", STR, ELLIPSIS)
        assert text(variadic, generic("tuple", INT, INT)) == "tuple[int | str, ...]"

    def test_variadic_pair_not_elementwise(self) -> None:
        # tuple[int, ...] has two arguments, like a pair, but is not one.
        assert text(generic("tuple", INT, ELLIPSIS), generic("tuple", STR, ELLIPSIS)) == "tuple[int | str, ...]"

    def test_tuple_next_to_other_types(self) -> None:
        assert text(generic("tuple", INT, INT), generic("tuple", STR, INT), NONE) == "tuple[int | str, int] | None"

    def test_one_element_becomes_variadic(self) -> None:
        """A one-element tuple is taken for a sequence that held one item."""
        assert text(generic("tuple", STR)) == "tuple[str, ...]"
        assert text(generic("tuple", INT), generic("tuple", STR), NONE) == "tuple[int | str, ...] | None"
        assert text(generic("list", generic("tuple", STR))) == "list[tuple[str, ...]]"


class TestWidening:
    def test_default_size_kept(self) -> None:
        five = (INT, STR, BYTES, DECIMAL, PATH)
        assert text(*five) == "bytes | int | str | decimal.Decimal | pathlib.Path"

    def test_past_size_becomes_any(self) -> None:
        six = (INT, STR, BYTES, DECIMAL, PATH, TypeRef("uuid", "UUID"))
        assert combine_types(six) == ANY

    def test_any_absorbs_none(self) -> None:
        assert combine_types([INT, STR, BYTES, NONE], max_union_size=2) == ANY

    def test_mixed_containers_widen_to_collection(self) -> None:
        widened = text(generic("list", INT), generic("tuple", STR, STR), generic("set", INT), max_union_size=2)
        assert widened == "collections.abc.Collection[int | str]"

    def test_list_and_tuple_widen_to_sequence(self) -> None:
        widened = text(generic("list", INT), generic("tuple", FLOAT, FLOAT), max_union_size=1)
        assert widened == "collections.abc.Sequence[float]"

    def test_sets_widen_to_set_of_any(self) -> None:
        widened = text(generic("set", INT), generic("frozenset", STR), max_union_size=1)
        assert widened == "collections.abc.Set[typing.Any]"

    def test_dict_keys_iterated(self) -> None:
        widened = text(generic("dict", STR, INT), generic("list", STR), max_union_size=1)
        assert widened == "collections.abc.Collection[str]"

    def test_empty_containers_give_any_elements(self) -> None:
        widened = text(generic("list"), generic("tuple"), max_union_size=1)
        assert widened == "collections.abc.Sequence[typing.Any]"

    def test_widened_keeps_none(self) -> None:
        widened = text(generic("list", INT), generic("tuple", INT), NONE, max_union_size=1)
        assert widened == "collections.abc.Sequence[int] | None"

    def test_element_union_widened(self) -> None:
        assert text(generic("list", INT), generic("list", STR), generic("list", BYTES), max_union_size=2) == "list[typing.Any]"

    def test_mixed_members_become_any(self) -> None:
        assert combine_types([generic("list", INT), STR], max_union_size=1) == ANY

    def test_invalid_size_raises(self) -> None:
        with pytest.raises(ValueError, match="at least 1"):
            combine_types([INT], max_union_size=0)


def test_empty_input_raises() -> None:
    with pytest.raises(ValueError, match="at least one"):
        combine_types([])


def test_any_absorbs() -> None:
    assert combine_types([INT, ANY]) == ANY


def test_order_independent() -> None:
    types = [INT, STR, NONE, generic("list", BYTES), generic("list", INT), DECIMAL]
    results = {combine_types(order) for order in itertools.permutations(types)}
    assert len(results) == 1


def test_nested_unions_flattened() -> None:
    assert text(union([INT, STR]), union([BYTES, FLOAT])) == "bytes | float | str"


def call(returned: Optional[TypeRef], **arg_types: TypeRef) -> tuple[dict[str, TypeRef], Optional[TypeRef]]:
    return dict(arg_types), returned


class TestMatchTypeVar:
    def test_add_matches(self) -> None:
        calls = [call(INT, a=INT, b=INT), call(STR, a=STR, b=STR)]
        match = match_type_var(calls, ["a", "b"])
        assert match == TypeVarMatch(("a", "b"), (INT, STR))

    def test_constraints_in_union_order(self) -> None:
        calls = [call(STR, a=STR), call(BYTES, a=BYTES), call(INT, a=INT)]
        match = match_type_var(calls, ["a"])
        assert match is not None
        assert match.constraints == (BYTES, INT, STR)

    def test_only_some_parameters_linked(self) -> None:
        calls = [call(INT, a=INT, n=INT), call(STR, a=STR, n=INT)]
        assert match_type_var(calls, ["a", "n"]) == TypeVarMatch(("a",), (INT, STR))

    def test_one_call_is_no_match(self) -> None:
        assert match_type_var([call(INT, a=INT)], ["a"]) is None

    def test_one_return_type_is_no_match(self) -> None:
        assert match_type_var([call(INT, a=INT), call(INT, a=INT, b=STR)], ["a"]) is None

    def test_mismatched_call_is_no_match(self) -> None:
        calls = [call(INT, a=INT, b=INT), call(STR, a=STR, b=STR), call(STR, a=INT, b=STR)]
        # b still matches, but a varies without matching, so the call does not fit.
        assert match_type_var(calls, ["a", "b"]) is None

    def test_other_varying_parameter_is_no_match(self) -> None:
        # The return could depend on b as well, which the pattern cannot express.
        calls = [call(INT, a=INT, b=INT), call(STR, a=STR, b=BYTES)]
        assert match_type_var(calls, ["a"]) is None

    def test_raised_call_is_no_match(self) -> None:
        assert match_type_var([call(INT, a=INT), call(STR, a=STR), call(None, a=STR)], ["a"]) is None

    def test_none_return_is_no_match(self) -> None:
        assert match_type_var([call(INT, a=INT), call(NONE, a=NONE)], ["a"]) is None

    def test_same_class_twice_is_no_match(self) -> None:
        calls = [call(generic("list", INT), a=generic("list", INT)), call(generic("list", STR), a=generic("list", STR))]
        assert match_type_var(calls, ["a"]) is None

    def test_too_many_constraints(self) -> None:
        calls = [call(ref, a=ref) for ref in (INT, STR, BYTES)]
        assert match_type_var(calls, ["a"], max_constraints=2) is None
        assert match_type_var(calls, ["a"], max_constraints=3) is not None

    def test_non_candidate_not_linked(self) -> None:
        calls = [call(INT, a=INT, b=INT), call(STR, a=STR, b=STR)]
        assert match_type_var(calls, ["a"]) is None


MAGIC_MOCK = TypeRef("unittest.mock", "MagicMock")
MOCK = TypeRef("unittest.mock", "Mock")


class TestTestDoubles:
    def test_mock_dropped_next_to_real_type(self) -> None:
        """A mock seen next to a real type leaves only the real type."""
        assert combine_types([INT, MAGIC_MOCK]) == INT

    def test_only_mocks_give_any(self) -> None:
        """A slot where only mocks were seen is Any, never a mock class."""
        assert combine_types([MOCK, MAGIC_MOCK]) == ANY

    def test_mock_in_container_argument(self) -> None:
        """Mocks are dropped inside container arguments too."""
        assert combine_types([TypeRef("builtins", "list", (TypeRef("typing", "Union", (INT, MOCK)),))]) == TypeRef(
            "builtins", "list", (INT,)
        )

    def test_mock_backport_module(self) -> None:
        """Classes of the mock backport count as test doubles."""
        assert combine_types([STR, TypeRef("mock", "Mock")]) == STR


SHAPE = TypeRef("shapes", "Shape")
POLYGON = TypeRef("shapes", "Polygon", bases=(SHAPE,))
SQUARE = TypeRef("shapes", "Square", bases=(POLYGON, SHAPE))
TRIANGLE = TypeRef("shapes", "Triangle", bases=(POLYGON, SHAPE))
CIRCLE = TypeRef("shapes", "Circle", bases=(SHAPE,))
CAR = TypeRef("vehicles", "Car", bases=(TypeRef("vehicles", "Vehicle"),))
DATE = TypeRef("datetime", "date")
DATETIME = TypeRef("datetime", "datetime", bases=(DATE,))


class TestCommonBases:
    def test_siblings_become_base(self) -> None:
        """Two classes with a common base become that base."""
        assert combine_types([SQUARE, TRIANGLE]) == POLYGON

    def test_nearest_base_chosen(self) -> None:
        assert combine_types([SQUARE, CIRCLE]) == SHAPE
        assert combine_types([SQUARE, TRIANGLE, CIRCLE]) == SHAPE

    def test_base_keeps_its_bases(self) -> None:
        assert combine_types([SQUARE, TRIANGLE]).bases == (SHAPE,)

    def test_subclass_next_to_base_dropped(self) -> None:
        assert combine_types([DATETIME, DATE]) == DATE

    def test_unrelated_classes_kept(self) -> None:
        assert combine_types([SQUARE, CAR, INT]) == union([SQUARE, CAR, INT])

    def test_groups_joined_separately(self) -> None:
        other_car = TypeRef("vehicles", "Van", bases=(TypeRef("vehicles", "Vehicle"),))
        assert combine_types([SQUARE, TRIANGLE, CAR, other_car, NONE]) == union(
            [POLYGON, TypeRef("vehicles", "Vehicle"), NONE]
        )

    def test_no_bases_recorded_kept(self) -> None:
        """References decoded from traces without bases stay a union."""
        assert combine_types([TypeRef("shapes", "Square"), TypeRef("shapes", "Triangle")]) == union(
            [TypeRef("shapes", "Square"), TypeRef("shapes", "Triangle")]
        )

    def test_bases_from_any_observation(self) -> None:
        """A reference with bases counts for an equal one without, in either order."""
        bare_square = TypeRef("shapes", "Square")
        assert combine_types([bare_square, SQUARE, TRIANGLE]) == POLYGON
        assert combine_types([TRIANGLE, SQUARE, bare_square]) == POLYGON

    def test_generic_members_not_joined(self) -> None:
        ordered = TypeRef("collections", "OrderedDict", (STR, INT), bases=(TypeRef("builtins", "dict"),))
        assert combine_types([ordered, generic("dict", STR, INT)]) == union([ordered, generic("dict", STR, INT)])

    def test_joined_inside_containers(self) -> None:
        assert combine_types([generic("list", SQUARE), generic("list", TRIANGLE)]) == generic("list", POLYGON)

    def test_joined_before_widening(self) -> None:
        """Six siblings fit one base instead of widening to Any."""
        siblings = [TypeRef("shapes", f"Shape{number}", bases=(SHAPE,)) for number in range(6)]
        assert combine_types(siblings, max_union_size=5) == SHAPE

    def test_builtin_bases(self) -> None:
        key_error = TypeRef("builtins", "KeyError", bases=(TypeRef("builtins", "LookupError"),))
        index_error = TypeRef("builtins", "IndexError", bases=(TypeRef("builtins", "LookupError"),))
        assert combine_types([key_error, index_error]) == TypeRef("builtins", "LookupError")


class TestReceivers:
    def test_receivers_become_self(self) -> None:
        """Receivers of different classes combine to Self, keeping their combined type."""
        combined = combine_types([receiver(SQUARE), receiver(TRIANGLE)])
        assert combined == receiver(POLYGON)

    def test_receiver_or_none(self) -> None:
        assert combine_types([receiver(SQUARE), NONE]) == union([receiver(SQUARE), NONE])

    def test_other_value_falls_back_to_class(self) -> None:
        """A method that once returned another instance gets the class, not Self."""
        assert combine_types([receiver(SQUARE), SQUARE]) == SQUARE
        assert combine_types([receiver(SQUARE), TRIANGLE, NONE]) == union([POLYGON, NONE])

    def test_combined_self_alone(self) -> None:
        assert combine_types([SELF]) == SELF

    def test_any_absorbs_receiver(self) -> None:
        assert combine_types([receiver(SQUARE), ANY]) == ANY


class TestTestClasses:
    def test_dropped_next_to_other_types(self) -> None:
        assert drop_test_classes([INT, TypeRef("tests.test_shapes", "FakeShape")]) == [INT]

    def test_dropped_from_union_and_arguments(self) -> None:
        fake = TypeRef("conftest", "FakeShape")
        observed = generic("dict", STR, union([INT, fake]))
        assert drop_test_classes([observed, generic("list", fake)]) == [
            generic("dict", STR, INT),
            generic("list", ANY),
        ]

    def test_only_test_classes_give_nothing(self) -> None:
        assert drop_test_classes([TypeRef("shapes_test", "Fake"), TypeRef("freezegun.api", "FakeDate")]) == []

    def test_library_classes_kept(self) -> None:
        kept = [SQUARE, TypeRef("testing_tools", "Helper"), TypeRef("contest", "Entry")]
        assert drop_test_classes(kept) == kept
def shape(**values: TypeRef) -> TypeRef:
    """A dict shape with the keyword names as required keys."""
    return dict_shape(ShapeKey(name, value) for name, value in values.items())


class TestDictShapes:
    def test_same_keys_all_required(self) -> None:
        assert text(shape(id=INT, name=STR), shape(id=INT, name=STR)) == "{'id': int, 'name': str}"

    def test_missing_key_not_required(self) -> None:
        combined = combine_types([shape(id=INT, name=STR), shape(id=INT)])

        assert combined.shape == (ShapeKey("id", INT), ShapeKey("name", STR, required=False))

    def test_values_combined_per_key(self) -> None:
        combined = combine_types([shape(id=INT, score=FLOAT), shape(id=INT, score=INT), shape(id=NONE, score=FLOAT)])

        assert combined.shape == (ShapeKey("id", union([INT, NONE])), ShapeKey("score", FLOAT))
        assert combined.args == (STR, union([FLOAT, NONE]))

    def test_combining_again_changes_nothing(self) -> None:
        combined = combine_types([shape(id=INT, name=STR), shape(id=INT, note=BYTES)])

        assert combine_types([combined]) == combined
        assert combine_types([combined, shape(id=INT, name=STR)]) == combined

    def test_optional_key_stays_optional(self) -> None:
        combined = combine_types([shape(id=INT, name=STR), shape(id=INT)])
        again = combine_types([combined, shape(id=INT, name=STR)])

        assert ShapeKey("name", STR, required=False) in again.shape

    def test_order_of_observation_irrelevant(self) -> None:
        observed = [shape(a=INT, b=STR), shape(b=STR, c=BYTES, a=INT), shape(a=FLOAT), NONE]
        results = {combine_types(order) for order in itertools.permutations(observed)}

        assert len(results) == 1

    def test_no_common_key_degrades(self) -> None:
        assert text(shape(a=INT), shape(b=STR)) == "dict[str, int | str]"

    def test_too_many_key_sets_degrade(self) -> None:
        observed = [shape(id=INT, **{f"k{i}": STR}) for i in range(MAX_SHAPE_KEY_SETS + 1)]

        assert text(*observed) == "dict[str, int | str]"
        assert combine_types(observed[:MAX_SHAPE_KEY_SETS]).shape != ()

    def test_too_many_keys_together_degrade(self) -> None:
        half = MAX_SHAPE_KEYS // 2 + 1
        first = shape(id=INT, **{f"a{i}": STR for i in range(half)})
        second = shape(id=INT, **{f"b{i}": STR for i in range(half)})

        assert text(first, second) == "dict[str, int | str]"

    def test_plain_dict_degrades(self) -> None:
        assert text(shape(a=INT), generic("dict", STR, BYTES)) == "dict[str, bytes | int]"

    def test_empty_dict_degrades(self) -> None:
        """An empty dict lacks every key, so no key is required in all observations."""
        assert text(shape(a=INT), generic("dict")) == "dict[str, int]"

    def test_other_key_type_degrades(self) -> None:
        assert text(shape(a=INT), generic("dict", INT, STR)) == "dict[int | str, int | str]"

    def test_none_kept_next_to_shape(self) -> None:
        assert text(shape(a=INT), NONE) == "{'a': int} | None"

    def test_nested_shapes_merged(self) -> None:
        first = generic("list", shape(user=shape(id=INT), n=INT))
        second = generic("list", shape(user=shape(id=INT, name=STR), n=INT))

        assert text(first, second) == "list[{'user': {'id': int, 'name'?: str}, 'n': int}]"

    def test_degraded_dict_keeps_value_shapes(self) -> None:
        """A dict keyed by data whose values are records keeps the records' shape."""
        first = shape(alice=shape(age=INT), bob=shape(age=INT))
        second = shape(carol=shape(age=INT))

        assert text(first, second) == "dict[str, {'age': int}]"

    def test_widened_union_drops_shape(self) -> None:
        observed = [shape(a=INT), generic("list", INT), generic("set", INT), generic("tuple", INT), generic("frozenset", INT)]

        assert text(*observed, max_union_size=2) == "collections.abc.Collection[int | str]"

    def test_mock_value_dropped(self) -> None:
        assert text(shape(a=INT), shape(a=MOCK)) == "{'a': int}"


class TestCombineCalls:
    def test_one_call_degrades(self) -> None:
        assert combine_calls([(shape(a=INT), 1)]) == generic("dict", STR, INT)

    def test_nested_shape_of_one_call_degrades(self) -> None:
        assert combine_calls([(generic("list", shape(a=INT)), 1), (INT, 5)]) == union([INT, generic("list", generic("dict", STR, INT))])

    def test_counted_calls_keep_shape(self) -> None:
        assert combine_calls([(shape(a=INT), MIN_SHAPE_CALLS)]) == shape(a=INT)

    def test_calls_of_several_traces_add_up(self) -> None:
        assert combine_calls([(shape(a=INT), 1), (shape(a=INT, b=STR), 1)]).shape != ()

    def test_same_as_combine_types_without_shapes(self) -> None:
        observed = [INT, FLOAT, generic("list", STR)]

        assert combine_calls((ref, 1) for ref in observed) == combine_types(observed)


class TestShapeModel:
    def test_without_shapes_everywhere(self) -> None:
        ref = union([generic("list", shape(a=shape(b=INT))), NONE])

        assert without_shapes(ref) == union([generic("list", generic("dict", STR, generic("dict", STR, INT))), NONE])

    def test_union_keeps_empty_dict_next_to_shape(self) -> None:
        assert union([shape(a=INT), generic("dict")]).is_union
        assert union([generic("dict", STR, INT), generic("dict")]) == generic("dict", STR, INT)

    def test_repeated_key_rejected(self) -> None:
        with pytest.raises(ValueError, match="twice"):
            dict_shape([ShapeKey("a", INT), ShapeKey("a", STR)])
