"""End to end: ``Self`` returns, nearest common base classes and test-only classes.

A library module is written to a temporary folder, imported and traced while this
test module (test code, by its name) calls it. Its stubs are then built, rendered for
Python 3.9 and 3.12, checked with mypy, and applied to a copy of its source.
"""

from __future__ import annotations

import datetime
import subprocess
import sys
import textwrap
import types
from pathlib import Path
from typing import Any, Iterator

import freezegun
import pytest
from support import ListSink, SinkOnlyConfig, run_typetrace

from typetrace.apply import apply_stub_to_source
from typetrace.stubs import ModuleStub, build_stub
from typetrace.tracing import trace
from typetrace.typemodel import TypeRef, receiver

PYTHON_39 = Path(__file__).resolve().parents[1] / ".venv-3.9" / "bin" / "python"

LIBRARY = "geometry_lib"
LIBRARY_SOURCE = """\
class Shape:
    def __init__(self, size):
        self.size = size

    def scaled(self, factor):
        self.size *= factor
        return self

    def copy(self):
        return Shape(self.size)

    def kept(self, keep):
        return self if keep else None

    def either(self, other):
        return other if other is not None else self

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return None

    @classmethod
    def unit(cls):
        return cls(1)

    @classmethod
    def plain_unit(cls):
        return cls(1)

    @classmethod
    def fixed_unit(cls):
        return Shape(1)

    @staticmethod
    def same(shape):
        return shape


class Circle(Shape):
    pass


class Square(Shape):
    pass


def first(a, b):
    return a


def area(shape):
    return shape.size


def make(round_one):
    return Circle(1) if round_one else Square(2)


def year_of(when):
    return when.year


def describe(thing):
    return str(thing)
"""


class FakeSquare:
    """A duck-typed stand-in for a Square, with no base class but object."""

    size = 4


def year_in_test(when: Any) -> Any:
    return when


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Iterator[types.ModuleType]:
    folder = tmp_path_factory.mktemp("library")
    (folder / f"{LIBRARY}.py").write_text(LIBRARY_SOURCE)
    sys.path.insert(0, str(folder))
    try:
        module = __import__(LIBRARY)
        yield module
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop(LIBRARY, None)


@pytest.fixture(scope="module")
def sink(library: Any) -> ListSink:
    lib = library
    # A subclass defined in test code, recorded in the library's traces as its base.
    class_in_test = type("Oval", (lib.Circle,), {"__module__": __name__})
    recorded = ListSink()
    with trace(SinkOnlyConfig(), sink=recorded):
        for shape in (lib.Circle(1), lib.Square(2), class_in_test(3)):
            shape.scaled(2)
            shape.copy()
            shape.kept(True)
            shape.kept(False)
            lib.area(shape)
            with shape:
                pass
        lib.Shape(1).either(None)
        lib.Shape(1).either(lib.Shape(2))
        lib.Circle.unit()
        lib.Square.unit()
        lib.Shape.plain_unit()
        lib.Shape.fixed_unit()
        lib.Shape.same(lib.Shape(1))
        lib.first(lib.Circle(1), 2)
        lib.make(True)
        lib.make(False)
        lib.describe(FakeSquare())
        lib.describe(1)
        with freezegun.freeze_time("2024-02-03 04:05:06"):
            lib.year_of(datetime.datetime.now())
            year_in_test(datetime.datetime.now())
    return recorded


@pytest.fixture(scope="module")
def stub(library: Any, sink: ListSink) -> ModuleStub:
    return build_stub(LIBRARY, sink.traces, LIBRARY_SOURCE)


def shape(name: str) -> TypeRef:
    return TypeRef(LIBRARY, name)


def stub_line(text: str, name: str) -> str:
    lines = [line.strip() for line in text.splitlines() if f"def {name}(" in line]
    assert len(lines) == 1, f"{len(lines)} lines define {name}:\n{text}"
    return lines[0]


def run_mypy(path: Path, target: tuple[int, int]) -> subprocess.CompletedProcess[str]:
    # mypy 2.4 rejects --python-version 3.9. Python 3.10 lacks typing.Self too, so
    # checking a 3.9 target as 3.10 still tests the typing_extensions import.
    python_version = "%d.%d" % max(target, (3, 10))
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file=",
            "--no-incremental",
            "--python-version",
            python_version,
            str(path),
        ],
        cwd=path.parent,
        capture_output=True,
        text=True,
    )


