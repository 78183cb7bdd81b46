"""Tests for writing stub annotations into source files."""

from __future__ import annotations

import io
import os
import re
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from support import MODULE, make_trace

from typetrace.apply import ApplyError, apply_stub_to_file, apply_stub_to_source
from typetrace.stubs import ModuleStub, build_stub
from typetrace.tracing import CallTrace
from typetrace.typemodel import ANY, NONE, TypeRef, receiver

INT = TypeRef("builtins", "int")
STR = TypeRef("builtins", "str")
BYTES = TypeRef("builtins", "bytes")
PYTHON_39 = Path(__file__).resolve().parents[1] / ".venv-3.9" / "bin" / "python"


trace = make_trace


def apply(
    source: str,
    *traces: CallTrace,
    overwrite: bool = False,
    target: tuple[int, int] = (3, 12),
) -> str:
    source = textwrap.dedent(source)
    stub = build_stub(MODULE, traces, source, overwrite_existing=overwrite)
    return apply_stub_to_source(source, stub, target_version=target)


GOLDEN = [
    pytest.param(
        "def f(a, b=1):\n    return a\n",
        [trace("f", {"a": INT, "b": INT}, STR)],
        (3, 12),
        "def f(a: int, b: int = 1) -> str:\n    return a\n",
        id="plain-function",
    ),
    pytest.param(
        "def f(a):\n    return a\n",
        [trace("f", {"a": INT}, INT), trace("f", {"a": NONE}, NONE)],
        (3, 12),
        "def f(a: int | None) -> int | None:\n    return a\n",
        id="optional-pep604",
    ),
    pytest.param(
        "def f(a):\n    return a\n",
        [trace("f", {"a": INT}, INT), trace("f", {"a": NONE}, NONE)],
        (3, 9),
        'import typing as _typing\n\nif _typing.TYPE_CHECKING:\n    from typing import Optional\n\n\ndef f(a: "Optional[int]") -> "Optional[int]":\n    return a\n',
        id="optional-py39",
    ),
    pytest.param(
        "def f(a):\n    return a\n",
        [trace("f", {"a": INT}, STR), trace("f", {"a": STR}, INT)],
        (3, 9),
        'import typing as _typing\n\nif _typing.TYPE_CHECKING:\n    from typing import Union\n\n\ndef f(a: "Union[int, str]") -> "Union[int, str]":\n    return a\n',
        id="union-py39",
    ),
    pytest.param(
        "def f(a, b):\n    return a\n",
        [trace("f", {"a": TypeRef("builtins", "list", (INT,)), "b": NONE}, TypeRef("builtins", "dict", (STR, INT)))],
        (3, 8),
        'import typing as _typing\n\nif _typing.TYPE_CHECKING:\n    from typing import Dict, List\n\n\n'
        'def f(a: "List[int]", b: None) -> "Dict[str, int]":\n    return a\n',
        id="generics-py38",
    ),
    pytest.param(
        "def f(a):\n    return a\n",
        [trace("f", {"a": TypeRef("builtins", "list", (INT,))}, TypeRef("builtins", "tuple", (INT, STR)))],
        (3, 9),
        "def f(a: list[int]) -> tuple[int, str]:\n    return a\n",
        id="generics-py39",
    ),
    pytest.param(
        '"""Doc."""\nimport os\n\n\ndef f(a):\n    return a\n',
        [trace("f", {"a": TypeRef("decimal", "Decimal")}, TypeRef("decimal", "Decimal"))],
        (3, 12),
        '"""Doc."""\nimport os\nimport typing as _typing\n\nif _typing.TYPE_CHECKING:\n    import decimal\n\n\ndef f(a: "decimal.Decimal") -> "decimal.Decimal":\n    return a\n',
        id="type-checking-import",
    ),
    pytest.param(
        "from __future__ import annotations\n\ndef f(a):\n    return a\n",
        [trace("f", {"a": TypeRef("decimal", "Decimal")}, NONE)],
        (3, 12),
        'from __future__ import annotations\nimport typing as _typing\n\nif _typing.TYPE_CHECKING:\n    import decimal\n\ndef f(a: decimal.Decimal) -> None:\n    return a\n',
        id="future-annotations-unquoted",
    ),
    pytest.param(
        "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    import io\n\ndef f(a):\n    pass\n",
        [trace("f", {"a": TypeRef("decimal", "Decimal")}, NONE)],
        (3, 12),
        "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    import io\n    import decimal\n\n"
        'def f(a: "decimal.Decimal") -> None:\n    pass\n',
        id="existing-type-checking-block",
    ),
    pytest.param(
        "class A:\n    def copy(self, other):\n        return self\n",
        [trace("A.copy", {"self": TypeRef(MODULE, "A"), "other": TypeRef(MODULE, "A")}, TypeRef(MODULE, "A"))],
        (3, 12),
        'class A:\n    def copy(self, other: "A") -> "A":\n        return self\n',
        id="own-class-quoted",
    ),
    pytest.param(
        "def f(a):  # keep me\n    # body comment\n    return  a\n\n\ndef g(b):\n    return b\n",
        [trace("f", {"a": INT}, NONE)],
        (3, 12),
        "def f(a: int) -> None:  # keep me\n    # body comment\n    return  a\n\n\ndef g(b):\n    return b\n",
        id="comments-and-untraced-kept",
    ),
    pytest.param(
        "def f(a: 'Path', b):\n    return a\n",
        [trace("f", {"a": STR, "b": INT}, STR)],
        (3, 12),
        "def f(a: 'Path', b: int) -> str:\n    return a\n",
        id="existing-annotation-kept",
    ),
    pytest.param(
        "def g():\n    yield 1\n",
        [trace("g", {}, NONE, INT)],
        (3, 12),
        'import typing as _typing\n\nif _typing.TYPE_CHECKING:\n    from typing import Iterator\n\n\ndef g() -> "Iterator[int]":\n    yield 1\n',
        id="generator",
    ),
    pytest.param(
        "def outer():\n    def inner(a):\n        return a\n    return inner\n",
        [trace("outer.<locals>.inner", {"a": INT}, INT)],
        (3, 12),
        "def outer():\n    def inner(a):\n        return a\n    return inner\n",
        id="nested-function-untouched",
    ),
    pytest.param(
        "Any = 1\n\ndef f(a):\n    pass\n",
        [trace("f", {"a": ANY}, NONE)],
        (3, 12),
        'import typing as _typing\n\nif _typing.TYPE_CHECKING:\n    from typing import Any as _Any\n\nAny = 1\n\ndef f(a: "_Any") -> None:\n    pass\n',
        id="no-shadowing",
    ),
]


