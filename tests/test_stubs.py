"""Tests for building stubs from traces and source, and rendering them as .pyi text."""

from __future__ import annotations

import ast
import dataclasses
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Optional

import pytest
from support import MODULE, make_trace

from typetrace.stubs import ModuleStub, PropertyAccessor, StubBuildError, build_stub
from typetrace.stubs.annotations import parse_target_version
from typetrace.tracing import CallTrace
from typetrace.typemodel import ANY, ELLIPSIS, NONE, TypeRef, receiver

INT = TypeRef("builtins", "int")
STR = TypeRef("builtins", "str")
BYTES = TypeRef("builtins", "bytes")


trace = make_trace


def stub_text(source: str, *traces: CallTrace, overwrite: bool = False) -> str:
    stub = build_stub(MODULE, traces, textwrap.dedent(source), overwrite_existing=overwrite)
    text = stub.render()
    ast.parse(text)
    return text


def run_mypy(tmp_path: Path, text: str, name: str = "mod") -> None:
    """Check the .pyi text with mypy in a subprocess, ignoring the project config."""
    path = tmp_path / f"{name}.pyi"
    path.write_text(text)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file=", "--no-incremental", "--strict", str(path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, f"{result.stdout}{result.stderr}\n--- stub ---\n{text}"


class TestFunctions:
    def test_plain_function(self) -> None:
        text = stub_text("def f(a, b=1):\n    return a\n", trace("f", {"a": INT, "b": INT}, STR))
        assert "def f(a: int, b: int = ...) -> str: ..." in text

    def test_union_of_traces(self) -> None:
        text = stub_text(
            "def f(a):\n    return a\n",
            trace("f", {"a": INT}, STR),
            trace("f", {"a": STR}, INT),
        )
        assert "def f(a: int | str) -> int | str: ..." in text

    def test_none_folds_into_optional(self) -> None:
        text = stub_text(
            "def f(a):\n    return a\n",
            trace("f", {"a": INT}, INT),
            trace("f", {"a": NONE}, NONE),
        )
        assert "def f(a: int | None) -> int | None: ..." in text

    def test_only_raised_has_no_return(self) -> None:
        source = "def f(a):\n    if a:\n        raise ValueError(a)\n"
        text = stub_text(source, trace("f", {"a": INT}, None))
        assert "def f(a: int): ..." in text

    def test_ending_in_raise_returns_never(self) -> None:
        source = "def f(a):\n    if a:\n        a = str(a)\n    raise ValueError(a)\n"
        text = stub_text(source, trace("f", {"a": INT}, None))
        assert "def f(a: int) -> NoReturn: ..." in text

    @pytest.mark.parametrize(
        "body",
        [
            "    if a:\n        return 1\n    raise ValueError(a)\n",
            "    raise NotImplementedError\n",
            "    raise NotImplementedError(a)\n",
            "    yield a\n    raise ValueError(a)\n",
        ],
        ids=["has-return", "not-implemented", "not-implemented-call", "generator"],
    )
    def test_raise_that_may_return_no_return(self, body: str) -> None:
        text = stub_text(f"def f(a):\n{body}", trace("f", {"a": INT}, None))
        assert "def f(a: int):" in text
        assert "NoReturn" not in text

    def test_nested_return_still_never(self) -> None:
        source = "def f(a):\n    def g():\n        return a\n    raise ValueError(g())\n"
        text = stub_text(source, trace("f", {"a": INT}, None))
        assert "def f(a: int) -> NoReturn: ..." in text

    def test_raised_and_returned(self) -> None:
        text = stub_text(
            "def f(a):\n    return a\n",
            trace("f", {"a": INT}, None),
            trace("f", {"a": INT}, INT),
        )
        assert "def f(a: int) -> int: ..." in text

    def test_untraced_function_left_out(self) -> None:
        text = stub_text("def f(a):\n    pass\ndef g(a):\n    pass\n", trace("f", {"a": INT}))
        assert "def g" not in text

    def test_traced_function_missing_from_source(self) -> None:
        stub = build_stub(MODULE, [trace("gone", {"a": INT})], "def f(a):\n    pass\n")
        assert stub.function_count == 0
        assert "gone" not in stub.render()
        assert stub.render().endswith("def __getattr__(name: str) -> Any: ...\n")

    def test_other_module_traces_ignored(self) -> None:
        other = CallTrace("other", "f", {"a": INT}, NONE)
        stub = build_stub(MODULE, [other], "def f(a):\n    pass\n")
        assert stub.function_count == 0

    def test_parameter_kinds(self) -> None:
        source = "def f(a, /, b, *args, c, d=2, **kwargs):\n    pass\n"
        types = {"a": INT, "b": STR, "args": BYTES, "c": INT, "d": INT, "kwargs": STR}
        text = stub_text(source, trace("f", types))
        expected = "def f(a: int, /, b: str, *args: bytes, c: int, d: int = ..., **kwargs: str) -> None: ..."
        assert expected in text

    def test_keyword_only_marker(self) -> None:
        text = stub_text("def f(a, *, b):\n    pass\n", trace("f", {"a": INT, "b": INT}))
        assert "def f(a: int, *, b: int) -> None: ..." in text

    def test_untraced_parameter_unannotated(self) -> None:
        text = stub_text("def f(a, b=None):\n    pass\n", trace("f", {"a": INT}))
        assert "def f(a: int, b=...) -> None: ..." in text

    def test_nested_function_skipped(self) -> None:
        source = "def outer():\n    def inner(a):\n        return a\n    return inner\n"
        stub = build_stub(MODULE, [trace("outer.<locals>.inner", {"a": INT}, INT)], source)
        assert stub.function_count == 0

    def test_overload_skipped(self) -> None:
        source = """\
            from typing import overload
            @overload
            def f(a: int) -> int: ...
            @overload
            def f(a: str) -> str: ...
            def f(a):
                return a
        """
        stub = build_stub(MODULE, [trace("f", {"a": INT}, INT)], textwrap.dedent(source))
        assert stub.function_count == 0

    def test_invalid_source(self) -> None:
        with pytest.raises(StubBuildError, match="'pkg.mod'"):
            build_stub(MODULE, [], "def f(:\n")


