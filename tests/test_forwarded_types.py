"""Tests for parameter types that build_stub takes from the source as well as the traces.

A parameter whose value the function only passes on takes what its callees take. A
parameter that the body tests against None takes None. An unfilled ``*args`` or
``**kwargs`` that is only passed on takes Any.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Optional

from support import MODULE, make_trace

from typetrace.apply import apply_stub_to_source
from typetrace.stubs import build_stub
from typetrace.stubs.build import ModuleSource
from typetrace.tracing import CallTrace
from typetrace.typemodel import NONE, TypeRef

INT = TypeRef("builtins", "int")
STR = TypeRef("builtins", "str")
BYTES = TypeRef("builtins", "bytes")

trace = make_trace

SOURCE = """
def want_bytes(s, encoding="utf-8"):
    return s.encode(encoding) if isinstance(s, str) else s


def to_text(s):
    return s if isinstance(s, str) else s.decode()


def sign(value):
    value = want_bytes(value)
    return value + b"."


def check(value, salt=None):
    if salt is not None:
        salt = want_bytes(salt)
    return want_bytes(value, encoding="ascii"), salt


def passthrough(value):
    return value


def convert(when=None):
    when = passthrough(when)
    return when


def both(value):
    want_bytes(value)
    return to_text(value)


def inspect(value):
    want_bytes(value)
    return value.upper()


def require(value):
    if value is None:
        raise ValueError("value is required")
    return value


def fallback(value):
    if value is None:
        return 0
    return value


class Signer:
    def unsign(self, signed, max_age=None):
        signed = want_bytes(signed)
        return signed, max_age

    def validate(self, signed, max_age=None):
        return self.unsign(signed, max_age=max_age)


def forward(*args, **kwargs):
    return sign(*args, **kwargs)


def ignore(value, *extra, **options):
    return value


def count(*args):
    return len(args)
"""

SIGNER = TypeRef(MODULE, "Signer")
TRACES = [
    trace("want_bytes", {"s": STR, "encoding": STR}, BYTES),
    trace("want_bytes", {"s": BYTES, "encoding": STR}, BYTES),
    trace("to_text", {"s": STR}, STR),
    trace("sign", {"value": BYTES}, BYTES),
    trace("check", {"value": STR, "salt": STR}, TypeRef("builtins", "tuple", (BYTES, BYTES))),
    trace("both", {"value": STR}, STR),
    trace("passthrough", {"value": STR}, STR),
    trace("passthrough", {"value": INT}, INT),
    trace("convert", {"when": INT}, INT),
    trace("inspect", {"value": BYTES}, BYTES),
    trace("require", {"value": INT}, INT),
    trace("fallback", {"value": INT}, INT),
    trace("Signer.unsign", {"self": SIGNER, "signed": BYTES, "max_age": INT}, NONE),
    trace("Signer.validate", {"self": SIGNER, "signed": BYTES, "max_age": NONE}, NONE),
    trace("forward", {}, BYTES),
    trace("ignore", {"value": INT}, INT),
    trace("count", {}, INT),
]


def signature(text: str, name: str) -> str:
    """Return the line of the stub *text* that defines *name*."""
    (line,) = [line.strip() for line in text.splitlines() if line.strip().startswith(f"def {name}(")]
    return line


def stub_text(source: str = SOURCE, traces: Optional[list[CallTrace]] = None) -> str:
    return build_stub(MODULE, TRACES if traces is None else traces, textwrap.dedent(source)).render()


class TestForwarded:
    def test_passed_on_takes_callee_type(self) -> None:
        """A value only passed to another traced function takes what that function took."""
        assert signature(stub_text(), "sign") == "def sign(value: bytes | str) -> bytes: ..."

    def test_keyword_argument(self) -> None:
        """The value passed as a keyword argument fills the callee parameter of that name."""
        text = stub_text()
        assert signature(text, "check") == (
            "def check(value: bytes | str, salt: bytes | str | None = ...) -> tuple[bytes, bytes]: ..."
        )

    def test_only_none_observed_takes_callee_type(self) -> None:
        """A parameter that only kept its None default gets the type of the callee it is passed to."""
        text = stub_text()
        assert "def validate(self, signed: bytes | str, max_age: int | None = ...) -> None: ..." in text

    def test_callees_must_all_take_the_type(self) -> None:
        """A value passed to two callees takes only what both took."""
        assert signature(stub_text(), "both") == "def both(value: str) -> str: ..."

    def test_callee_returning_argument_type(self) -> None:
        """A callee that returned its argument's type in every call hands the value back,
        so what it accepts does not bound what the caller accepts."""
        assert signature(stub_text(), "convert") == "def convert(when: int | None = ...) -> int: ..."

    def test_other_use_keeps_observed_type(self) -> None:
        """A value that the body also uses itself keeps its observed type."""
        assert signature(stub_text(), "inspect") == "def inspect(value: bytes) -> bytes: ..."

    def test_annotated_source_passes_mypy(self, tmp_path: Path) -> None:
        """The bodies of the annotated functions accept the widened types (mypy --strict)."""
        source = textwrap.dedent(MYPY_SOURCE)
        stub = build_stub(MODULE, MYPY_TRACES, source)
        path = tmp_path / "mod.py"
        path.write_text(apply_stub_to_source(source, stub))
        # Before Python 3.10, a union needs typing.Union, imported for type checking only.
        value_type = "bytes | str" if sys.version_info >= (3, 10) else '"Union[bytes, str]"'
        assert f"def sign(value: {value_type}) -> bytes:" in path.read_text()
        result = subprocess.run(
            [sys.executable, "-m", "mypy", "--config-file=", "--no-incremental", "--strict", str(path)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stdout + result.stderr + path.read_text()


MYPY_SOURCE = """
def want_bytes(s, encoding="utf-8"):
    return s.encode(encoding) if isinstance(s, str) else s


