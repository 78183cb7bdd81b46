"""The prune, stats, export and import commands, run as real subprocesses on SQLite files."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import raw_row_statements, run_typetrace

from typetrace.db.base import StoredRow
from typetrace.db.sqlite import SQLiteStore
from typetrace.encoding import CallTraceRow
from typetrace.tracing import CallTrace
from typetrace.typemodel import TypeRef

INT = TypeRef("builtins", "int")
DAY = 86400.0


typetrace = run_typetrace

def stored(module: str, qualname: str, call_count: int = 1, age_days: float = 0.0) -> StoredRow:
    seen = time.time() - age_days * DAY
    row = CallTraceRow.from_trace(CallTrace(module, qualname, {"x": INT}, INT, call_count=call_count))
    return StoredRow(row, seen - 1.0, seen)


def fill(path: Path, *rows: StoredRow) -> None:
    store = SQLiteStore(str(path))
    store.add_rows(rows)
    store.close()


def insert_undecodable(path: Path, module: str, qualname: str) -> None:
    row = CallTraceRow(module, qualname, '{"x": ', None, None, call_count=5)
    connection = sqlite3.connect(path)
    for statement, params in raw_row_statements(row, f"bad-{module}-{qualname}"):
        connection.execute(statement, params)
    connection.commit()
    connection.close()


def qualnames(path: Path) -> list[str]:
    store = SQLiteStore(str(path))
    names = sorted(f"{r.row.module}:{r.row.qualname}" for r in store.iter_rows())
    store.close()
    return names


class TestPrune:
    def test_removes_old_traces(self, tmp_path: Path) -> None:
        fill(
            tmp_path / "traces.sqlite3",
            stored("app", "old", age_days=40),
            stored("app", "new", age_days=1),
            stored("lib", "old", age_days=31),
        )

        done = typetrace(tmp_path, "prune", "--older-than", "30d")

        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("Removed 2 traces last seen before ")
        assert qualnames(tmp_path / "traces.sqlite3") == ["app:new"]

    def test_module_includes_submodules_only(self, tmp_path: Path) -> None:
        fill(
            tmp_path / "traces.sqlite3",
            stored("app", "f", age_days=2),
            stored("app.sub", "f", age_days=2),
            stored("application", "f", age_days=2),
        )

        done = typetrace(tmp_path, "prune", "--older-than", "24h", "--module", "app")

        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("Removed 2 traces ")
        assert qualnames(tmp_path / "traces.sqlite3") == ["application:f"]

    @pytest.mark.parametrize("age", ["30", "3x", "d", "-1d", "1.d"])
    def test_invalid_age_is_rejected(self, tmp_path: Path, age: str) -> None:
        done = typetrace(tmp_path, "prune", f"--older-than={age}")

        assert done.returncode == 2
        assert "invalid duration" in done.stderr


class TestStats:
    def test_counts_per_module(self, tmp_path: Path) -> None:
        fill(
            tmp_path / "traces.sqlite3",
            stored("app", "f", 3),
            stored("app", "g", 4),
            stored("lib", "f", 10),
        )

        done = typetrace(tmp_path, "stats")

        assert done.returncode == 0, done.stderr
        lines = [line.split()[:3] for line in done.stdout.splitlines()]
        assert lines[0] == ["MODULE", "TRACES", "CALLS"]
        assert lines[1:] == [["app", "2", "7"], ["lib", "1", "10"], ["(total)", "3", "17"]]

    def test_undecodable_rows_are_counted_and_listed(self, tmp_path: Path) -> None:
        path = tmp_path / "traces.sqlite3"
        fill(path, stored("app", "f", 3))
        insert_undecodable(path, "app", "broken")

        quiet = typetrace(tmp_path, "stats", "app")
        verbose = typetrace(tmp_path, "stats", "app", "--verbose")

        assert quiet.returncode == 0, quiet.stderr
        assert quiet.stdout.splitlines()[1].split()[:3] == ["app", "1", "3"]
        assert "Skipped 1 undecodable trace(s) (--verbose lists them)" in quiet.stderr
        assert "app:broken: invalid JSON" in verbose.stderr

    def test_unknown_module_is_an_error(self, tmp_path: Path) -> None:
        fill(tmp_path / "traces.sqlite3", stored("app", "f"))

        done = typetrace(tmp_path, "stats", "ap")

        assert done.returncode == 1
        assert "No traces for module 'ap'" in done.stderr

    def test_empty_store_says_so(self, tmp_path: Path) -> None:
        done = typetrace(tmp_path, "stats")

        assert done.returncode == 1
        assert "No traces in" in done.stderr


class TestExportImport:
    def test_round_trip_between_files(self, tmp_path: Path) -> None:
        fill(tmp_path / "traces.sqlite3", stored("app", "f", 3), stored("lib", "g", 5))

        exported = typetrace(tmp_path, "export", "-o", "dump.jsonl")
        imported = typetrace(tmp_path, "--db", "copy.sqlite3", "import", "dump.jsonl")

        assert exported.returncode == 0, exported.stderr
        assert "Exported 2 traces (8 calls) to dump.jsonl" in exported.stderr
        assert imported.returncode == 0, imported.stderr
        assert "Imported 2 traces (8 calls) from dump.jsonl" in imported.stdout
        original = SQLiteStore(str(tmp_path / "traces.sqlite3"))
        copy = SQLiteStore(str(tmp_path / "copy.sqlite3"))
        assert sorted(copy.iter_rows(), key=str) == sorted(original.iter_rows(), key=str)
        original.close()
        copy.close()

    def test_export_to_stdout_and_import_from_stdin(self, tmp_path: Path) -> None:
        fill(tmp_path / "traces.sqlite3", stored("app", "f", 3), stored("lib", "g", 5))

        exported = typetrace(tmp_path, "export", "--module", "lib")
        imported = typetrace(tmp_path, "--db", "copy.sqlite3", "import", "-", stdin=exported.stdout)

        assert exported.returncode == 0, exported.stderr
        assert len(exported.stdout.splitlines()) == 2
        assert imported.returncode == 0, imported.stderr
        assert qualnames(tmp_path / "copy.sqlite3") == ["lib:g"]

    def test_import_twice_adds_counts(self, tmp_path: Path) -> None:
        fill(tmp_path / "traces.sqlite3", stored("app", "f", 3))
        typetrace(tmp_path, "export", "-o", "dump.jsonl")

        done = typetrace(tmp_path, "import", "dump.jsonl")

        assert done.returncode == 0, done.stderr
        store = SQLiteStore(str(tmp_path / "traces.sqlite3"))
        (row,) = store.iter_rows()
        assert row.row.call_count == 6
        store.close()

    def test_export_skips_undecodable_rows(self, tmp_path: Path) -> None:
        path = tmp_path / "traces.sqlite3"
        fill(path, stored("app", "f"))
        insert_undecodable(path, "app", "broken")

        quiet = typetrace(tmp_path, "export", "-o", "dump.jsonl")
        verbose = typetrace(tmp_path, "export", "-o", "dump.jsonl", "-v")

        assert quiet.returncode == 0, quiet.stderr
        assert "Skipped 1 undecodable trace(s) (--verbose lists them)" in quiet.stderr
        assert "app:broken: invalid JSON" in verbose.stderr
        assert len((tmp_path / "dump.jsonl").read_text(encoding="utf-8").splitlines()) == 2

    def test_import_skips_unreadable_lines(self, tmp_path: Path) -> None:
        fill(tmp_path / "traces.sqlite3", stored("app", "f"))
        typetrace(tmp_path, "export", "-o", "dump.jsonl")
        with (tmp_path / "dump.jsonl").open("ab") as file:
            file.write(b"{broken\n")
            file.write(b'{"module": "\xff"}\n')

        quiet = typetrace(tmp_path, "--db", "copy.sqlite3", "import", "dump.jsonl")
        verbose = typetrace(tmp_path, "--db", "copy2.sqlite3", "import", "dump.jsonl", "--verbose")

        assert quiet.returncode == 0, quiet.stderr
        assert "Imported 1 trace (1 call)" in quiet.stdout
        assert "Skipped 2 unreadable line(s) (--verbose lists them)" in quiet.stderr
        assert "line 3: invalid JSON" in verbose.stderr
        assert "line 4: " in verbose.stderr

    def test_import_of_a_non_export_is_an_error(self, tmp_path: Path) -> None:
        fill(tmp_path / "other.sqlite3", stored("app", "f"))

        done = typetrace(tmp_path, "import", "other.sqlite3")

        assert done.returncode == 1
        assert "is not a typetrace export" in done.stderr
        assert "--monkeytype" in done.stderr

    def test_missing_file_is_an_error(self, tmp_path: Path) -> None:
        done = typetrace(tmp_path, "import", "missing.jsonl")

        assert done.returncode == 1
        assert "Failed to read the export file missing.jsonl" in done.stderr


MONKEYTYPE_SCHEMA = (
    "CREATE TABLE monkeytype_call_traces (created_at TEXT, module TEXT, qualname TEXT, "
    "arg_types TEXT, return_type TEXT, yield_type TEXT)"
)


def test_import_monkeytype_then_stub(tmp_path: Path) -> None:
    package = tmp_path / "mtpkg"
    package.mkdir()
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "sample.py").write_text(
        "def add(a, b):\n    return a + b\n\n\ndef maybe(x):\n    return None if x else 1\n",
        encoding="utf-8",
    )
    # Rows as MonkeyType 23.3.0 wrote them for calls of these two functions.
    rows = [
        ("2026-12-04 16:53:58.609497", "mtpkg.sample", "add", '{"a": {"module": "builtins", "qualname": "int"}, "b": {"module": "builtins", "qualname": "int"}}', '{"module": "builtins", "qualname": "int"}', None),  # noqa: E501
        ("2026-12-04 16:53:58.609522", "mtpkg.sample", "add", '{"a": {"module": "builtins", "qualname": "str"}, "b": {"module": "builtins", "qualname": "str"}}', '{"module": "builtins", "qualname": "str"}', None),  # noqa: E501
        ("2026-12-04 16:53:58.609545", "mtpkg.sample", "maybe", '{"x": {"module": "builtins", "qualname": "bool"}}', '{"module": "builtins", "qualname": "NoneType"}', None),  # noqa: E501
        ("2026-12-04 16:53:58.609553", "mtpkg.sample", "maybe", '{"x": {"module": "builtins", "qualname": "bool"}}', '{"module": "builtins", "qualname": "int"}', None),  # noqa: E501
        ("2026-12-04 16:53:58.609560", "mtpkg.sample", "maybe", "{not json", None, None),
    ]  # fmt: skip
    connection = sqlite3.connect(tmp_path / "monkeytype.sqlite3")
    connection.execute(MONKEYTYPE_SCHEMA)
    connection.executemany("INSERT INTO monkeytype_call_traces VALUES (?, ?, ?, ?, ?, ?)", rows)
    connection.commit()
    connection.close()

    imported = typetrace(tmp_path, "import", "--monkeytype", "monkeytype.sqlite3", "-v")
    stub = typetrace(tmp_path, "stub", "mtpkg.sample")

    assert imported.returncode == 0, imported.stderr
    assert "Imported 4 calls from the MonkeyType store monkeytype.sqlite3" in imported.stdout
    assert "Skipped 1 MonkeyType row(s) that could not be converted:" in imported.stderr
    assert "row 5: arg_types is invalid JSON" in imported.stderr
    assert stub.returncode == 0, stub.stderr
    assert "def maybe(x: bool) -> int | None: ..." in stub.stdout
    assert "def add(a: " in stub.stdout


def test_user_store_without_prune_fails_clearly(tmp_path: Path) -> None:
    tests_db = Path(__file__).parent / "db"
    (tmp_path / "user_config.py").write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(tests_db)!r})\n"
        "from typetrace.config import Config\n"
        "from user_store import UserJsonLinesStore\n\n"
        "class UserConfig(Config):\n"
        "    def trace_store(self):\n"
        "        return UserJsonLinesStore.make_store('traces.jsonl')\n\n"
        "CONFIG = UserConfig()\n",
        encoding="utf-8",
    )

    done = typetrace(tmp_path, "--config", "user_config:CONFIG", "prune", "--older-than", "1d")

    assert done.returncode == 1
    assert "UserJsonLinesStore does not support prune; implement CallTraceStore.prune" in done.stderr


def test_export_file_is_json_lines(tmp_path: Path) -> None:
    fill(tmp_path / "traces.sqlite3", stored("app", "f", 2))

    typetrace(tmp_path, "export", "-o", "dump.jsonl")

    header, line = (tmp_path / "dump.jsonl").read_text(encoding="utf-8").splitlines()
    assert json.loads(header)["typetrace_export"] == 1
    assert json.loads(line)["arg_types"] == {"x": {"module": "builtins", "qualname": "int"}}


def test_prune_duration_past_epoch(tmp_path: Path) -> None:
    """A duration longer than the time since 1970 removes nothing and reports it plainly."""
    fill(tmp_path / "traces.sqlite3", stored("app", "f", age_days=400))

    result = typetrace(tmp_path, "prune", "--older-than", "10000000000000000000000d")

    assert result.returncode == 0, result.stderr
    assert "Removed 0 traces last seen before 1970-01-01 00:00:00 UTC" in result.stdout


def test_export_to_closed_pipe_is_quiet(tmp_path: Path) -> None:
    """An export whose reader stops early, as with "| head -1", prints no traceback."""
    fill(tmp_path / "traces.sqlite3", *(stored("app", f"f{index}") for index in range(3000)))
    environment = {**os.environ, "TYPETRACE_DB": str(tmp_path / "traces.sqlite3")}
    environment.pop("PYTHONPATH", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "typetrace", "export"],
        cwd=tmp_path,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    process.stdout.readline()
    process.stdout.close()
    _, stderr = process.communicate(timeout=120)

    assert process.returncode == 1
    assert b"Traceback" not in stderr


def test_rejected_import_creates_no_store(tmp_path: Path) -> None:
    """An import file that is rejected leaves no new store file behind."""
    (tmp_path / "notes.txt").write_text("not json\n", encoding="utf-8")

    result = typetrace(tmp_path, "import", "notes.txt")

    assert result.returncode == 1
    assert "is not a typetrace export" in result.stderr
    assert not (tmp_path / "traces.sqlite3").exists()