class TestGenerators:
    def test_iterator(self) -> None:
        text = stub_text("def g():\n    yield 1\n", trace("g", {}, NONE, INT))
        assert "def g() -> Iterator[int]: ..." in text
        assert "from typing import Any, Iterator" in text

    def test_generator_with_return_value(self) -> None:
        text = stub_text("def g():\n    yield 1\n    return 'x'\n", trace("g", {}, STR, INT))
        assert "def g() -> Generator[int, Any, str]: ..." in text

    def test_unfinished_generator(self) -> None:
        text = stub_text("def g():\n    while True:\n        yield 1\n", trace("g", {}, None, INT))
        assert "def g() -> Iterator[int]: ..." in text

    def test_yield_in_nested_function_is_not_generator(self) -> None:
        source = "def f():\n    def g():\n        yield 1\n    return 1\n"
        text = stub_text(source, trace("f", {}, INT))
        assert "def f() -> int: ..." in text

    def test_async_def(self) -> None:
        text = stub_text("async def f(a):\n    return a\n", trace("f", {"a": INT}, INT))
        assert "async def f(a: int) -> int: ..." in text

    def test_async_generator(self) -> None:
        text = stub_text("async def f():\n    yield b''\n", trace("f", {}, None, BYTES))
        assert "async def f() -> AsyncIterator[bytes]: ..." in text

    def test_generator_with_send_type(self) -> None:
        source = "def g():\n    x = yield 1\n    return None\n"
        text = stub_text(source, dataclasses.replace(trace("g", {}, NONE, INT), send_type=STR))
        assert "def g() -> Generator[int, str, None]: ..." in text

    def test_unfinished_generator_with_send_type(self) -> None:
        source = "def g():\n    while True:\n        x = yield 1\n"
        text = stub_text(source, dataclasses.replace(trace("g", {}, None, INT), send_type=STR))
        assert "def g() -> Generator[int, str, Any]: ..." in text

    def test_generator_sent_only_none(self) -> None:
        source = "def g():\n    yield 1\n    yield 2\n"
        with_return = dataclasses.replace(trace("g", {}, STR, INT), send_type=NONE)
        assert "def g() -> Generator[int, None, str]: ..." in stub_text(source, with_return)
        without_return = dataclasses.replace(trace("g", {}, NONE, INT), send_type=NONE)
        assert "def g() -> Iterator[int]: ..." in stub_text(source, without_return)

    def test_send_types_of_calls_joined(self) -> None:
        source = "def g():\n    x = yield 1\n"
        calls = [
            dataclasses.replace(trace("g", {}, NONE, INT), send_type=send)
            for send in (STR, NONE, None)
        ]
        assert "def g() -> Generator[int, str | None, None]: ..." in stub_text(source, *calls)

    def test_async_generator_with_send_type(self) -> None:
        source = "async def f():\n    x = yield b''\n"
        text = stub_text(source, dataclasses.replace(trace("f", {}, None, BYTES), send_type=INT))
        assert "async def f() -> AsyncGenerator[bytes, int]: ..." in text
        assert "from typing import Any, AsyncGenerator" in text

    def test_send_types_check_with_mypy(self, tmp_path: Path) -> None:
        source = "def g():\n    x = yield 1\n    return 'done'\nasync def f():\n    x = yield b''\n"
        text = stub_text(
            source,
            dataclasses.replace(trace("g", {}, STR, INT), send_type=FLOAT),
            dataclasses.replace(trace("f", {}, None, BYTES), send_type=INT),
        )
        run_mypy(tmp_path, text)


