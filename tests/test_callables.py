"""Callable annotations built from the traced calls of the functions that were passed,
returned or yielded as values."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Optional

import pytest
from support import MODULE, make_trace, run_typetrace

from typetrace.apply import apply_stub_to_source
from typetrace.stubs import ModuleStub, build_stub
from typetrace.stubs.build import ModuleSource
from typetrace.tracing import CallTrace
from typetrace.typemodel import CALLABLE, NONE, FunctionRef, TypeRef

INT = TypeRef("builtins", "int")
STR = TypeRef("builtins", "str")
BOOL = TypeRef("builtins", "bool")

trace = make_trace


def named(qualname: str, bound: bool = False, module: str = MODULE) -> TypeRef:
    """Return the Callable that inference records for the function *qualname*."""
    return TypeRef("collections.abc", "Callable", function=FunctionRef(module, qualname, bound))


SOURCE = """
import contextlib


def apply_twice(f, x):
    return f(f(x))


def inc(x):
    return x + 1


def shout(text):
    return text.upper()


def pad(text, width=10):
    return text.ljust(width)


def join_all(*parts):
    return "".join(parts)


def keyed(x, *, scale):
    return x * scale


async def fetch(x):
    return x


def count_up(n):
    yield n


def make_adder(n):
    def add(x):
        return x + n

    return add


def make_checker():
    class Checker:
        def check(self, value):
            return value > 0

    return Checker().check


def callbacks(handlers):
    return len(handlers)


def untraced(x):
    return x


def recurse(f):
    return 0


def explode(x):
    raise ValueError(x)


@contextlib.contextmanager
def opened(path):
    yield path


class Counter:
    def step(self, by):
        return by

    @classmethod
    def create(cls, start):
        return cls()

    @staticmethod
    def check(value):
        return value > 0
