"""TypedDict classes for dict shapes: names, .pyi rendering, apply and verify."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from support import MODULE, make_trace, run_typetrace

from typetrace.apply import apply_stub_to_source
from typetrace.stubs import build_stub
from typetrace.stubs.typeddicts import TypedDictDefinition, TypedDictItem, key_class_name, slot_class_name
from typetrace.tracing import CallTrace
from typetrace.typemodel import NONE, ShapeKey, TypeRef, dict_shape

INT = TypeRef("builtins", "int")
STR = TypeRef("builtins", "str")
BOOL = TypeRef("builtins", "bool")
USER = TypeRef(MODULE, "User")
STORE = TypeRef(MODULE, "Store")
PYTHON_39 = Path(__file__).resolve().parents[1] / ".venv-3.9" / "bin" / "python"

trace = make_trace


def shape(**values: TypeRef) -> TypeRef:
    """A dict shape with the keyword names as required keys."""
    return dict_shape(ShapeKey(name, value) for name, value in values.items())


HEADERS = dict_shape([ShapeKey("content-type", STR), ShapeKey("class", INT)])

SOURCE = """\
class User:
    def __init__(self, name):
        self.name = name


class Store:
    def save(self, record, *, strict=False):
        return {"id": 1}


def load_user(user_id):
    return {"id": user_id, "name": "x", "address": {"city": "y"}}


def headers(values):
    return None
"""

# Every slot is seen in two calls, so each shape counts as stable.
TRACES = [
    trace("Store.save", {"self": STORE, "record": shape(id=INT, name=STR), "strict": BOOL}, shape(id=INT)),
    trace("Store.save", {"self": STORE, "record": shape(id=INT, name=STR, owner=USER), "strict": BOOL}, shape(id=INT)),
    trace("load_user", {"user_id": INT}, shape(id=INT, name=STR, address=shape(city=STR))),
    trace("load_user", {"user_id": INT}, shape(id=INT, name=STR, address=shape(city=STR))),
    trace("headers", {"values": HEADERS}, NONE),
    trace("headers", {"values": HEADERS}, NONE),
]

STUB_BODY = """\

class LoadUserReturnAddress(TypedDict):
    city: str

class LoadUserReturn(TypedDict):
    id: int
    name: str
    address: LoadUserReturnAddress

HeadersValues = TypedDict("HeadersValues", {"content-type": str, "class": int})

class StoreSaveRecord(TypedDict):
    id: int
    name: str
    owner: NotRequired[User]

class StoreSaveReturn(TypedDict):
    id: int

def load_user(user_id: int) -> LoadUserReturn: ...

def headers(values: HeadersValues) -> None: ...

class User: ...

class Store:
    def save(self, record: StoreSaveRecord, *, strict: bool = ...) -> StoreSaveReturn: ...