SOURCE_CLASSES = """\
class Shape:
    def __init__(self, size, *, name=None):
        self.size = size

    @property
    def area(self):
        return self.size ** 2

    @area.setter
    def area(self, value):
        self.size = value ** 0.5

    @classmethod
    def unit(cls):
        return cls(1)

    @staticmethod
    def parse(text):
        return Shape(int(text))

    def untraced(self):
        pass

    class Corner:
        def angle(self):
            return 90.0


class Plain:
    def nothing(self):
        pass
"""

SHAPE = TypeRef(MODULE, "Shape")
FLOAT = TypeRef("builtins", "float")
CLASS_TRACES = [
    trace("Shape.__init__", {"self": SHAPE, "size": INT, "name": STR}),
    trace("Shape.area", {"self": SHAPE}, INT),
    trace("Shape.area", {"self": SHAPE, "value": FLOAT}, NONE),
    trace("Shape.unit", {"cls": TypeRef("builtins", "type", (SHAPE,))}, SHAPE),
    trace("Shape.parse", {"text": STR}, SHAPE),
    trace("Shape.Corner.angle", {"self": TypeRef(MODULE, "Shape.Corner")}, FLOAT),
]


class TestClasses:
    def test_methods_render(self) -> None:
        text = stub_text(SOURCE_CLASSES, *CLASS_TRACES)
        expected = """\
            class Shape:
                def __init__(self, size: int, *, name: str | None = ...) -> None: ...
                @property
                def area(self) -> int: ...
                @area.setter
                def area(self, value: float) -> None: ...
                @classmethod
                def unit(cls) -> Shape: ...
                @staticmethod
                def parse(text: str) -> Shape: ...
                class Corner:
                    def angle(self) -> float: ...
        """
        assert textwrap.dedent(expected) in text

    def test_untraced_members_left_out(self) -> None:
        text = stub_text(SOURCE_CLASSES, *CLASS_TRACES)
        assert "untraced" not in text

    def test_untraced_class_kept_empty(self) -> None:
        """A class without traced methods stays, empty, so other stubs can name it."""
        text = stub_text(SOURCE_CLASSES, *CLASS_TRACES)
        assert "class Plain: ...\n" in text

    def test_function_count(self) -> None:
        stub = build_stub(MODULE, CLASS_TRACES, SOURCE_CLASSES)
        assert stub.function_count == 6

    def test_property_accessors_by_lookup(self) -> None:
        stub = build_stub(MODULE, CLASS_TRACES, SOURCE_CLASSES)
        getter = stub.function("Shape.area", PropertyAccessor.GETTER)
        setter = stub.function("Shape.area", PropertyAccessor.SETTER)
        assert getter is not None and getter.return_annotation == INT
        assert setter is not None and setter.parameters[1].annotation == FLOAT

    def test_referenced_untraced_class_is_declared(self) -> None:
        source = "class Token:\n    pass\n\ndef make():\n    return Token()\n"
        text = stub_text(source, trace("make", {}, TypeRef(MODULE, "Token")))
        assert "def make() -> Token: ..." in text
        assert "class Token: ..." in text

    def test_class_bases_kept(self) -> None:
        source = "import abc\nclass Base(abc.ABC):\n    def f(self):\n        return 1\n"
        text = stub_text(source, trace("Base.f", {"self": ANY}, INT))
        assert "import abc" in text
        assert "class Base(abc.ABC):" in text

    def test_mypy_accepts_classes(self, tmp_path: Path) -> None:
        run_mypy(tmp_path, stub_text(SOURCE_CLASSES, *CLASS_TRACES), "mod")


class TestExistingAnnotations:
    SOURCE = "from pathlib import Path\n\ndef f(a: Path, b) -> 'Path':\n    return a\n"
    TRACES = (trace("f", {"a": STR, "b": INT}, STR),)

    def test_kept_by_default(self) -> None:
        text = stub_text(self.SOURCE, *self.TRACES)
        assert "def f(a: Path, b: int) -> Path: ..." in text
        assert "from pathlib import Path" in text

    def test_overwritten_on_request(self) -> None:
        text = stub_text(self.SOURCE, *self.TRACES, overwrite=True)
        assert "def f(a: str, b: int) -> str: ..." in text

    def test_unresolvable_annotation_dropped(self) -> None:
        source = "Alias = int\n\ndef f(a: Alias):\n    return a\n"
        text = stub_text(source, trace("f", {"a": INT}, INT))
        assert "def f(a: int) -> int: ..." in text


