"""Tests of the accuracy benchmark's helpers: spelling normalization and the subtype checks."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "accuracy"
sys.path.insert(0, str(BENCHMARK))

import compare  # noqa: E402
import compatible  # noqa: E402


def normalized(text: str) -> str:
    return compare.normalize(ast.parse(text, mode="eval").body)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param("List[int]", "list[int]", id="typing alias"),
        pytest.param("Optional[str]", "str | None", id="optional"),
        pytest.param("t.Union[bytes, str]", "str | bytes", id="union order"),
        pytest.param("'Signer'", "Signer", id="string annotation"),
        pytest.param("te.Literal['\\n', '']", "Literal['\\n', '']", id="literal strings"),
        pytest.param("t.Callable[..., t.Any]", "cabc.Callable", id="bare callable"),
        pytest.param("t.Iterator[t.Any] | None", "Iterator | None", id="bare iterator"),
        pytest.param("t.Tuple[t.Any, ...]", "tuple", id="bare tuple"),
        pytest.param("dict[str, dict[t.Any, t.Any]]", "dict[str, dict]", id="nested bare dict"),
        pytest.param("t.Type[t.Any]", "type", id="bare type"),
    ],
)
def test_normalize_equal_spellings(first: str, second: str) -> None:
    assert normalized(first) == normalized(second)


def test_normalize_keeps_distinct_types() -> None:
    assert normalized("int") != normalized("float")
    assert normalized("Mapping[str, int]") != normalized("dict[str, int]")
    assert normalized("tuple[t.Any]") != normalized("tuple")
    assert normalized("Callable[[t.Any], t.Any]") != normalized("Callable")
    assert normalized("dict[str, t.Any]") != normalized("dict")
    assert normalized("te.TypeGuard[t.Any]") != normalized("TypeGuard")


def test_check_subtypes(tmp_path: Path) -> None:
    pristine = tmp_path / "pristine" / "pkg"
    pristine.mkdir(parents=True)
    (pristine / "__init__.py").write_text("")
    (pristine / "mod.py").write_text(
        "from __future__ import annotations\n"
        "from collections.abc import Sequence\n"
        "class Base: ...\n"
        "def f(a: int | None, b: Sequence[str], c: int, d: str, e: int, g: Base) -> None: ...\n"
    )
    annotated = tmp_path / "annotated" / "pkg"
    annotated.mkdir(parents=True)
    (annotated / "mod.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from fractions import Fraction\n"
    )
    pairs = [
        compatible.Pair(("mod.py", "f", "a"), "int", "int | None"),
        compatible.Pair(("mod.py", "f", "b"), "list[str]", "Sequence[str]"),
        compatible.Pair(("mod.py", "f", "c"), "bool", "int"),
        compatible.Pair(("mod.py", "f", "d"), "int", "str"),
        compatible.Pair(("mod.py", "f", "e"), "int | None", "int"),
        compatible.Pair(("mod.py", "f", "g"), "Fraction", "Base"),
        # Fraction resolves only through the annotated module's TYPE_CHECKING import.
        compatible.Pair(("mod.py", "f", "h"), "Fraction", "object"),
    ]
    result = compatible.check_subtypes(Path(sys.executable), pristine, annotated, pairs, tmp_path / "scratch")
    assert result.narrower == {("mod.py", "f", "a"), ("mod.py", "f", "b"), ("mod.py", "f", "c"), ("mod.py", "f", "h")}
    assert result.wider == {("mod.py", "f", "e")}