# Functions that were not traced are left out; their names resolve to Any.
def __getattr__(name: str) -> Any: ...
"""


def stub_text(source: str, *traces: CallTrace, target: tuple[int, int] = (3, 12)) -> str:
    return build_stub(MODULE, traces, textwrap.dedent(source)).render(target_version=target)


def apply(source: str, *traces: CallTrace, target: tuple[int, int] = (3, 12)) -> str:
    source = textwrap.dedent(source)
    return apply_stub_to_source(source, build_stub(MODULE, traces, source), target_version=target)


def run_mypy(path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file=", "--no-incremental", *options, str(path)],
        cwd=path.parent,
        capture_output=True,
        text=True,
    )


def mypy_version_options(target: tuple[int, int]) -> list[str]:
    """Let mypy check for *target*, or for the running Python when *target* is older.

    Recent mypy releases cannot check for Python versions older than 3.10, so output
    for an older target is checked for the running Python. The Python 3.9 test
    environment checks the 3.9 output for 3.9 itself.
    """
    if target <= sys.version_info[:2]:
        return []
    return ["--python-version", f"{target[0]}.{target[1]}"]


class TestNames:
    @pytest.mark.parametrize(
        ("qualname", "parameter", "expected"),
        [
            ("load_user", "user_id", "LoadUserUserId"),
            ("load_user", None, "LoadUserReturn"),
            ("Store.save", "record", "StoreSaveRecord"),
            ("Outer.Inner.__init__", "options", "OuterInnerInitOptions"),
            ("_private", "_hidden", "PrivateHidden"),
            ("camelCase", "someArg", "CamelCaseSomeArg"),
            ("f2", "x", "F2X"),
            ("_", "_2", "Dict2"),
            ("f", "x²", "FX"),
        ],
    )
    def test_slot_class_name(self, qualname: str, parameter: str | None, expected: str) -> None:
        assert slot_class_name(qualname, parameter) == expected

    @pytest.mark.parametrize(
        ("key", "expected"),
        [("address", "FReturnAddress"), ("content-type", "FReturnContentType"), ("", "FReturnDict"), ("größe", "FReturnGröße")],
    )
    def test_key_class_name(self, key: str, expected: str) -> None:
        assert key_class_name("FReturn", key) == expected


class TestDefinitionSyntax:
    def item(self, key: str, value: str = "int", required: bool = True) -> TypedDictItem:
        return TypedDictItem(key, value, required)

    def test_class_syntax(self) -> None:
        definition = TypedDictDefinition("Point", (self.item("x"), self.item("y", "float", required=False)))

        assert definition.lines("TypedDict", "NotRequired") == [
            "class Point(TypedDict):",
            "    x: int",
            "    y: NotRequired[float]",
        ]

    def test_all_optional_uses_total_false(self) -> None:
        definition = TypedDictDefinition("Options", (self.item("a", required=False), self.item("b", required=False)))

        assert not definition.needs_not_required
        assert definition.lines("TypedDict", None) == ["class Options(TypedDict, total=False):", "    a: int", "    b: int"]

    @pytest.mark.parametrize(
        "key",
        [
            pytest.param("content-type", id="not-identifier"),
            pytest.param("class", id="keyword"),
            pytest.param("__secret", id="name-mangled"),
            pytest.param("int", id="hides-value-type"),
            pytest.param("1st", id="leading-digit"),
        ],
    )
    def test_functional_syntax(self, key: str) -> None:
        definition = TypedDictDefinition("Row", (self.item(key), self.item("ok", "str")))

        assert definition.lines("TypedDict", None) == [f'Row = TypedDict("Row", {{"{key}": int, "ok": str}})']

    def test_functional_all_optional(self) -> None:
        definition = TypedDictDefinition("Row", (self.item("a-b", required=False),))

        assert definition.lines("TypedDict", None) == ['Row = TypedDict("Row", {"a-b": int}, total=False)']

    @pytest.mark.parametrize(
        ("key", "literal"),
        [('say "hi"', "'say \"hi\"'"), ("it's", '"it\'s"'), ("back\\slash", '"back\\\\slash"'), ("tab\t", '"tab\\t"')],
    )
    def test_key_literal(self, key: str, literal: str) -> None:
        definition = TypedDictDefinition("Row", (self.item(key),))

        line = definition.lines("TypedDict", None)[0]

        assert line == f'Row = TypedDict("Row", {{{literal}: int}})'
        assert eval(literal) == key

    def test_missing_not_required_raises(self) -> None:
        definition = TypedDictDefinition("Point", (self.item("x"), self.item("y", required=False)))

        with pytest.raises(ValueError, match="needs NotRequired"):
            definition.lines("TypedDict", None)


class TestStub:
    def test_golden_312(self) -> None:
        text = stub_text(SOURCE, *TRACES, target=(3, 12))

        assert text == "from typing import Any, NotRequired, TypedDict\n" + STUB_BODY

    def test_golden_39(self) -> None:
        text = stub_text(SOURCE, *TRACES, target=(3, 9))

        assert text == "from typing import Any, TypedDict\nfrom typing_extensions import NotRequired\n" + STUB_BODY

    def test_no_target_uses_typing_extensions_for_not_required(self) -> None:
        text = build_stub(MODULE, TRACES, SOURCE).render()

        assert text.startswith("from typing import Any, TypedDict\nfrom typing_extensions import NotRequired\n")

    def test_no_not_required_import_when_all_required(self) -> None:
        text = stub_text(SOURCE, *TRACES[2:], target=(3, 9))

        assert text.startswith("from typing import Any, TypedDict\n\n")
        assert "NotRequired" not in text

    @pytest.mark.parametrize("target", [(3, 9), (3, 12)])
    def test_passes_mypy(self, tmp_path: Path, target: tuple[int, int]) -> None:
        path = tmp_path / "mod.pyi"
        path.write_text(stub_text(SOURCE, *TRACES, target=target))

        result = run_mypy(path, "--strict", *mypy_version_options(target))

        assert result.returncode == 0, f"{result.stdout}{result.stderr}\n--- stub ---\n{path.read_text()}"

    def test_one_call_gives_dict(self) -> None:
        """A shape seen in one call only is weak evidence, so the stub writes a dict."""
        text = stub_text("def f(d):\n    pass\n", trace("f", {"d": shape(a=INT, b=STR)}, NONE))

        assert "def f(d: dict[str, int | str]) -> None: ..." in text
        assert "TypedDict" not in text

    def test_one_trace_of_two_calls_keeps_shape(self) -> None:
        counted = CallTrace(MODULE, "f", {"d": shape(a=INT)}, NONE, call_count=2)

        assert "def f(d: FD) -> None: ..." in stub_text("def f(d):\n    pass\n", counted)

    def test_same_shape_shares_class(self) -> None:
        text = stub_text(
            "def f(a, b):\n    pass\n",
            *[trace("f", {"a": shape(x=INT), "b": shape(x=INT)}, shape(x=INT))] * 2,
        )

        assert "def f(a: FA, b: FA) -> FA: ..." in text
        assert text.count("(TypedDict)") == 1

    def test_two_shapes_in_one_slot(self) -> None:
        pair = TypeRef("builtins", "tuple", (shape(x=INT), shape(y=STR)))
        text = stub_text("def f():\n    pass\n", *[trace("f", {}, pair)] * 2)

        assert "def f() -> tuple[FReturn, FReturn2]: ..." in text

    def test_name_avoids_module_names(self) -> None:
        source = "FD = 1\nFD2 = 2\n\ndef f(d):\n    pass\n"
        text = stub_text(source, *[trace("f", {"d": shape(a=INT)}, NONE)] * 2)

        assert "class FD3(TypedDict):" in text
        assert "def f(d: FD3) -> None: ..." in text

    def test_name_avoids_builtins(self) -> None:
        text = stub_text("def value(error):\n    pass\n", *[trace("value", {"error": shape(a=INT)}, NONE)] * 2)

        assert "def value(error: ValueError2) -> None: ..." in text

    def test_optional_shape(self) -> None:
        text = stub_text("def f(d=None):\n    pass\n", *[trace("f", {"d": shape(a=INT)}, NONE)] * 2)

        assert "def f(d: FD | None = ...) -> None: ..." in text

    def test_unstable_keys_give_dict(self) -> None:
        text = stub_text(
            "def f(d):\n    pass\n", trace("f", {"d": shape(a=INT)}, NONE), trace("f", {"d": shape(b=INT)}, NONE)
        )

        assert "def f(d: dict[str, int]) -> None: ..." in text

    def test_type_var_constraint_has_no_class(self) -> None:
        traces = [trace("f", {"x": INT}, INT), trace("f", {"x": shape(a=INT)}, shape(a=INT))] * 2
        text = stub_text("def f(x):\n    return x\n", *traces)

        assert '_T = TypeVar("_T", dict[str, int], int)' in text
        assert "TypedDict" not in text


APPLIED_312 = '''\
import typing as _typing

if _typing.TYPE_CHECKING:
    from typing import NotRequired, TypedDict

    class StoreSaveRecord(TypedDict):
        id: int
        name: str
        owner: NotRequired["User"]

    class StoreSaveReturn(TypedDict):
        id: int

    class LoadUserReturnAddress(TypedDict):
        city: str

    class LoadUserReturn(TypedDict):
        id: int
        name: str
        address: LoadUserReturnAddress

    HeadersValues = TypedDict("HeadersValues", {"content-type": str, "class": int})


class User:
    def __init__(self, name):
        self.name = name


class Store:
    def save(self, record: "StoreSaveRecord", *, strict: bool = False) -> "StoreSaveReturn":
        return {"id": 1}


def load_user(user_id: int) -> "LoadUserReturn":
    return {"id": user_id, "name": "x", "address": {"city": "y"}}


def headers(values: "HeadersValues") -> None:
    return None
'''

USAGE = """
store = Store()
print(store.save({"id": 1, "name": "a"})["id"], load_user(2)["address"]["city"])
headers({"content-type": "text/plain", "class": 3})
"""


class TestApply:
    def test_golden_312(self) -> None:
        assert apply(SOURCE, *TRACES) == APPLIED_312

    def test_golden_39(self) -> None:
        expected = APPLIED_312.replace(
            "    from typing import NotRequired, TypedDict\n",
            "    from typing import TypedDict\n    from typing_extensions import NotRequired\n",
        )

        assert apply(SOURCE, *TRACES, target=(3, 9)) == expected

    def test_idempotent(self) -> None:
        once = apply(SOURCE, *TRACES)

        assert apply(once, *TRACES) == once

    def test_future_annotations(self) -> None:
        source = "from __future__ import annotations\n\n" + SOURCE

        after = apply(source, *TRACES)

        assert 'def load_user(user_id: int) -> LoadUserReturn:' in after
        assert '        owner: NotRequired["User"]\n' in after

    def test_existing_type_checking_block(self) -> None:
        source = "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    import io\n\n" + SOURCE

        after = apply(source, *TRACES[2:4])

        assert (
            "if TYPE_CHECKING:\n"
            "    import io\n"
            "    from typing import TypedDict\n"
            "\n"
            "    class LoadUserReturnAddress(TypedDict):\n"
            "        city: str\n"
            "\n"
            "    class LoadUserReturn(TypedDict):\n"
        ) in after

    def test_name_avoids_module_names(self) -> None:
        after = apply("LoadUserReturn = 0\n\n" + SOURCE, *TRACES[2:4])

        assert "    class LoadUserReturn2(TypedDict):\n" in after
        assert 'def load_user(user_id: int) -> "LoadUserReturn2":' in after
        assert "\nLoadUserReturn = 0\n" in after

    def test_stub_of_applied_module_keeps_items(self, tmp_path: Path) -> None:
        """Stubbing the annotated module writes the TypedDict classes with their items."""
        applied = apply(SOURCE, *TRACES, target=(3, 9))

        text = stub_text(applied, *TRACES[2:4])

        assert "class LoadUserReturn(TypedDict):\n    id: int\n    name: str\n    address: LoadUserReturnAddress\n" in text
        assert "class StoreSaveRecord(TypedDict):\n    id: int\n    name: str\n    owner: NotRequired['User']\n" in text
        assert "def load_user(user_id: int) -> LoadUserReturn: ..." in text
        assert "from typing_extensions import NotRequired" in text
        path = tmp_path / "mod.pyi"
        path.write_text(text)
        result = run_mypy(path, "--strict")
        assert result.returncode == 0, result.stdout + text

    def test_typed_dict_import_avoids_module_name(self) -> None:
        after = apply("TypedDict = 1\n\ndef f(d):\n    pass\n", *[trace("f", {"d": shape(a=INT)}, NONE)] * 2)

        assert "    from typing import TypedDict as _TypedDict\n" in after
        assert "    class FD(_TypedDict):\n" in after
        assert "\nTypedDict = 1\n" in after

    def test_runs_unchanged(self, tmp_path: Path) -> None:
        """The annotated module binds no new public name and runs as before."""
        self.check_runs(tmp_path, sys.executable, (3, 12))

    @pytest.mark.skipif(not PYTHON_39.exists(), reason="needs the Python 3.9 environment")
    def test_runs_unchanged_on_python39(self, tmp_path: Path) -> None:
        self.check_runs(tmp_path, str(PYTHON_39), (3, 9))

    def check_runs(self, tmp_path: Path, python: str, target: tuple[int, int]) -> None:
        package = tmp_path / "pkg"
        package.mkdir()
        (package / "__init__.py").write_text("")
        (package / "original.py").write_text(SOURCE + USAGE)
        new_source = apply(SOURCE, *TRACES, target=target)
        (package / "mod.py").write_text(new_source + USAGE)
        check = (
            "import pkg.mod as m, pkg.original as original\n"
            "public = lambda module: sorted(n for n in vars(module) if not n.startswith('_'))\n"
            "assert public(m) == public(original), (public(m), public(original))\n"
        )

        result = subprocess.run([python, "-c", check], cwd=tmp_path, capture_output=True, text=True)

        assert result.returncode == 0, f"{result.stderr}\n--- applied ---\n{new_source}"
        assert result.stdout == "1 y\n1 y\n"

    @pytest.mark.parametrize("target", [(3, 9), (3, 12)])
    def test_passes_mypy(self, tmp_path: Path, target: tuple[int, int]) -> None:
        path = tmp_path / "mod.py"
        path.write_text(apply(SOURCE, *TRACES, target=target) + USAGE)

        result = run_mypy(path, *mypy_version_options(target))

        assert result.returncode == 0, result.stdout + path.read_text()

    def test_mypy_checks_keys(self, tmp_path: Path) -> None:
        """mypy reads the TypedDict: a key that no call had is an error at the use."""
        path = tmp_path / "mod.py"
        path.write_text(apply(SOURCE, *TRACES) + USAGE + 'load_user(1)["email"]\n')

        result = run_mypy(path)

        assert result.returncode == 1
        assert '"LoadUserReturn" has no key "email"' in result.stdout


VERIFY_SOURCE = """\
def area(size):
    return size["width"] * size["height"]


