"""Sort typetrace's differences from the maintainers' annotations into likely causes.

Each written slot that is not an exact match goes to the first cause whose rule fits.
The rules read the normalized annotations (``compare.normalize``), the subtype checks
(``compatible.py``) and facts about the maintainers' package that ``run.py`` stores
(its ``TypeVar``, ``TypedDict`` and ``Protocol`` names, and the names the annotated copy
imports from test code). They are heuristics: a slot can have several causes, and
only the first is counted.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from typetrace.db.sqlite import SQLiteStore

#: Abstract classes of ``collections.abc`` and ``typing`` that a maintainer often
#: writes where the tests pass a concrete container.
ABSTRACT = frozenset({
    "Iterable", "Iterator", "Sequence", "MutableSequence", "Mapping", "MutableMapping", "Collection",
    "Container", "Set", "MutableSet", "Sized", "Hashable", "Reversible", "Generator", "AsyncIterator",
    "AsyncIterable", "AsyncGenerator", "Awaitable", "Coroutine", "KeysView", "ValuesView", "ItemsView",
    "IO", "TextIO", "BinaryIO", "SupportsInt", "SupportsFloat", "SupportsIndex",
})  # fmt: skip

#: Modules whose classes in an annotation mean that a test double or test helper leaked in.
TEST_MODULES = re.compile(r"^(tests?(\.|$)|test_|conftest|freezegun|unittest\.mock|mock|_pytest|pytest)")

#: A test double class, or a dotted name in a test module.
_TEST_TYPE = re.compile(r"\b(Mock|MagicMock|Fake\w+)\b|(^|[^.\w])(tests?|test_\w+|conftest)\.")
#: Classes of "argument not given" sentinels, such as jinja2's ``_MissingType``.
_SENTINEL = re.compile(r"\b_?(Missing|Sentinel|Unset|NotGiven)\w*")
#: A generic class without type arguments, as typetrace writes it when it recorded none.
_BARE_GENERIC = re.compile(
    r"\b(list|dict|set|frozenset|tuple|type|deque|Callable|Iterator|Generator|AsyncGenerator|AsyncIterator|Coroutine)\b(?!\[)"
)
_WORD = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")


def package_facts(package: Path) -> dict[str, list[str]]:
    """Return the names of the ``TypeVar``s, ``TypedDict``s and ``Protocol``s that *package* defines."""
    typevars: set[str] = set()
    typeddicts: set[str] = set()
    protocols: set[str] = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
                called = ast.unparse(node.value.func).rsplit(".", 1)[-1]
                if called in ("TypeVar", "ParamSpec"):
                    typevars.update(target.id for target in node.targets if isinstance(target, ast.Name))
            elif isinstance(node, ast.ClassDef):
                bases = {ast.unparse(base).rsplit(".", 1)[-1].split("[", 1)[0] for base in node.bases}
                if "TypedDict" in bases:
                    typeddicts.add(node.name)
                if "Protocol" in bases:
                    protocols.add(node.name)
    return {"typevars": sorted(typevars), "typeddicts": sorted(typeddicts), "protocols": sorted(protocols)}


def test_names(package: Path) -> list[str]:
    """Return the names that the modules of an annotated *package* import from test code or test libraries."""
    names: set[str] = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and TEST_MODULES.match(node.module):
                names.update(alias.asname or alias.name for alias in node.names)
            elif isinstance(node, ast.Import):
                names.update(alias.asname or alias.name for alias in node.names if TEST_MODULES.match(alias.name))
    return sorted(names)


def observed_types(database: Path, package: str) -> dict[tuple[str, str, str], set[str]]:
    """Return the distinct classes that typetrace recorded per slot, read from its SQLite store.

    Keys are slots as ``compare.Slot`` (module file path relative to the package);
    values are ``module.qualname`` of each recorded class, without type arguments.
    """
    observed: dict[tuple[str, str, str], set[str]] = {}
    if not database.exists():
        return observed
    # Read through the store, whose tables change with its schema version.
    store = SQLiteStore(str(database))
    try:
        rows = [
            (stored.row.module, stored.row.qualname, stored.row.arg_types, stored.row.return_type, stored.row.yield_type)
            for stored in store.iter_rows()
        ]
    finally:
        store.close()
    for module, qualname, arg_types, return_type, yield_type in rows:
        if module != package and not module.startswith(package + "."):
            continue
        parts = module.split(".")[1:]
        path = "/".join(parts) + ".py" if parts else "__init__.py"
        types = dict(json.loads(arg_types))
        for name, encoded in (("return", return_type), ("return", yield_type)):
            if encoded is not None:
                types.setdefault(name, json.loads(encoded))
        for name, encoded_type in types.items():
            if isinstance(encoded_type, dict):
                observed.setdefault((path, qualname, name), set()).add(f"{encoded_type.get('module')}.{encoded_type.get('qualname')}")
    return observed


def _words(annotation: str) -> set[str]:
    return set(_WORD.findall(annotation))


def _members(annotation: str) -> set[str]:
    return set(annotation.split(" | "))


def classify(slot: dict[str, Any], facts: dict[str, list[str]], leaked: Iterable[str], observed: set[str]) -> str:
    """Return the likely cause of one written, non-exact slot; *observed* is what typetrace recorded for it."""
    expected = str(slot["expected"])
    generated = str(slot["generated"])
    expected_words, generated_words = _words(expected), _words(generated)
    if generated_words & set(leaked) or _TEST_TYPE.search(str(slot["generated_source"])):
        return "test double or test class leaked"
    if generated == "Any":
        if not observed:
            return "Any written: no class recorded for the slot"
        if all(name.startswith(("unittest.mock.", "mock.")) for name in observed):
            return "Any written: only mocks recorded"
        if len(observed) > 5:
            return "Any written: more than 5 classes recorded, union widened"
        if any("<locals>" in name for name in observed):
            return "Any written: a recorded class is local to a function"
        return "Any written: other"
    if _SENTINEL.search(generated):
        return "sentinel default object recorded"
    if "Self" in expected_words:
        return "Self expected"
    if expected_words & set(facts["typeddicts"]):
        return "TypedDict expected"
    if expected_words & set(facts["typevars"]):
        return "TypeVar (generic) expected"
    if "Any" in expected_words:
        return "maintainers wrote Any (alone, in a union or in a container)"
    if "Callable" in generated_words and _BARE_GENERIC.search(generated) and "Callable[" in expected:
        return "bare Callable where a signature is expected"
    if "Any" in generated_words or _BARE_GENERIC.search(generated):
        return "Any or no type arguments inside a generic (e.g. only empty containers recorded)"
    if generated_words & {"PosixPath", "WindowsPath"}:
        return "PosixPath recorded where Path or PathLike is expected"
    if slot["narrower"]:
        if generated == "None":
            return "narrower: only None recorded (the default was never overridden)"
        if "None" in _members(expected) and "None" not in _members(generated):
            return "narrower: None never observed"
        if expected_words & (ABSTRACT | {"Callable"} | set(facts["protocols"])):
            return "narrower: concrete type where an abstract type or protocol is expected"
        if len(_members(generated) - {"None"}) > 1 and len(_members(expected) - {"None"}) == 1:
            return "narrower: union where a common base class is expected"
        return "narrower: other (subset of the maintainers' union, Literal, subclass)"
    if slot["wider"]:
        return "wider than the maintainers'"
    if expected_words & ({"Callable"} | set(facts["protocols"])):
        return "incompatible: Callable or Protocol expected"
    if "Any" in generated_words and "Any" not in expected_words:
        return "incompatible: Any written inside a container"
    return "incompatible: other"


def _example(slot: dict[str, Any], observed: set[str]) -> str:
    module, qualname, name = slot["slot"]
    text = f"`{module}:{qualname}` `{name}`: maintainers `{slot['expected_source']}`, typetrace `{slot['generated_source']}`"
    if slot["generated"] == "Any" and observed:
        shown = sorted(observed)
        text += f" (recorded: {', '.join(shown[:6])}{', ...' if len(shown) > 6 else ''})"
    return text


def summarize(result: dict[str, Any], package: str, work: Path, tool: str = "typetrace", examples: int = 3) -> list[str]:
    """Return Markdown lines with the causes of *tool*'s non-exact slots in one library's *result*.

    *package* is the library's import package; *work* is the library's work folder,
    where ``<tool>/traces.sqlite3`` is typetrace's store.
    """
    tools_results: dict[str, dict[str, Any]] = result["tools"]
    if tool not in tools_results:
        return []
    figures = tools_results[tool]
    facts: dict[str, list[str]] = result.get("facts", {"typevars": [], "typeddicts": [], "protocols": []})
    leaked = figures.get("test_names", [])
    slots: list[dict[str, Any]] = figures["slots"]
    observed = observed_types(work / tool / "traces.sqlite3", package)
    groups: dict[str, list[dict[str, Any]]] = {}
    for slot in slots:
        if slot["generated"] is None:
            recorded = any(key[:2] == tuple(slot["slot"][:2]) for key in observed)
            cause = "not written, function recorded" if recorded else "not written, function never recorded"
            groups.setdefault(cause, []).append(slot)
        elif slot["generated"] != slot["expected"]:
            cause = classify(slot, facts, leaked, observed.get(tuple(slot["slot"]), set()))
            groups.setdefault(cause, []).append(slot)
    if "typetrace-verify" in tools_results and tool == "typetrace":
        verified = {tuple(s["slot"]): s for s in tools_results["typetrace-verify"]["slots"]}
        dropped = [s for s in slots if s["generated"] == s["expected"] and verified[tuple(s["slot"])]["generated"] is None]
        if dropped:
            groups["--verify dropped an exact match"] = dropped
    lines = [f"#### {result['library']} {result['version']}: {tool}, {len(slots)} maintainer slots\n"]
    for cause, members in sorted(groups.items(), key=lambda item: -len(item[1])):
        lines.append(f"- {cause}: {len(members)}")
        if cause != "not written, function never recorded":
            lines.extend(f"  - {_example(member, observed.get(tuple(member['slot']), set()))}" for member in members[:examples])
    lines.append("")
    return lines


def report(results: list[dict[str, Any]], packages: dict[str, str], work: Path) -> str:
    """Return the causes of typetrace's non-exact slots, per library, as Markdown.

    *packages* maps each library's name to its import package; *work* contains a work
    folder per library.
    """
    lines = ["### Causes of typetrace's non-exact matches\n"]
    for result in results:
        name = str(result["library"])
        lines.extend(summarize(result, packages[name], work / name))
    return "\n".join(lines)