def sign(value):
    value = want_bytes(value)
    return value + b"."


class Signer:
    def __init__(self, salt=None):
        if salt is not None:
            salt = want_bytes(salt)
        self.salt = salt

    def unsign(self, signed, max_age=None):
        signed = want_bytes(signed)
        if max_age is not None and max_age < 0:
            return b""
        return signed

    def validate(self, signed, max_age=None):
        return bool(self.unsign(signed, max_age=max_age))


def forward(*args, **kwargs):
    return sign(*args, **kwargs)
"""

MYPY_TRACES = [
    trace("want_bytes", {"s": STR, "encoding": STR}, BYTES),
    trace("want_bytes", {"s": BYTES, "encoding": STR}, BYTES),
    trace("sign", {"value": BYTES}, BYTES),
    trace("Signer.__init__", {"self": SIGNER, "salt": STR}, NONE),
    trace("Signer.unsign", {"self": SIGNER, "signed": BYTES, "max_age": INT}, BYTES),
    trace("Signer.validate", {"self": SIGNER, "signed": STR, "max_age": NONE}, TypeRef("builtins", "bool")),
    trace("forward", {}, BYTES),
]


class TestNoneTests:
    def test_none_test_adds_none(self) -> None:
        """A body that handles None for a parameter gets None in its type."""
        assert signature(stub_text(), "fallback") == "def fallback(value: int | None) -> int: ..."

    def test_none_test_that_raises(self) -> None:
        """A body that raises for None does not take None."""
        assert signature(stub_text(), "require") == "def require(value: int) -> int: ..."


class TestVariadic:
    def test_unfilled_forwarded_takes_any(self) -> None:
        """``*args`` and ``**kwargs`` that no call filled and that are only passed on take Any."""
        text = stub_text()
        assert signature(text, "forward") == "def forward(*args: Any, **kwargs: Any) -> bytes: ..."

    def test_unfilled_unused_takes_any(self) -> None:
        """``*args`` and ``**kwargs`` that the body never reads take Any."""
        assert signature(stub_text(), "ignore") == "def ignore(value: int, *extra: Any, **options: Any) -> int: ..."

    def test_unfilled_used_left_out(self) -> None:
        """A ``*args`` that the body reads itself stays unannotated."""
        assert signature(stub_text(), "count") == "def count(*args) -> int: ..."


CODEC_SOURCE = """
def want_bytes(s):
    return s
"""

CALLER_SOURCE = """
from .codec import want_bytes


class Base:
    def unsign(self, signed):
        return want_bytes(signed)
"""

SUBCLASS_SOURCE = """
from pkg.signer import Base


class Timed(Base):
    def unsign(self, signed):
        return super().unsign(signed)
"""


class TestOtherModules:
    def loader(self, name: str) -> Optional[ModuleSource]:
        modules = {
            "pkg": ModuleSource("", [], is_package=True),
            "pkg.codec": ModuleSource(
                CODEC_SOURCE,
                [CallTrace("pkg.codec", "want_bytes", {"s": STR}, BYTES), CallTrace("pkg.codec", "want_bytes", {"s": BYTES}, BYTES)],
            ),
            "pkg.signer": ModuleSource(
                CALLER_SOURCE,
                [CallTrace("pkg.signer", "Base.unsign", {"self": TypeRef("pkg.signer", "Base"), "signed": BYTES}, BYTES)],
            ),
        }
        return modules.get(name)

    def test_callee_in_other_modules(self) -> None:
        """Calls are followed through ``super()`` and imports into other modules' traces."""
        timed = TypeRef("pkg.timed", "Timed")
        traces = [CallTrace("pkg.timed", "Timed.unsign", {"self": timed, "signed": BYTES}, BYTES)]
        stub = build_stub("pkg.timed", traces, textwrap.dedent(SUBCLASS_SOURCE), modules=self.loader)
        assert "def unsign(self, signed: bytes | str) -> bytes: ..." in stub.render()

    def test_without_loader_observed_only(self) -> None:
        """Without a loader, calls into other modules add nothing."""
        timed = TypeRef("pkg.timed", "Timed")
        traces = [CallTrace("pkg.timed", "Timed.unsign", {"self": timed, "signed": BYTES}, BYTES)]
        stub = build_stub("pkg.timed", traces, textwrap.dedent(SUBCLASS_SOURCE))
        assert "def unsign(self, signed: bytes) -> bytes: ..." in stub.render()

    def test_relative_import_in_package(self) -> None:
        """A relative import in a package's ``__init__`` names the package's own modules."""
        source = "from .codec import want_bytes\n\ndef sign(value):\n    return want_bytes(value)\n"
        traces = [CallTrace("pkg", "sign", {"value": BYTES}, BYTES)]
        stub = build_stub("pkg", traces, source, is_package=True, modules=self.loader)
        assert "def sign(value: bytes | str) -> bytes: ..." in stub.render()