@pytest.mark.parametrize(("before", "traces", "target", "after"), GOLDEN)
def test_golden(before: str, traces: list[CallTrace], target: tuple[int, int], after: str) -> None:
    assert apply(before, *traces, target=target) == after


@pytest.mark.parametrize(("before", "traces", "target", "after"), GOLDEN)
def test_idempotent(before: str, traces: list[CallTrace], target: tuple[int, int], after: str) -> None:
    stub = build_stub(MODULE, traces, before)
    once = apply_stub_to_source(before, stub, target_version=target)
    twice = apply_stub_to_source(once, build_stub(MODULE, traces, once), target_version=target)
    assert twice == once
    assert apply_stub_to_source(once, stub, target_version=target) == once


def test_overwrite_existing() -> None:
    source = "def f(a: bytes) -> bytes:\n    return a\n"
    after = apply(source, trace("f", {"a": STR}, STR), overwrite=True)
    assert after == "def f(a: str) -> str:\n    return a\n"


def test_overwrite_is_idempotent() -> None:
    source = "def f(a: bytes):\n    return a\n"
    traces = [trace("f", {"a": TypeRef("decimal", "Decimal")}, NONE)]
    once = apply(source, *traces, overwrite=True)
    twice = apply(once, *traces, overwrite=True)
    assert twice == once
    assert once.count("import decimal") == 1


def test_methods_and_properties() -> None:
    source = """\
        class Box:
            def __init__(self, value):
                self._value = value

            @property
            def value(self):
                return self._value

            @value.setter
            def value(self, new):
                self._value = new

            @staticmethod
            def empty(size, *, fill=0):
                return Box(None)

            @classmethod
            def of(cls, value):
                return cls(value)
    """
    box = TypeRef(MODULE, "Box")
    after = apply(
        source,
        trace("Box.__init__", {"self": box, "value": INT}),
        trace("Box.value", {"self": box}, INT),
        trace("Box.value", {"self": box, "new": INT}),
        trace("Box.empty", {"size": INT, "fill": INT}, box),
        trace("Box.of", {"cls": ANY, "value": INT}, box),
    )
    assert "def __init__(self, value: int) -> None:" in after
    assert "def value(self) -> int:" in after
    assert "def value(self, new: int) -> None:" in after
    assert 'def empty(size: int, *, fill: int = 0) -> "Box":' in after
    assert 'def of(cls, value: int) -> "Box":' in after


