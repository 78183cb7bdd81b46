"""Tests for resolving calls in a module's source to the functions they run."""

from __future__ import annotations

import ast
import textwrap
from typing import Optional

import pytest

from typetrace.stubs.callees import Callee, CalleeResolver, ScannedModule
from typetrace.stubs.scan import FunctionNode, absolute_module, scan_module

PACKAGE_INIT = """
from .codec import encode as encode
from .base import Base
"""

CODEC = """
def encode(value, encoding="utf-8"):
    return value


class Codec:
    def __init__(self, name, *, strict=False):
        self.name = name

    @staticmethod
    def check(value):
        return value

    @classmethod
    def create(cls, name):
        return cls(name)
"""

BASE = """
class Base:
    def store(self, value):
        return value

    def load(self, value):
        return value


class Other:
    def load(self, value):
        return value
"""

MAIN = """
import functools
import pkg.codec as codecs
from . import encode
from .base import Base, Other
from .codec import Codec
from pkg import codec


class Local(Base):
    def load(self, value):
        return value

    def run(self, value, encode_later):
        encode(value)
        self.store(value)
        self.load(value)
        super().load(value)
        Codec(value)
        Codec.create(value)
        self.check(value)
        codec.encode(value)
        codecs.encode(value)
        encode_later(value)
        Local.load(self, value)
        missing(value)


class Factory(Base):
    @classmethod
    def build(cls, value):
        cls.store(value)
        cls.make(value)

    @classmethod
    def make(cls, value):
        return value


class Diamond(Local, Other):
    def run(self, value):
        self.load(value)
        super().load(value)


class Left(Base):
    pass


class Right(Base):
    def load(self, value):
        return value


class Joined(Left, Right):
    def run(self, value):
        self.load(value)


class Error(Exception):
    def run(self, value):
        self.with_traceback(value)
        self.missing(value)


def marker(function):
    function.marked = True
    return function


def wrapping(function):
    def wrapper(*args):
        return function(None, *args)

    return wrapper


@marker
def marked(value):
    return value


@wrapping
def wrapped(context, value):
    return value


@functools.lru_cache(maxsize=None)
def cached(value):
    return value


def call_decorated(value):
    marked(value)
    wrapped(value)
    cached(value)


class Listed(list):
    def run(self, value):
        self.shadowed(value)
        self.append(value)

    def shadowed(self, value):
        return value
"""


def scanned(name: str, source: str, *, is_package: bool = False) -> ScannedModule:
    return ScannedModule(name, scan_module(ast.parse(textwrap.dedent(source))), is_package)


MODULES = {
    "pkg": scanned("pkg", PACKAGE_INIT, is_package=True),
    "pkg.codec": scanned("pkg.codec", CODEC),
    "pkg.base": scanned("pkg.base", BASE),
}


def resolver() -> CalleeResolver:
    return CalleeResolver(scanned("pkg.main", MAIN), MODULES.get)


def function(qualname: str) -> FunctionNode:
    main = resolver().module
    (found,) = [f for f in main.scan.iter_functions() if f.qualname == qualname]
    return found


def resolve_all(qualname: str) -> dict[str, Optional[Callee]]:
    """Resolve every call statement in the body of *qualname*, by its source text."""
    node = function(qualname)
    calls = {}
    for statement in node.node.body:
        assert isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call)
        calls[ast.unparse(statement.value.func)] = resolver().resolve(statement.value, node)
    return calls


def named(callee: Optional[Callee]) -> Optional[tuple[str, str, bool]]:
    return None if callee is None else (callee.module, callee.function.qualname, callee.bound)


