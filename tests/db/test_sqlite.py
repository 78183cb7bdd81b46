"""SQLiteStore: file handling, schema versions, error messages and lock retries."""

from __future__ import annotations

import errno
import os
import pwd
import sqlite3
import tempfile
import threading
import time
import warnings
from contextlib import closing
from pathlib import Path

import pytest
from support import locked_by_other_process

from typetrace.db import sqlite as sqlite_module
from typetrace.db import store_from_url
from typetrace.db._sql import SCHEMA_VERSION
from typetrace.db.sqlite import SQLiteStore
from typetrace.exceptions import StoreError
from typetrace.tracing import CallTrace
from typetrace.typemodel import TypeRef

INT = TypeRef("builtins", "int")
TRACE = CallTrace("pkg", "f", {"x": INT}, INT)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "traces.sqlite3"


def read_meta(path: Path) -> list[tuple[str, str]]:
    with closing(sqlite3.connect(path)) as connection, connection:
        return connection.execute("SELECT name, value FROM typetrace_meta").fetchall()


class TestSchema:
    def test_records_schema_version(self, path: Path) -> None:
        SQLiteStore(str(path)).close()

        assert read_meta(path) == [("schema_version", str(SCHEMA_VERSION))]

    def test_opening_twice_keeps_one_version_row(self, path: Path) -> None:
        SQLiteStore(str(path)).close()
        SQLiteStore(str(path)).close()

        assert read_meta(path) == [("schema_version", str(SCHEMA_VERSION))]

    def test_newer_schema_is_rejected(self, path: Path) -> None:
        SQLiteStore(str(path)).close()
        with closing(sqlite3.connect(path)) as connection, connection:
            connection.execute("UPDATE typetrace_meta SET value = ?", (str(SCHEMA_VERSION + 1),))

        with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1}") as raised:
            SQLiteStore(str(path))

        assert "Upgrade typetrace" in str(raised.value)
        assert str(path) in str(raised.value)

    def test_invalid_schema_version_is_rejected(self, path: Path) -> None:
        SQLiteStore(str(path)).close()
        with closing(sqlite3.connect(path)) as connection, connection:
            connection.execute("UPDATE typetrace_meta SET value = 'banana'")

        with pytest.raises(StoreError, match="invalid schema version 'banana'"):
            SQLiteStore(str(path))

    def test_uses_wal_mode(self, path: Path) -> None:
        SQLiteStore(str(path)).close()

        with closing(sqlite3.connect(path)) as connection, connection:
            assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)

    @pytest.mark.parametrize("existing", [False, True], ids=["new-file", "existing-file"])
    def test_commits_without_full_sync(self, path: Path, existing: bool) -> None:
        if existing:
            SQLiteStore(str(path)).close()
        store = SQLiteStore(str(path))
        try:
            # 1 is NORMAL, which in WAL mode syncs at checkpoints, not at each commit.
            with closing(store._connect()) as connection:
                assert connection.execute("PRAGMA synchronous").fetchone() == (1,)
        finally:
            store.close()

    @pytest.mark.parametrize(
        ("query", "params"),
        [
            pytest.param(sqlite_module._FILTER, ("pkg", 10), id="filter"),
            pytest.param(
                sqlite_module._FILTER_WITH_PREFIX, ("pkg", "C", 2, "C.", 10), id="filter-prefix"
            ),
            pytest.param(sqlite_module._sql.LIST_MODULES_QUERY, (), id="list-modules"),
        ],
    )
    def test_queries_read_the_module_index(
        self, path: Path, query: str, params: tuple[object, ...]
    ) -> None:
        SQLiteStore(str(path)).close()

        with closing(sqlite3.connect(path)) as connection, connection:
            plan = [
                row[-1] for row in connection.execute("EXPLAIN QUERY PLAN " + query, params)
            ]

        assert any("COVERING INDEX typetrace_traces_module" in step for step in plan)
        table_scans = [
            step
            for step in plan
            if step.startswith(("SCAN t", "SCAN typetrace")) and "INDEX" not in step
        ]
        assert table_scans == []