def describe(size):
    return str(size["width"])


def caller():
    size = {"width": 2, "height": 3}
    size["height"] = 4
    return area(size)


def literal_caller():
    return describe({"width": 2, "height": 3})
"""


class TestVerify:
    def test_dropped_annotation_drops_class(self, tmp_path: Path) -> None:
        """A caller passing a plain dict rejects the TypedDict of one function only."""
        pytest.importorskip("mypy")
        from typetrace.verify import verify_stub

        size = shape(width=INT, height=INT)
        traces = [trace("area", {"size": size}, INT), trace("describe", {"size": size}, STR)] * 2
        path = tmp_path / "mod.py"
        path.write_text(VERIFY_SOURCE)
        stub = build_stub(MODULE, traces, VERIFY_SOURCE)

        result = verify_stub(stub, path, checkers=["mypy"])

        # The error names the argument, so only that parameter's annotation is dropped.
        assert [str(dropped.slot) for dropped in result.dropped] == ["area parameter size"]
        annotated = apply_stub_to_source(VERIFY_SOURCE, result.stub, target_version=(3, 12))
        assert "class DescribeSize(TypedDict):" in annotated
        assert "AreaSize" not in annotated
        path.write_text(annotated)
        checked = run_mypy(path, "--check-untyped-defs")
        assert checked.returncode == 0, checked.stdout + annotated


TRACED_SCRIPT = """\
def make_user(name, admin=False):
    user = {"name": name, "id": len(name)}
    if admin:
        user["admin"] = True
    return user


def count_words(text):
    counts = {}
    for word in text.split():
        counts[word] = counts.get(word, 0) + 1
    return counts


make_user("ada")
make_user("bob", admin=True)
count_words("a b a")
count_words("c d")
"""


def test_traced_program_end_to_end(tmp_path: Path) -> None:
    """Real tracing, storing and stub writing give a TypedDict for records only."""
    (tmp_path / "users.py").write_text(TRACED_SCRIPT)
    traced = run_typetrace(tmp_path, "run", "--all-calls", "users.py")
    assert traced.returncode == 0, traced.stderr

    result = run_typetrace(tmp_path, "stub", "users", "--target-version", "3.12")

    assert result.returncode == 0, result.stderr
    assert (
        "class MakeUserReturn(TypedDict):\n"
        "    name: str\n"
        "    id: int\n"
        "    admin: NotRequired[bool]\n"
    ) in result.stdout
    assert "def make_user(name: str, admin: bool = ...) -> MakeUserReturn: ..." in result.stdout
    # Word counts have no key common to both calls, so they stay a dict.
    assert "def count_words(text: str) -> dict[str, int]: ..." in result.stdout
