"""Annotations from a real pytest run name only public, portable types.

A small library is traced through its pytest suite with ``typetrace run``: pytest's
capture streams, ``typing.List[int]`` objects and ``PosixPath`` values flow through
it. The stub and the applied source are read back, checked for private names and
checked with mypy.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support import run_typetrace

LIBRARY = "quality_lib"

LIBRARY_SOURCE = '''\
import typing


def __getattr__(name):
    if name == "answer":
        return 42
    raise AttributeError(name)


def emit(stream, data):
    stream.write(data)


def show_text(stream, text):
    stream.write(text)


def describe_hint(hint):
    return repr(hint)


def parent_of(path):
    return path.parent


def greet(name, greeting=None):
    return f"{greeting or 'Hello'}, {name}"


def fail(message):
    raise ValueError(message)


def check_positive(value):
    if value < 0:
        raise ValueError(value)
'''

TEST_SOURCE = f'''\
import io
import sys
import typing

import pytest

import {LIBRARY} as lib


def test_streams(capsys):
    lib.emit(sys.stdout, "text")
    lib.emit(io.BytesIO(), b"bytes")
    lib.show_text(sys.stdout, "captured")
    lib.show_text(io.StringIO(), "in memory")
    assert capsys.readouterr().out == "textcaptured"


def test_fd_capture():
    lib.show_text(sys.stdout, "fd")


def test_hint():
    assert lib.describe_hint(typing.List[int]) == "typing.List[int]"


def test_paths(tmp_path):
    assert lib.parent_of(tmp_path / "a") == tmp_path


def test_greet():
    assert lib.greet("Ada") == "Hello, Ada"


def test_fail():
    for message in ("a", "b"):
        with pytest.raises(ValueError):
            lib.fail(message)


def test_check():
    for value in (-1, -2):
        with pytest.raises(ValueError):
            lib.check_positive(value)


def test_module_getattr():
    assert lib.answer == 42
'''

USER_SOURCE = f"""\
import {LIBRARY}

reveal_type({LIBRARY}.answer)
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the library and its tests, traced through pytest."""
    folder = tmp_path_factory.mktemp("quality")
    (folder / f"{LIBRARY}.py").write_text(LIBRARY_SOURCE)
    (folder / "test_quality_lib.py").write_text(TEST_SOURCE)
    result = run_typetrace(folder, "run", "--all-calls", "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_quality_lib.py")
    assert result.returncode == 0, result.stdout + result.stderr
    return folder


@pytest.fixture(scope="module")
def stub_text(project: Path) -> str:
    result = run_typetrace(project, "stub", LIBRARY)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def applied(project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the project with the annotations applied to the library."""
    folder = tmp_path_factory.mktemp("applied")
    (folder / f"{LIBRARY}.py").write_text(LIBRARY_SOURCE)
    (folder / "use.py").write_text(USER_SOURCE)
    result = run_typetrace(
        folder, "apply", LIBRARY, "--target-version", "3.10", env={"TYPETRACE_DB": str(project / "traces.sqlite3")}
    )
    assert result.returncode == 0, result.stderr
    return folder


def stub_line(text: str, name: str) -> str:
    lines = [line for line in text.splitlines() if line.startswith(f"def {name}(")]
    assert len(lines) == 1, f"{len(lines)} lines define {name}:\n{text}"
    return lines[0]


def run_mypy(folder: Path, *files: str) -> subprocess.CompletedProcess[str]:
    # The annotations target Python 3.10, whatever Python runs the tests.
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file=", "--no-incremental", "--python-version", "3.10", *files],
        cwd=folder,
        capture_output=True,
        text=True,
    )


class TestStub:
    def test_mixed_streams_are_io(self, stub_text: str) -> None:
        assert stub_line(stub_text, "emit") == "def emit(stream: IO[Any], data: bytes | str) -> None: ..."

    def test_text_streams_are_text_io(self, stub_text: str) -> None:
        """pytest's CaptureIO and EncodedFile count as TextIOWrapper, which joins
        StringIO in TextIO."""
        assert stub_line(stub_text, "show_text") == "def show_text(stream: TextIO, text: str) -> None: ..."

    def test_typing_alias_is_any(self, stub_text: str) -> None:
        assert stub_line(stub_text, "describe_hint") == "def describe_hint(hint: Any) -> str: ..."

    def test_posix_path_is_path(self, stub_text: str) -> None:
        assert stub_line(stub_text, "parent_of") == "def parent_of(path: pathlib.Path) -> pathlib.Path: ..."

    def test_default_only_none_unannotated(self, stub_text: str) -> None:
        assert stub_line(stub_text, "greet") == "def greet(name: str, greeting=...) -> str: ..."

    def test_ending_in_raise_is_no_return(self, stub_text: str) -> None:
        assert stub_line(stub_text, "fail") == "def fail(message: str) -> NoReturn: ..."

    def test_conditional_raise_has_no_return_type(self, stub_text: str) -> None:
        assert stub_line(stub_text, "check_positive") == "def check_positive(value: int): ..."

    def test_module_getattr_declared_once(self, stub_text: str) -> None:
        """The module's own __getattr__ takes the generic one's place; its return stays
        Any because the stub leaves out untraced names."""
        assert stub_line(stub_text, "__getattr__") == "def __getattr__(name: str) -> Any: ..."

    def test_no_private_names(self, stub_text: str) -> None:
        for private in ("_pytest", "_GenericAlias", "_io", "PosixPath", "CaptureIO", "EncodedFile"):
            assert private not in stub_text

    def test_stub_passes_mypy(self, stub_text: str, tmp_path: Path) -> None:
        (tmp_path / f"{LIBRARY}.pyi").write_text(stub_text)
        result = run_mypy(tmp_path, f"{LIBRARY}.pyi")
        assert result.returncode == 0, result.stdout + stub_text


class TestApplied:
    def test_module_getattr_annotated(self, applied: Path) -> None:
        source = (applied / f"{LIBRARY}.py").read_text()
        assert "def __getattr__(name: str) -> int:" in source

    def test_no_private_names(self, applied: Path) -> None:
        source = (applied / f"{LIBRARY}.py").read_text()
        for private in ("_pytest", "_GenericAlias", "_io", "PosixPath"):
            assert private not in source

    def test_passes_mypy(self, applied: Path) -> None:
        """The annotated library checks clean, and its users see the traced type of a
        name that the module's __getattr__ provides."""
        result = run_mypy(applied, f"{LIBRARY}.py", "use.py")
        source = (applied / f"{LIBRARY}.py").read_text()
        lines = result.stdout.splitlines()
        assert [line for line in lines if line.startswith(f"{LIBRARY}.py")] == [], source
        # mypy 2 writes "int"; earlier versions "builtins.int".
        revealed = {'use.py:3: note: Revealed type is "int"', 'use.py:3: note: Revealed type is "builtins.int"'}
        assert revealed & set(lines), result.stdout
