"""The pytest plugin, run in real pytest subprocesses with pytester."""

from __future__ import annotations

from pathlib import Path

import pytest

from typetrace.db.sqlite import SQLiteStore
from typetrace.typemodel import TypeRef

LIBRARY = """
def double(value):
    return value * 2
"""

TESTS = """
from mylib import double


def test_double_int():
    assert double(2) == 4


def test_double_str():
    assert double("a") == "aa"
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(mylib=LIBRARY, test_mylib=TESTS)
    pytester.syspathinsert()
    return pytester


def stored_arg_types(db: Path, module: str, qualname: str) -> set[TypeRef]:
    store = SQLiteStore.make_store(str(db))
    try:
        traces = [thunk.to_trace() for thunk in store.filter(module, qualname)]
    finally:
        store.close()
    return {trace.arg_types["value"] for trace in traces}


def test_option_records_calls(suite: pytest.Pytester) -> None:
    """--typetrace records the calls the tests make into the named store."""
    db = suite.path / "traces.sqlite3"
    result = suite.runpytest_subprocess("--typetrace", f"--typetrace-db={db}", "--typetrace-all-calls")
    result.assert_outcomes(passed=2)
    assert stored_arg_types(db, "mylib", "double") == {TypeRef("builtins", "int"), TypeRef("builtins", "str")}


def test_ini_keys_record_calls(suite: pytest.Pytester) -> None:
    """The ini keys mirror the options."""
    db = suite.path / "from_ini.sqlite3"
    suite.makeini(f"[pytest]\ntypetrace = true\ntypetrace_db = {db}\ntypetrace_all_calls = true\n")
    result = suite.runpytest_subprocess()
    result.assert_outcomes(passed=2)
    assert stored_arg_types(db, "mylib", "double") == {TypeRef("builtins", "int"), TypeRef("builtins", "str")}


def test_off_by_default(suite: pytest.Pytester) -> None:
    """Without the option nothing is traced and no store is created."""
    result = suite.runpytest_subprocess()
    result.assert_outcomes(passed=2)
    assert not (suite.path / "typetrace.sqlite3").exists()


def test_xdist_workers_record_once(suite: pytest.Pytester) -> None:
    """With -n 2 the workers write the calls and the controller counts none twice."""
    pytest.importorskip("xdist")
    db = suite.path / "xdist.sqlite3"
    suite.makepyfile(
        test_more="""
        from mylib import double


        def test_double_float():
            assert double(1.5) == 3.0


        def test_double_list():
            assert double([1]) == [1, 1]
        """
    )

    result = suite.runpytest_subprocess("-n", "2", "--typetrace", f"--typetrace-db={db}", "--typetrace-all-calls")

    result.assert_outcomes(passed=4)
    store = SQLiteStore.make_store(str(db))
    try:
        traces = [thunk.to_trace() for thunk in store.filter("mylib", "double")]
    finally:
        store.close()
    assert sum(trace.call_count for trace in traces) == 4
    assert {trace.arg_types["value"] for trace in traces} == {
        TypeRef("builtins", "int"),
        TypeRef("builtins", "str"),
        TypeRef("builtins", "float"),
        TypeRef("builtins", "list", (TypeRef("builtins", "int"),)),
    }