class TestTraces:
    def test_returned_receiver_marked(self, sink: ListSink) -> None:
        returns = {trace.return_type for trace in sink.of("Shape.scaled")}
        assert receiver(shape("Circle")) in returns
        assert receiver(shape("Square")) in returns

    def test_new_instance_not_marked(self, sink: ListSink) -> None:
        returns = {trace.return_type for trace in sink.of("Shape.copy")}
        assert returns == {shape("Shape")}

    def test_instance_of_cls_marked(self, sink: ListSink) -> None:
        returns = {trace.return_type for trace in sink.of("Shape.unit")}
        assert returns == {receiver(shape("Circle")), receiver(shape("Square"))}

    def test_plain_function_not_marked(self, sink: ListSink) -> None:
        assert sink.one("first").return_type == shape("Circle")

    def test_bases_recorded(self, sink: ListSink) -> None:
        circle = sink.arg_types("area", "shape")
        (recorded,) = [ref for ref in circle if ref == shape("Circle")]
        assert recorded.bases == (shape("Shape"),)

    def test_test_subclass_recorded_as_base(self, sink: ListSink) -> None:
        assert sink.arg_types("area", "shape") == {shape("Circle"), shape("Square")}

    def test_fake_datetime_recorded_as_datetime(self, sink: ListSink) -> None:
        recorded = sink.one("year_of").arg_types["when"]
        assert recorded == TypeRef("datetime", "datetime")
        assert recorded.bases == (TypeRef("datetime", "date"),)

    def test_test_code_sees_fake_datetime(self, sink: ListSink) -> None:
        recorded = sink.one("year_in_test")
        assert recorded.arg_types["when"] == TypeRef("freezegun.api", "FakeDatetime")

    def test_class_without_real_base_kept(self, sink: ListSink) -> None:
        assert sink.arg_types("describe", "thing") == {
            TypeRef(__name__, "FakeSquare"),
            TypeRef("builtins", "int"),
        }


class TestStub:
    @pytest.mark.parametrize(
        ("name", "expected"),
        [
            pytest.param("scaled", "def scaled(self, factor: int) -> Self: ...", id="receiver"),
            pytest.param("copy", "def copy(self) -> Shape: ...", id="new-instance"),
            pytest.param("kept", "def kept(self, keep: bool) -> Self | None: ...", id="receiver-or-none"),
            pytest.param("either", "def either(self, other: Shape | None) -> Shape: ...", id="mixed"),
            pytest.param("__enter__", "def __enter__(self) -> Self: ...", id="enter"),
            pytest.param("unit", "def unit(cls) -> Self: ...", id="classmethod-two-classes"),
            pytest.param("plain_unit", "def plain_unit(cls) -> Shape: ...", id="classmethod-one-class"),
            pytest.param("fixed_unit", "def fixed_unit(cls) -> Shape: ...", id="classmethod-fixed"),
            pytest.param("same", "def same(shape: Shape) -> Shape: ...", id="staticmethod"),
            pytest.param("first", "def first(a: Circle, b: int) -> Circle: ...", id="function"),
            pytest.param("area", "def area(shape: Shape) -> int: ...", id="common-base-argument"),
            pytest.param("make", "def make(round_one: bool) -> Shape: ...", id="common-base-return"),
            pytest.param("year_of", "def year_of(when: datetime.datetime) -> int: ...", id="fake-datetime"),
            pytest.param("describe", "def describe(thing: int) -> str: ...", id="test-class-dropped"),
        ],
    )
    def test_signature(self, stub: ModuleStub, name: str, expected: str) -> None:
        assert stub_line(stub.render(target_version=(3, 12)), name) == expected

    def test_self_import_before_311(self, stub: ModuleStub) -> None:
        text = stub.render(target_version=(3, 9))
        assert "from typing_extensions import Self" in text
        assert "def scaled(self, factor: int) -> Self: ..." in text
        assert "def kept(self, keep: bool) -> Optional[Self]: ..." in text

    def test_self_import_from_311(self, stub: ModuleStub) -> None:
        text = stub.render(target_version=(3, 12))
        assert "from typing import Any, Self" in text
        assert "typing_extensions" not in text

    def test_self_import_without_target(self, stub: ModuleStub) -> None:
        assert "from typing_extensions import Self" in stub.render()

    @pytest.mark.parametrize("target", [(3, 9), (3, 12)])
    def test_stub_passes_mypy(self, stub: ModuleStub, target: tuple[int, int], tmp_path: Path) -> None:
        path = tmp_path / f"{LIBRARY}.pyi"
        text = stub.render(target_version=target)
        path.write_text(text)
        result = run_mypy(path, target)
        assert result.returncode == 0, f"{result.stdout}{result.stderr}\n--- stub ---\n{text}"


