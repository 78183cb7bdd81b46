"""Tests for dropping annotations that add type-checker errors, with mypy run for real."""

from __future__ import annotations

import io
import shutil
import textwrap
from pathlib import Path

import pytest
from support import MODULE, make_trace

from typetrace.apply import apply_stub_to_source
from typetrace.stubs import build_stub
from typetrace.tracing import CallTrace
from typetrace.typemodel import TypeRef
from typetrace.verify import CheckerError, Slot, VerifyError, _new_errors, verify_stub

pytest.importorskip("mypy")

INT = TypeRef("builtins", "int")
STR = TypeRef("builtins", "str")
BYTES = TypeRef("builtins", "bytes")

SOURCE = """\
from pkg.shapes import Square


def add(a, b):
    return a + b


def shout(text):
    return text.upper()


def area(square):
    return square.side * square.side


def use():
    total = add(1, 2)
    return shout("x") + str(total) + str(area(Square(2)))
"""

SHAPES = """\
class Square:
    def __init__(self, side: int) -> None:
        self.side = side
"""


trace = make_trace


TRACES = [
    trace("add", {"a": INT, "b": INT}, INT),
    trace("add", {"a": STR, "b": STR}, STR),
    # Traced with bytes, but use() passes a str: the annotation adds an error.
    trace("shout", {"text": BYTES}, BYTES),
    trace("area", {"square": TypeRef("pkg.shapes", "Square")}, INT),
    trace("use", {}, STR),
]


def write_package(root: Path, source: str = SOURCE) -> Path:
    package = root / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "shapes.py").write_text(SHAPES)
    path = package / "mod.py"
    path.write_text(source)
    return path


def verify(root: Path, source: str, traces: list[CallTrace]) -> tuple[Path, object]:
    path = write_package(root, textwrap.dedent(source))
    stub = build_stub(MODULE, traces, path.read_text())
    return path, verify_stub(stub, path, checkers=["mypy"])


class TestVerifyStub:
    def test_drops_wrong_keeps_right(self, tmp_path: Path) -> None:
        path = write_package(tmp_path)
        stub = build_stub(MODULE, TRACES, SOURCE)
        result = verify_stub(stub, path, checkers=["mypy"])
        dropped = {item.slot for item in result.dropped}
        assert dropped == {Slot("shout", "text"), Slot("shout", None)}
        assert Slot("area", "square") in result.kept
        assert Slot("add", "a") in result.kept
        assert Slot("use", None) in result.kept
        assert result.checkers == ("mypy",)
        # Two rounds to drop, and one to put back area's return, which the error on
        # the line of use() that also calls shout() was guessed on.
        assert result.rounds == 3

    def test_file_left_unchanged(self, tmp_path: Path) -> None:
        path = write_package(tmp_path)
        verify_stub(build_stub(MODULE, TRACES, SOURCE), path, checkers=["mypy"])
        assert path.read_text() == SOURCE
        assert sorted(item.name for item in path.parent.iterdir()) == ["__init__.py", "mod.py", "shapes.py"]

    def test_result_applies_cleanly(self, tmp_path: Path) -> None:
        path = write_package(tmp_path)
        result = verify_stub(build_stub(MODULE, TRACES, SOURCE), path, checkers=["mypy"])
        annotated = apply_stub_to_source(SOURCE, result.stub)
        assert "def shout(text):" in annotated
        assert 'def area(square: "pkg.shapes.Square") -> int:' in annotated
        path.write_text(annotated)
        rerun = verify_stub(build_stub(MODULE, [], annotated), path, checkers=["mypy"])
        assert rerun.dropped == ()

    def test_report_lists_dropped(self, tmp_path: Path) -> None:
        path = write_package(tmp_path)
        report = verify_stub(build_stub(MODULE, TRACES, SOURCE), path, checkers=["mypy"]).report()
        assert report.startswith("Verified pkg.mod with mypy in 3 round(s): kept 6 annotation(s), dropped 2\n")
        assert "  dropped shout parameter text: bytes (mypy: line " in report

    def test_error_lines_of_user_file(self, tmp_path: Path) -> None:
        """Dropped annotations cite the line of the user's file, not of the annotated copy."""
        path = write_package(tmp_path)
        result = verify_stub(build_stub(MODULE, TRACES, SOURCE), path, checkers=["mypy"])
        call_line = SOURCE.splitlines().index('    return shout("x") + str(total) + str(area(Square(2)))') + 1
        lines = {item.error.line for item in result.dropped}
        assert lines == {call_line}

    def test_existing_errors_not_blamed(self, tmp_path: Path) -> None:
        source = """\
        def f(a):
            return a + 1


        broken: int = "not an int"
        """
        _, result = verify(tmp_path, source, [trace("f", {"a": INT}, INT)])
        assert result.dropped == ()  # type: ignore[attr-defined]
        assert result.rounds == 1  # type: ignore[attr-defined]

    def test_override_blames_parameter(self, tmp_path: Path) -> None:
        source = """\
        class Base:
            def m(self, x: int) -> int:
                return x


        class Sub(Base):
            def m(self, x):
                return 1
        """
        sub = TypeRef(MODULE, "Sub")
        _, result = verify(tmp_path, source, [trace("Sub.m", {"self": sub, "x": STR}, INT)])
        assert [item.slot for item in result.dropped] == [Slot("Sub.m", "x")]  # type: ignore[attr-defined]
        assert result.dropped[0].error.code == "override"  # type: ignore[attr-defined]
        assert result.kept == (Slot("Sub.m", None),)  # type: ignore[attr-defined]

    def test_type_var_dropped_whole(self, tmp_path: Path) -> None:
        source = """\
        def pick(a, b):
            return a


        def caller():
            return pick(1.5, 2.5)
        """
        traces = [trace("pick", {"a": INT, "b": INT}, INT), trace("pick", {"a": STR, "b": STR}, STR)]
        _, result = verify(tmp_path, source, traces)
        dropped = {item.slot for item in result.dropped}  # type: ignore[attr-defined]
        assert dropped == {Slot("pick", "a"), Slot("pick", "b"), Slot("pick", None)}
        assert "TypeVar constrained to int, str" in result.report()  # type: ignore[attr-defined]

    def test_nothing_to_check(self, tmp_path: Path) -> None:
        path = write_package(tmp_path)
        result = verify_stub(build_stub(MODULE, [], SOURCE), path, checkers=["mypy"])
        assert result.rounds == 0
        assert result.kept == ()

    def test_no_checker_raises(self, tmp_path: Path) -> None:
        path = write_package(tmp_path)
        with pytest.raises(VerifyError, match="No type checker found"):
            verify_stub(build_stub(MODULE, TRACES, SOURCE), path, checkers=[])

    def test_unknown_checker_raises(self, tmp_path: Path) -> None:
        path = write_package(tmp_path)
        with pytest.raises(VerifyError, match="Unknown type checker 'pytype'"):
            verify_stub(build_stub(MODULE, TRACES, SOURCE), path, checkers=["pytype"])

    @pytest.mark.skipif(shutil.which("pyright") is None, reason="pyright is not on PATH")
    def test_pyright(self, tmp_path: Path) -> None:
        path = write_package(tmp_path)
        result = verify_stub(build_stub(MODULE, TRACES, SOURCE), path, checkers=["pyright"])
        assert Slot("shout", "text") in {item.slot for item in result.dropped}
        assert Slot("area", "square") in result.kept
        assert path.read_text() == SOURCE