class TestNewFile:
    def test_leaves_only_the_store(self, path: Path) -> None:
        """A new store is built in a temporary file that is gone afterwards."""
        SQLiteStore(str(path)).close()

        assert [entry.name for entry in path.parent.iterdir()] == [path.name]
        assert read_meta(path) == [("schema_version", str(SCHEMA_VERSION))]

    def test_syncs_the_file_before_linking_it(
        self, path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The complete file is synced before it gets the store's name, then the folder."""
        events: list[tuple[str, str]] = []
        real_fsync = os.fsync
        real_link = os.link

        def fsync(descriptor: int) -> None:
            events.append(("fsync", os.readlink(f"/proc/self/fd/{descriptor}")))
            real_fsync(descriptor)

        def link(source: str, destination: str) -> None:
            events.append(("link", destination))
            real_link(source, destination)

        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "link", link)
        SQLiteStore(str(path)).close()

        folder = os.path.realpath(path.parent)
        assert [kind for kind, _ in events] == ["fsync", "link", "fsync"]
        assert os.path.dirname(events[0][1]) == folder
        assert os.path.basename(events[0][1]).startswith(f".{path.name}.")
        assert events[1][1] == str(path)
        assert events[2][1] == folder

    def test_store_created_meanwhile_is_used(
        self, path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """When another process creates the file first, the store opens that file."""
        real_link = os.link

        def link_after_another_process(source: str, destination: str) -> None:
            with closing(sqlite3.connect(destination)) as other, other:
                other.execute("CREATE TABLE other_process (x INTEGER)")
            real_link(source, destination)

        monkeypatch.setattr(os, "link", link_after_another_process)
        store = SQLiteStore(str(path))
        store.add([TRACE])
        store.close()

        with closing(sqlite3.connect(path)) as connection:
            tables = {name for (name,) in connection.execute("SELECT name FROM sqlite_master")}
        assert "other_process" in tables
        assert read_meta(path) == [("schema_version", str(SCHEMA_VERSION))]
        reopened = SQLiteStore(str(path))
        assert reopened.list_modules() == ["pkg"]
        reopened.close()
        assert [entry.name for entry in path.parent.iterdir()] == [path.name]

    def test_created_in_place_without_hard_links(
        self, path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """On a file system without hard links the store is created in place."""

        def link_not_permitted(source: str, destination: str) -> None:
            raise PermissionError(errno.EPERM, "Operation not permitted", destination)

        monkeypatch.setattr(os, "link", link_not_permitted)
        store = SQLiteStore(str(path))
        store.add([TRACE])
        store.close()

        assert read_meta(path) == [("schema_version", str(SCHEMA_VERSION))]
        with closing(sqlite3.connect(path)) as connection:
            assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert [entry.name for entry in path.parent.iterdir()] == [path.name]


class TestConnectionStrings:
    def test_file_uri(self, path: Path) -> None:
        store = SQLiteStore(f"file:{path}?mode=rwc")
        store.add([TRACE])
        store.close()

        reopened = SQLiteStore(str(path))
        assert reopened.list_modules() == ["pkg"]
        reopened.close()

    def test_read_only_uri_reads_an_existing_store(self, path: Path) -> None:
        writable = SQLiteStore(str(path))
        writable.add([TRACE])
        writable.close()

        store = SQLiteStore(f"file:{path}?mode=ro")

        assert store.list_modules() == ["pkg"]
        with pytest.raises(StoreError, match="readonly"):
            store.add([TRACE])
        store.close()

    def test_store_from_url_opens_sqlite_for_paths(self, path: Path) -> None:
        store = store_from_url(str(path))

        assert isinstance(store, SQLiteStore)
        store.close()

    def test_closed_store_raises(self, path: Path) -> None:
        store = SQLiteStore(str(path))
        store.close()

        with pytest.raises(StoreError, match="is closed"):
            store.list_modules()


class TestOpenErrors:
    def test_missing_folder(self, tmp_path: Path) -> None:
        path = tmp_path / "missing" / "traces.sqlite3"

        with pytest.raises(StoreError) as raised:
            SQLiteStore(str(path))

        message = str(raised.value)
        assert str(path) in message
        assert f"the folder {tmp_path / 'missing'} does not exist; create it" in message

    def test_not_a_database(self, path: Path) -> None:
        path.write_text("these are not the traces you are looking for\n" * 100)

        with pytest.raises(StoreError) as raised:
            SQLiteStore(str(path))

        message = str(raised.value)
        assert str(path) in message
        assert "file is not a database; choose another path for the trace store" in message

    @pytest.mark.parametrize(
        ("file_mode", "folder_mode", "expected"),
        [
            pytest.param(
                0o600, 0o755, "is not readable and writable; fix its permissions", id="file"
            ),
            pytest.param(0o666, 0o555, "is not writable, and SQLite needs to create", id="folder"),
        ],
    )
    def test_permission_denied(self, file_mode: int, folder_mode: int, expected: str) -> None:
        # The folder lies outside pytest's, which other users cannot enter.
        with tempfile.TemporaryDirectory() as base:
            os.chmod(base, 0o755)
            folder = Path(base) / "locked"
            folder.mkdir()
            path = folder / "traces.sqlite3"
            SQLiteStore(str(path)).close()
            os.chmod(path, file_mode)
            os.chmod(folder, folder_mode)

            message = open_in_unprivileged_child(path)

            os.chmod(folder, 0o755)
        assert str(path) in message
        assert "permission denied" in message
        assert expected in message


def open_in_unprivileged_child(path: Path) -> str:
    """Open *path* in a forked child as the user nobody; return the StoreError message.

    Root ignores file modes, so the child gives up root first. It forks instead of
    starting a new interpreter because that user may lack read access to this
    virtual environment.
    """
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns about fork() while other threads run; the child only
        # opens a file and exits.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            if os.geteuid() == 0:
                nobody = pwd.getpwnam("nobody")
                os.setgroups([])
                os.setgid(nobody.pw_gid)
                os.setuid(nobody.pw_uid)
            try:
                SQLiteStore(str(path))
                output = "opened without an error"
            except StoreError as error:
                output = str(error)
            os.write(write_end, output.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        output = reader.read().decode()
    os.waitpid(pid, 0)
    return output


class TestLockRetry:
    def test_write_waits_for_another_writer(
        self, path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # A busy timeout far below the lock's hold time makes SQLite report
        # "database is locked", which the store must retry.
        monkeypatch.setattr(sqlite_module, "_BUSY_TIMEOUT_SECONDS", 0.01)
        store = SQLiteStore(str(path))
        blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        blocker.execute("BEGIN IMMEDIATE")
        releaser = threading.Timer(0.5, lambda: blocker.execute("COMMIT"))
        releaser.start()

        started = time.monotonic()
        store.add([TRACE])
        waited = time.monotonic() - started

        releaser.join()
        blocker.close()
        assert waited >= 0.4
        assert store.filter("pkg")[0].to_trace().call_count == 1
        store.close()

    def test_close_stops_a_waiting_write(
        self, path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """close() returns while another thread's write waits for a lock held by a
        second process, and that write then stops retrying and raises."""
        monkeypatch.setattr(sqlite_module, "_BUSY_TIMEOUT_SECONDS", 0.2)
        store = SQLiteStore(str(path))
        errors: list[Exception] = []

        def add() -> None:
            try:
                store.add([TRACE])
            except StoreError as error:
                errors.append(error)

        with locked_by_other_process(path):
            writer = threading.Thread(target=add, daemon=True)
            writer.start()
            time.sleep(0.5)
            started = time.monotonic()
            # A thread, so that a close() that waits for the write does not hang
            # the test.
            closer = threading.Thread(target=store.close, daemon=True)
            closer.start()
            closer.join(5.0)
            closed = time.monotonic() - started
            writer.join(5.0)
            stopped = time.monotonic() - started

        assert not closer.is_alive()
        assert closed < 0.1
        assert not writer.is_alive()
        assert stopped < 2.0
        assert len(errors) == 1
        assert "closed while it waited for another process's lock" in str(errors[0])
        with pytest.raises(StoreError, match="is closed"):
            store.list_modules()