def test_parse_error_raises() -> None:
    stub = build_stub(MODULE, [], "")
    with pytest.raises(ApplyError, match="invalid source"):
        apply_stub_to_source("def f(:\n", stub)


class TestApplyToFile:
    def stub_for(self, path: Path) -> ModuleStub:
        return build_stub(MODULE, [trace("f", {"a": INT}, INT)], path.read_text())

    def test_writes_and_reports(self, tmp_path: Path) -> None:
        path = tmp_path / "mod.py"
        path.write_text("def f(a):\n    return a\n")
        result = apply_stub_to_file(path, self.stub_for(path))
        assert result.changed
        assert path.read_text() == "def f(a: int) -> int:\n    return a\n"
        assert "+def f(a: int) -> int:" in result.diff()
        assert "-def f(a):" in result.diff()

    def test_dry_run_leaves_file(self, tmp_path: Path) -> None:
        path = tmp_path / "mod.py"
        path.write_text("def f(a):\n    return a\n")
        result = apply_stub_to_file(path, self.stub_for(path), write=False)
        assert result.changed
        assert path.read_text() == "def f(a):\n    return a\n"

    def test_unchanged_file(self, tmp_path: Path) -> None:
        path = tmp_path / "mod.py"
        path.write_text("def f(a: int) -> int:\n    return a\n")
        result = apply_stub_to_file(path, self.stub_for(path))
        assert not result.changed
        assert result.diff() == ""

    def test_keeps_mode_and_crlf(self, tmp_path: Path) -> None:
        path = tmp_path / "mod.py"
        path.write_bytes(b"def f(a):\r\n    return a\r\n")
        path.chmod(0o750)
        stub = build_stub(MODULE, [trace("f", {"a": INT}, INT)], "def f(a):\n    return a\n")
        apply_stub_to_file(path, stub)
        assert path.read_bytes() == b"def f(a: int) -> int:\r\n    return a\r\n"
        assert stat.S_IMODE(path.stat().st_mode) == 0o750

    def test_parse_error_leaves_file(self, tmp_path: Path) -> None:
        path = tmp_path / "broken.py"
        path.write_text("def f(:\n")
        stub = build_stub(MODULE, [trace("f", {"a": INT}, INT)], "def f(a):\n    pass\n")
        with pytest.raises(ApplyError) as info:
            apply_stub_to_file(path, stub)
        assert str(path) in str(info.value)
        assert path.read_text() == "def f(:\n"

    def test_missing_file(self, tmp_path: Path) -> None:
        path = tmp_path / "absent.py"
        stub = build_stub(MODULE, [], "")
        with pytest.raises(ApplyError, match="absent.py"):
            apply_stub_to_file(path, stub)

    @pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs a non-root POSIX user")
    def test_write_error_leaves_file(self, tmp_path: Path) -> None:
        folder = tmp_path / "locked"
        folder.mkdir()
        path = folder / "mod.py"
        path.write_text("def f(a):\n    return a\n")
        folder.chmod(0o500)
        try:
            with pytest.raises(ApplyError, match="Failed to write"):
                apply_stub_to_file(path, self.stub_for(path))
        finally:
            folder.chmod(0o700)
        assert path.read_text() == "def f(a):\n    return a\n"
        assert os.listdir(folder) == ["mod.py"]


RUNTIME_SOURCE = """\
import collections


class Node:
    def __init__(self, children):
        self.children = children

    def first(self):
        return self.children[0] if self.children else None


def build(depth, counts=None):
    return Node([])


def drain(queue):
    while queue:
        yield queue.popleft()


Any = "taken"
"""


