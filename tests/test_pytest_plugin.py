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


def assert_usage_error(result: pytest.RunResult, *fragments: str) -> None:
    """Check that pytest stopped with one clean usage error that contains *fragments*."""
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "INTERNALERROR" not in output
    assert "Traceback" not in output
    errors = [line for line in result.stderr.lines if line.startswith("ERROR: ")]
    assert len(errors) == 1, output
    for fragment in fragments:
        assert fragment in output


def test_unreachable_postgres_is_usage_error(suite: pytest.Pytester) -> None:
    """A PostgreSQL store on a closed port stops pytest with a usage error naming the URL."""
    url = "postgresql://postgres:secret@127.0.0.1:5499/test"
    result = suite.runpytest_subprocess("--typetrace", f"--typetrace-db={url}")
    assert_usage_error(
        result,
        "postgresql://postgres:***@127.0.0.1:5499/test",
        "Check that the server is running",
        "The store comes from --typetrace-db.",
    )
    assert "secret" not in result.stdout.str() + result.stderr.str()


def test_sqlite_missing_folder_is_usage_error(suite: pytest.Pytester) -> None:
    """A SQLite path in a folder that does not exist stops pytest before any test runs."""
    db = suite.path / "missing" / "traces.sqlite3"
    result = suite.runpytest_subprocess("--typetrace", f"--typetrace-db={db}")
    assert_usage_error(result, str(db), "create it or choose another path", "--typetrace-db")
    assert not db.parent.exists()


def test_bad_ini_store_is_usage_error(suite: pytest.Pytester) -> None:
    """A bad typetrace_db ini value gets the same error, naming the ini key."""
    db = suite.path / "missing" / "from_ini.sqlite3"
    suite.makeini(f"[pytest]\ntypetrace = true\ntypetrace_db = {db}\n")
    result = suite.runpytest_subprocess()
    assert_usage_error(
        result, str(db), "create it or choose another path", "the typetrace_db ini key"
    )


def test_bad_store_under_xdist_is_usage_error(suite: pytest.Pytester) -> None:
    """With -n 2 the controller checks the store, so no worker starts and none crashes."""
    pytest.importorskip("xdist")
    db = suite.path / "missing" / "xdist.sqlite3"
    result = suite.runpytest_subprocess("-n", "2", "--typetrace", f"--typetrace-db={db}")
    assert_usage_error(result, str(db), "create it or choose another path", "--typetrace-db")
    assert "crashed" not in result.stdout.str()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param(
            "no_such_module:CONFIG", "Config module 'no_such_module' not found", id="module"
        ),
        pytest.param("mylib:NO_SUCH_CONFIG", "has no attribute 'NO_SUCH_CONFIG'", id="attribute"),
        pytest.param("mylib", "expected module:attribute", id="no-colon"),
    ],
)
def test_bad_config_option_is_usage_error(suite: pytest.Pytester, value: str, message: str) -> None:
    """A --typetrace-config that cannot be loaded stops pytest with a usage error."""
    result = suite.runpytest_subprocess("--typetrace", f"--typetrace-config={value}")
    assert_usage_error(result, message, "The config comes from --typetrace-config.")


@pytest.mark.parametrize(
    ("method", "xdist"),
    [
        pytest.param("trace_store", False, id="trace-store"),
        pytest.param("sampling", False, id="sampling"),
        pytest.param("trace_store", True, id="trace-store-xdist"),
    ],
)
def test_config_method_raising_is_usage_error(
    suite: pytest.Pytester, method: str, xdist: bool
) -> None:
    """A config whose method raises stops pytest with a usage error that names the
    method and the exception."""
    suite.makepyfile(
        brokencfg=f"""
        from typetrace.config import DefaultConfig

        class Broken(DefaultConfig):
            def {method}(self):
                raise RuntimeError("broken on purpose")

        CONFIG = Broken()
        """
    )
    arguments = ["--typetrace", "--typetrace-config=brokencfg:CONFIG"]
    if xdist:
        pytest.importorskip("xdist")
        arguments = ["-n", "2", *arguments]
    result = suite.runpytest_subprocess(*arguments)
    assert_usage_error(
        result, f"Broken.{method}() raised RuntimeError: broken on purpose", f"fix the {method}()"
    )


def test_bad_config_ini_is_usage_error(suite: pytest.Pytester) -> None:
    """A typetrace_config ini value that cannot be loaded names the ini key."""
    suite.makeini("[pytest]\ntypetrace = true\ntypetrace_config = no_such_module:CONFIG\n")
    result = suite.runpytest_subprocess()
    assert_usage_error(
        result,
        "Config module 'no_such_module' not found",
        "The config comes from the typetrace_config ini key.",
    )


def test_env_store_is_named_in_error(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bad TYPETRACE_DB is reported with the variable's name."""
    db = suite.path / "missing" / "from_env.sqlite3"
    monkeypatch.setenv("TYPETRACE_DB", str(db))
    result = suite.runpytest_subprocess("--typetrace")
    assert_usage_error(result, str(db), "the TYPETRACE_DB environment variable")