class TestApply:
    def test_self_imported_for_type_checkers_only(self, stub: ModuleStub) -> None:
        after = apply_stub_to_source(LIBRARY_SOURCE, stub, target_version=(3, 9))
        assert after.startswith(
            "import typing as _typing\n\nif _typing.TYPE_CHECKING:\n    import datetime\n"
            "    from typing import Optional\n    from typing_extensions import Self\n"
        )
        assert 'def scaled(self, factor: int) -> "Self":' in after
        assert 'def kept(self, keep: bool) -> "Optional[Self]":' in after
        assert 'def year_of(when: "datetime.datetime") -> int:' in after

    def test_self_from_typing_for_312(self, stub: ModuleStub) -> None:
        after = apply_stub_to_source(LIBRARY_SOURCE, stub, target_version=(3, 12))
        assert "    from typing import Self\n" in after
        assert 'def kept(self, keep: bool) -> "Self | None":' in after

    def test_idempotent(self, stub: ModuleStub) -> None:
        once = apply_stub_to_source(LIBRARY_SOURCE, stub, target_version=(3, 9))
        assert apply_stub_to_source(once, stub, target_version=(3, 9)) == once

    @pytest.mark.parametrize("target", [(3, 9), (3, 12)])
    def test_applied_passes_mypy(self, stub: ModuleStub, target: tuple[int, int], tmp_path: Path) -> None:
        path = tmp_path / f"{LIBRARY}.py"
        path.write_text(apply_stub_to_source(LIBRARY_SOURCE, stub, target_version=target))
        result = run_mypy(path, target)
        assert result.returncode == 0, f"{result.stdout}{result.stderr}\n--- applied ---\n{path.read_text()}"

    @pytest.mark.skipif(not PYTHON_39.exists(), reason="needs the Python 3.9 environment")
    def test_applied_runs_on_python39(self, stub: ModuleStub, tmp_path: Path) -> None:
        """The annotated module runs on 3.9 without importing typing_extensions."""
        (tmp_path / f"{LIBRARY}.py").write_text(apply_stub_to_source(LIBRARY_SOURCE, stub, target_version=(3, 9)))
        check = textwrap.dedent(
            f"""
            import sys
            import {LIBRARY} as lib
            with lib.Circle(2).scaled(3) as circle:
                print(type(circle).__name__, circle.size, lib.Square.unit().size)
            print("typing_extensions" in sys.modules)
            """
        )
        result = subprocess.run([str(PYTHON_39), "-c", check], cwd=tmp_path, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert result.stdout == "Circle 6 1\nFalse\n"


DRIVER = f"""\
import datetime

import freezegun

import {LIBRARY} as lib
import test_fakes

for shape in (lib.Circle(1), lib.Square(2), test_fakes.Oval(3)):
    shape.scaled(2)
    lib.area(shape)
lib.Circle.unit()
lib.Square.unit()
lib.describe(test_fakes.FakeSquare())
lib.describe(1)
with freezegun.freeze_time("2024-02-03"):
    lib.year_of(datetime.datetime.now())
"""
TEST_FAKES = f"""\
import {LIBRARY}


class Oval({LIBRARY}.Circle):
    pass


class FakeSquare:
    size = 4
"""


@pytest.fixture(scope="module")
def traced_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the library, a test module of fakes and a driver script, traced
    with ``typetrace run`` into its ``traces.sqlite3``."""
    folder = tmp_path_factory.mktemp("project")
    (folder / f"{LIBRARY}.py").write_text(LIBRARY_SOURCE)
    (folder / "drive.py").write_text(DRIVER)
    (folder / "test_fakes.py").write_text(TEST_FAKES)
    result = run_typetrace(folder, "run", "--all-calls", "drive.py")
    assert result.returncode == 0, result.stderr
    return folder


class TestThroughStore:
    """The receiver marks and bases survive a real SQLite store and the CLI."""

    @pytest.mark.parametrize(
        ("target", "import_line"),
        [("3.9", "from typing_extensions import Self"), ("3.12", "from typing import Any, Self")],
    )
    def test_stub(self, traced_project: Path, target: str, import_line: str) -> None:
        result = run_typetrace(traced_project, "stub", LIBRARY, "--target-version", target)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert import_line in lines
        assert stub_line(result.stdout, "scaled") == "def scaled(self, factor: int) -> Self: ..."
        assert stub_line(result.stdout, "unit") == "def unit(cls) -> Self: ..."
        assert stub_line(result.stdout, "area") == "def area(shape: Shape) -> int: ..."
        assert stub_line(result.stdout, "year_of") == "def year_of(when: datetime.datetime) -> int: ..."
        assert stub_line(result.stdout, "describe") == "def describe(thing: int) -> str: ..."

    def test_apply(self, traced_project: Path) -> None:
        result = run_typetrace(traced_project, "apply", LIBRARY, "--target-version", "3.9", "--diff")
        assert result.returncode == 0, result.stderr
        assert "+    from typing_extensions import Self\n" in result.stdout
        assert '+    def scaled(self, factor: int) -> "Self":\n' in result.stdout