class TestResolve:
    def test_imported_function_through_reexport(self) -> None:
        """A name imported from the package's ``__init__`` is followed to its definition."""
        assert named(resolve_all("Local.run")["encode"]) == ("pkg.codec", "encode", False)

    def test_module_attribute(self) -> None:
        """``module.f`` resolves for ``from pkg import module`` and ``import a.b as c``."""
        calls = resolve_all("Local.run")
        assert named(calls["codec.encode"]) == ("pkg.codec", "encode", False)
        assert named(calls["codecs.encode"]) == ("pkg.codec", "encode", False)

    def test_self_method_inherited(self) -> None:
        """``self.m`` finds a method of a base class in another module."""
        assert named(resolve_all("Local.run")["self.store"]) == ("pkg.base", "Base.store", True)

    def test_self_method_own_override(self) -> None:
        """``self.m`` finds the class's own override first."""
        assert named(resolve_all("Local.run")["self.load"]) == ("pkg.main", "Local.load", True)

    def test_super_skips_own_class(self) -> None:
        """``super().m`` starts after the class that defines the method."""
        assert named(resolve_all("Local.run")["super().load"]) == ("pkg.base", "Base.load", True)

    def test_class_call_runs_init(self) -> None:
        """Calling a class resolves to its ``__init__``, with ``self`` bound."""
        assert named(resolve_all("Local.run")["Codec"]) == ("pkg.codec", "Codec.__init__", True)

    def test_classmethod_and_unbound_method(self) -> None:
        """A classmethod called on the class binds ``cls``; a plain method does not bind."""
        calls = resolve_all("Local.run")
        assert named(calls["Codec.create"]) == ("pkg.codec", "Codec.create", True)
        assert named(calls["Local.load"]) == ("pkg.main", "Local.load", False)

    def test_unresolved_names(self) -> None:
        """A parameter, a missing name and a missing method are not resolved."""
        calls = resolve_all("Local.run")
        assert calls["encode_later"] is None
        assert calls["missing"] is None
        assert calls["self.check"] is None

    def test_class_receiver_binds_no_self(self) -> None:
        """In a classmethod, ``cls.m`` with a plain method binds nothing, a classmethod binds ``cls``."""
        calls = resolve_all("Factory.build")
        assert named(calls["cls.store"]) == ("pkg.base", "Base.store", False)
        assert named(calls["cls.make"]) == ("pkg.main", "Factory.make", True)

    def test_c3_order(self) -> None:
        """With two bases, the method resolution order is the one Python computes."""
        calls = resolve_all("Diamond.run")
        assert named(calls["self.load"]) == ("pkg.main", "Local.load", True)
        assert named(calls["super().load"]) == ("pkg.main", "Local.load", True)
        # A depth-first search would find Base.load through Left first.
        assert named(resolve_all("Joined.run")["self.load"]) == ("pkg.main", "Right.load", True)

    def test_builtin_base_with_the_attribute(self) -> None:
        """A builtin base that has the method ends the search; one without it does not."""
        calls = resolve_all("Error.run")
        assert calls["self.with_traceback"] is None
        assert calls["self.missing"] is None
        calls = resolve_all("Listed.run")
        assert named(calls["self.shadowed"]) == ("pkg.main", "Listed.shadowed", True)
        assert calls["self.append"] is None


    def test_decorators(self) -> None:
        """A decorator that may change the arguments hides the function; others do not."""
        calls = resolve_all("call_decorated")
        assert named(calls["marked"]) == ("pkg.main", "marked", False)
        assert named(calls["cached"]) == ("pkg.main", "cached", False)
        assert calls["wrapped"] is None


class TestParameter:
    def test_bound_call_skips_first(self) -> None:
        """A bound call fills ``self`` itself, so position 0 is the next parameter."""
        callee = resolve_all("Local.run")["Codec"]
        assert callee is not None
        parameter = callee.parameter(0, None)
        assert parameter is not None and parameter.arg.arg == "name"
        assert callee.parameter(1, None) is None

    def test_keyword(self) -> None:
        """A keyword fills the parameter of that name, keyword-only ones too."""
        callee = resolve_all("Local.run")["Codec"]
        assert callee is not None
        strict = callee.parameter(None, "strict")
        assert strict is not None and strict.arg.arg == "strict"
        assert callee.parameter(None, "self") is None
        assert callee.parameter(None, "missing") is None

    def test_unbound_call_fills_self(self) -> None:
        """An unbound method call passes the instance as its first argument."""
        callee = resolve_all("Local.run")["Local.load"]
        assert callee is not None
        parameter = callee.parameter(1, None)
        assert parameter is not None and parameter.arg.arg == "value"


@pytest.mark.parametrize(
    ("module", "package", "expected"),
    [
        pytest.param("os.path", "pkg", "os.path", id="absolute"),
        pytest.param(".codec", "pkg", "pkg.codec", id="sibling"),
        pytest.param(".", "pkg.sub", "pkg.sub", id="own-package"),
        pytest.param("..codec", "pkg.sub", "pkg.codec", id="parent"),
        pytest.param("..codec", "pkg", None, id="above-top"),
        pytest.param(".codec", "", None, id="no-package"),
    ],
)
def test_absolute_module(module: str, package: str, expected: Optional[str]) -> None:
    assert absolute_module(module, package) == expected