@pytest.mark.skipif(not PYTHON_39.exists(), reason="needs the Python 3.9 environment")
def test_applied_module_imports_on_python39(tmp_path: Path) -> None:
    node = TypeRef("pkg.mod", "Node")
    deque = TypeRef("_collections", "deque", (INT,))
    traces = [
        trace("Node.__init__", {"self": node, "children": TypeRef("builtins", "list", (node,))}),
        trace("Node.first", {"self": node}, node),
        trace("Node.first", {"self": node}, NONE),
        trace("build", {"depth": INT, "counts": TypeRef("builtins", "dict", (STR, INT))}, node),
        trace("build", {"depth": INT, "counts": NONE}, node),
        trace("drain", {"queue": deque}, NONE, INT),
        trace("drain", {"queue": TypeRef("__main__", "Local")}, NONE, STR),
    ]

    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    path = package / "mod.py"
    path.write_text(RUNTIME_SOURCE)
    stub = build_stub(MODULE, traces, RUNTIME_SOURCE)
    new_source = apply_stub_to_source(RUNTIME_SOURCE, stub, target_version=(3, 9))
    path.write_text(new_source)

    (package / "original.py").write_text(RUNTIME_SOURCE)

    check = (
        "import pkg.mod as m, pkg.original as original\n"
        "public = lambda module: sorted(n for n in vars(module) if not n.startswith('_'))\n"
        "assert public(m) == public(original), (public(m), public(original))\n"
        "assert m.Any == 'taken'\n"
        "assert list(m.drain(__import__('collections').deque([1]))) == [1]\n"
        "print(m.build(1).first())\n"
    )
    result = subprocess.run(
        [str(PYTHON_39), "-c", check], cwd=tmp_path, capture_output=True, text=True
    )

    assert result.returncode == 0, f"{result.stderr}\n--- applied ---\n{new_source}"
    assert result.stdout == "None\n"
    assert 'def drain(queue: "_Any") -> "Iterator[Union[int, str]]":' in new_source


def test_applied_module_passes_mypy(tmp_path: Path) -> None:
    node = TypeRef("pkg.mod", "Node")
    traces = [
        trace("Node.__init__", {"self": node, "children": TypeRef("builtins", "list", (node,))}),
        trace("Node.first", {"self": node}, node),
        trace("Node.first", {"self": node}, NONE),
        trace("build", {"depth": INT, "counts": NONE}, node),
        trace("drain", {"queue": TypeRef("_collections", "deque", (INT,))}, NONE, INT),
    ]
    stub = build_stub(MODULE, traces, RUNTIME_SOURCE)
    path = tmp_path / "mod.py"
    path.write_text(apply_stub_to_source(RUNTIME_SOURCE, stub, target_version=(3, 9)))
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file=", "--no-incremental", str(path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + path.read_text()


TYPE_VAR_SOURCE = """\
def add(a, b):
    return a + b


def pick(x, flag=False):
    return x if flag else x


class Node:
    pass
"""
NODE = TypeRef(MODULE, "Node")
BOOL = TypeRef("builtins", "bool")
TYPE_VAR_TRACES = [
    trace("add", {"a": INT, "b": INT}, INT),
    trace("add", {"a": STR, "b": STR}, STR),
    trace("pick", {"x": INT, "flag": BOOL}, INT),
    trace("pick", {"x": NODE, "flag": BOOL}, NODE),
]