"""

COUNTER = TypeRef(MODULE, "Counter")


def build(*traces: CallTrace, modules: Optional[dict[str, ModuleSource]] = None) -> ModuleStub:
    loader = None if modules is None else modules.get
    return build_stub(MODULE, traces, textwrap.dedent(SOURCE), modules=loader)


def stub_text(*traces: CallTrace, target_version: Optional[tuple[int, int]] = None) -> str:
    text = build(*traces).render(target_version=target_version)
    ast.parse(text)
    return text


def apply_twice(callback: TypeRef) -> CallTrace:
    return trace("apply_twice", {"f": callback, "x": INT}, INT)


#: mypy options for annotated sources, which fail --strict because untraced functions
#: stay unannotated and a Callable[..., Any] returns Any.
SOURCE_CHECKS = ("--disallow-any-generics", "--check-untyped-defs")


def run_mypy(tmp_path: Path, text: str, suffix: str = ".pyi") -> None:
    """Check *text* with mypy in a subprocess, ignoring the project config. A stub gets
    --strict and a source :data:`SOURCE_CHECKS`."""
    path = tmp_path / f"mod{suffix}"
    path.write_text(text)
    options = ("--strict",) if suffix == ".pyi" else SOURCE_CHECKS
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file=", "--no-incremental", *options, str(path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, f"{result.stdout}{result.stderr}\n--- checked ---\n{text}"


class TestSignatures:
    @pytest.mark.parametrize(
        ("callback", "callee_trace", "expected"),
        [
            pytest.param(
                named("inc"),
                trace("inc", {"x": INT}, INT),
                "collections.abc.Callable[[int], int]",
                id="function",
            ),
            pytest.param(
                named("Counter.step", bound=True),
                trace("Counter.step", {"self": COUNTER, "by": INT}, INT),
                "collections.abc.Callable[[int], int]",
                id="bound-method",
            ),
            pytest.param(
                named("Counter.step"),
                trace("Counter.step", {"self": COUNTER, "by": INT}, INT),
                "collections.abc.Callable[[Counter, int], int]",
                id="method-from-class",
            ),
            pytest.param(
                named("Counter.create", bound=True),
                trace("Counter.create", {"cls": TypeRef("builtins", "type", (COUNTER,)), "start": INT}, COUNTER),
                "collections.abc.Callable[[int], Counter]",
                id="classmethod",
            ),
            pytest.param(
                named("Counter.check"),
                trace("Counter.check", {"value": INT}, BOOL),
                "collections.abc.Callable[[int], bool]",
                id="staticmethod",
            ),
            pytest.param(
                named("pad"),
                trace("pad", {"text": STR, "width": INT}, STR),
                "collections.abc.Callable[..., str]",
                id="default",
            ),
            pytest.param(
                named("join_all"),
                trace("join_all", {"parts": TypeRef("builtins", "tuple", (STR, TypeRef("builtins", "Ellipsis")))}, STR),
                "collections.abc.Callable[..., str]",
                id="var-positional",
            ),
            pytest.param(
                named("keyed"),
                trace("keyed", {"x": INT, "scale": INT}, INT),
                "collections.abc.Callable[..., int]",
                id="keyword-only",
            ),
            pytest.param(
                named("fetch"),
                trace("fetch", {"x": INT}, INT),
                "collections.abc.Callable[[int], collections.abc.Coroutine[Any, Any, int]]",
                id="async",
            ),
            pytest.param(
                named("count_up"),
                trace("count_up", {"n": INT}, NONE, INT),
                "collections.abc.Callable[[int], Iterator[int]]",
                id="generator",
            ),
            pytest.param(
                named("explode"),
                trace("explode", {"x": INT}, None),
                "collections.abc.Callable[[int], NoReturn]",
                id="never-returns",
            ),
            pytest.param(
                named("untraced"),
                None,
                "collections.abc.Callable[..., Any]",
                id="no-traces",
            ),
            pytest.param(
                named("missing"),
                trace("missing", {"x": INT}, INT),
                "collections.abc.Callable[..., Any]",
                id="no-source",
            ),
            pytest.param(CALLABLE, None, "collections.abc.Callable[..., Any]", id="lambda"),
            pytest.param(
                named("opened"),
                trace("opened", {"path": STR}, NONE, STR),
                "collections.abc.Callable[..., Any]",
                id="decorated",
            ),
        ],
    )
    def test_parameter_callable(self, callback: TypeRef, callee_trace: Optional[CallTrace], expected: str) -> None:
        traces = [apply_twice(callback)] + ([callee_trace] if callee_trace is not None else [])

        text = stub_text(*traces)

        assert f"def apply_twice(f: {expected}, x: int) -> int: ..." in text

    def test_nested_function_returned(self) -> None:
        text = stub_text(
            trace("make_adder", {"n": INT}, named("make_adder.<locals>.add")),
            trace("make_adder.<locals>.add", {"x": INT}, INT),
        )

        assert "def make_adder(n: int) -> collections.abc.Callable[[int], int]: ..." in text
        assert "<locals>" not in text

    def test_method_of_local_class(self) -> None:
        qualname = "make_checker.<locals>.Checker.check"
        text = stub_text(
            trace("make_checker", {}, named(qualname, bound=True)),
            trace(qualname, {"self": TypeRef(MODULE, "make_checker.<locals>.Checker"), "value": INT}, BOOL),
        )

        assert "def make_checker() -> collections.abc.Callable[[int], bool]: ..." in text

    def test_container_of_callbacks(self) -> None:
        handlers = TypeRef("builtins", "list", (named("inc"),))
        text = stub_text(
            trace("callbacks", {"handlers": handlers}, INT),
            trace("inc", {"x": INT}, INT),
        )

        assert "def callbacks(handlers: list[collections.abc.Callable[[int], int]]) -> int: ..." in text

    def test_yielded_callback(self) -> None:
        text = stub_text(
            trace("count_up", {"n": INT}, NONE, named("inc")),
            trace("inc", {"x": INT}, INT),
        )

        assert "def count_up(n: int) -> Iterator[collections.abc.Callable[[int], int]]: ..." in text

    def test_callback_of_itself(self) -> None:
        """A function whose parameter was the function itself ends in a bare Callable."""
        text = stub_text(trace("recurse", {"f": named("recurse")}, INT))

        assert (
            "def recurse(f: collections.abc.Callable[[collections.abc.Callable[..., Any]], int]) -> int: ..."
            in text
        )

    def test_callback_taking_callback(self) -> None:
        text = stub_text(
            trace("recurse", {"f": named("apply_twice")}, INT),
            apply_twice(named("inc")),
            trace("inc", {"x": INT}, INT),
        )

        expected = "collections.abc.Callable[[collections.abc.Callable[[int], int], int], int]"
        assert f"def recurse(f: {expected}) -> int: ..." in text


REDEFINED_SOURCE = """
import sys


