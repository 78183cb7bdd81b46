"""Export and import between SQLite and the server stores, through real subprocesses."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from support import run_typetrace

from typetrace.db import store_from_url
from typetrace.db.base import StoredRow
from typetrace.db.sqlite import SQLiteStore
from typetrace.encoding import CallTraceRow
from typetrace.tracing import CallTrace
from typetrace.typemodel import NONE, TypeRef, union

INT = TypeRef("builtins", "int")
STR = TypeRef("builtins", "str")


def typetrace(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_typetrace(cwd, *args, default_db=False)

def sample_rows() -> list[StoredRow]:
    traces = [
        CallTrace("app", "f", {"x": INT}, STR, call_count=3),
        CallTrace(
            "app", "C.m", {"self": TypeRef("app", "C")}, None, union([INT, NONE]), send_type=STR
        ),
        CallTrace("app.sub", "g", {"λ": TypeRef("builtins", "list", (INT,))}, NONE, call_count=1234),
    ]
    return [
        StoredRow(CallTraceRow.from_trace(trace), 1000.0 + i, 2000.5 + i)
        for i, trace in enumerate(traces)
    ]


def rows_of(location: str) -> list[StoredRow]:
    store = store_from_url(location)
    try:
        return sorted(store.iter_rows(), key=lambda r: (r.row.module, r.row.qualname))
    finally:
        store.close()


@pytest.mark.parametrize("server", ["postgresql", "mysql"])
def test_round_trip_through_a_server(tmp_path: Path, request: pytest.FixtureRequest, server: str) -> None:
    url = request.getfixturevalue(f"{server}_url")
    source = SQLiteStore(str(tmp_path / "source.sqlite3"))
    source.add_rows(sample_rows())
    source.close()

    to_server = typetrace(tmp_path, "--db", "source.sqlite3", "export", "-o", "one.jsonl")
    into_server = typetrace(tmp_path, "--db", url, "import", "one.jsonl")
    from_server = typetrace(tmp_path, "--db", url, "export", "-o", "two.jsonl")
    back = typetrace(tmp_path, "--db", "back.sqlite3", "import", "two.jsonl")

    for done in (to_server, into_server, from_server, back):
        assert done.returncode == 0, done.stderr
    assert "Imported 3 traces (1238 calls)" in into_server.stdout
    expected = rows_of(str(tmp_path / "source.sqlite3"))
    assert [stored.row.send_type is not None for stored in expected] == [True, False, False]
    assert rows_of(url) == expected
    assert rows_of(str(tmp_path / "back.sqlite3")) == expected


@pytest.mark.parametrize("server", ["postgresql", "mysql"])
def test_import_aggregates_on_a_server(tmp_path: Path, request: pytest.FixtureRequest, server: str) -> None:
    url = request.getfixturevalue(f"{server}_url")
    store = store_from_url(url)
    store.add([CallTrace("app", "f", {"x": INT}, STR, call_count=2)])
    store.close()
    source = SQLiteStore(str(tmp_path / "source.sqlite3"))
    source.add_rows(sample_rows())
    source.close()
    typetrace(tmp_path, "--db", "source.sqlite3", "export", "-o", "one.jsonl")

    done = typetrace(tmp_path, "--db", url, "import", "one.jsonl")
    stats = typetrace(tmp_path, "--db", url, "stats")

    assert done.returncode == 0, done.stderr
    counts = {r.row.qualname: r.row.call_count for r in rows_of(url)}
    assert counts == {"f": 5, "C.m": 1, "g": 1234}
    assert stats.stdout.splitlines()[1].split()[:3] == ["app", "2", "6"]


@pytest.mark.parametrize("server", ["postgresql", "mysql"])
def test_prune_on_a_server(tmp_path: Path, request: pytest.FixtureRequest, server: str) -> None:
    url = request.getfixturevalue(f"{server}_url")
    store = store_from_url(url)
    store.add_rows(sample_rows())
    store.add([CallTrace("app", "recent", {}, None)])
    store.close()

    done = typetrace(tmp_path, "--db", url, "prune", "--older-than", "1d", "--module", "app")

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Removed 3 traces ")
    assert [r.row.qualname for r in rows_of(url)] == ["recent"]