class TestTypeNames:
    @pytest.mark.parametrize(
        ("ref", "expected", "import_line"),
        [
            pytest.param(TypeRef("_io", "StringIO"), "io.StringIO", "import io", id="io"),
            pytest.param(TypeRef("_collections", "deque", (INT,)), "collections.deque[int]", "import collections", id="deque"),
            pytest.param(TypeRef("_thread", "lock"), "threading.Lock", "import threading", id="lock"),
            pytest.param(TypeRef("__main__", "Thing"), "Any", "from typing import Any", id="main"),
            pytest.param(TypeRef("other", "f.<locals>.C"), "Any", "from typing import Any", id="locals"),
            pytest.param(TypeRef("_hashlib", "HASH"), "Any", "from typing import Any", id="private-c"),
            pytest.param(TypeRef("builtins", "function"), "Callable[..., Any]", "from typing import Any, Callable", id="function"),
            pytest.param(TypeRef("builtins", "list_iterator"), "Iterator", "from typing import Any, Iterator", id="iterator"),
            pytest.param(TypeRef("builtins", "tuple", (INT, ELLIPSIS)), "tuple[int, ...]", None, id="tuple"),
            pytest.param(TypeRef("builtins", "list"), "list", None, id="bare-list"),
            pytest.param(TypeRef("builtins", "type", (TypeRef("decimal", "Decimal"),)), "type[decimal.Decimal]", "import decimal", id="type"),
            pytest.param(TypeRef("builtins", "NoneType"), "None", None, id="nonetype"),
            pytest.param(TypeRef(MODULE, "Missing"), "Any", "from typing import Any", id="own-missing"),
        ],
    )
    def test_rendered_name(self, ref: TypeRef, expected: str, import_line: Optional[str]) -> None:
        text = stub_text("def f(a):\n    pass\n", trace("f", {"a": ref}))
        assert f"def f(a: {expected}) -> None: ..." in text
        if import_line is not None:
            assert import_line in text

    def test_any_absorbs_unnameable_member(self) -> None:
        ref = TypeRef("typing", "Union", (INT, TypeRef("__main__", "X")))
        text = stub_text("def f(a):\n    pass\n", trace("f", {"a": ref}))
        assert "def f(a: Any) -> None: ..." in text

    def test_import_does_not_shadow_module_name(self) -> None:
        source = "def Any(a):\n    pass\n"
        text = stub_text(source, trace("Any", {"a": TypeRef("__main__", "X")}))
        assert "from typing import Any as _Any" in text
        assert "def Any(a: _Any) -> None: ..." in text

    def test_shadowed_builtin_is_qualified(self) -> None:
        source = "class C:\n    def list(self):\n        return []\n"
        text = stub_text(source, trace("C.list", {"self": ANY}, TypeRef("builtins", "list", (INT,))))
        assert "import builtins" in text
        assert "def list(self) -> builtins.list[int]: ..." in text


RICH_SOURCE = """\
import collections
from pathlib import Path


def load(path: Path, *names, strict=False, **options):
    pass


def walk(root, /):
    yield root


async def fetch(url, *, retries=3):
    return b""


async def stream():
    yield ""


class Queue:
    def __init__(self, items):
        self.items = collections.deque(items)

    def pop(self):
        return self.items.popleft()

    @property
    def size(self):
        return len(self.items)
"""


def test_rich_stub_passes_mypy(tmp_path: Path) -> None:
    queue = TypeRef(MODULE, "Queue")
    traces = [
        trace("load", {"path": STR, "names": STR, "strict": TypeRef("builtins", "bool"), "options": INT}, TypeRef("builtins", "dict", (STR, INT))),
        trace("walk", {"root": TypeRef("pathlib", "PosixPath")}, NONE, TypeRef("pathlib", "PosixPath")),
        trace("fetch", {"url": STR, "retries": INT}, BYTES),
        trace("stream", {}, None, STR),
        trace("Queue.__init__", {"self": queue, "items": TypeRef("builtins", "list", (INT,))}),
        trace("Queue.pop", {"self": queue}, INT),
        trace("Queue.pop", {"self": queue}, NONE),
        trace("Queue.size", {"self": queue}, INT),
        trace("Queue.__init__", {"self": queue, "items": TypeRef("_collections", "deque", (INT,))}),
    ]
    text = stub_text(RICH_SOURCE, *traces)
    # Path() returns a PosixPath on POSIX systems, and the annotation is written Path,
    # by the name that the source's import binds.
    assert "def walk(root: Path, /) -> Iterator[Path]: ..." in text
    assert "def pop(self) -> int | None: ..." in text
    run_mypy(tmp_path, text)


def test_render_is_stable() -> None:
    stub = build_stub(MODULE, CLASS_TRACES, SOURCE_CLASSES)
    again = build_stub(MODULE, list(reversed(CLASS_TRACES)), SOURCE_CLASSES)
    assert isinstance(stub, ModuleStub)
    assert stub.render() == again.render()