def use(f):
    return f(1)


if sys.platform == "win32":
    def convert(x, base):
        return x
else:
    def convert(x):
        return str(x)


if sys.platform == "win32":
    def same(x):
        return x
else:
    def same(x):
        return str(x)


def make(flag):
    if flag:
        def callback(x):
            return str(x)
    else:
        def callback(x, y):
            return x
    return callback


def make_pair(flag):
    if flag:
        def pair(x):
            return str(x)
    else:
        async def pair(x):
            return x
    return pair
"""


class TestRedefinitions:
    """A function defined more than once under one qualname, where the value passed
    may come from any of the definitions."""

    def stub_text(self, *traces: CallTrace) -> str:
        text = build_stub(MODULE, traces, textwrap.dedent(REDEFINED_SOURCE)).render()
        ast.parse(text)
        return text

    def test_module_function_parameters_differ(self) -> None:
        text = self.stub_text(
            trace("use", {"f": named("convert")}, STR),
            trace("convert", {"x": INT}, STR),
        )

        assert "def use(f: collections.abc.Callable[..., str]) -> str: ..." in text

    def test_module_function_parameters_same(self) -> None:
        text = self.stub_text(
            trace("use", {"f": named("same")}, STR),
            trace("same", {"x": INT}, STR),
        )

        assert "def use(f: collections.abc.Callable[[int], str]) -> str: ..." in text

    def test_nested_function_parameters_differ(self) -> None:
        qualname = "make.<locals>.callback"
        text = self.stub_text(
            trace("make", {"flag": BOOL}, named(qualname)),
            trace("use", {"f": named(qualname)}, STR),
            trace(qualname, {"x": INT}, STR),
        )

        assert "def make(flag: bool) -> collections.abc.Callable[..., str]: ..." in text
        assert "def use(f: collections.abc.Callable[..., str]) -> str: ..." in text

    def test_nested_async_and_plain(self) -> None:
        """The Coroutine of one definition is not written for the other's value."""
        qualname = "make_pair.<locals>.pair"
        text = self.stub_text(
            trace("make_pair", {"flag": BOOL}, named(qualname)),
            trace(qualname, {"x": INT}, STR),
        )

        assert "def make_pair(flag: bool) -> collections.abc.Callable[[int], Any]: ..." in text

    def test_mypy_accepts_applied_source(self, tmp_path: Path) -> None:
        source = textwrap.dedent(
            """
            def use(f):
                return f(1)


            def make(flag):
                if flag:
                    def callback(x):
                        return str(x)
                else:
                    def callback(x, y):  # type: ignore[misc]
                        return x
                return callback


            use(make(True))
            """
        )
        qualname = "make.<locals>.callback"
        traces = [
            trace("make", {"flag": BOOL}, named(qualname)),
            trace("use", {"f": named(qualname)}, STR),
            trace(qualname, {"x": INT}, STR),
        ]

        applied = apply_stub_to_source(source, build_stub(MODULE, traces, source))

        # The ignore comment is for mypy's rule that conditional variants of a
        # function share one signature, which the unannotated source already breaks.
        assert "def use(f: " in applied
        run_mypy(tmp_path, applied, suffix=".py")


