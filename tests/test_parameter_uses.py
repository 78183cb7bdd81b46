"""Tests for the flow analysis that finds how a function's body reads one parameter."""

from __future__ import annotations

import ast
import textwrap
from typing import Optional

import pytest

from typetrace.stubs.uses import ParameterUses, UseKind, parameter_uses


def uses_of(source: str, name: str = "value") -> ParameterUses:
    function = ast.parse(textwrap.dedent(source)).body[0]
    assert isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef))
    return parameter_uses(function, name)


def calls(uses: ParameterUses) -> list[tuple[str, Optional[int], Optional[str]]]:
    """Return each use as (called expression, position, keyword); ``other`` for other reads."""
    result = []
    for use in uses.uses:
        if use.call is None:
            result.append(("other", None, None))
        else:
            result.append((ast.unparse(use.call.func), use.position, use.keyword))
    return sorted(result, key=repr)


class TestArguments:
    def test_positional_and_keyword(self) -> None:
        """An argument records its call with its position or keyword."""
        uses = uses_of("def f(value):\n    g(1, value)\n    h(key=value)\n")
        assert calls(uses) == [("g", 1, None), ("h", None, "key")]
        assert uses.only_arguments

    def test_rebinding_ends_the_value(self) -> None:
        """Reads after the name is bound again are not reads of the parameter."""
        source = """
            def f(value):
                value = normalize(value)
                return value.upper()
        """
        uses = uses_of(source)
        assert calls(uses) == [("normalize", 0, None)]
        assert uses.only_arguments

    def test_other_reads_recorded(self) -> None:
        """An attribute, an operator or a return is another use."""
        for body in ("return value.upper()", "return value + 1", "return value", "x = f'{value}'"):
            uses = uses_of(f"def f(value):\n    g(value)\n    {body}\n")
            assert ("other", None, None) in calls(uses), body
            assert not uses.only_arguments, body

    def test_position_after_unpacking_unknown(self) -> None:
        """After a ``*`` argument the position of an argument is unknown."""
        uses = uses_of("def f(value, rest):\n    g(*rest, value)\n")
        assert calls(uses) == [("g", None, None)]
        assert not uses.only_arguments

    def test_unused_parameter(self) -> None:
        """A parameter that is never read has no uses."""
        uses = uses_of("def f(value):\n    return 1\n")
        assert uses.uses == ()
        assert not uses.only_arguments
        assert uses.only_unpacked

    def test_truth_test_not_a_use(self) -> None:
        """``if value`` and ``not value`` only take the value's truth."""
        source = """
            def f(value):
                if not value or value:
                    return None
                return g(value)
        """
        uses = uses_of(source)
        assert calls(uses) == [("g", 0, None)]

    def test_nested_scope_counts_as_other(self) -> None:
        """A read inside a lambda, comprehension or nested def is another use."""
        for body in ("return lambda: g(value)", "return [g(value) for _ in range(2)]", "def inner():\n        g(value)"):
            uses = uses_of(f"def f(value):\n    {body}\n")
            assert not uses.only_arguments, body

    def test_unpacked_into_call(self) -> None:
        """``*args`` and ``**kwargs`` unpacked into a call are unpacked uses only."""
        uses = uses_of("def f(*args, **kwargs):\n    return g(*args, **kwargs)\n", "args")
        assert [use.kind for use in uses.uses] == [UseKind.UNPACKED]
        assert uses.only_unpacked
        uses = uses_of("def f(*args):\n    return len(args)\n", "args")
        assert not uses.only_unpacked


class TestNone:
    def test_none_branch_reads_ignored(self) -> None:
        """Where a test showed the value is None, its reads are not recorded."""
        source = """
            def f(self, value=None):
                if value is not None:
                    value = convert(value)
                self.value = value
        """
        uses = uses_of(source)
        assert calls(uses) == [("convert", 0, None)]
        assert uses.only_arguments
        assert uses.handles_none

    def test_default_replaced_then_passed(self) -> None:
        """After ``if value is None: value = ...`` the original value may still be there."""
        source = """
            def f(value=None):
                if value is None:
                    value = DEFAULT
                return g(value)
        """
        uses = uses_of(source)
        assert calls(uses) == [("g", 0, None)]
        assert uses.handles_none

    @pytest.mark.parametrize(
        "body",
        [
            pytest.param("if value is None:\n        raise ValueError('missing')", id="raise"),
            pytest.param("if value is not None:\n        pass\n    else:\n        raise ValueError()", id="else-raise"),
            pytest.param("assert value is not None", id="assert"),
            pytest.param("if value == 0:\n        pass", id="no-test"),
        ],
    )
    def test_none_not_handled(self, body: str) -> None:
        """A None test whose None branch raises, or an assert, does not handle None."""
        uses = uses_of(f"def f(value):\n    {body}\n    return g(value)\n")
        assert not uses.handles_none

    @pytest.mark.parametrize(
        "body",
        [
            pytest.param("if value is None:\n        return 0", id="return"),
            pytest.param("x = 0 if value is None else g(value)", id="conditional-expression"),
            pytest.param("if value is None or value == 0:\n        return 0", id="or"),
            pytest.param("if value is not None and value > 0:\n        return 1", id="and"),
            pytest.param("if None is value:\n        value = 1", id="reversed"),
        ],
    )
    def test_none_handled(self, body: str) -> None:
        """A None test whose None branch goes on without raising handles None."""
        uses = uses_of(f"def f(value):\n    {body}\n")
        assert uses.handles_none


class TestControlFlow:
    def test_branches_join(self) -> None:
        """A value bound again in one branch only may still be read after the branches."""
        source = """
            def f(value, flag):
                if flag:
                    value = 1
                return g(value)
        """
        assert calls(uses_of(source)) == [("g", 0, None)]

    def test_both_branches_rebind(self) -> None:
        """A value bound again in both branches is not read after them."""
        source = """
            def f(value, flag):
                if flag:
                    value = 1
                else:
                    value = 2
                return value.bit_length()
        """
        assert uses_of(source).uses == ()

    def test_handler_sees_value_before_rebinding(self) -> None:
        """An exception may leave the ``try`` before the value is bound again."""
        source = """
            def f(value):
                try:
                    value = parse(value)
                except ValueError:
                    return fallback(value)
                return value
        """
        assert calls(uses_of(source)) == [("fallback", 0, None), ("parse", 0, None)]

    def test_loop_second_pass(self) -> None:
        """A loop that binds the name after reading it still reads the value first."""
        source = """
            def f(value, items):
                for item in items:
                    g(value)
                    value = item
                return value.upper()
        """
        uses = uses_of(source)
        assert ("g", 0, None) in calls(uses)
        assert ("other", None, None) in calls(uses)

    def test_unreachable_code_ignored(self) -> None:
        """Statements after a return are not analysed."""
        assert uses_of("def f(value):\n    return 1\n    value.x\n").uses == ()