OVERRIDES_SOURCE = """
class Key:
    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    @property
    def __doc__(self):
        return "doc"


class Lazy(property):
    def __get__(self, obj, owner=None):
        return 1

    def extra(self, value):
        return value


class Failure(Exception):
    def __str__(self):
        return "failure"

    def __format__(self, spec):
        return "failure"

    def with_traceback(self, tb):
        return self
"""

OVERRIDES_TRACES = (
    trace("Key.__eq__", {"self": TypeRef(MODULE, "Key"), "other": TypeRef(MODULE, "Key")}, TypeRef("builtins", "bool")),
    trace("Key.__ne__", {"self": TypeRef(MODULE, "Key"), "other": TypeRef(MODULE, "Key")}, TypeRef("builtins", "bool")),
    trace("Key.__doc__", {"self": TypeRef(MODULE, "Key")}, STR),
    trace("Lazy.__get__", {"self": TypeRef(MODULE, "Lazy"), "obj": INT, "owner": NONE}, INT),
    trace("Lazy.extra", {"self": TypeRef(MODULE, "Lazy"), "value": INT}, INT),
    trace("Failure.__str__", {"self": TypeRef(MODULE, "Failure")}, STR),
    trace("Failure.__format__", {"self": TypeRef(MODULE, "Failure"), "spec": STR}, STR),
    trace("Failure.with_traceback", {"self": TypeRef(MODULE, "Failure"), "tb": NONE}, TypeRef(MODULE, "Failure")),
)


class TestIncompleteMarker:
    def test_stub_ends_with_module_getattr(self) -> None:
        """Every stub ends with a module __getattr__ that marks it incomplete."""
        text = stub_text("def f(a):\n    pass\n\ndef g(b):\n    pass\n", trace("f", {"a": INT}))
        assert text.endswith("def __getattr__(name: str) -> Any: ...\n")
        assert "from typing import Any" in text
        assert "def g" not in text

    def test_own_module_getattr_replaced(self) -> None:
        """A traced module-level __getattr__ gives way to the marker, never appearing twice."""
        source = "def __getattr__(name):\n    return name\n\ndef f(a):\n    pass\n"
        text = stub_text(source, trace("__getattr__", {"name": STR}, STR), trace("f", {"a": INT}))
        assert text.count("def __getattr__") == 1
        assert "def __getattr__(name: str) -> Any: ..." in text


class TestOverrides:
    def test_eq_takes_object(self) -> None:
        """__eq__ and __ne__ accept object, as typeshed declares them on object."""
        text = stub_text(OVERRIDES_SOURCE, *OVERRIDES_TRACES)
        assert "def __eq__(self, other: object) -> bool: ..." in text
        assert "def __ne__(self, other: object) -> bool: ..." in text

    def test_object_attribute_left_out(self) -> None:
        """A def named like a data attribute of object, such as __doc__, is left out."""
        text = stub_text(OVERRIDES_SOURCE, *OVERRIDES_TRACES)
        assert "__doc__" not in text

    def test_builtin_base_override_left_out(self) -> None:
        """A method that a builtin base class defines is not annotated; others are."""
        text = stub_text(OVERRIDES_SOURCE, *OVERRIDES_TRACES)
        assert "__get__" not in text
        assert "def extra(self, value: int) -> int: ..." in text

    def test_data_model_methods_of_builtin_subclass(self) -> None:
        """__str__ and __format__ of an Exception subclass are annotated, and its other overrides are not."""
        text = stub_text(OVERRIDES_SOURCE, *OVERRIDES_TRACES)
        assert "def __str__(self) -> str: ..." in text
        assert "def __format__(self, spec: str) -> str: ..." in text
        assert "with_traceback" not in text

    def test_overrides_pass_mypy(self, tmp_path: Path) -> None:
        """mypy reports no incompatible override in the stub."""
        run_mypy(tmp_path, stub_text(OVERRIDES_SOURCE, *OVERRIDES_TRACES))


class TestNoneDefault:
    def test_none_default_adds_none(self) -> None:
        """A parameter whose default is None accepts None even if no call passed it."""
        text = stub_text("def f(a=None, *, b=None):\n    pass\n", trace("f", {"a": INT, "b": STR}))
        assert "def f(a: int | None = ..., *, b: str | None = ...) -> None: ..." in text

    def test_other_default_unchanged(self) -> None:
        """A default other than None adds nothing to the observed type."""
        text = stub_text("def f(a=0):\n    pass\n", trace("f", {"a": INT}))
        assert "def f(a: int = ...) -> None: ..." in text


FLOAT = TypeRef("builtins", "float")
DECIMAL = TypeRef("decimal", "Decimal")