class TestMerging:
    """Parameter types are never joined, because no callable would accept the union."""

    @pytest.mark.parametrize(
        ("second", "expected"),
        [
            pytest.param(
                [apply_twice(named("Counter.check")), trace("Counter.check", {"value": INT}, BOOL)],
                "collections.abc.Callable[[int], int]",
                id="same-parameters",
            ),
            pytest.param(
                [apply_twice(named("shout")), trace("shout", {"text": STR}, STR)],
                "collections.abc.Callable[..., int | str]",
                id="other-parameters",
            ),
            pytest.param([apply_twice(CALLABLE)], "collections.abc.Callable[..., Any]", id="unknown-signature"),
        ],
    )
    def test_second_callback(self, second: list[CallTrace], expected: str) -> None:
        text = stub_text(apply_twice(named("inc")), trace("inc", {"x": INT}, INT), *second)

        assert f"def apply_twice(f: {expected}, x: int) -> int: ..." in text


class TestOtherModules:
    CALLBACKS = """
    def double(x):
        return x * 2


    def make_scaler(factor):
        def scale(x):
            return x * factor

        return scale
    """

    def modules(self, *traces: CallTrace) -> dict[str, ModuleSource]:
        return {"pkg.callbacks": ModuleSource(textwrap.dedent(self.CALLBACKS), traces)}

    def test_function_of_loaded_module(self) -> None:
        callee = CallTrace("pkg.callbacks", "double", {"x": INT}, INT)
        stub = build(apply_twice(named("double", module="pkg.callbacks")), modules=self.modules(callee))

        assert "def apply_twice(f: collections.abc.Callable[[int], int], x: int) -> int: ..." in stub.render()

    def test_nested_function_of_loaded_module(self) -> None:
        qualname = "make_scaler.<locals>.scale"
        callee = CallTrace("pkg.callbacks", qualname, {"x": STR}, STR)
        stub = build(apply_twice(named(qualname, module="pkg.callbacks")), modules=self.modules(callee))

        assert "def apply_twice(f: collections.abc.Callable[[str], str], x: int) -> int: ..." in stub.render()

    def test_module_without_source(self) -> None:
        stub = build(apply_twice(named("double", module="pkg.callbacks")), modules={})

        assert "def apply_twice(f: collections.abc.Callable[..., Any], x: int) -> int: ..." in stub.render()


class TestRendering:
    TRACES = (
        apply_twice(named("inc")),
        trace("inc", {"x": INT}, INT),
        trace("make_adder", {"n": INT}, named("make_adder.<locals>.add")),
        trace("make_adder.<locals>.add", {"x": INT}, named("fetch")),
        trace("fetch", {"x": INT}, INT),
    )

    def test_target_39(self) -> None:
        text = stub_text(*self.TRACES, target_version=(3, 9))

        assert "import collections.abc" in text
        assert "def apply_twice(f: collections.abc.Callable[[int], int], x: int) -> int: ..." in text
        assert (
            "def make_adder(n: int) -> collections.abc.Callable[[int], "
            "collections.abc.Callable[[int], collections.abc.Coroutine[Any, Any, int]]]: ..."
        ) in text

    def test_target_38_uses_typing(self) -> None:
        text = stub_text(*self.TRACES, target_version=(3, 8))

        assert "from typing import Any, Callable, Coroutine" in text
        assert "def apply_twice(f: Callable[[int], int], x: int) -> int: ..." in text

    @pytest.mark.parametrize("target_version", [None, (3, 8), (3, 9)])
    def test_mypy_accepts_stub(self, tmp_path: Path, target_version: Optional[tuple[int, int]]) -> None:
        text = stub_text(*self.TRACES, apply_twice(CALLABLE), target_version=target_version)

        run_mypy(tmp_path, text)

    @pytest.mark.parametrize("target_version", [(3, 8), (3, 9), (3, 12)])
    def test_apply_imports_for_type_checking(self, tmp_path: Path, target_version: tuple[int, int]) -> None:
        source = textwrap.dedent(SOURCE)
        stub = build(*self.TRACES)

        applied = apply_stub_to_source(source, stub, target_version=target_version)

        assert "TYPE_CHECKING:\n" in applied
        assert "Callable[[int], int]\", x: int) -> int:" in applied
        namespace: dict[str, object] = {}
        exec(compile(applied, "mod.py", "exec"), namespace)
        assert namespace["apply_twice"](namespace["inc"], 1) == 3  # type: ignore[operator]
        run_mypy(tmp_path, applied, suffix=".py")


