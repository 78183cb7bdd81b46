"""Tests for dropping annotations that add type-checker errors, with mypy run for real."""

from __future__ import annotations

import collections
import io
import logging
import math
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Optional

import pytest
from support import MODULE, make_trace

from typetrace.apply import apply_stub_to_source
from typetrace.stubs import build_stub
from typetrace.tracing import CallTrace
from typetrace.typemodel import NONE, TypeRef
from typetrace.verify import CheckerError, Slot, VerifyError, VerifyResult, _new_errors, restore_check_bound, verify_stub

pytest.importorskip("mypy")

INT = TypeRef("builtins", "int")
STR = TypeRef("builtins", "str")
BYTES = TypeRef("builtins", "bytes")
BOOL = TypeRef("builtins", "bool")

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
        assert 'def area(square: "Square") -> int:' in annotated
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


class TestBlamePrecision:
    """Each new error drops the fewest annotations that explain it."""

    def test_one_bad_parameter_of_function(self, tmp_path: Path) -> None:
        """``**extra: bool`` breaks the ``super().__init__`` call; the function's other annotations stay."""
        source = """\
        import io


        class Wrapper(io.TextIOWrapper):
            def __init__(self, stream, force_readable=False, **extra):
                self.force_readable = force_readable
                super().__init__(stream, **extra)
        """
        wrapper = TypeRef(MODULE, "Wrapper")
        traces = [trace("Wrapper.__init__", {"self": wrapper, "stream": TypeRef("io", "BytesIO"), "force_readable": BOOL, "extra": BOOL})]
        _, result = verify(tmp_path, source, traces)
        assert [item.slot for item in result.dropped] == [Slot("Wrapper.__init__", "extra")]  # type: ignore[attr-defined]
        assert Slot("Wrapper.__init__", "force_readable") in result.kept  # type: ignore[attr-defined]
        assert Slot("Wrapper.__init__", "stream") in result.kept  # type: ignore[attr-defined]
        assert Slot("Wrapper.__init__", None) in result.kept  # type: ignore[attr-defined]

    def test_unresolvable_import_drops_its_users(self, tmp_path: Path) -> None:
        """A class of a module that mypy cannot find drops only the annotations naming it."""
        source = """\
        def handle(event, count):
            return count


        def log(event):
            pass


        def double(n):
            return n * 2
        """
        fake = TypeRef("recorded_events", "Event")
        traces = [
            trace("handle", {"event": fake, "count": INT}, INT),
            trace("log", {"event": fake}),
            trace("double", {"n": INT}, INT),
        ]
        _, result = verify(tmp_path, source, traces)
        dropped = {item.slot for item in result.dropped}  # type: ignore[attr-defined]
        assert dropped == {Slot("handle", "event"), Slot("log", "event")}
        assert {item.error.code for item in result.dropped} == {"import-not-found"}  # type: ignore[attr-defined]
        assert set(result.kept) == {  # type: ignore[attr-defined]
            Slot("handle", "count"),
            Slot("handle", None),
            Slot("log", None),
            Slot("double", "n"),
            Slot("double", None),
        }
        annotated = apply_stub_to_source(textwrap.dedent(source), result.stub)  # type: ignore[attr-defined]
        assert "recorded_events" not in annotated

    def test_call_in_other_module(self, tmp_path: Path) -> None:
        """A call in another module of the package that the new annotations break is caught."""
        source = """\
        def describe(param, label):
            return label + str(param)
        """
        path = write_package(tmp_path, textwrap.dedent(source))
        (path.parent / "core.py").write_text(CALLER)
        traces = [trace("describe", {"param": INT, "label": STR}, STR)]
        result = verify_stub(build_stub(MODULE, traces, path.read_text()), path, checkers=["mypy"])
        assert [item.slot for item in result.dropped] == [Slot("describe", "param")]
        error = result.dropped[0].error
        assert error.file == "pkg/core.py"
        assert error.code == "arg-type"
        assert error.line == 5
        assert set(result.kept) == {Slot("describe", "label"), Slot("describe", None)}
        assert "pkg/core.py line 5" in result.report()

    def test_many_functions_few_bad(self, tmp_path: Path) -> None:
        """60 functions, four bad ones: the good ones stay, within the documented number of checks.

        The error on ``box.size`` in another module names no function, so every
        annotation is dropped and the restore step bisects its way back.
        """
        functions = "".join(f"def f{index}(x):\n    return x\n\n\n" for index in range(60))
        source = functions + "class Box:\n    def __init__(self, size):\n        self.size = size\n\n\ndef caller():\n    return f13(2.5)\n"
        path = write_package(tmp_path, source)
        (path.parent / "core.py").write_text(MANY_CALLERS)
        traces = [trace(f"f{index}", {"x": INT}, INT) for index in range(60)]
        traces.append(trace("Box.__init__", {"self": TypeRef(MODULE, "Box"), "size": INT}))
        stub = build_stub(MODULE, traces, source)
        result = verify_stub(stub, path, checkers=["mypy"])
        bad = {Slot("f7", "x"), Slot("f13", "x"), Slot("f41", "x"), Slot("Box.__init__", "size")}
        assert {item.slot for item in result.dropped} == bad
        slots = 2 * 60 + 2
        assert len(result.kept) == slots - len(bad)
        # Three drop rounds: with every annotation, after the drops for the three
        # calls, and after dropping everything for the box error. Then the restore
        # step runs, and only Box.__init__'s size stays dropped in it.
        bound = 3 + restore_check_bound(slots, 1)
        assert bound == 3 + 1 + 2 * math.ceil(math.log2(slots))
        assert result.rounds <= bound, result.rounds

    def test_package_syntax_error_fallback(self, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
        """A syntax error elsewhere in the package makes mypy check the module alone."""
        path = write_package(tmp_path)
        (path.parent / "template.py").write_text("def {{ name }}():\n")
        result = verify_stub(build_stub(MODULE, TRACES, SOURCE), path, checkers=["mypy"])
        assert {item.slot for item in result.dropped} == {Slot("shout", "text"), Slot("shout", None)}
        assert "Checking" in caplog.text
        assert "alone, because checking its package failed" in caplog.text


@pytest.fixture(scope="module")
def latent(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, VerifyResult]:
    """Verify :data:`LATENT` with its traces, once for the tests that only read the result."""
    path = write_package(tmp_path_factory.mktemp("latent"), LATENT)
    return path, verify_stub(build_stub(MODULE, LATENT_TRACES, LATENT), path, checkers=["mypy"])


class TestCheckModes:
    """mypy runs with and without ``--check-untyped-defs``, on top of the project's configuration."""

    def test_latent_body_error_drops_function(self, latent: tuple[Path, VerifyResult]) -> None:
        """A body error that mypy's defaults report only once the function is annotated drops all its annotations."""
        _, result = latent
        dropped = {item.slot for item in result.dropped}
        assert dropped == {Slot("first", "items"), Slot("first", None), Slot("size", "text"), Slot("size", None)}
        assert set(result.kept) == {Slot("double", "n"), Slot("double", None)}
        assert {item.error.code for item in result.dropped} == {"valid-type", "arg-type"}
        # Blamed for certain, so the restore step tries nothing: one check finds
        # the errors in its first mode, and one finds none in either mode.
        assert result.rounds == 2
        assert result.runs == 2 + 1 + 2

    def test_latent_report_names_no_option(self, latent: tuple[Path, VerifyResult]) -> None:
        """Without a configuration, mypy's defaults skip untyped bodies, so the report adds no option."""
        _, result = latent
        report = result.report()
        assert '  dropped first parameter items: str (mypy: line 7: Type variable "pkg.mod.V" is unbound  [valid-type])' in report
        assert "check-untyped-defs" not in report

    def test_no_new_errors_either_way(self, latent: tuple[Path, VerifyResult]) -> None:
        """The verified annotations add no mypy error with mypy's defaults or with --check-untyped-defs.

        This test writes the annotated module, so it runs after the others that use
        the fixture.
        """
        path, result = latent
        root = path.parent.parent
        before = mypy_errors(root)
        before_checking = mypy_errors(root, "--check-untyped-defs")
        annotated = apply_stub_to_source(LATENT, result.stub)
        path.write_text(annotated)
        assert mypy_errors(root) - before == collections.Counter()
        assert mypy_errors(root, "--check-untyped-defs") - before_checking == collections.Counter()
        assert "def double(n: int) -> int:" in annotated
        assert "def first(items):" in annotated

    def test_strict_configuration_labels_other_mode(self, tmp_path: Path) -> None:
        """Under ``strict``, which checks untyped bodies, the latent errors come from the run that adds --no-check-untyped-defs."""
        (tmp_path / "pyproject.toml").write_text("[tool.mypy]\nstrict = true\n")
        result = verified(tmp_path, LATENT, LATENT_TRACES)
        dropped = {item.slot for item in result.dropped}
        assert dropped == {Slot("first", "items"), Slot("first", None), Slot("size", "text"), Slot("size", None)}
        assert {item.error.options for item in result.dropped} == {"--no-check-untyped-defs"}
        assert "(mypy --no-check-untyped-defs: line 7: " in result.report()

    def test_call_in_untyped_function_labelled(self, tmp_path: Path) -> None:
        """A call that only --check-untyped-defs checks drops the annotation and names that option."""
        source = """\
        def describe(label):
            return label.upper()


        def main():
            return describe(3)
        """
        result = verified(tmp_path, source, [trace("describe", {"label": STR}, STR)])
        assert [item.slot for item in result.dropped] == [Slot("describe", "label")]
        assert result.dropped[0].error.options == "--check-untyped-defs"
        assert "(mypy --check-untyped-defs: line 6: " in result.report()

    def test_restored_function_confirmed(self, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
        """An annotation that the restore step puts back is checked once more in the mode that skips untyped bodies.

        Under ``strict``, the error on ``count() + label()`` is blamed on both returns
        as a guess. The restore step runs only --check-untyped-defs and puts back
        ``count``'s return, which makes mypy's other mode check ``count``'s body.
        """
        caplog.set_level(logging.INFO, logger="typetrace.verify")
        (tmp_path / "pyproject.toml").write_text("[tool.mypy]\nstrict = true\n")
        source = """\
        from typing import TypeVar

        V = TypeVar("V")


        def count():
            item: V = 1
            return 1


        def label():
            return "x"


        def caller():
            return count() + label()
        """
        result = verified(tmp_path, source, [trace("count", {}, INT), trace("label", {}, STR)])
        errors = {item.slot: item.error for item in result.dropped}
        assert set(errors) == {Slot("count", None), Slot("label", None)}
        assert errors[Slot("count", None)].code == "valid-type"
        assert errors[Slot("count", None)].options == "--no-check-untyped-defs"
        assert errors[Slot("label", None)].code == "operator"
        assert "runs again with every mode" not in caplog.text

    def test_attribute_type_falls_back(self, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
        """An error from an attribute type that mypy infers once ``__init__`` is annotated drops ``__init__``'s annotations.

        mypy's default options give attributes set in an unannotated method the type
        ``Any``. No rule blames the new error in ``area``, so every annotation is
        dropped, and the restore step, run again with every mode, puts back the rest.
        """
        caplog.set_level(logging.INFO, logger="typetrace.verify")
        source = """\
        class Box:
            def __init__(self, size):
                self.size = str(size)


        def area(box: Box) -> int:
            return box.size


        def double(n):
            return n * 2
        """
        box = TypeRef(MODULE, "Box")
        traces = [trace("Box.__init__", {"self": box, "size": INT}), trace("double", {"n": INT}, INT)]
        result = verified(tmp_path, source, traces)
        assert {item.slot for item in result.dropped} == {Slot("Box.__init__", "size"), Slot("Box.__init__", None)}
        assert set(result.kept) == {Slot("double", "n"), Slot("double", None)}
        assert "runs again with every mode" in caplog.text

    @pytest.mark.parametrize(
        ("file", "configuration", "kept"),
        [
            pytest.param(None, "", False, id="defaults"),
            pytest.param("pyproject.toml", "[tool.mypy]\nstrict_optional = false\n", True, id="pyproject"),
            pytest.param("mypy.ini", "[mypy]\nstrict_optional = False\n", True, id="mypy-ini"),
            pytest.param("setup.cfg", "[mypy]\nstrict_optional = False\n", True, id="setup-cfg"),
            pytest.param("../pyproject.toml", "[tool.mypy]\nstrict_optional = false\n", True, id="parent-folder"),
        ],
    )
    def test_project_configuration_honoured(self, tmp_path: Path, file: Optional[str], configuration: str, kept: bool) -> None:
        """``strict_optional = false`` in the project's configuration keeps an annotation that mypy's defaults reject.

        The package is in ``src``, the folder mypy runs in, so ``../pyproject.toml``
        is found in the parent folder, as with a src layout.
        """
        if file == "../pyproject.toml" and _mypy_version() < (1, 19):
            pytest.skip("mypy 1.19.1 and 2.4.1 read configuration files in parent folders; older versions were not checked")
        root = tmp_path / "src"
        root.mkdir()
        if file is not None:
            (root / file).write_text(configuration)
        source = """\
        def increment(value):
            return value + 1
        """
        traces = [trace("increment", {"value": INT}, INT), trace("increment", {"value": NONE}, INT)]
        result = verified(root, source, traces)
        assert (Slot("increment", "value") in result.kept) is kept
        assert Slot("increment", None) in result.kept


def verified(root: Path, source: str, traces: list[CallTrace]) -> VerifyResult:
    """Verify the stub of *traces* for the package that :func:`write_package` writes in *root*."""
    path = write_package(root, textwrap.dedent(source))
    return verify_stub(build_stub(MODULE, traces, path.read_text()), path, checkers=["mypy"])


def _mypy_version() -> tuple[int, ...]:
    import mypy.version

    return tuple(int(part) for part in mypy.version.__version__.split("+")[0].split(".")[:2])


LATENT = """\
from typing import TypeVar

V = TypeVar("V")


def first(items):
    item: V = items[0]
    return item


def size(text):
    return len(5) + len(text)


def double(n):
    return n * 2
"""

LATENT_TRACES = [
    trace("first", {"items": STR}, STR),
    trace("size", {"text": STR}, INT),
    trace("double", {"n": INT}, INT),
]


def mypy_errors(root: Path, *options: str) -> collections.Counter[str]:
    """Count mypy's errors on ``pkg`` in *root* by message and code, with mypy's defaults and *options*."""
    command = [
        sys.executable, "-m", "mypy", "--config-file=", "--no-incremental", "--cache-dir", str(root / "check-cache"),
        "--no-error-summary", "--hide-error-context", "--no-pretty", "--show-error-codes", *options, "pkg",
    ]  # fmt: skip
    result = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=600)
    assert result.returncode in (0, 1), result.stderr
    return collections.Counter(line.split(": error: ", 1)[1] for line in result.stdout.splitlines() if ": error: " in line)


CALLER = """\
from pkg.mod import describe


def run():
    return describe(1.5, "x")
"""

MANY_CALLERS = """\
from pkg import mod
from pkg.mod import Box, f7


def run():
    total = f7("seven") + mod.f41("forty-one")
    box = Box(3)
    box.size = "big"
    return total
"""


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