class TestCombining:
    def test_parameter_and_return_merged(self) -> None:
        """Observed int and float merge into float for a parameter and a return."""
        text = stub_text(
            "def f(a):\n    return a\n",
            trace("f", {"a": INT}, FLOAT),
            trace("f", {"a": FLOAT}, INT),
        )
        assert "def f(a: float) -> float: ..." in text

    def test_yield_elements_merged(self) -> None:
        """Yielded lists of different element types merge into one list type."""
        source = "def g(a):\n    yield [a]\n"
        text = stub_text(
            source,
            trace("g", {"a": INT}, NONE, TypeRef("builtins", "list", (INT,))),
            trace("g", {"a": STR}, NONE, TypeRef("builtins", "list", (STR,))),
        )
        assert "def g(a: int | str) -> Iterator[list[int | str]]: ..." in text

    def test_max_union_size(self) -> None:
        """A union past max_union_size becomes Any; None from a default stays out of the count."""
        source = "def f(a=None):\n    return a\n"
        traces = [trace("f", {"a": ref}, ref) for ref in (INT, STR, BYTES)]
        stub = build_stub(MODULE, traces, source, max_union_size=2)
        text = stub.render()
        assert "def f(a: Any = ...) -> Any: ..." in text
        stub = build_stub(MODULE, traces, source, max_union_size=3)
        assert "def f(a: bytes | int | str | None = ...) -> bytes | int | str: ..." in stub.render()


TYPE_VAR_SOURCE = """\
class Node:
    pass


def add(a, b):
    return a + b


def pick(x, flag=False):
    return x


def describe(a=None):
    return a
"""
NODE = TypeRef(MODULE, "Node")
TYPE_VAR_TRACES = [
    trace("add", {"a": INT, "b": INT}, INT),
    trace("add", {"a": STR, "b": STR}, STR),
    trace("pick", {"x": INT, "flag": TypeRef("builtins", "bool")}, INT),
    trace("pick", {"x": NODE, "flag": TypeRef("builtins", "bool")}, NODE),
    trace("describe", {"a": INT}, INT),
    trace("describe", {"a": STR}, STR),
]


class TestTypeVars:
    def test_declared_and_used(self) -> None:
        """Arguments and return that move together share a constrained TypeVar."""
        text = stub_text(TYPE_VAR_SOURCE, *TYPE_VAR_TRACES)
        assert 'from typing import Any, TypeVar\n\n_T = TypeVar("_T", int, str)\n' in text
        assert "def add(a: _T, b: _T) -> _T: ..." in text

    def test_one_declaration_per_constraint_set(self) -> None:
        text = stub_text(TYPE_VAR_SOURCE, *TYPE_VAR_TRACES)
        assert '_T1 = TypeVar("_T1", int, Node)' in text
        assert "def pick(x: _T1, flag: bool = ...) -> _T1: ..." in text
        assert text.count("TypeVar(") == 2

    def test_default_parameter_not_linked(self) -> None:
        """A parameter with a default keeps the union, so no TypeVar is declared for it."""
        text = stub_text(TYPE_VAR_SOURCE, *TYPE_VAR_TRACES)
        assert "def describe(a: int | str | None = ...) -> int | str: ..." in text

    def test_name_avoids_module_names(self) -> None:
        source = "_T = 1\n\ndef add(a, b):\n    return a + b\n"
        text = stub_text(source, *TYPE_VAR_TRACES[:2])
        assert '_T1 = TypeVar("_T1", int, str)' in text
        assert "def add(a: _T1, b: _T1) -> _T1: ..." in text

    def test_generator_not_linked(self) -> None:
        source = "def g(a):\n    yield a\n    return a\n"
        text = stub_text(source, trace("g", {"a": INT}, INT, INT), trace("g", {"a": STR}, STR, STR))
        assert "TypeVar" not in text

    def test_existing_return_not_linked(self) -> None:
        source = "def add(a, b) -> object:\n    return a + b\n"
        text = stub_text(source, *TYPE_VAR_TRACES[:2])
        assert "def add(a: int | str, b: int | str) -> object: ..." in text

    def test_passes_mypy(self, tmp_path: Path) -> None:
        run_mypy(tmp_path, stub_text(TYPE_VAR_SOURCE, *TYPE_VAR_TRACES))


def list_of(*args: TypeRef) -> TypeRef:
    return TypeRef("builtins", "list", args)


TARGET_SOURCE = "def f(a, b, c, d):\n    return a\n"
TARGET_TRACES = [
    trace(
        "f",
        {
            "a": list_of(INT),
            "b": TypeRef("builtins", "dict", (STR, TypeRef("builtins", "tuple", (INT, ELLIPSIS)))),
            "c": TypeRef("_collections", "deque", (INT,)),
            "d": TypeRef("collections.abc", "Set", (STR,)),
        },
        list_of(INT),
    ),
    trace("f", {"a": NONE, "b": TypeRef("builtins", "dict"), "c": STR, "d": TypeRef("collections.abc", "Set", (STR,))}, BYTES),
]