class TestTypeVars:
    def test_declared_for_type_checkers_only(self) -> None:
        """The TypeVar is declared under TYPE_CHECKING and the annotations are quoted."""
        after = apply(TYPE_VAR_SOURCE, *TYPE_VAR_TRACES)
        assert after.startswith(
            "import typing as _typing\n\n"
            "if _typing.TYPE_CHECKING:\n"
            "    from typing import TypeVar\n"
            '    _T = TypeVar("_T", int, str)\n'
            '    _T1 = TypeVar("_T1", int, "Node")\n'
        )
        assert 'def add(a: "_T", b: "_T") -> "_T":' in after
        assert 'def pick(x: "_T1", flag: bool = False) -> "_T1":' in after

    def test_future_annotations_unquoted(self) -> None:
        """Annotations stay unquoted under postponed evaluation; class constraints stay quoted."""
        source = "from __future__ import annotations\n\n" + TYPE_VAR_SOURCE
        after = apply(source, *TYPE_VAR_TRACES)
        assert "def add(a: _T, b: _T) -> _T:" in after
        assert '    _T1 = TypeVar("_T1", int, "Node")\n' in after

    def test_existing_type_checking_block(self) -> None:
        source = "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    import io\n\n" + TYPE_VAR_SOURCE
        after = apply(source, *TYPE_VAR_TRACES[:2])
        assert (
            "if TYPE_CHECKING:\n"
            "    import io\n"
            "    from typing import TypeVar\n"
            '    _T = TypeVar("_T", int, str)\n'
        ) in after

    def test_name_avoids_module_names(self) -> None:
        after = apply("_T = 0\n\n" + TYPE_VAR_SOURCE, *TYPE_VAR_TRACES[:2])
        assert '_T1 = TypeVar("_T1", int, str)' in after
        assert "\n_T = 0\n" in after

    def test_idempotent(self) -> None:
        once = apply(TYPE_VAR_SOURCE, *TYPE_VAR_TRACES)
        assert apply(once, *TYPE_VAR_TRACES) == once

    @pytest.mark.skipif(not PYTHON_39.exists(), reason="needs the Python 3.9 environment")
    def test_runs_unchanged_on_python39(self, tmp_path: Path) -> None:
        """The annotated module binds no new public name and behaves as before."""
        package = tmp_path / "pkg"
        package.mkdir()
        (package / "__init__.py").write_text("")
        (package / "original.py").write_text(TYPE_VAR_SOURCE)
        new_source = apply(TYPE_VAR_SOURCE, *TYPE_VAR_TRACES, target=(3, 9))
        (package / "mod.py").write_text(new_source)
        check = (
            "import typing, pkg.mod as m, pkg.original as original\n"
            "public = lambda module: sorted(n for n in vars(module) if not n.startswith('_'))\n"
            "assert public(m) == public(original), (public(m), public(original))\n"
            "assert not hasattr(m, '_T')\n"
            "print(m.add(1, 2), m.add('a', 'b'), type(m.pick(m.Node(), True)).__name__)\n"
        )
        result = subprocess.run([str(PYTHON_39), "-c", check], cwd=tmp_path, capture_output=True, text=True)
        assert result.returncode == 0, f"{result.stderr}\n--- applied ---\n{new_source}"
        assert result.stdout == "3 ab Node\n"

    def test_passes_mypy(self, tmp_path: Path) -> None:
        """mypy accepts the TypeVar and infers the return type from the arguments."""
        path = tmp_path / "mod.py"
        usage = "\nreveal_type(add(1, 2))\nreveal_type(pick(Node()))\n"
        path.write_text(apply(TYPE_VAR_SOURCE, *TYPE_VAR_TRACES) + usage)
        result = subprocess.run(
            [sys.executable, "-m", "mypy", "--config-file=", "--no-incremental", "--strict", str(path)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
        )
        assert re.search(r'Revealed type is "(builtins\.)?int"', result.stdout), result.stdout
        assert 'Revealed type is "mod.Node"' in result.stdout
        assert "Success: no issues found" in result.stdout, result.stdout + path.read_text()


def test_target_version_too_old() -> None:
    with pytest.raises(ApplyError, match="3.6 is not supported"):
        apply("def f(a):\n    return a\n", trace("f", {"a": INT}, INT), target=(3, 6))


class TestCommandOptions:
    """The apply options of the command line, run in process against a SQLite store."""

    SOURCE = "def f(a, b):\n    return a\n"

    @pytest.fixture()
    def project(self, tmp_path: Path) -> Path:
        from typetrace.db.sqlite import SQLiteStore

        (tmp_path / "mod.py").write_text(self.SOURCE)
        store = SQLiteStore.make_store(str(tmp_path / "traces.sqlite3"))
        list_int = TypeRef("builtins", "list", (INT,))
        store.add(
            [
                CallTrace("mod", "f", {"a": list_int, "b": INT}, NONE),
                CallTrace("mod", "f", {"a": NONE, "b": STR}, NONE),
                CallTrace("mod", "f", {"a": NONE, "b": BYTES}, NONE),
            ]
        )
        store.close()
        return tmp_path

    def run(self, project: Path, *args: str) -> tuple[int, str, str]:
        from typetrace.cli import main

        stdout, stderr = io.StringIO(), io.StringIO()
        path = str(project / "mod.py")
        code = main(["--db", str(project / "traces.sqlite3"), "apply", path, *args], stdout, stderr)
        return code, stdout.getvalue(), stderr.getvalue()

    def test_target_version(self, project: Path) -> None:
        code, out, err = self.run(project, "--diff", "--target-version", "3.8")
        assert code == 0, err
        assert '+def f(a: "Optional[List[int]]", b: "Union[bytes, int, str]") -> None:' in out

    def test_max_union_size(self, project: Path) -> None:
        code, out, err = self.run(project, "--diff", "--max-union-size", "2", "--target-version", "3.10")
        assert code == 0, err
        assert '+def f(a: list[int] | None, b: "Any") -> None:' in out

    def test_invalid_target_version(self, project: Path) -> None:
        code, _, err = self.run(project, "--target-version", "3")
        assert code == 1
        assert "Invalid target version '3': expected MAJOR.MINOR, such as 3.9 (option --target-version)" in err
        assert (project / "mod.py").read_text() == self.SOURCE

    def test_invalid_max_union_size(self, project: Path) -> None:
        code, _, err = self.run(project, "--max-union-size", "0")
        assert code == 1
        assert "Invalid --max-union-size 0: it must be at least 1" in err


SELF_SOURCE = """\
class Builder:
    def add(self, part):
        return self
"""
BUILDER = TypeRef(MODULE, "Builder")
SELF_TRACE = trace("Builder.add", {"self": BUILDER, "part": INT}, receiver(BUILDER))


class TestSelf:
    @pytest.mark.parametrize(
        ("target", "import_line"),
        [((3, 9), "    from typing_extensions import Self\n"), ((3, 11), "    from typing import Self\n")],
    )
    def test_imported_for_type_checkers_only(self, target: tuple[int, int], import_line: str) -> None:
        after = apply(SELF_SOURCE, SELF_TRACE, target=target)
        assert after.startswith("import typing as _typing\n\nif _typing.TYPE_CHECKING:\n" + import_line)
        assert 'def add(self, part: int) -> "Self":' in after

    def test_future_annotations_unquoted(self) -> None:
        after = apply("from __future__ import annotations\n\n" + SELF_SOURCE, SELF_TRACE, target=(3, 9))
        assert "def add(self, part: int) -> Self:" in after

    def test_existing_import_reused(self) -> None:
        source = "from typing_extensions import Self\n\n" + SELF_SOURCE
        after = apply(source, SELF_TRACE, target=(3, 12))
        assert after == source.replace("def add(self, part):", "def add(self, part: int) -> Self:")

    def test_name_taken_in_module(self) -> None:
        after = apply("Self = 1\n\n" + SELF_SOURCE, SELF_TRACE, target=(3, 9))
        assert "    from typing_extensions import Self as _Self\n" in after
        assert 'def add(self, part: int) -> "_Self":' in after


SQUARE = TypeRef("pkg.shapes", "Square")
AREA_TRACE = trace("area", {"square": SQUARE}, INT)
AREA_SOURCE = """
def area(square):
    return square.side
"""


class TestImportedClasses:
    def test_relative_import_reused(self) -> None:
        """A class that the module imports by name is written by that name, with no new import."""
        after = apply("from .shapes import Square\n" + AREA_SOURCE, AREA_TRACE)
        assert 'def area(square: "Square") -> int:' in after
        assert "import pkg.shapes" not in after

    def test_package_relative_import_reused(self) -> None:
        """In a package's ``__init__``, ``.shapes`` is the package's own submodule."""
        source = "from .shapes import Square\n" + textwrap.dedent(AREA_SOURCE)
        traces = [CallTrace("pkg", "area", {"square": SQUARE}, INT)]
        stub = build_stub("pkg", traces, source, is_package=True)
        after = apply_stub_to_source(source, stub)
        assert 'def area(square: "Square") -> int:' in after
        assert "import pkg.shapes" not in after

    def test_future_annotations_unquoted(self) -> None:
        """With postponed evaluation of annotations, the reused name is not quoted."""
        source = "from __future__ import annotations\n\nfrom pkg.shapes import Square\n" + AREA_SOURCE
        after = apply(source, AREA_TRACE)
        assert "def area(square: Square) -> int:" in after

    def test_reexport_not_reused(self) -> None:
        """A name imported from another module than the one that defines the class is not reused."""
        after = apply("from pkg import Square\n" + AREA_SOURCE, AREA_TRACE)
        assert 'def area(square: "pkg.shapes.Square") -> int:' in after
        assert "    import pkg.shapes\n" in after