def test_new_errors_count_repeats() -> None:
    error = CheckerError("mypy", 3, 1, "Name is not defined", "name-defined")
    moved = CheckerError("mypy", 9, 1, "Name is not defined", "name-defined")
    other = CheckerError("mypy", 4, 2, "Incompatible types", "assignment")
    baseline = __import__("collections").Counter([error.key])
    assert _new_errors([moved], baseline) == []
    assert _new_errors([moved, error], baseline) == [error]
    assert _new_errors([other], baseline) == [other]


def test_new_errors_skip_completeness_codes() -> None:
    """Errors about missing annotations are never new: dropping annotations causes them."""
    partial = CheckerError("mypy", 3, 1, "Function is missing a type annotation for one or more parameters", "no-untyped-def")
    call = CheckerError("mypy", 5, 1, 'Call to untyped function "f" in typed context', "no-untyped-call")
    assert _new_errors([partial, call], __import__("collections").Counter()) == []


class TestCommand:
    """``--verify`` on the command line, run in process against a SQLite store."""

    @pytest.fixture()
    def project(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
        from typetrace.db.sqlite import SQLiteStore

        write_package(tmp_path)
        store = SQLiteStore.make_store(str(tmp_path / "traces.sqlite3"))
        store.add(TRACES)
        store.close()
        monkeypatch.chdir(tmp_path)
        monkeypatch.syspath_prepend(str(tmp_path))
        return tmp_path

    def run(self, project: Path, *args: str) -> tuple[int, str, str]:
        from typetrace.cli import main

        stdout, stderr = io.StringIO(), io.StringIO()
        code = main(["--db", str(project / "traces.sqlite3"), *args, "pkg/mod.py", "--verify"], stdout, stderr)
        return code, stdout.getvalue(), stderr.getvalue()

    def test_apply_writes_verified(self, project: Path) -> None:
        code, _, err = self.run(project, "apply")
        assert code == 0, err
        assert "kept 6 annotation(s), dropped 2" in err
        assert "Annotated pkg/mod.py (3 functions)" in err
        text = (project / "pkg" / "mod.py").read_text()
        assert "def shout(text):" in text
        assert "def use() -> str:" in text

    def test_stub_prints_verified(self, project: Path) -> None:
        code, out, err = self.run(project, "stub")
        assert code == 0, err
        assert "dropped shout parameter text: bytes" in err
        assert "def shout(text): ..." in out
        assert "def area(square: pkg.shapes.Square) -> int: ..." in out