class TestTargetVersion:
    @pytest.mark.parametrize(
        ("target", "expected"),
        [
            (
                (3, 12),
                "def f(a: list[int] | None, b: dict[str, tuple[int, ...]], c: str | collections.deque[int], "
                "d: collections.abc.Set[str]) -> bytes | list[int]: ...",
            ),
            (
                (3, 9),
                "def f(a: Optional[list[int]], b: dict[str, tuple[int, ...]], c: Union[str, collections.deque[int]], "
                "d: collections.abc.Set[str]) -> Union[bytes, list[int]]: ...",
            ),
            (
                (3, 8),
                "def f(a: Optional[List[int]], b: Dict[str, Tuple[int, ...]], c: Union[str, Deque[int]], "
                "d: AbstractSet[str]) -> Union[bytes, List[int]]: ...",
            ),
        ],
    )
    def test_rendered_syntax(self, target: tuple[int, int], expected: str) -> None:
        stub = build_stub(MODULE, TARGET_TRACES, TARGET_SOURCE)
        assert expected in stub.render(target_version=target)

    def test_typing_imports_below_39(self) -> None:
        text = build_stub(MODULE, TARGET_TRACES, TARGET_SOURCE).render(target_version=(3, 8))
        assert "from typing import AbstractSet, Any, Deque, Dict, List, Optional, Tuple, Union\n" in text
        assert "import collections" not in text

    def test_default_is_newest_syntax(self) -> None:
        stub = build_stub(MODULE, TARGET_TRACES, TARGET_SOURCE)
        assert stub.render() == stub.render(target_version=(3, 12))

    def test_too_old_raises(self) -> None:
        stub = build_stub(MODULE, TARGET_TRACES, TARGET_SOURCE)
        with pytest.raises(ValueError, match="3.6 is not supported; use 3.7 or newer"):
            stub.render(target_version=(3, 6))

    def test_bare_containers_unchanged(self) -> None:
        text = stub_text("def f(a):\n    pass\n", trace("f", {"a": list_of()}))
        stub = build_stub(MODULE, [trace("f", {"a": list_of()})], "def f(a):\n    pass\n")
        assert "def f(a: list) -> None: ..." in text
        assert "def f(a: list) -> None: ..." in stub.render(target_version=(3, 8))