CALLBACK_SCRIPT = """
    import asyncio

    from helpers import double, make_greeter


    def apply_twice(f, x):
        return f(f(x))


    def run_all(handlers, value):
        return [handler(value) for handler in handlers]


    def main():
        print(apply_twice(double, 3))
        greet = make_greeter("Hi")
        print(run_all([greet, str.upper], "ann"))
        print(apply_twice(lambda x: x, 1))


    if __name__ == "__main__":
        main()
"""

CALLBACK_HELPERS = """
    def double(x):
        return x * 2


    def make_greeter(greeting):
        def greet(name):
            return greeting + ", " + name

        return greet
"""


@pytest.fixture
def traced_callbacks(tmp_path: Path) -> Path:
    for name, text in (("app.py", CALLBACK_SCRIPT), ("helpers.py", CALLBACK_HELPERS)):
        (tmp_path / name).write_text(textwrap.dedent(text).lstrip())
    result = run_typetrace(tmp_path, "run", "--all-calls", "app.py")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "12\n['Hi, ann', 'ANN']\n1\n"
    return tmp_path


class TestCommandLine:
    def test_stub_names_signatures(self, traced_callbacks: Path) -> None:
        app = run_typetrace(traced_callbacks, "stub", "app")
        helpers = run_typetrace(traced_callbacks, "stub", "helpers")

        assert app.returncode == 0, app.stderr
        assert "def apply_twice(f: collections.abc.Callable[..., Any], x: int) -> int: ..." in app.stdout
        assert "def run_all(handlers: list[collections.abc.Callable[..., Any]], value: str) -> list[str]: ..." in app.stdout
        assert helpers.returncode == 0, helpers.stderr
        assert "def make_greeter(greeting: str) -> collections.abc.Callable[[str], str]: ..." in helpers.stdout

    def test_stub_without_lambda(self, traced_callbacks: Path) -> None:
        """Without the lambda's call, apply_twice took only a function with a known signature."""
        script = traced_callbacks / "app.py"
        script.write_text(script.read_text().replace("    print(apply_twice(lambda x: x, 1))\n", ""))
        (traced_callbacks / "traces.sqlite3").unlink()
        assert run_typetrace(traced_callbacks, "run", "--all-calls", "app.py").returncode == 0

        result = run_typetrace(traced_callbacks, "stub", "app", "--target-version", "3.9")

        assert result.returncode == 0, result.stderr
        assert "def apply_twice(f: collections.abc.Callable[[int], int], x: int) -> int: ..." in result.stdout

    def test_mypy_accepts_stubs(self, traced_callbacks: Path) -> None:
        result = run_typetrace(traced_callbacks, "stub", "app", "--output-dir", "stubs")
        assert result.returncode == 0, result.stderr
        assert run_typetrace(traced_callbacks, "stub", "helpers", "--output-dir", "stubs").returncode == 0

        checked = subprocess.run(
            [sys.executable, "-m", "mypy", "--strict", "stubs/app.pyi", "stubs/helpers.pyi"],
            cwd=traced_callbacks,
            capture_output=True,
            text=True,
        )

        assert checked.returncode == 0, checked.stdout

    def test_applied_source_checks_and_runs(self, traced_callbacks: Path) -> None:
        for module in ("helpers", "app"):
            result = run_typetrace(traced_callbacks, "apply", module, "--target-version", "3.9")
            assert result.returncode == 0, result.stderr
        helpers = (traced_callbacks / "helpers.py").read_text()
        assert "def make_greeter(greeting: str) -> \"collections.abc.Callable[[str], str]\":" in helpers

        checked = subprocess.run(
            [sys.executable, "-m", "mypy", *SOURCE_CHECKS, "app.py", "helpers.py"],
            cwd=traced_callbacks,
            capture_output=True,
            text=True,
        )
        ran = subprocess.run([sys.executable, "app.py"], cwd=traced_callbacks, capture_output=True, text=True)

        assert checked.returncode == 0, checked.stdout
        assert ran.stdout == "12\n['Hi, ann', 'ANN']\n1\n"