@pytest.mark.parametrize(
    ("text", "expected"),
    [("3.8", (3, 8)), ("3.13", (3, 13)), (" 3.10 ", (3, 10))],
)
def test_parse_target_version(text: str, expected: tuple[int, int]) -> None:
    assert parse_target_version(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("3", "expected MAJOR.MINOR"),
        ("3.x", "expected MAJOR.MINOR"),
        ("3.9.1", "expected MAJOR.MINOR"),
        ("2.7", "only Python 3"),
        ("4.0", "only Python 3"),
        ("3.6", "not supported"),
    ],
)
def test_parse_target_version_invalid(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_target_version(text)


def test_stub_command_target_version(tmp_path: Path) -> None:
    """`typetrace stub --target-version 3.8` writes typing aliases and Optional."""
    import io

    from typetrace.cli import main
    from typetrace.db.sqlite import SQLiteStore

    (tmp_path / "mod.py").write_text("def f(a):\n    return a\n")
    store = SQLiteStore.make_store(str(tmp_path / "traces.sqlite3"))
    store.add([CallTrace("mod", "f", {"a": list_of(INT)}, NONE), CallTrace("mod", "f", {"a": NONE}, NONE)])
    store.close()
    stdout, stderr = io.StringIO(), io.StringIO()
    arguments = ["--db", str(tmp_path / "traces.sqlite3"), "stub", str(tmp_path / "mod.py"), "--target-version", "3.8"]
    code = main(arguments, stdout, stderr)
    assert code == 0, stderr.getvalue()
    assert "def f(a: Optional[List[int]]) -> None: ..." in stdout.getvalue()


def test_mock_arguments_left_out() -> None:
    """A mock passed by a test never reaches the stub."""
    text = stub_text(
        "def f(a, b):\n    pass\n",
        trace("f", {"a": INT, "b": TypeRef("unittest.mock", "MagicMock")}),
        trace("f", {"a": TypeRef("unittest.mock", "Mock"), "b": TypeRef("unittest.mock", "MagicMock")}),
    )
    assert "def f(a: int, b: Any) -> None: ..." in text
    assert "mock" not in text


SELF_SOURCE = """\
class Builder:
    def add(self, part):
        return self

    @classmethod
    def create(cls):
        return cls()

    @staticmethod
    def same(builder):
        return builder


class Meta(type):
    def itself(cls):
        return cls


class WithMeta(metaclass=Meta):
    pass


def first(a):
    return a
"""
BUILDER = TypeRef(MODULE, "Builder")
SUB_BUILDER = TypeRef(MODULE, "SubBuilder", bases=(BUILDER,))


def type_of_class(ref: TypeRef) -> TypeRef:
    return TypeRef("builtins", "type", (ref,))


class TestSelf:
    def test_receiver_becomes_self(self) -> None:
        text = stub_text(
            SELF_SOURCE,
            trace("Builder.add", {"self": BUILDER, "part": INT}, receiver(BUILDER)),
            trace("Builder.add", {"self": SUB_BUILDER, "part": STR}, receiver(SUB_BUILDER)),
        )
        assert "def add(self, part: int | str) -> Self: ..." in text
        assert "from typing_extensions import Self" in text

    def test_receiver_of_other_parameter_is_class(self) -> None:
        """A return marked as the receiver that is not the receiver's type is not Self."""
        text = stub_text(SELF_SOURCE, trace("Builder.add", {"self": BUILDER, "part": INT}, receiver(INT)))
        assert "def add(self, part: int) -> int: ..." in text

    def test_classmethod_needs_two_classes(self) -> None:
        one = trace("Builder.create", {"cls": type_of_class(BUILDER)}, receiver(BUILDER))
        two = trace("Builder.create", {"cls": type_of_class(SUB_BUILDER)}, receiver(SUB_BUILDER))
        assert "def create(cls) -> Builder: ..." in stub_text(SELF_SOURCE, one)
        assert "def create(cls) -> Self: ..." in stub_text(SELF_SOURCE, one, two)

    def test_staticmethod_gets_type(self) -> None:
        text = stub_text(SELF_SOURCE, trace("Builder.same", {"builder": BUILDER}, receiver(BUILDER)))
        assert "def same(builder: Builder) -> Builder: ..." in text

    def test_metaclass_method_gets_type(self) -> None:
        """PEP 673 rejects Self in metaclasses; the receiver there is a class."""
        with_meta = type_of_class(TypeRef(MODULE, "WithMeta"))
        text = stub_text(SELF_SOURCE, trace("Meta.itself", {"cls": with_meta}, receiver(with_meta)))
        assert "def itself(cls) -> type[WithMeta]: ..." in text

    def test_function_gets_type(self) -> None:
        text = stub_text(SELF_SOURCE, trace("first", {"a": INT}, receiver(INT)))
        assert "def first(a: int) -> int: ..." in text

    @pytest.mark.parametrize(
        ("target", "import_line"),
        [((3, 10), "from typing_extensions import Self"), ((3, 11), "from typing import Any, Self")],
    )
    def test_import_by_target(self, target: tuple[int, int], import_line: str) -> None:
        stub = build_stub(MODULE, [trace("Builder.add", {"self": BUILDER, "part": INT}, receiver(BUILDER))], SELF_SOURCE)
        assert import_line in stub.render(target_version=target).splitlines()

    def test_self_stub_passes_mypy(self, tmp_path: Path) -> None:
        traces = [
            trace("Builder.add", {"self": BUILDER, "part": INT}, receiver(BUILDER)),
            trace("Builder.create", {"cls": type_of_class(BUILDER)}, receiver(BUILDER)),
            trace("Builder.create", {"cls": type_of_class(SUB_BUILDER)}, receiver(SUB_BUILDER)),
        ]
        run_mypy(tmp_path, stub_text(SELF_SOURCE, *traces))


class TestCallCounts:
    SOURCE = """
        class C:
            @staticmethod
            def s(a):
                return a


        def f(a):
            return a
    """

    def build(self) -> ModuleStub:
        traces = [
            # Two traces of the same types, as two stores or runs can give.
            CallTrace(MODULE, "f", {"a": INT}, INT, call_count=1200),
            CallTrace(MODULE, "f", {"a": INT}, INT, call_count=34),
            CallTrace(MODULE, "C.s", {"a": INT}, INT),
        ]
        return build_stub(MODULE, traces, textwrap.dedent(self.SOURCE))

    def test_call_count_sums_trace_counts(self) -> None:
        stub = self.build()

        function = stub.function("f")
        method = stub.function("C.s")
        assert function is not None
        assert method is not None
        assert function.call_count == 1234
        assert method.call_count == 1

    def test_show_counts_adds_comments(self) -> None:
        text = self.build().render(show_counts=True)

        ast.parse(text)
        assert "\n# 1,234 calls traced\ndef f(a: int) -> int: ...\n" in text
        assert "\n    # 1 call traced\n    @staticmethod\n    def s(a: int) -> int: ...\n" in text

    def test_counts_are_left_out_by_default(self) -> None:
        assert "traced\n" not in self.build().render()
